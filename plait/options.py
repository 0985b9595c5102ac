"""Option types: each option defined once, with its default and its bound.

An option type is a frozen pydantic dataclass, validated the same way wherever it is built:
in code (a bad value raises `OptionError`, a `ConfigError`), or as a section of the TOML or
of a job's JSON, where pydantic reports the field path (`tiers.small.speculative.draft_tokens`).
Infinite and NaN numbers are never an option's value.
"""

from __future__ import annotations

import functools
from dataclasses import asdict

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from plait.errors import ConfigError


class OptionError(ConfigError, ValueError):
    """An option built in code with a bad value. Also a ValueError, so that a config section
    whose validator builds options reports it as a validation error with its path."""


def options(cls):
    """`cls` as a frozen, validated dataclass whose direct construction raises OptionError."""
    cls = dataclass(frozen=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))(cls)
    validate = cls.__init__
    names = list(cls.__dataclass_fields__)

    # Pydantic validates a nested section through the class's schema, not through __init__,
    # so config errors keep their field paths; only construction in code goes through here.
    @functools.wraps(validate)
    def __init__(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} positional arguments, got {len(args)}")
        try:
            validate(self, **dict(zip(names, args)), **kwargs)  # by name, so that errors name the field
        except ValidationError as exc:
            raise OptionError(f"{cls.__name__}: {describe(exc)}") from None

    cls.__init__ = __init__
    cls.to_dict = asdict
    return cls


def flat_fields(cls, exclude: tuple[str, ...] = ()) -> dict[str, tuple]:
    """An option type's fields as `pydantic.create_model` definitions, for a config section
    that holds them at its own level next to fields of its own."""
    return {name: (info.annotation, info) for name, info in cls.__pydantic_fields__.items() if name not in exclude}


def describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) + ': ' if err['loc'] else ''}{err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
    )
