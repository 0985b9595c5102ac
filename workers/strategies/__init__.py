"""Reasoning strategies behind one protocol, looked up by name."""

from __future__ import annotations

import dataclasses

from plait.errors import InvalidInput
from workers.strategies.base import RunContext, Strategy
from workers.strategies.calc import Calc
from workers.strategies.rebase import Rebase
from workers.strategies.run import RUNS
from workers.strategies.search import SEARCHES
from workers.strategies.synthesis import Resample
from workers.strategies.vmcts import VMCTS

STRATEGIES: dict[str, type] = {cls.name: cls for cls in (*RUNS, Calc, *SEARCHES, Rebase, VMCTS, Resample)}
PROGRAM_STRATEGIES = frozenset({VMCTS.name, Resample.name})  # their questions are specs to synthesize
MODEL_FREE = frozenset({Calc.name})  # strategies that never touch the engine


def make_strategy(name: str, params: dict | None = None) -> Strategy:
    """Build a strategy from its name and parameters, naming whatever is wrong."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise InvalidInput(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params or {}) - allowed)
    if unknown:
        raise InvalidInput(f"strategy {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}")
    try:
        return cls(**(params or {}))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"strategy {name!r}: {exc}") from exc


__all__ = ["MODEL_FREE", "PROGRAM_STRATEGIES", "STRATEGIES", "RunContext", "Strategy", "make_strategy"]
