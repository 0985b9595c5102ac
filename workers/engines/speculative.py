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

import numpy as np
import torch

from plait.errors import ConfigError
from workers.engines.base import SamplingParams
from workers.engines.decoding import DecodeState, Pick, Sampler
from workers.engines.options import SpeculativeSpec


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


class ForbiddenDraft:
    """The logits mask of the rule's rejection: after draft token d was rejected, the row's
    next token is drawn from p without d."""

    def __init__(self) -> None:
        self.tokens: dict[int, int] = {}  # row -> its rejected draft token

    def apply(self, state: DecodeState, logits: torch.Tensor) -> torch.Tensor:
        rejected = [(b, self.tokens.pop(row)) for b, row in enumerate(state.active) if row in self.tokens]
        if rejected:
            logits = logits.clone()
            for b, token in rejected:
                logits[b, token] = float("-inf")
        return logits


class Verified:
    """The acceptance rule above: a row keeps its draft's acceptable prefix."""

    def __init__(self, sampler: Sampler, forbid: ForbiddenDraft):
        self.sampler = sampler
        self.forbid = forbid

    def accept(self, state: DecodeState, b: int, logits: torch.Tensor, draft: list[int]) -> int:
        kept, rejected = accept(logits, draft, self.sampler.distribution, self.sampler.generator)
        used = state.take_all(b, draft[:kept], logits)
        stats = state.stats(b)
        stats["speculative_drafted"] += len(draft)
        stats["speculative_accepted"] += used
        if rejected is not None and used == kept:
            self.forbid.tokens[state.active[b]] = rejected
        return used


class Drafts:
    """A proposer of speculative drafts after each row's lead; subclasses say where they come from."""

    counters = ("speculative_drafted", "speculative_accepted")

    def __init__(self, spec: SpeculativeSpec, acceptance: Verified):
        self.draft_tokens = spec.draft_tokens
        self.acceptance = acceptance

    def propose(self, state: DecodeState, pick: Pick, leads: dict[int, int]) -> dict[int, list[int]]:
        going = [b for b, lead in leads.items() if not state.ends_with(b, lead)]  # a row its lead ends needs no draft
        contexts = [state.context(b) + [leads[b]] for b in going]
        drafts = self.draft(contexts, [min(self.draft_tokens, state.room(b) - 1) for b in going])
        return {b: [leads[b], *draft] for b, draft in zip(going, drafts) if draft}

    def draft(self, contexts: list[list[int]], limits: list[int]) -> list[list[int]]:
        """Up to `limits[i]` tokens to follow `contexts[i]`."""
        raise NotImplementedError


class PromptLookup(Drafts):
    def __init__(self, spec: SpeculativeSpec, acceptance: Verified):
        super().__init__(spec, acceptance)
        self.ngram = spec.ngram

    def draft(self, contexts: list[list[int]], limits: list[int]) -> list[list[int]]:
        return [propose(context, k, self.ngram) for context, k in zip(contexts, limits)]


class DraftModel(Drafts):
    """Greedy drafts from a smaller engine (a TransformersEngine) sharing the target's tokenizer."""

    def __init__(self, spec: SpeculativeSpec, engine, acceptance: Verified):
        super().__init__(spec, acceptance)
        self.engine = engine

    def draft(self, contexts: list[list[int]], limits: list[int]) -> list[list[int]]:
        if not contexts:
            return []
        drafts = self.engine.generate_ids(contexts, SamplingParams(max_tokens=max(limits)))
        return [d.token_ids[:k] for d, k in zip(drafts, limits)]


def drafts(spec: SpeculativeSpec, draft_engine, acceptance: Verified) -> Drafts:
    """The draft source `spec` names; a draft model is built by the engine factory and passed in."""
    if spec.method == "prompt_lookup":
        return PromptLookup(spec, acceptance)
    if draft_engine is None:
        raise ConfigError(
            f"speculative method 'draft_model' ({spec.draft_model!r}) needs its draft engine: build the engine with "
            "workers.engines.make_engine, which loads the draft model"
        )
    return DraftModel(spec, draft_engine, acceptance)
