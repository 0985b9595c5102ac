"""JobSpec: what a user submits, validated at the door."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plait.errors import InvalidInput
from workers.types import Budget
from workers.strategies import PROGRAM_STRATEGIES, STRATEGIES

MAX_PROBLEM_CHARS = 20_000
# Strategy parameters are a few flat knobs (a dict or two inside); a job nested deeper, or a
# JSON document deeper than MAX_JSON_DEPTH, is a mistake or an attack, and deep values
# cannot be serialized back (pydantic and json give up near 255 and 1000 levels).
MAX_PARAMS_DEPTH = 8
MAX_PARAMS_CHARS = 16_000
MAX_JSON_DEPTH = 32


def nesting_depth(value: Any, limit: int) -> int:
    """How deep lists and dicts nest in `value` (a scalar is 0, [] is 1), counted without
    recursion and only up to `limit` + 1, so any depth is safe to measure."""
    depth, level = 0, [value]
    while depth <= limit:
        level = [item for item in level if isinstance(item, (dict, list))]
        if not level:
            break
        depth += 1
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON text parsed, refusing documents nested deeper than MAX_JSON_DEPTH with InvalidInput;
    malformed text raises ValueError, for the caller to word."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None  # deeper than json can parse, so certainly too deep
    else:
        if nesting_depth(value, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH:
            return value
    raise InvalidInput(f"{what} nests lists or objects more than {MAX_JSON_DEPTH} levels deep: flatten it")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StrategySpec(_Strict):
    name: str = Field(default="tora", json_schema_extra={"enum": sorted(STRATEGIES)}, description="a strategy of the registry")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=f"the strategy's parameters (plain JSON, at most {MAX_PARAMS_DEPTH} levels deep and "
        f"{MAX_PARAMS_CHARS} characters)",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}: choose one of {', '.join(sorted(STRATEGIES))}")
        return name

    @field_validator("params")
    @classmethod
    def _params_are_small_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        if nesting_depth(value, MAX_PARAMS_DEPTH) > MAX_PARAMS_DEPTH:
            raise ValueError(f"nested more than {MAX_PARAMS_DEPTH} levels deep; strategy parameters are flat values")
        try:
            size = len(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be plain JSON values with finite numbers ({exc})") from None
        if size > MAX_PARAMS_CHARS:
            raise ValueError(f"{size} characters as JSON; at most {MAX_PARAMS_CHARS}")
        return value


class NodeSpec(_Strict):
    """One sub-problem of a graph given in the job (instead of asking a planner for one).
    A question may name a dependency's answer as {id}."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    question: str = Field(min_length=1, max_length=MAX_PROBLEM_CHARS)
    depends_on: list[str] = Field(default_factory=list, max_length=256)
    difficulty: int = Field(default=3, ge=1, le=5)


class JobSpec(_Strict):
    kind: Literal["math", "program", "qa"] = "math"
    problem: str = Field(max_length=MAX_PROBLEM_CHARS)
    language: Literal["dafny", "coq", "lean"] | None = None
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    budget: Budget = Field(default_factory=Budget)
    planner: Literal["none", "sgd"] = "none"
    tiers: dict[int, str] | None = Field(default=None, description="difficulty -> tier overrides for this job")
    reference: str | None = Field(default=None, max_length=2_000, description="expected answer, checked after solving")
    graph: list[NodeSpec] | None = Field(
        default=None, min_length=1, max_length=5_000, description="run these sub-problems instead of planning"
    )
    timeout: float | None = Field(default=None, gt=0, le=7 * 86_400, description="wall-clock seconds for the whole job")

    @field_validator("problem")
    @classmethod
    def _problem_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("tiers")
    @classmethod
    def _difficulties(cls, value: dict[int, str] | None) -> dict[int, str] | None:
        if value and not all(1 <= k <= 5 for k in value):
            raise ValueError("keys are difficulties 1-5")
        return value

    @model_validator(mode="after")
    def _language_matches_kind(self) -> "JobSpec":

        if self.kind == "program":
            self._check_program_job(PROGRAM_STRATEGIES)
        elif self.language is not None:
            raise ValueError(f"language: only program jobs take a language, this one is {self.kind!r}")
        elif self.strategy.name in PROGRAM_STRATEGIES:
            raise ValueError(f"strategy {self.strategy.name!r} synthesizes programs: submit kind 'program' with a language")
        if self.graph is not None:
            from planners import Node, SkeletonGraph  # cycles and dangling dependencies, named

            SkeletonGraph([Node(n.id, n.question, list(n.depends_on), n.difficulty) for n in self.graph])
        return self

    def strategy_params(self) -> dict:
        """The strategy's parameters as a worker gets them: a program job's language included."""
        params = dict(self.strategy.params)
        if self.kind == "program":
            params["language"] = self.language
        return params

    def _check_program_job(self, program_strategies: frozenset[str]) -> None:
        """A program job is one spec for one synthesis search: VMCTS unless another is named."""
        if self.language is None:
            raise ValueError("language: a program job needs language dafny, coq or lean")
        if "strategy" not in self.model_fields_set or "name" not in self.strategy.model_fields_set:
            self.strategy = StrategySpec(name="vmcts", params=self.strategy.params)
        elif self.strategy.name not in program_strategies:
            raise ValueError(f"strategy: a program job runs {' or '.join(sorted(program_strategies))}, not {self.strategy.name!r}")
        if self.strategy.params.get("language", self.language) != self.language:
            raise ValueError(f"strategy.params.language {self.strategy.params['language']!r} contradicts language {self.language!r}")
        for name, why in (("reference", "the checker is the reference"), ("graph", "a spec is one node")):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: program jobs take none ({why})")
        if self.planner != "none":
            raise ValueError("planner: program jobs are not planned (a spec is one node); use planner 'none'")

    @classmethod
    def parse(cls, data: Any) -> "JobSpec":
        """Validate a dict, JSON text or JobSpec; errors become one InvalidInput naming each field."""
        if isinstance(data, cls):
            return data
        try:
            if isinstance(data, (str, bytes)):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(f"invalid job: {describe_errors(exc)}") from None
        except InvalidInput as exc:  # raised by the graph check inside validation
            raise InvalidInput(f"invalid job: graph: {exc}") from None


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "job"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown field (check the spelling; see `plait solve --help`)"
        elif err["type"] == "json_invalid":
            message = f"not valid JSON ({err.get('ctx', {}).get('error', message)})"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
