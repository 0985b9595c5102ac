"""benchmarks/phases.py: a long benchmark's progress, readable in a log."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from phases import Phases


def test_a_log_gets_one_line_per_finished_phase_and_none_for_the_rest():
    log = io.StringIO()
    with Phases(Console(file=log, force_terminal=False)) as phases:
        samples = phases.add_task("8 samples each", total=3)
        rebase = phases.add_task("rebase N=1", total=2)
        for _ in range(4):  # advancing past the total tells it once
            phases.advance(samples)
        phases.advance(rebase)
    lines = [line for line in log.getvalue().splitlines() if " done" in line]
    assert len(lines) == 1 and lines[0].endswith("s: 8 samples each (3) done")
