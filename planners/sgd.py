"""Skeleton Graph Decoding planner (Jin et al. 2024, arXiv 2402.12280).

One greedy call asks the planner model for a skeleton: sub-questions with dependencies and a
difficulty each, the last one answering the whole problem from the others' answers (`{id}`
placeholders). Following Skeleton-of-Thought's router, the model may instead declare the
problem atomic, and then it runs as one node. A small model's skeleton is often malformed,
so `parse_skeleton` repairs it deterministically and names every repair in the reason that
the job's trace records.
"""

from __future__ import annotations

import json
import re
from typing import Any

import networkx as nx

from plait.errors import InvalidInput
from planners import route
from planners.graph import Node, SkeletonGraph
from workers.engines.base import Engine, SamplingParams
from workers.strategies.prompts import FewShot, prompt_set

MAX_NODES = 8
DEFAULT_DIFFICULTY = 3
PREFIX = "planner 'sgd': "
_ID = "^[a-z0-9_]{1,16}$"


def skeleton_schema(max_nodes: int = MAX_NODES) -> dict[str, Any]:
    """JSON schema of a skeleton. Lengths are capped so constrained decoding cannot ramble in
    a string forever (lm-format-enforcer takes a pattern or a length, not both)."""
    node = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": _ID},
            "question": {"type": "string", "minLength": 1, "maxLength": 300},
            "depends_on": {"type": "array", "items": {"type": "string", "pattern": _ID}, "maxItems": max_nodes - 1},
            "difficulty": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        },
        "required": ["id", "question", "depends_on", "difficulty"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "atomic": {"type": "boolean"},
            "reason": {"type": "string", "maxLength": 120},
            "nodes": {"type": "array", "items": node, "minItems": 1, "maxItems": max_nodes},
        },
        "required": ["atomic", "reason", "nodes"],
        "additionalProperties": False,
    }


SKELETON_SCHEMA = skeleton_schema()


def _example(problem: str, reason: str, nodes: list[tuple[str, str, list[str], int]]) -> tuple[str, str]:
    skeleton = {
        "atomic": len(nodes) == 1,
        "reason": reason,
        "nodes": [{"id": i, "question": q, "depends_on": d, "difficulty": k} for i, q, d, k in nodes],
    }
    return problem, json.dumps(skeleton)


PLANNER_PROMPT = FewShot(
    system=(
        "Split the problem into sub-questions as JSON. Later questions use earlier answers as {id}. "
        "The last question answers the problem. Difficulty is 1 (easy) to 5 (hard). "
        "A one-step problem is atomic."
    ),
    examples=(
        _example(
            "What is 15% of 80?",
            "one calculation",
            [("answer", "What is 15% of 80?", [], 1)],
        ),
        _example(
            "Tom buys 3 shirts at $12 each and 2 hats at $8 each. He pays with a $100 bill. How much change does he get?",
            "two costs, a total, then the change",
            [
                ("shirts", "How much do 3 shirts at $12 each cost?", [], 1),
                ("hats", "How much do 2 hats at $8 each cost?", [], 1),
                ("total", "What is {shirts} + {hats}?", ["shirts", "hats"], 1),
                ("change", "Tom pays {total} dollars with a $100 bill. How much change does he get?", ["total"], 2),
            ],
        ),
        _example(
            "Let s be the sum of the roots of x^2 - 5x + 6 = 0 and p the product of the roots of "
            "x^2 + 3x - 10 = 0. What is s + p?",
            "two independent equations, then a sum",
            [
                ("s", "What is the sum of the roots of x^2 - 5x + 6 = 0?", [], 3),
                ("p", "What is the product of the roots of x^2 + 3x - 10 = 0?", [], 3),
                ("answer", "What is {s} + {p}?", ["s", "p"], 1),
            ],
        ),
    ),
)


# For a chat model that follows instructions: the format described, no example to copy.
PLANNER_INSTRUCT = FewShot(
    system=(
        "You plan how a team of solvers answers a math problem. Reply with JSON only: "
        '{"atomic": true|false, "reason": "...", "nodes": [{"id": "...", "question": "...", "depends_on": [...], "difficulty": 1-5}]}. '
        "Each node asks one self-contained sub-question. A node that needs another node's answer writes {id} "
        "where that answer goes and lists the id in depends_on. The last node answers the original problem. "
        "Difficulty: 1 for one arithmetic step, up to 5 for a hard problem. If the problem takes a single step, "
        "set atomic to true and give one node with the whole problem."
    ),
    instruction="Plan the problem above as JSON.",
)


def planner_prompt(model_id: str) -> FewShot:
    return PLANNER_PROMPT if prompt_set(model_id).style == "few_shot" else PLANNER_INSTRUCT


def plan_sgd(
    problem: str,
    engine: Engine,
    routing: dict[int, str],
    *,
    max_nodes: int = MAX_NODES,
    constrained: bool = True,
    max_tokens: int = 512,
) -> tuple[SkeletonGraph, str]:
    """(graph, reason): one greedy planner call, the skeleton repaired, each node routed to a tier."""
    schema = skeleton_schema(max_nodes) if constrained else None
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, json_schema=schema)
    prompt = planner_prompt(engine.info().model_id)
    ((completion, *_),) = engine.generate([prompt.prompt(problem)], params)
    nodes, reason = parse_skeleton(completion.text, problem, max_nodes)
    for node in nodes:
        node.tier = route(node.difficulty, routing)
    return SkeletonGraph(nodes), reason


def parse_skeleton(text: str, problem: str, max_nodes: int = MAX_NODES) -> tuple[list[Node], str]:
    """Nodes (tiers unset) and a reason naming every repair. Always returns a valid DAG with a
    single sink whose question carries the original problem.

    Repairs, in order: the first skeleton-shaped JSON object is taken out of surrounding text
    (an output cut short keeps its complete nodes; nothing usable: the whole problem runs as
    one node); non-object nodes and nodes with an empty
    question are dropped; a missing id becomes `n<position>`; a repeated id is dropped when
    its question repeats the first node's too, and renamed `<id>_2`, `<id>_3`… otherwise
    (dependencies on the id mean the first node); a missing or unreadable difficulty becomes 3,
    others are rounded and clamped to 1..5; `atomic: true` or fewer than two usable nodes →
    one node with the whole problem; self, unknown and repeated dependencies are dropped and a
    `{id}` placeholder of another node adds that dependency; cycles are broken by keeping every
    dependency on an earlier node and dropping a dependency on a later one that closes a
    cycle; several sinks get a `final` node that asks the problem from all of them; a graph
    over `max_nodes` keeps the sink and the first other nodes, and nodes left without
    dependents then feed the sink.
    """
    if max_nodes < 2:
        raise InvalidInput(f"max_nodes must be at least 2 for a skeleton, got {max_nodes}")
    notes: list[str] = []
    data = _skeleton_object(text, notes)
    if data is None:
        return _whole(problem, DEFAULT_DIFFICULTY, "the output has no skeleton JSON object", notes)
    node_notes: list[str] = []
    nodes = _read_nodes(data.get("nodes"), node_notes)
    hardest = max((n.difficulty for n in nodes), default=DEFAULT_DIFFICULTY)
    said = data.get("reason") if isinstance(data.get("reason"), str) else ""
    if data.get("atomic") is True:
        return _whole(problem, hardest, "the planner judged the problem atomic" + (f" ({said})" if said else ""), notes)
    notes += node_notes
    if len(nodes) < 2:
        return _whole(problem, hardest, f"the planner gave {len(nodes)} usable node(s)", notes)
    _link(nodes, notes)
    _break_cycles(nodes, notes)
    final = _single_sink(nodes, problem, notes)
    nodes = _cap(nodes, final, max_nodes, notes)
    if final.question.strip() != problem.strip():
        final.question = f"{final.question}\n\nOriginal problem: {problem}"
    summary = f"{len(nodes)} nodes" + (f" ({said})" if said else "")
    return nodes, PREFIX + "; ".join([summary, *notes])


def _whole(problem: str, difficulty: int, why: str, notes: list[str]) -> tuple[list[Node], str]:
    return [Node("answer", problem, [], difficulty)], PREFIX + "; ".join([f"1 node, the whole problem: {why}", *notes])


def _skeleton_object(text: str, notes: list[str]) -> dict[str, Any] | None:
    """The first JSON object with a skeleton's keys; a nested node object alone does not count."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and ("nodes" in value or "atomic" in value):
            if text[: match.start()].strip() or text[end:].strip():
                notes.append("took the JSON object out of the text around it")
            return value
    return _cut_skeleton(text, notes)


def _cut_skeleton(text: str, notes: list[str]) -> dict[str, Any] | None:
    """A skeleton cut short (the token budget ran out mid-node): its complete nodes, closed
    as written. Tries each '}' from the end as the last complete node."""
    start = text.find("{")
    if start < 0 or '"nodes"' not in text:
        return None
    for end in range(len(text) - 1, start, -1):
        if text[end] != "}":
            continue
        try:
            value = json.loads(text[start : end + 1] + "]}")
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("nodes"), list):
            notes.append(f"the output was cut short: kept its {len(value['nodes'])} complete node(s)")
            return value
    return None


def _read_nodes(raw: object, notes: list[str]) -> list[Node]:
    if not isinstance(raw, list):
        notes.append("'nodes' is not a list")
        return []
    nodes: dict[str, Node] = {}
    for position, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            notes.append(f"dropped node #{position}: not an object")
            continue
        node_id = _name(item.get("id"))
        if not node_id:
            node_id = _fresh(f"n{position}", nodes)
            notes.append(f"named node #{position} '{node_id}'")
        question = item.get("question")
        question = question.strip() if isinstance(question, str) else ""
        if not question:
            notes.append(f"dropped node '{node_id}': empty question")
            continue
        if node_id in nodes:
            if nodes[node_id].question == question:
                notes.append(f"dropped node #{position}: repeats node '{node_id}'")
                continue
            renamed = _fresh(node_id, nodes)
            notes.append(f"renamed the second node '{node_id}' to '{renamed}'")
            node_id = renamed
        deps = item.get("depends_on")
        if deps is not None and not isinstance(deps, list):
            notes.append(f"ignored depends_on of node '{node_id}': not a list")
        names = [_name(d) for d in deps] if isinstance(deps, list) else []
        nodes[node_id] = Node(node_id, question, [d for d in names if d], _difficulty(item.get("difficulty"), node_id, notes))
    return list(nodes.values())


def _name(value: object) -> str:
    """An id as text: models sometimes number their nodes."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return str(value).strip()


def _fresh(base: str, taken: dict[str, Node] | set[str]) -> str:
    if base not in taken:
        return base
    suffix = 2
    while f"{base}_{suffix}" in taken:
        suffix += 1
    return f"{base}_{suffix}"


def _difficulty(value: object, node_id: str, notes: list[str]) -> int:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = float(value)
        level = min(max(round(number), 1), 5)
    except (ValueError, OverflowError):
        notes.append(f"difficulty of node '{node_id}' is missing or unreadable: used {DEFAULT_DIFFICULTY}")
        return DEFAULT_DIFFICULTY
    if level != number:
        notes.append(f"set difficulty of node '{node_id}' from {value!r} to {level}")
    return level


_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")


def _link(nodes: list[Node], notes: list[str]) -> None:
    """Keep dependencies on other known nodes, and add those the question's placeholders name:
    the scheduler fills a placeholder only from a dependency."""
    ids = {n.id for n in nodes}
    for node in nodes:
        kept: list[str] = []
        for dep in node.depends_on:
            if dep == node.id:
                notes.append(f"dropped self-dependency of node '{node.id}'")
            elif dep not in ids:
                notes.append(f"dropped unknown dependency '{dep}' of node '{node.id}'")
            elif dep in kept:
                notes.append(f"dropped repeated dependency '{dep}' of node '{node.id}'")
            else:
                kept.append(dep)
        for name in _PLACEHOLDER.findall(node.question):
            if name in ids and name != node.id and name not in kept:
                kept.append(name)
                notes.append(f"added dependency '{name}' of node '{node.id}': its question uses {{{name}}}")
        node.depends_on = kept


def _break_cycles(nodes: list[Node], notes: list[str]) -> None:
    """Dependencies on earlier nodes cannot form a cycle among themselves and match how a
    skeleton is written, so they all stay; a dependency on a later node is dropped, in node
    order, when it would close a cycle."""
    order = {n.id: i for i, n in enumerate(nodes)}
    graph = nx.DiGraph()
    graph.add_nodes_from(order)
    graph.add_edges_from((d, n.id) for n in nodes for d in n.depends_on if order[d] < order[n.id])
    for node in nodes:
        for dep in [d for d in node.depends_on if order[d] > order[node.id]]:
            if nx.has_path(graph, node.id, dep):
                cycle = " -> ".join([*nx.shortest_path(graph, node.id, dep), node.id])
                node.depends_on.remove(dep)
                notes.append(f"broke cycle {cycle}: dropped dependency '{dep}' of node '{node.id}'")
            else:
                graph.add_edge(dep, node.id)


def _sinks(nodes: list[Node]) -> list[Node]:
    used = {d for n in nodes for d in n.depends_on}
    return [n for n in nodes if n.id not in used]


def _single_sink(nodes: list[Node], problem: str, notes: list[str]) -> Node:
    """The node that answers the problem; several sinks get a new one that gathers them."""
    sinks = _sinks(nodes)
    if len(sinks) == 1:
        return sinks[0]
    final = Node(_fresh("final", {n.id for n in nodes}), problem, [s.id for s in sinks], max(s.difficulty for s in sinks))
    nodes.append(final)
    notes.append(f"added node '{final.id}' to answer the problem from {', '.join(repr(s.id) for s in sinks)}")
    return final


def _cap(nodes: list[Node], final: Node, max_nodes: int, notes: list[str]) -> list[Node]:
    if len(nodes) <= max_nodes:
        return nodes
    others = [n for n in nodes if n is not final]
    kept_ids = {n.id for n in others[: max_nodes - 1]} | {final.id}
    kept = [n for n in nodes if n.id in kept_ids]
    dropped = [n.id for n in nodes if n.id not in kept_ids]
    notes.append(f"capped at {max_nodes} nodes: dropped {', '.join(repr(d) for d in dropped)} and the dependencies on them")
    for node in kept:
        node.depends_on = [d for d in node.depends_on if d in kept_ids]
    orphans = [n.id for n in _sinks(kept) if n is not final]
    if orphans:
        final.depends_on += orphans
        notes.append(f"node(s) {', '.join(repr(o) for o in orphans)} now feed '{final.id}'")
    return kept
