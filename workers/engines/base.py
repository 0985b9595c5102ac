"""The Engine protocol: one interface so every strategy runs on every model backend."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol, Union, runtime_checkable


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


# A prompt is raw text, or a chat whose last message may be a partial assistant turn that the
# model continues (ToRA appends tool output to that turn and generation resumes there).
Prompt = Union[str, tuple[Message, ...]]


def chat(*turns: tuple[str, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in turns)


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Constrain the output to JSON matching this object schema. Kept as a private deep copy
    # (later edits to the caller's dict cannot leak in) and left out of the hash (dicts are
    # unhashable); equality still compares it.
    json_schema: dict | None = field(default=None, hash=False)
    # Publish the KV of prompt + output to the engine's prefix cache, for a caller that will
    # send the conversation back extended (a ToRA tool round): the next call then prefills
    # only what was added. Prompts are published regardless.
    cache_output: bool = False
    # Cautious next-token prediction for this call: its entropy threshold in nats (0: off), the
    # engine's other CNTP settings applying; None: the engine's own setting. Local engines only.
    cautious_entropy: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        check_cautious_entropy(self.cautious_entropy)
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.json_schema is not None:
            if not isinstance(self.json_schema, dict) or self.json_schema.get("type") != "object":
                raise ValueError(f'json_schema must be an object schema ({{"type": "object", ...}}), got {self.json_schema!r:.200}')
            if self.stop:
                raise ValueError("json_schema and stop strings exclude each other: a stop string would cut the JSON")
            try:
                schema = json.loads(json.dumps(self.json_schema))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"json_schema must be plain JSON: {exc}") from exc
            object.__setattr__(self, "json_schema", schema)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def per_prompt(params: SamplingParams, count: int) -> list[SamplingParams]:
    """The params of each prompt of a batch that a server gets one request each. A seeded
    batch gives its prompts seeds seed, seed + 1, ...: a server samples a request from its seed
    alone, so the same prompt listed twice (two samples of one question) would otherwise come
    back twice the same, where rows of the transformers engine's one seeded batch differ."""
    if params.seed is None:
        return [params] * count
    return [replace(params, seed=params.seed + i) for i in range(count)]


def check_cautious_entropy(value: float | None) -> None:
    """The rule for a per-call CNTP threshold, wherever one is accepted (None: the engine's)."""
    if value is not None and value < 0:
        raise ValueError(f"cautious_entropy must be >= 0 nats, got {value}")


@dataclass
class Completion:
    text: str  # generated text, cut before the stop string that ended it
    token_ids: list[int] = field(default_factory=list)  # every generated token (what was computed)
    # One per generated token: the model's own log-probability, also under json_schema
    # (computed before the schema masks the logits).
    logprobs: list[float] = field(default_factory=list)
    # "stop" (stop string or EOS; under json_schema, EOS only follows complete JSON) |
    # "length" (the token budget ran out: under json_schema the JSON is then incomplete)
    finish_reason: str = "length"
    stop_reason: str | None = None  # the stop string that matched, None for EOS/length
    # What the token that completed the stop string wrote past it (the second newline of a
    # "\n\n" token), "" where the engine cannot tell. A search step that ends at a stop keeps
    # it, so that the next prompt tokenizes as the model wrote (a prompt ending in half a
    # token is text the model never saw: it stops writing blank lines, and loops).
    stop_tail: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV was loaded from a prefix cache, not computed
    # Tokens cautious decoding generated in trials: computed on top of the output (the kept
    # trial is computed again as output, so every trial token is extra compute).
    trial_tokens: int = 0
    # What this call's decoding features did for this completion, each counter present when
    # its feature ran: speculative_drafted / speculative_accepted (draft tokens),
    # sinks_compactions / sinks_evicted (tokens) / sinks_peak_cache_tokens (the widest KV,
    # a maximum, not a sum), cautious_steps / cautious_branched / cautious_trial_tokens.
    decode: dict[str, int] = field(default_factory=dict)

    @property
    def computed_tokens(self) -> int:
        """Tokens the model ran for this completion, what FLOPs are charged for: the prompt
        past its cached prefix, the output, and cautious decoding's trials."""
        return self.prompt_tokens - self.cached_tokens + self.completion_tokens + self.trial_tokens

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KVLayout:
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str


@dataclass(frozen=True)
class EngineInfo:
    model_id: str
    parameters: int  # for FLOPs = 2 * parameters * tokens
    context_length: int
    kv_layout: KVLayout | None  # None when the KV lives in a remote server
    fingerprint: str  # changes whenever the KV for the same tokens would change

    def flops(self, tokens: int) -> int:
        return 2 * self.parameters * tokens

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Engine(Protocol):
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """One list of `params.n` completions per prompt, decoded as one batch."""

    def score(self, prompt: Prompt, continuation: str) -> float:
        """Sum log-probability of `continuation` given `prompt`."""

    def info(self) -> EngineInfo: ...

    def close(self) -> None:
        """Release what the engine holds outside this process (a server it started, connections)."""


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, str | None, str]:
    """Cut text at the earliest stop string: (the text before it, the matched stop or None,
    the text after it)."""
    best: tuple[int, str] | None = None
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return (text, None, "") if best is None else (text[: best[0]], best[1], text[best[0] + len(best[1]) :])
