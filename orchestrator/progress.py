"""Terminal views: a live panel fed by a job's events, and the final result."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.job import Result

_STAGES = {
    "submitted": "starting Ray and the model worker (the first run converts the embedded model, ~25 s)",
    "planning": "the planner model writes the skeleton graph",
    "planned": "planned",
    "node_started": "decoding",
    "verified": "checking the answer",
    "done": "done",
}


class ProgressView:
    """Call it with each event; it redraws a spinner, the current stage and a row per node."""

    def __init__(self, console: Console):
        self.console = console
        self.started = time.monotonic()
        self.stage = "queued"
        self.nodes: dict[str, dict] = {}
        self.last = ""
        self.checks: dict[str, int] = {}  # program synthesis: verdicts so far by status
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> "ProgressView":
        if self.console.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.console.is_terminal:
            self.live.stop()

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        self.stage = _STAGES.get(kind, self.stage)
        if kind == "planned":
            self.nodes = {n["id"]: {"tier": n["tier"], "status": "pending", "tokens": 0, "tools": 0, "answer": ""} for n in event["nodes"]}
        elif kind in ("node_started", "node_done") and event["node"] in self.nodes:
            row = self.nodes[event["node"]]
            row["status"] = "running" if kind == "node_started" else event["status"]
            if kind == "node_done":
                row.update(tokens=event["tokens"], tools=event["tool_calls"], answer=event["answer"] or "")
        elif kind == "tool_call":
            self.last = f"round {event['round']}: ran code ({event['status']}, {event['seconds']} s)"
        elif kind == "generated":
            self.last = f"round {event['round']}: generated {event['tokens']} tokens"
        elif kind == "check":
            self.checks[event["status"]] = self.checks.get(event["status"], 0) + 1
            self.last = f"{event['checker']} checks: " + ", ".join(f"{n} {status}" for status, n in self.checks.items())
        elif kind == "engine":
            self.last = f"{event['tier']}: {event['message']}"
        elif kind == "node_retry":
            self.last = f"worker lost, retrying ({event['reason']})"
        if self.console.is_terminal:
            self.live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.monotonic() - self.started
        header = Spinner("dots", Text(f"{self.stage}  {elapsed:5.1f} s", style="bold"))
        table = Table(box=None, pad_edge=False)
        for column in ("node", "tier", "status", "tokens", "tool calls", "answer"):
            table.add_column(column)
        for node_id, row in self.nodes.items():
            table.add_row(node_id, row["tier"], row["status"], str(row["tokens"]), str(row["tools"]), row["answer"][:40])
        return Group(header, table, Text(self.last, style="dim"))


def render_result(result: Result, console: Console) -> None:
    style = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}[result.status]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if result.answer and "\n" in result.answer:  # a program or proof
        grid.add_row("program", Text(result.answer))
    else:
        grid.add_row("answer", Text(str(result.answer)))
    if result.verdict:
        v = result.verdict
        grid.add_row("verdict", Text(f"{v.status} ({v.score:+.2f}) — {v.message}"))
    if result.error:
        grid.add_row("error", Text(result.error, style="red"))
    for node in result.nodes:
        search = node.attempt.search if node.attempt else None
        suffix = "" if len(result.nodes) == 1 else f" {node.id}"
        if search and "votes" in search:
            votes = ", ".join(f"{answer}: {weight:g}" for answer, weight in list(search["votes"].items())[:6])
            grid.add_row("votes" + suffix, Text(f"{votes or 'no answers'}  ({len(search['samples'])} samples, {search['strategy']} over {search['method']})"))
        elif search:  # program synthesis
            tried = f"{search['expansions']} expansions" if "expansions" in search else f"{len(search['samples'])} programs"
            grid.add_row("search" + suffix, Text(f"{search['strategy']}: {tried}, {search['checks']} checker calls"))
    tool_calls = sum(len(n.attempt.tool_calls) for n in result.nodes if n.attempt)
    cached = sum(n.attempt.cached_tokens for n in result.nodes if n.attempt)
    grid.add_row("tokens", f"{result.tokens}  ({cached} from the KV cache; {result.flops:.3g} FLOPs, {tool_calls} tool calls)")
    grid.add_row("seconds", f"{result.seconds:.1f}")
    grid.add_row("job", result.job_id)
    console.print(Panel(grid, title=f"[{style}]{result.status}[/]", expand=False))
