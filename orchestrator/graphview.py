"""A picture of a job's skeleton graph: one box per node, coloured by status, laid out in
columns by dependency depth, with arrows from each dependency to its dependents.

Drawn with matplotlib's Agg/SVG renderers on a bare Figure (no pyplot, no display, no
graphviz). Figure units are inches, so text sizes in points and box sizes agree whatever
the graph's shape. Artists carry gids (`node:ID`, `edge:SRC:DST`, `answer:ID`) so the SVG
can be inspected by id.
"""

from __future__ import annotations

import textwrap
from dataclasses import fields
from pathlib import Path

import matplotlib
import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.transforms import Bbox, TransformedBbox

from orchestrator.job import NodeResult
from orchestrator.jobstate import fold
from plait.errors import InvalidInput
from planners.graph import Node, SkeletonGraph

FORMATS = (".png", ".svg")

# status -> (fill, border); the legend lists them in this order
STATUS_COLOURS: dict[str, tuple[str, str]] = {
    "done": ("#c3e6cb", "#2f9e44"),
    "failed": ("#f5c2c7", "#c92a2a"),
    "cancelled": ("#ced4da", "#495057"),
    "running": ("#ffe8a3", "#e0a800"),
    "pending": ("#ffffff", "#adb5bd"),
}

# Geometry in inches; text in points. A box holds a header line, QUESTION_LINES of question
# and ANSWER_LINES of answer/error, each wrapped at WRAP characters (fits BOX_W at FONT).
BOX_W, COL_GAP, ROW_GAP = 2.9, 1.0, 0.35
FONT, LINE = 8.0, 0.145
WRAP, QUESTION_LINES, ANSWER_LINES = 44, 3, 2
PAD = 0.1
BOX_H = PAD * 2 + LINE * (1 + QUESTION_LINES + ANSWER_LINES)
MARGIN, HEADER = 0.3, 0.7
MIN_WIDTH = 6.8  # the legend's five entries need this much
DPI = 110

_NODE_FIELDS = {f.name for f in fields(Node)}


def graph_from_events(events: list[dict]) -> list[dict]:
    """The nodes of the job's (latest) "planned" event with the status, tier, answer and error
    the later node events gave them, so a running job can be drawn too. [] if not planned."""
    return [node.as_node() for node in fold(events).nodes.values()]


def render_graph(
    nodes: list[dict], results: list[NodeResult] | None, path: str | Path, *, title: str | None = None
) -> Path:
    """Draw the graph to `path` (.png or .svg, chosen by the suffix) and return the path.

    `nodes` are node dicts as in the "planned" event (or from graph_from_events, whose
    "error" key is used too); `results`, when given, override each node's status, tier,
    answer and error (the planned question is kept: a result's question carries the
    dependencies' answers and would crowd the box)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"cannot draw a graph to {path.name!r}: the file name must end in {' or '.join(FORMATS)}")
    if not nodes:
        raise InvalidInput("there is no graph to draw: the job has not been planned yet")

    errors = {n["id"]: n.get("error") for n in nodes}
    merged = [Node(**{k: v for k, v in n.items() if k in _NODE_FIELDS}) for n in nodes]
    by_id = {n.id: n for n in merged}
    for r in results or []:
        if r.id in by_id:
            node = by_id[r.id]
            node.status, node.answer, node.tier = r.status, r.answer, r.tier or node.tier
            errors[r.id] = r.error
    graph = SkeletonGraph(merged)  # rejects cycles and unknown dependencies

    order = {n["id"]: i for i, n in enumerate(nodes)}
    layers = _layers(graph.graph, order)
    rows = max(len(layer) for layer in layers)
    plot_w = 2 * MARGIN + len(layers) * BOX_W + (len(layers) - 1) * COL_GAP
    plot_h = 2 * MARGIN + rows * BOX_H + (rows - 1) * ROW_GAP
    width, height = max(plot_w, MIN_WIDTH), plot_h + HEADER

    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, plot_h / height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, plot_h)
    ax.set_axis_off()

    # box lower-left corners: columns by depth, each column centred vertically
    x0 = (width - plot_w) / 2 + MARGIN
    corner: dict[str, tuple[float, float]] = {}
    for col, layer in enumerate(layers):
        top = plot_h / 2 + (len(layer) * BOX_H + (len(layer) - 1) * ROW_GAP) / 2
        for row, node_id in enumerate(layer):
            corner[node_id] = (x0 + col * (BOX_W + COL_GAP), top - BOX_H - row * (BOX_H + ROW_GAP))

    for node in merged:
        _draw_node(ax, node, errors.get(node.id), corner[node.id])
    for node in merged:
        _draw_edges(ax, graph.graph, node.id, corner)

    if title:
        fig.text(0.5, 1 - 0.22 / height, title, ha="center", va="top", fontsize=11, weight="bold", parse_math=False)
    fig.legend(
        handles=[Patch(facecolor=fill, edgecolor=border, label=status) for status, (fill, border) in STATUS_COLOURS.items()],
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - (0.3 if title else 0.08) / height),
        ncol=len(STATUS_COLOURS),
        fontsize=FONT,
        frameon=False,
    )

    # a fixed hash salt and no date make the SVG byte-for-byte repeatable; text stays text
    with matplotlib.rc_context({"svg.hashsalt": "plait-graph", "svg.fonttype": "none"}):
        metadata = {"Date": None} if suffix == ".svg" else {}
        try:
            fig.savefig(path, format=suffix[1:], metadata=metadata)
        except OSError as exc:  # a missing folder or no permission: the user picked the path
            raise InvalidInput(f"cannot write the graph to {str(path)!r}: {exc.strerror or exc}") from exc
    return path


def _layers(g: nx.DiGraph, order: dict[str, int]) -> list[list[str]]:
    """Topological generations; within a column, nodes sit near the mean row of their
    dependencies (fewer crossings), ties broken by the nodes' given order."""
    layers: list[list[str]] = []
    row: dict[str, float] = {}
    for generation in nx.topological_generations(g):

        def key(n: str) -> tuple[float, int]:
            preds = [row[p] for p in g.predecessors(n)]
            return (sum(preds) / len(preds) if preds else float(order[n]), order[n])

        layer = sorted(generation, key=key)
        row.update({n: float(i) for i, n in enumerate(layer)})
        layers.append(layer)
    return layers


def _clip(text: str, lines: int) -> list[str]:
    return textwrap.wrap(" ".join(str(text).split()), WRAP, max_lines=lines, placeholder=" …") or [""]


def _draw_node(ax: Axes, node: Node, error: str | None, corner: tuple[float, float]) -> None:
    x, y = corner
    fill, border = STATUS_COLOURS[node.status]
    box = FancyBboxPatch(
        (x, y), BOX_W, BOX_H, boxstyle="round,pad=0,rounding_size=0.08", facecolor=fill, edgecolor=border, linewidth=1.4, zorder=2
    )
    box.set_gid(f"node:{node.id}")
    ax.add_patch(box)

    left, top = x + PAD, y + BOX_H - PAD
    header = f"{node.id} · {node.tier or 'no tier'} · difficulty {node.difficulty}"
    if node.answer is not None:
        outcome, colour = f"answer: {node.answer}", "#1b4332"
    elif error:
        outcome, colour = f"error: {error}", "#7f1d1d"
    else:
        outcome, colour = f"({node.status})", "#495057"
    style = {"fontsize": FONT, "va": "top", "linespacing": 1.3, "zorder": 3, "parse_math": False, "clip_on": True}
    texts = [
        ax.text(left, top, _clip(header, 1)[0], weight="bold", **style),
        ax.text(left, top - LINE, "\n".join(_clip(node.question, QUESTION_LINES)), **style),
        ax.text(
            left,
            top - LINE * (1 + QUESTION_LINES),
            "\n".join(_clip(outcome, ANSWER_LINES)),
            color=colour,
            style="italic" if outcome.startswith("(") else "normal",
            weight="bold" if outcome.startswith("answer") else "normal",
            **style,
        ),
    ]
    texts[-1].set_gid(f"answer:{node.id}")
    # wrapping counts characters, not widths, so a line of wide glyphs is clipped at the box's
    # edge (to a rectangle: Agg cannot clip text to a path). Set after ax.text, which would
    # replace a clip_box given to it by the axes' own.
    inner = TransformedBbox(Bbox.from_bounds(x, y, BOX_W - PAD / 2, BOX_H), ax.transData)
    for t in texts:
        t.set_clip_box(inner)


def _draw_edges(ax: Axes, g: nx.DiGraph, node_id: str, corner: dict[str, tuple[float, float]]) -> None:
    """Arrows into `node_id`, their heads spread along its left side in the order of their
    sources' heights, so several dependencies stay distinguishable."""
    sources = sorted(g.predecessors(node_id), key=lambda s: -corner[s][1])
    x, y = corner[node_id]
    step = min(0.18, BOX_H / (len(sources) + 1))
    for k, src in enumerate(sources):
        sx, sy = corner[src]
        head_y = y + BOX_H / 2 + ((len(sources) - 1) / 2 - k) * step
        # an edge that skips a column bends outwards (up when it falls, down when it rises),
        # away from the boxes of the columns in between
        skips = round((x - sx) / (BOX_W + COL_GAP)) > 1
        bend = (-0.25 if sy >= y else 0.25) if skips else 0.0
        arrow = FancyArrowPatch(
            (sx + BOX_W, sy + BOX_H / 2),
            (x, head_y),
            arrowstyle="-|>",
            mutation_scale=12,
            connectionstyle=f"arc3,rad={bend}",
            color="#495057",
            linewidth=1.1,
            shrinkA=0,
            shrinkB=0,
            zorder=1,
        )
        arrow.set_gid(f"edge:{src}:{node_id}")
        ax.add_patch(arrow)
