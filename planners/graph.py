"""The skeleton graph: sub-problems with dependencies and difficulty, on networkx."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import networkx as nx

from plait.errors import InvalidInput

NODE_STATUSES = ("pending", "running", "done", "failed", "cancelled")


@dataclass
class Node:
    id: str
    question: str
    depends_on: list[str] = field(default_factory=list)
    difficulty: int = 3  # 1 (trivial) .. 5 (hardest)
    tier: str = ""
    answer: str | None = None
    status: str = "pending"

    def __post_init__(self) -> None:
        if not 1 <= self.difficulty <= 5:
            raise InvalidInput(f"node {self.id!r}: difficulty must be 1-5, got {self.difficulty}")
        if self.status not in NODE_STATUSES:
            raise InvalidInput(f"node {self.id!r}: unknown status {self.status!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class SkeletonGraph:
    """A DAG of nodes. Construction rejects cycles and dependencies on unknown nodes."""

    def __init__(self, nodes: list[Node]):
        if not nodes:
            raise InvalidInput("a skeleton graph needs at least one node")
        self.graph = nx.DiGraph()
        for node in nodes:
            if node.id in self.graph:
                raise InvalidInput(f"node id {node.id!r} appears twice")
            self.graph.add_node(node.id, node=node)
        for node in nodes:
            for dep in node.depends_on:
                if dep not in self.graph:
                    raise InvalidInput(f"node {node.id!r} depends on unknown node {dep!r}")
                self.graph.add_edge(dep, node.id)
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = " -> ".join(u for u, _ in nx.find_cycle(self.graph))
            raise InvalidInput(f"the skeleton has a cycle: {cycle}")

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def node(self, node_id: str) -> Node:
        return self.graph.nodes[node_id]["node"]

    def nodes(self) -> list[Node]:
        return [self.node(n) for n in nx.topological_sort(self.graph)]

    def ready(self) -> list[Node]:
        """Pending nodes whose dependencies are all done, in topological order."""
        return [
            n for n in self.nodes() if n.status == "pending" and all(self.node(d).status == "done" for d in n.depends_on)
        ]

    def sinks(self) -> list[Node]:
        return [n for n in self.nodes() if self.graph.out_degree(n.id) == 0]

    def finished(self) -> bool:
        return all(n.status in ("done", "failed", "cancelled") for n in self.nodes())

    def to_dict(self) -> dict:
        return {"nodes": [n.to_dict() for n in self.nodes()]}

    @classmethod
    def from_dict(cls, data: dict) -> "SkeletonGraph":
        return cls([Node(**n) for n in data["nodes"]])
