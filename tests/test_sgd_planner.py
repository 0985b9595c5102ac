"""The SGD planner: skeleton parsing and its repairs, routing, the planner call's sampling
parameters. The real model plans through the scheduler in test_e2e.py."""

import json

import networkx as nx
import pytest

from plait.errors import InvalidInput
from planners import plan
from planners.sgd import MAX_NODES, PLANNER_INSTRUCT, PREFIX, SKELETON_SCHEMA, parse_skeleton, plan_sgd
from workers.engines.base import Completion, EngineInfo, Prompt, SamplingParams

PROBLEM = "Ann has 3 apples and buys 4 more; Bob has twice as many as Ann. How many do they have together?"
ROUTING = {1: "small", 4: "large"}


class ScriptedPlannerEngine:
    """Test double: replays the given planner outputs in order and records every call's
    prompts and SamplingParams."""

    def __init__(self, *texts: str):
        self.texts = list(texts)
        self.calls: list[tuple[list[Prompt], SamplingParams]] = []

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.calls.append((prompts, params))
        return [[Completion(self.texts.pop(0), finish_reason="stop")] for _ in prompts]

    def score(self, prompt: Prompt, continuation: str) -> float:
        return 0.0

    def info(self) -> EngineInfo:
        return EngineInfo("scripted-planner", parameters=1000, context_length=4096, kv_layout=None, fingerprint="test")


def skeleton(*nodes: tuple, atomic: bool = False, reason: str = "parts") -> str:
    """A planner output; a node is (id, question, depends_on, difficulty)."""
    return json.dumps(
        {
            "atomic": atomic,
            "reason": reason,
            "nodes": [{"id": i, "question": q, "depends_on": d, "difficulty": k} for i, q, d, k in nodes],
        }
    )


VALID = skeleton(
    ("ann", "How many apples does Ann have after buying 4 more than 3?", [], 1),
    ("bob", "Bob has twice {ann}. How many apples does Bob have?", ["ann"], 2),
    ("total", "What is {ann} + {bob}?", ["ann", "bob"], 4),
)


def edges(nodes):
    return sorted((d, n.id) for n in nodes for d in n.depends_on)


def sinks(nodes):
    used = {d for n in nodes for d in n.depends_on}
    return [n.id for n in nodes if n.id not in used]


def test_valid_skeleton_becomes_a_routed_graph_with_one_sink():
    engine = ScriptedPlannerEngine(VALID)
    graph, reason = plan_sgd(PROBLEM, engine, ROUTING)
    nodes = graph.nodes()
    assert edges(nodes) == [("ann", "bob"), ("ann", "total"), ("bob", "total")]
    assert {n.id: n.tier for n in nodes} == {"ann": "small", "bob": "small", "total": "large"}
    assert [n.id for n in graph.sinks()] == ["total"]
    # The aggregation node answers the user's question, not only its own sub-question.
    assert graph.node("total").question == f"What is {{ann}} + {{bob}}?\n\nOriginal problem: {PROBLEM}"
    assert reason == PREFIX + "3 nodes (parts)"
    (prompt,), _ = engine.calls[0]
    # A chat model gets the instruction after the problem, in the planner's instruct prompt.
    assert prompt[-1].role == "user" and prompt[-1].content.startswith(PROBLEM)
    assert prompt[0].content == PLANNER_INSTRUCT.system


def test_plan_dispatches_to_sgd_and_needs_an_engine():
    graph, reason = plan(PROBLEM, "sgd", ROUTING, ScriptedPlannerEngine(VALID))
    assert len(graph) == 3 and reason.startswith(PREFIX)
    with pytest.raises(InvalidInput, match="needs an engine"):
        plan(PROBLEM, "sgd", ROUTING)


def test_atomic_problem_is_one_node_with_the_original_problem():
    text = skeleton(("answer", "What is 2+2?", [], 4), atomic=True, reason="one step")
    graph, reason = plan_sgd("What is 2+2?", ScriptedPlannerEngine(text), ROUTING)
    (node,) = graph.nodes()
    assert (node.question, node.difficulty, node.tier) == ("What is 2+2?", 4, "large")
    assert reason == PREFIX + "1 node, the whole problem: the planner judged the problem atomic (one step)"


def test_garbage_output_falls_back_to_a_single_node():
    nodes, reason = parse_skeleton("I think we should first compute Ann's apples", PROBLEM)
    assert [(n.id, n.question, n.depends_on, n.difficulty) for n in nodes] == [("answer", PROBLEM, [], 3)]
    assert "no skeleton JSON object" in reason


def test_one_usable_node_falls_back_to_a_single_node():
    nodes, reason = parse_skeleton(skeleton(("a", "Ann?", [], 2), ("b", "  ", ["a"], 2)), PROBLEM)
    assert [n.question for n in nodes] == [PROBLEM]
    assert "the planner gave 1 usable node(s)" in reason and "dropped node 'b': empty question" in reason


def test_json_embedded_in_prose_is_extracted():
    nodes, reason = parse_skeleton(f"Here is the plan:\n```json\n{VALID}\n```\nHope this helps {{x}}.", PROBLEM)
    assert [n.id for n in nodes] == ["ann", "bob", "total"]
    assert "took the JSON object out of the text around it" in reason


def test_output_cut_short_keeps_its_complete_nodes():
    # The budget ran out inside the third node: the first two stand, the last answers the problem.
    cut = VALID[: VALID.index('{"id": "total"') + 20]
    nodes, reason = parse_skeleton(cut, PROBLEM)
    assert [n.id for n in nodes] == ["ann", "bob"] and "cut short: kept its 2 complete node(s)" in reason
    assert nodes[-1].question.endswith(PROBLEM)
    # A lone node object is not a skeleton, however it was cut.
    nodes, reason = parse_skeleton(VALID[VALID.index('{"id": "bob"') :], PROBLEM)
    assert [n.question for n in nodes] == [PROBLEM] and "no skeleton JSON object" in reason


def test_unknown_and_self_dependencies_are_dropped():
    text = skeleton(
        ("ann", "Ann?", ["ann"], 1),
        ("bob", "Bob?", ["ann", "carol"], 1),
        ("total", "Sum {ann} {bob}?", ["bob", "ann", "bob"], 1),
    )
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert edges(nodes) == [("ann", "bob"), ("ann", "total"), ("bob", "total")]
    for note in (
        "dropped self-dependency of node 'ann'",
        "dropped unknown dependency 'carol' of node 'bob'",
        "dropped repeated dependency 'bob' of node 'total'",
    ):
        assert note in reason


def test_placeholder_adds_the_missing_dependency():
    text = skeleton(("ann", "Ann?", [], 1), ("bob", "Bob?", [], 1), ("total", "What is {ann} + {bob}?", ["ann"], 1))
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert edges(nodes) == [("ann", "total"), ("bob", "total")]
    assert "added dependency 'bob' of node 'total': its question uses {bob}" in reason


def test_duplicate_ids_repeated_node_dropped_different_one_renamed():
    text = skeleton(
        ("ann", "Ann?", [], 1),
        ("ann", "Ann?", [], 1),
        ("ann", "Bob?", [], 1),
        ("total", "Sum?", ["ann", "ann_2"], 1),
    )
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert [(n.id, n.question.split("\n")[0]) for n in nodes] == [("ann", "Ann?"), ("ann_2", "Bob?"), ("total", "Sum?")]
    assert edges(nodes) == [("ann", "total"), ("ann_2", "total")]
    assert "dropped node #2: repeats node 'ann'" in reason
    assert "renamed the second node 'ann' to 'ann_2'" in reason


def test_three_cycle_is_broken_deterministically():
    text = skeleton(("a", "A?", ["c"], 1), ("b", "B?", ["a"], 1), ("c", "C?", ["b"], 1))
    first = parse_skeleton(text, PROBLEM)
    second = parse_skeleton(text, PROBLEM)
    assert first == second
    nodes, reason = first
    # The dependency on a later node closes the cycle and goes; the written order stays.
    assert edges(nodes) == [("a", "b"), ("b", "c")]
    assert "broke cycle a -> b -> c -> a: dropped dependency 'c' of node 'a'" in reason
    assert nx.is_directed_acyclic_graph(nx.DiGraph(edges(nodes)))


def test_forward_dependency_without_a_cycle_is_kept():
    text = skeleton(("total", "Sum {a} {b}?", ["a", "b"], 1), ("a", "A?", [], 1), ("b", "B?", [], 1))
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert edges(nodes) == [("a", "total"), ("b", "total")] and reason == PREFIX + "3 nodes (parts)"


def test_over_large_graph_is_capped_keeping_the_sink():
    parts = [(f"p{i}", f"Part {i}?", [], 1) for i in range(10)]
    text = skeleton(*parts, ("total", "Sum?", [p[0] for p in parts], 2))
    engine = ScriptedPlannerEngine(text)
    graph, reason = plan_sgd(PROBLEM, engine, ROUTING, max_nodes=4)
    assert [n.id for n in graph.nodes()] == ["p0", "p1", "p2", "total"]
    assert graph.node("total").depends_on == ["p0", "p1", "p2"]
    assert "capped at 4 nodes: dropped 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'" in reason
    assert engine.calls[0][1].json_schema["properties"]["nodes"]["maxItems"] == 4


def test_cap_reattaches_nodes_whose_dependents_were_dropped():
    text = skeleton(("a", "A?", [], 1), ("b", "B {a}?", ["a"], 1), ("c", "C {b}?", ["b"], 1), ("d", "D {c}?", ["c"], 1))
    nodes, reason = parse_skeleton(text, PROBLEM, max_nodes=3)
    assert edges(nodes) == [("a", "b"), ("b", "d")] and sinks(nodes) == ["d"]
    assert "node(s) 'b' now feed 'd'" in reason


def test_difficulty_is_clamped_rounded_and_defaulted():
    text = json.dumps(
        {
            "atomic": False,
            "reason": "",
            "nodes": [
                {"id": "a", "question": "A?", "depends_on": [], "difficulty": 9},
                {"id": "b", "question": "B?", "depends_on": [], "difficulty": 0},
                {"id": "c", "question": "C?", "depends_on": [], "difficulty": 2.6},
                {"id": "d", "question": "D?", "depends_on": [], "difficulty": "hard"},
                {"id": "e", "question": "E?", "depends_on": ["a", "b", "c", "d"]},
            ],
        }
    )
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert [n.difficulty for n in nodes] == [5, 1, 3, 3, 3]
    assert "set difficulty of node 'a' from 9 to 5" in reason and "set difficulty of node 'b' from 0 to 1" in reason
    assert "difficulty of node 'e' is missing or unreadable: used 3" in reason


def test_missing_sink_gets_an_aggregation_node():
    text = skeleton(("ann", "Ann?", [], 1), ("bob", "Bob?", [], 2), ("carol", "Carol {ann}?", ["ann"], 1))
    nodes, reason = parse_skeleton(text, PROBLEM)
    final = nodes[-1]
    assert (final.id, final.question, final.depends_on, final.difficulty) == ("final", PROBLEM, ["bob", "carol"], 2)
    assert sinks(nodes) == ["final"]
    assert "added node 'final' to answer the problem from 'bob', 'carol'" in reason


def test_malformed_nodes_are_dropped_or_named():
    malformed = ["A?", {"question": "B?", "difficulty": 1}, {"id": "c", "question": "C?", "depends_on": "n2", "difficulty": 1}]
    text = json.dumps({"atomic": False, "nodes": malformed})
    nodes, reason = parse_skeleton(text, PROBLEM)
    assert [n.id for n in nodes] == ["n2", "c", "final"]
    assert "dropped node #1: not an object" in reason and "named node #2 'n2'" in reason
    assert "ignored depends_on of node 'c': not a list" in reason


def test_constrained_passes_the_schema_and_unconstrained_does_not():
    engine = ScriptedPlannerEngine(VALID, VALID)
    plan_sgd(PROBLEM, engine, ROUTING, constrained=True)
    plan_sgd(PROBLEM, engine, ROUTING, constrained=False, max_tokens=300)
    (_, on), (_, off) = engine.calls
    assert on.json_schema == SKELETON_SCHEMA and on.greedy and on.max_tokens == 512
    assert off.json_schema is None and off.greedy and off.max_tokens == 300
    assert SKELETON_SCHEMA["properties"]["nodes"]["maxItems"] == MAX_NODES
