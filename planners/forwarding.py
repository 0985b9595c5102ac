"""Information forwarding (SGD): a node's question as its worker receives it, with the
answers of the nodes it depends on written in. The prompt text of it lives here, with the
planner, not in the orchestrator."""

from __future__ import annotations

from planners.graph import Node, SkeletonGraph


def with_dependencies(node: Node, graph: SkeletonGraph, asked: dict[str, str]) -> str:
    """A dependent's question carries its dependencies' answers (SGD's information forwarding):
    `{id}` placeholders are filled in, and a preamble lists what is known (each dependency as
    it was asked, its own placeholders filled)."""
    if not node.depends_on:
        return node.question
    question = node.question
    for dep in node.depends_on:
        question = question.replace("{" + dep + "}", str(graph.node(dep).answer))
    known = "\n".join(
        f"- {_own_part(asked.get(d, graph.node(d).question))} Answer: {graph.node(d).answer}" for d in node.depends_on
    )
    return f"{_PREAMBLE}{known}\n\n{question}"


_PREAMBLE = "Known results:\n"


def _own_part(question: str) -> str:
    """A question without the preamble it was given (dependencies of dependencies)."""
    return question.split("\n\n", 1)[1] if question.startswith(_PREAMBLE) else question
