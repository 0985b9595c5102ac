"""Data that leaves a worker: what it was allowed to spend and what it did."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from plait.options import options

from tools.sandbox import ExecResult
from verifiers.types import Verdict

if TYPE_CHECKING:  # the engines package loads model code: types.py stays light to import
    from workers.engines.base import Completion, EngineInfo


@options
class Budget:
    """Limits for one question (a job's `budget`); None means no limit on that axis."""

    max_tokens: Annotated[int | None, Field(ge=1, le=10_000_000, description="generated tokens, all rounds and samples together")] = 2048
    max_samples: Annotated[int | None, Field(ge=1, le=4096, description="search strategies: samples (finished solutions) per question")] = None
    max_seconds: Annotated[float | None, Field(gt=0, le=86_400)] = None
    max_flops: Annotated[float | None, Field(gt=0)] = None


def merge_decode(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Decode counters added up; a `_peak_` counter (a high-water mark) keeps the larger."""
    merged = dict(a)
    for key, value in b.items():
        merged[key] = max(merged.get(key, 0), value) if "_peak_" in key else merged.get(key, 0) + value
    return merged


@dataclass
class Usage:
    """What model calls cost, added up: the one ledger behind every Attempt's counters, for a
    strategy's calls, the planner's and the scheduler's sums alike."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens loaded from a prefix KV cache: not computed, no FLOPs
    trial_tokens: int = 0  # cautious decoding's trials: computed on top of the output
    flops: int = 0
    decode: dict[str, int] = field(default_factory=dict)  # the engine's per-call decode counters (Completion.decode)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def charge(self, completion: Completion, info: EngineInfo) -> None:
        """Add one completion; FLOPs are for what the model computed (Completion.computed_tokens)."""
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cached_tokens += completion.cached_tokens
        self.trial_tokens += completion.trial_tokens
        self.flops += info.flops(completion.computed_tokens)
        self.decode = merge_decode(self.decode, completion.decode)

    def add(self, other: Usage) -> Usage:
        for f in fields(self):
            if f.name != "decode":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.decode = merge_decode(self.decode, other.decode)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ToolCall:
    code: str
    result: ExecResult
    round: int

    def to_dict(self) -> dict:
        return {"code": self.code, "result": self.result.to_dict(), "round": self.round}

    @classmethod
    def from_dict(cls, data: dict) -> "ToolCall":
        return cls(data["code"], ExecResult.from_dict(data["result"]), data["round"])


@dataclass
class Attempt:
    """One worker's try at one question, with everything needed to audit it."""

    question: str
    strategy: str
    model_id: str
    text: str = ""  # the assistant's whole transcript, tool outputs included
    answer: str | None = None
    answer_source: str = ""  # where the answer was read: "boxed", "output", "text", "last", "verifier", ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens loaded from a prefix KV cache: not computed, no FLOPs
    trial_tokens: int = 0  # cautious decoding's trial tokens, charged in `flops`
    decode: dict[str, int] = field(default_factory=dict)  # decode counters: drafts accepted, compactions, CNTP branches
    logprob: float = 0.0  # sum of the generated tokens' log-probabilities (0 when the engine gives none)
    flops: int = 0
    seconds: float = 0.0
    finish_reason: str = ""  # "answered" | "no_answer" | "budget" | "error"
    verdict: Verdict | None = None
    search: dict | None = None  # search strategies: the samples, their rewards and votes, REBASE's tree

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def usage(self) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) for f in fields(Usage)})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        data["verdict"] = self.verdict.to_dict() if self.verdict else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Attempt":
        data = dict(data)
        data["tool_calls"] = [ToolCall.from_dict(t) for t in data.get("tool_calls", [])]
        data["verdict"] = Verdict.from_dict(data["verdict"]) if data.get("verdict") else None
        return cls(**data)
