import pytest

from planners import Node, SkeletonGraph, plan, route
from plait.errors import InvalidInput


def test_ready_follows_dependencies():
    g = SkeletonGraph([Node("a", "A"), Node("b", "B"), Node("c", "C", depends_on=["a", "b"])])
    assert [n.id for n in g.ready()] == ["a", "b"]
    g.node("a").status = "done"
    assert [n.id for n in g.ready()] == ["b"]
    g.node("b").status = "done"
    assert [n.id for n in g.ready()] == ["c"]
    assert [n.id for n in g.sinks()] == ["c"]


def test_cycles_and_dangling_dependencies_are_rejected():
    with pytest.raises(InvalidInput, match="cycle"):
        SkeletonGraph([Node("a", "A", depends_on=["b"]), Node("b", "B", depends_on=["a"])])
    with pytest.raises(InvalidInput, match="unknown node 'z'"):
        SkeletonGraph([Node("a", "A", depends_on=["z"])])
    with pytest.raises(InvalidInput, match="difficulty"):
        Node("a", "A", difficulty=7)


def test_routing_falls_back_to_easier_levels():
    table = {1: "small", 4: "large"}
    assert [route(d, table) for d in range(1, 6)] == ["small", "small", "small", "large", "large"]


def test_plan_none_is_one_routed_node():
    graph, reason = plan("What is 2+2?", "none", {1: "small"})
    (node,) = graph.nodes()
    assert node.question == "What is 2+2?" and node.tier == "small" and "single node" in reason
    with pytest.raises(InvalidInput, match="unknown planner"):
        plan("x", "oracle", {1: "small"})


def test_graph_round_trips():
    g = SkeletonGraph([Node("a", "A", difficulty=2), Node("b", "B", depends_on=["a"])])
    assert SkeletonGraph.from_dict(g.to_dict()).to_dict() == g.to_dict()
