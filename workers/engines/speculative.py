"""Speculative decoding (the acceptance rule of Leviathan et al. / Chen et al., 2023) with two
draft sources:

* prompt lookup (Saxena's prompt lookup decoding): the next k tokens are proposed for free by
  copying — the last n tokens of the row (prompt and output so far) are looked up earlier in
  the same row, and the k tokens that followed that earlier occurrence are the draft. ToRA
  transcripts repeat themselves — code echoes the question's numbers, the output block
  echoes what the code printed, the answer echoes the output — so drafts are often there;
* a draft model: a smaller model with the target's tokenizer decodes k tokens greedily. It
  keeps its own prefix KV cache, so each step prefills only the row's newest tokens.

The target model then scores the chosen token and the whole draft in one forward pass, and
the longest acceptable prefix is kept:

* greedy: a draft token is accepted when it is the argmax after the tokens before it, so the
  output is exactly greedy decoding's;
* sampling: a draft token d is accepted with probability p(d), p being the sampling
  distribution (temperature, top-p) after the tokens before it; on a rejection the next
  token is drawn from p with d removed. Both drafts are point masses (a copy, a greedy
  pick), so this is the standard rule min(1, p/q) with residual max(p - q, 0), and the
  output distribution is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from workers.engines.base import SamplingParams

METHODS = ("off", "prompt_lookup", "draft_model")


@dataclass(frozen=True)
class SpeculativeSpec:
    method: str = "off"  # "off" | "prompt_lookup" | "draft_model"
    draft_tokens: int = 4  # k: tokens proposed per step
    ngram: int = 3  # prompt_lookup: longest n-gram looked up (shorter ones are tried down to 2)
    draft_model: str = ""  # draft_model: the smaller model (as a tier's `model`), same tokenizer

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"speculative method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 1 <= self.draft_tokens <= 32 or not 2 <= self.ngram <= 8:
            raise ValueError("draft_tokens must be 1-32 and ngram 2-8")
        if (self.method == "draft_model") != bool(self.draft_model):
            raise ValueError('draft_model names the draft model exactly when speculative = "draft_model"')

    @property
    def on(self) -> bool:
        return self.method != "off"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpeculationStats:
    """Draft tokens proposed and accepted since the engine started."""

    proposed: int = 0
    accepted: int = 0

    def add(self, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted

    @property
    def acceptance(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def propose(tokens: list[int], k: int, ngram: int) -> list[int]:
    """Up to k tokens that followed the latest earlier occurrence of the row's last n tokens
    (n from `ngram` down to 2); [] when none occurs."""
    if k < 1 or len(tokens) < 3:
        return []
    seq = np.asarray(tokens)
    for n in range(min(ngram, len(seq) - 1), 1, -1):
        windows = np.lib.stride_tricks.sliding_window_view(seq[:-1], n)
        hits = np.flatnonzero((windows == seq[-n:]).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n
            return seq[start : start + k].tolist()
    return []


class PromptLookup:
    def __init__(self, ngram: int):
        self.ngram = ngram

    def propose(self, rows: list[list[int]], limits: list[int]) -> list[list[int]]:
        return [propose(row, k, self.ngram) for row, k in zip(rows, limits)]


class DraftModel:
    """Greedy drafts from a smaller engine (a TransformersEngine) sharing the target's tokenizer."""

    def __init__(self, engine):
        self.engine = engine

    def propose(self, rows: list[list[int]], limits: list[int]) -> list[list[int]]:
        if max(limits, default=0) < 1:
            return [[] for _ in rows]
        drafts = self.engine.generate_ids(rows, SamplingParams(max_tokens=max(limits)))
        return [d.token_ids[:k] for d, k in zip(drafts, limits)]


def make_drafter(spec: SpeculativeSpec, target):
    """The draft source for `spec` on a TransformersEngine `target`."""
    if spec.method == "prompt_lookup":
        return PromptLookup(spec.ngram)
    from workers.engines.transformers_engine import TransformersEngine
    from workers.kvcache import CacheSpec

    draft = TransformersEngine(spec.draft_model, max_batch=target.max_batch, kv_cache=CacheSpec(backend="memory"))
    if draft.tokenizer.get_vocab() != target.tokenizer.get_vocab():
        raise ValueError(
            f"draft model {spec.draft_model!r} does not share the tokenizer of {target.model_id!r}: "
            "speculative drafts must be in the target's tokens; pick a draft model of the same family"
        )
    return DraftModel(draft)


def accept(logits: torch.Tensor, draft: list[int], probs_of, generator) -> tuple[int, int | None]:
    """How many draft tokens to keep, given the target's logits after the chosen token and
    after each draft token (rows 0..len(draft)), and the token to forbid at the next pick
    (the rejected draft token; None when every draft token was kept).

    `probs_of(logits_row)` is the (normalized) sampling distribution, or None for greedy."""
    for j, token in enumerate(draft):
        probs = probs_of(logits[j])
        if probs is None:
            if int(logits[j].argmax()) != token:
                return j, token
        elif torch.rand((), generator=generator).item() >= float(probs[token]):
            return j, token
    return len(draft), None
