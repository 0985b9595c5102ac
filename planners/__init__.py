"""Planners turn a problem into a skeleton graph and route each node to a model tier."""

from __future__ import annotations

from plait.errors import InvalidInput
from planners.forwarding import with_dependencies
from planners.graph import Node, SkeletonGraph
from workers.engines.base import Engine

PLANNERS = ("none", "sgd")


def route(difficulty: int, routing: dict[int, str]) -> str:
    """Tier for a difficulty: the table's entry, else the nearest easier one that is set."""
    for level in range(difficulty, 0, -1):
        if level in routing:
            return routing[level]
    raise InvalidInput(f"no tier is routed for difficulty {difficulty} or below: fix the routing table")


def plan(
    problem: str,
    planner: str,
    routing: dict[int, str],
    engine: Engine | None = None,
    *,
    difficulty: int = 3,
    max_nodes: int = 8,
    constrained: bool = True,
) -> tuple[SkeletonGraph, str]:
    """(graph, reason). 'none' treats the problem as one atomic node of `difficulty`; 'sgd' asks
    the planner model on `engine` for a skeleton of at most `max_nodes` nodes."""
    if planner == "sgd":
        if engine is None:
            raise InvalidInput("planner 'sgd' needs an engine to run the planner model on")
        # Imported here: planners.sgd itself imports route() from this module.
        from planners.sgd import plan_sgd

        return plan_sgd(problem, engine, routing, max_nodes=max_nodes, constrained=constrained)
    if planner != "none":
        raise InvalidInput(f"unknown planner {planner!r}: choose one of {', '.join(PLANNERS)}")
    node = Node(id="answer", question=problem, difficulty=difficulty, tier=route(difficulty, routing))
    return SkeletonGraph([node]), "planner 'none': the problem runs as a single node"


def given(nodes: list[Node], routing: dict[int, str]) -> tuple[SkeletonGraph, str]:
    """A graph the user wrote, with each node routed by its difficulty."""
    for node in nodes:
        node.tier = route(node.difficulty, routing)
    return SkeletonGraph(nodes), f"graph given in the job: {len(nodes)} nodes"


__all__ = ["Node", "PLANNERS", "SkeletonGraph", "given", "plan", "route", "with_dependencies"]
