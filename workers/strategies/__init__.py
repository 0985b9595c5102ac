"""Reasoning strategies behind one protocol, looked up by name."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

from pydantic import ConfigDict, TypeAdapter, ValidationError

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


_TYPE_WORDS = {
    int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object", type(None): "null"
}


def _wanted(hint: object) -> str:
    """A parameter's type as a user reads it: int | None is "an integer or null"."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if union else (hint,)
    return " or ".join(_TYPE_WORDS.get(option, str(option)) for option in options)


@functools.cache
def _parameter_types(cls: type) -> dict[str, tuple[str, TypeAdapter]]:
    """Each init field of a strategy dataclass: its type in words and a strict validator (no
    "3" for 3, no true for 1, no infinite floats), since dataclasses check no types."""
    hints = typing.get_type_hints(cls)
    finite = ConfigDict(allow_inf_nan=False)
    return {
        f.name: (_wanted(hints[f.name]), TypeAdapter(hints[f.name], config=finite)) for f in dataclasses.fields(cls) if f.init
    }


def make_strategy(name: str, params: dict | None = None) -> Strategy:
    """Build a strategy from its name and parameters, naming whatever is wrong."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise InvalidInput(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    declared = _parameter_types(cls)
    unknown = sorted(set(params or {}) - set(declared))
    if unknown:
        raise InvalidInput(f"strategy {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(sorted(declared))}")
    checked = {}
    for key, value in (params or {}).items():
        wanted, adapter = declared[key]
        try:
            checked[key] = adapter.validate_python(value, strict=True)
        except ValidationError:
            raise InvalidInput(f"strategy {name!r}: parameter {key} must be {wanted}, not {repr(value)[:80]}") from None
    try:
        return cls(**checked)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"strategy {name!r}: {exc}") from exc


__all__ = ["MODEL_FREE", "PROGRAM_STRATEGIES", "STRATEGIES", "RunContext", "Strategy", "make_strategy"]
