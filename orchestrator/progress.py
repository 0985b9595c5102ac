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
from orchestrator.jobstate import JobState


class ProgressView:
    """Call it with each event; it redraws a spinner, the current stage and a row per node,
    from the job's folded state."""

    def __init__(self, console: Console):
        self.console = console
        self.started = time.monotonic()
        self.state = JobState()
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> "ProgressView":
        if self.console.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.console.is_terminal:
            self.live.stop()

    def __call__(self, event: dict) -> None:
        self.state.apply(event)
        if self.console.is_terminal:
            self.live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.monotonic() - self.started
        header = Spinner("dots", Text(f"{self.state.stage}  {elapsed:5.1f} s", style="bold"))
        table = Table(box=None, pad_edge=False)
        for column in ("node", "tier", "status", "tokens", "tool calls", "answer"):
            table.add_column(column)
        for node in self.state.nodes.values():
            table.add_row(node.id, node.tier, node.status, str(node.tokens), str(node.tool_calls), (node.answer or "")[:40])
        return Group(header, table, Text(self.state.last, style="dim"))


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
