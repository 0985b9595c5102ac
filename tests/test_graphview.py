"""Skeleton graph pictures: files, labels, colours, edges, layering and event replay."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import pytest

from orchestrator import graphview
from orchestrator.graphview import STATUS_COLOURS, graph_from_events, render_graph
from orchestrator.job import NodeResult
from plait.errors import InvalidInput
from plait.events import event

# three columns: four roots; carpet <- area, price and trim_cost <- perimeter (pending);
# total <- carpet, trim_cost, tax and area (area skips a column)
DEPENDS = {
    "area": [],
    "perimeter": [],
    "price": [],
    "tax": [],
    "carpet": ["area", "price"],
    "trim_cost": ["perimeter"],
    "total": ["carpet", "trim_cost", "tax", "area"],
}
DEPTH = {"area": 0, "perimeter": 0, "price": 0, "tax": 0, "carpet": 1, "trim_cost": 1, "total": 2}
TAX_ERROR = "no answer (length): the rate is not given"


def planned_nodes() -> list[dict]:
    return [
        {
            "id": node_id,
            # unbalanced $…$ would crash matplotlib's mathtext if the label were parsed as math
            "question": f"Find {node_id}: a carpet at $18 per $m^{{2 costs what?",
            "depends_on": deps,
            "difficulty": 1 + len(deps),
            "tier": "small",
            "answer": None,
            "status": "pending",
        }
        for node_id, deps in DEPENDS.items()
    ]


def job_events() -> list[dict]:
    """A realistic stream: roots run as one batch, one of them fails, carpet runs on another
    tier, trim_cost is running, total never started."""

    def done(node_id: str, status: str, answer: str | None, error: str | None = None) -> dict:
        return event("node_done", node=node_id, status=status, answer=answer, error=error, tokens=9, tool_calls=0, seconds=1.0, worker={})

    events = [event("submitted", strategy="tora", mode="local")]
    events.append(event("planned", nodes=planned_nodes(), reason="given", tokens=0, completion_tokens=0, usage={}))
    for node_id in ("area", "perimeter", "price", "tax"):
        events.append(event("node_started", node=node_id, tier="small", replica=0, retry=0))
    events.append(event("generated", tier="small", round=1, questions=4, tokens=50))
    for node_id, answer in (("area", "84"), ("perimeter", "38"), ("price", "0.0018")):
        events.append(done(node_id, "done", answer))
    events.append(done("tax", "failed", None, TAX_ERROR))
    events.append(event("node_started", node="carpet", tier="large", replica=0, retry=0))
    events.append(event("node_started", node="trim_cost", tier="small", replica=0, retry=0))
    events.append(done("carpet", "done", "0.1512"))
    return events


def svg_tree(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def by_gid(root: ET.Element, prefix: str) -> dict[str, ET.Element]:
    return {el.get("id"): el for el in root.iter() if (el.get("id") or "").startswith(prefix)}


def text_of(element: ET.Element) -> str:
    return " ".join(el.text or "" for el in element.iter() if el.tag.endswith("text"))


def fill_of(group: ET.Element) -> str:
    path = next(el for el in group.iter() if el.tag.endswith("path"))
    return re.search(r"fill: (#[0-9a-f]{6})", path.get("style")).group(1)


def left_x(group: ET.Element) -> float:
    path = next(el for el in group.iter() if el.tag.endswith("path"))
    return min(float(x) for x in re.findall(r"[ML] ([-\d.]+) ", path.get("d")))


def test_png_is_a_real_png_sized_by_the_layers(tmp_path):
    out = render_graph(graph_from_events(job_events()), None, tmp_path / "g.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    height, width, channels = matplotlib.image.imread(out).shape
    # three columns wide, four boxes tall (the roots' column)
    cols, rows = 3, 4
    g = graphview
    plot_w = 2 * g.MARGIN + cols * g.BOX_W + (cols - 1) * g.COL_GAP
    plot_h = 2 * g.MARGIN + rows * g.BOX_H + (rows - 1) * g.ROW_GAP + g.HEADER
    assert (width, height) == (round(plot_w * g.DPI), round(plot_h * g.DPI))
    assert channels in (3, 4)


def test_svg_labels_every_node_with_its_answer_or_error_and_draws_one_arrow_per_dependency(tmp_path):
    root = svg_tree(render_graph(graph_from_events(job_events()), None, tmp_path / "g.svg"))
    everything = text_of(root)
    for node_id in DEPENDS:
        assert node_id in everything
    assert "$18 per $m^{2" in everything  # shown literally, not as math
    answers = {gid.removeprefix("answer:"): text_of(el) for gid, el in by_gid(root, "answer:").items()}
    assert answers["area"] == "answer: 84"
    assert answers["carpet"] == "answer: 0.1512"
    assert answers["tax"].startswith("error: no answer (length)")
    assert answers["total"] == "(pending)"
    assert answers["trim_cost"] == "(running)"
    edges = set(by_gid(root, "edge:"))
    assert edges == {f"edge:{dep}:{node}" for node, deps in DEPENDS.items() for dep in deps}
    assert len(edges) == sum(len(d) for d in DEPENDS.values())


def test_nodes_are_filled_with_their_status_colour(tmp_path):
    nodes = by_gid(svg_tree(render_graph(graph_from_events(job_events()), None, tmp_path / "g.svg")), "node:")
    assert fill_of(nodes["node:area"]) == STATUS_COLOURS["done"][0]
    assert fill_of(nodes["node:tax"]) == STATUS_COLOURS["failed"][0]
    assert fill_of(nodes["node:trim_cost"]) == STATUS_COLOURS["running"][0]
    assert fill_of(nodes["node:total"]) == STATUS_COLOURS["pending"][0]
    assert len({fill_of(nodes[f"node:{n}"]) for n in ("area", "tax", "trim_cost", "total")}) == 4


def test_columns_follow_dependency_depth(tmp_path):
    nodes = by_gid(svg_tree(render_graph(planned_nodes(), None, tmp_path / "g.svg")), "node:")
    x = {gid.removeprefix("node:"): left_x(el) for gid, el in nodes.items()}
    columns = sorted(set(x.values()))
    assert len(columns) == 3
    assert {n: columns.index(v) for n, v in x.items()} == DEPTH


def test_results_override_the_planned_state_but_keep_the_planned_question(tmp_path):
    results = [
        NodeResult("area", "Known results:\n- long preamble", "large", "done", "84", None),
        NodeResult("tax", "Find tax", "small", "failed", None, None, error="worker died 2 times"),
        NodeResult("total", "Find total", "small", "cancelled", None, None, error="cancelled by the user"),
    ]
    root = svg_tree(render_graph(planned_nodes(), results, tmp_path / "g.svg"))
    nodes = by_gid(root, "node:")
    assert fill_of(nodes["node:area"]) == STATUS_COLOURS["done"][0]
    assert fill_of(nodes["node:total"]) == STATUS_COLOURS["cancelled"][0]
    assert fill_of(nodes["node:price"]) == STATUS_COLOURS["pending"][0]
    answers = by_gid(root, "answer:")
    assert text_of(answers["answer:area"]) == "answer: 84"
    assert text_of(answers["answer:tax"]) == "error: worker died 2 times"
    assert "area · large · difficulty 1" in text_of(root)  # the result's tier
    assert "preamble" not in text_of(root)


def test_graph_from_events_replays_statuses_answers_and_tiers():
    events = job_events()
    nodes = {n["id"]: n for n in graph_from_events(events)}
    assert list(nodes) == list(DEPENDS)
    state = {n: (v["status"], v["answer"], v["tier"]) for n, v in nodes.items()}
    assert state == {
        "area": ("done", "84", "small"),
        "perimeter": ("done", "38", "small"),
        "price": ("done", "0.0018", "small"),
        "tax": ("failed", None, "small"),
        "carpet": ("done", "0.1512", "large"),
        "trim_cost": ("running", None, "small"),
        "total": ("pending", None, "small"),
    }
    assert nodes["tax"]["error"] == TAX_ERROR
    assert nodes["total"]["depends_on"] == DEPENDS["total"]
    # the event stream itself is left as it was
    assert all(n["status"] == "pending" for n in events[1]["nodes"])
    assert graph_from_events([event("submitted", strategy="tora", mode="local")]) == []


@pytest.mark.parametrize("name", ["g.pdf", "g.jpg", "g"])
def test_other_suffixes_are_refused(tmp_path, name):
    with pytest.raises(InvalidInput, match=r"\.png or \.svg"):
        render_graph(planned_nodes(), None, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_draw_unwritable_paths_and_cycles_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not been planned"):
        render_graph([], None, tmp_path / "g.svg")
    with pytest.raises(InvalidInput, match="cannot write the graph"):
        render_graph(planned_nodes(), None, tmp_path / "missing" / "g.png")
    cyclic = planned_nodes()
    cyclic[0]["depends_on"] = ["total"]
    with pytest.raises(InvalidInput, match="cycle"):
        render_graph(cyclic, None, tmp_path / "g.svg")


def test_svg_is_byte_for_byte_repeatable(tmp_path):
    nodes = graph_from_events(job_events())
    first = render_graph(nodes, None, tmp_path / "a.svg", title="job-1").read_bytes()
    second = render_graph(nodes, None, tmp_path / "b.svg", title="job-1").read_bytes()
    assert first == second
