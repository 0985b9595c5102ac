"""Which decoding features run together in one call: the one place that decides it.

- A JSON schema masks each row to its own constraint, and then nothing proposes: a draft or a
  trial may hold a token the schema forbids. Schemas run with attention sinks and the prefix
  KV cache.
- Cautious trials come first: a row that branched feeds its kept trial, and the others (and a
  row whose trial was a single token) take speculative drafts after their pick.
- Speculation brings its acceptance rule and the mask that rule needs after a rejection.
- Attention sinks are the KV policy whatever else runs; without them the cache keeps every
  token and a row stops at the context.
- The prefix KV cache is the state's own: prompts are loaded and published always, outputs
  (`cache_output`) until attention sinks first move the cache.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import torch

from workers.engines.attention_sinks import AttentionSinks, inverse_frequencies
from workers.engines.base import SamplingParams
from workers.engines.cautious import CautiousTrials
from workers.engines.decoding import FullCache, Sampler, Stages
from workers.engines.options import CautiousSpec, SinkSpec, SpeculativeSpec
from workers.engines.speculative import ForbiddenDraft, Verified, drafts


class Decoder(Protocol):
    """What the builder reads from an engine: its model, its decoding options (read at every
    call, so they may change between calls) and the pieces bound to its tokenizer."""

    model: Any
    speculative: SpeculativeSpec
    sinks: SinkSpec
    cautious: CautiousSpec
    draft: Any  # the draft model's engine (speculative method draft_model), built by make_engine

    def schema_constraint(self, schema: dict) -> Any:
        """One row's JSON-schema constraint: `allowed(generated ids)` gives the ids that may follow."""

    def trial_ends(self) -> torch.Tensor:
        """A mask over the vocabulary of the tokens that end a cautious trial."""


def build(decoder: Decoder, params: SamplingParams, *, rows: int, generator: torch.Generator | None = None) -> Stages:
    """The stages of a call that decodes `rows` rows with `decoder`'s model and options."""
    sampler = Sampler(params, generator)
    masks, proposers = [], []
    if params.json_schema is not None:
        from workers.engines.constrained import SchemaMask  # lm-format-enforcer loads for schema calls only

        masks.append(SchemaMask([decoder.schema_constraint(params.json_schema) for _ in range(rows)]))
    else:
        cautious = decoder.cautious if params.cautious_entropy is None else replace(decoder.cautious, entropy=params.cautious_entropy)
        if cautious.on:
            temperature = cautious.temperature if params.greedy else params.temperature
            proposers.append(CautiousTrials(decoder.model, cautious, temperature, decoder.trial_ends(), generator))
        if decoder.speculative.on:
            forbid = ForbiddenDraft()
            masks.append(forbid)
            proposers.append(drafts(decoder.speculative, decoder.draft, Verified(sampler, forbid)))
    kv = AttentionSinks(decoder.sinks, inverse_frequencies(decoder.model)) if decoder.sinks.on else FullCache()
    return Stages(sampler, masks, proposers, kv)
