"""Speculative decoding with prompt-lookup drafts (Saxena's prompt lookup decoding; the
acceptance rule of Leviathan et al. / Chen et al., 2023).

A draft proposes the next k tokens for free by copying: the last n tokens of the row (prompt
and output so far) are looked up earlier in the same row, and the k tokens that followed
that earlier occurrence are the draft. ToRA transcripts repeat themselves — code echoes the
question's numbers, the output block echoes what the code printed, the answer echoes the
output — so drafts are often right there. The target model then scores the chosen token
and the whole draft in one forward pass, and the longest acceptable prefix is kept:

* greedy: a draft token is accepted when it is the argmax after the tokens before it, so the
  output is exactly greedy decoding's;
* sampling: a draft token d is accepted with probability p(d), p being the sampling
  distribution (temperature, top-p) after the tokens before it; on a rejection the next
  token is drawn from p with d removed. The draft is a point mass, so this is the standard
  rule min(1, p/q) with residual max(p - q, 0), and the output distribution is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

METHODS = ("off", "prompt_lookup")


@dataclass(frozen=True)
class SpeculativeSpec:
    method: str = "off"  # "off" | "prompt_lookup"
    draft_tokens: int = 4  # k: tokens proposed per step
    ngram: int = 3  # longest n-gram looked up (shorter ones are tried down to 2)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"speculative method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 1 <= self.draft_tokens <= 32 or not 2 <= self.ngram <= 8:
            raise ValueError("draft_tokens must be 1-32 and ngram 2-8")

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
