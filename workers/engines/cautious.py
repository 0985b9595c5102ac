"""Cautious next-token prediction (Wang et al., "Cautious Next Token Prediction", ACL
Findings 2025).

Most steps of a generation are easy: the next-token distribution is sharp and any decoder
picks the same token. At the few steps where it is flat (entropy above `entropy` nats) the
engine instead samples several trial continuations from that step, each running to the next
punctuation mark (or `span_tokens`), and keeps the trial whose tokens the model finds most
likely (lowest perplexity). The flatter the distribution, the more trials: 1 + entropy /
threshold of them, capped at `max_trials`. Elsewhere decoding is unchanged.

The trials run on a copy of the uncertain rows' KV cache. `CautiousTrials` is the decode
stage: it proposes the kept trial in place of the row's pick, and the decode loop feeds it to
the main batch in one forward pass and keeps it whole, so the batch's cache and logprobs stay
exact. Every trial token is extra compute (the kept trial is computed again in the batch),
reported in `Completion.trial_tokens` and counted in FLOPs.
"""

from __future__ import annotations

import torch

from workers.engines.decoding import KEPT, DecodeState, Pick
from workers.engines.options import CautiousSpec

PUNCTUATION = ".,;:!?\n"


class CautiousTrials:
    """CNTP as a proposer: a row at an uncertain step outputs its best trial's first token in
    place of its pick and feeds the rest of the trial, kept whole (the model's own sample)."""

    counters = ("cautious_steps", "cautious_branched", "cautious_trial_tokens")
    acceptance = KEPT

    def __init__(self, model, spec: CautiousSpec, temperature: float, ends: torch.Tensor, generator=None):
        self.model = model
        self.spec = spec
        self.temperature = temperature
        self.ends = ends
        self.generator = generator

    def propose(self, state: DecodeState, pick: Pick, leads: dict[int, int]) -> dict[int, list[int]]:
        entropy = entropies(pick.logprobs).tolist()
        branches = {}
        for b in leads:
            state.stats(b)["cautious_steps"] += 1
            if n := self.spec.trials(entropy[b]):
                branches[b] = n
        if not branches:
            return {}
        best, spent = explore(
            self.model, state.cache, state.mask, state.positions, pick.logits, branches, self.temperature, self.spec.span_tokens, self.ends, self.generator
        )
        for b in branches:
            stats = state.stats(b)
            stats["cautious_branched"] += 1
            stats["cautious_trial_tokens"] += spent[b]
        return best


def boundary_tokens(tokenizer, eos: set[int], vocab_size: int) -> torch.Tensor:
    """A mask over the model's `vocab_size` logits of the tokens that end a trial: any containing
    punctuation, and EOS (ids past the tokenizer's, padding in some models, end nothing)."""
    ends = torch.zeros(max(vocab_size, len(tokenizer)), dtype=torch.bool)
    for token, text in enumerate(tokenizer.batch_decode([[t] for t in range(len(tokenizer))])):
        ends[token] = any(p in text for p in PUNCTUATION)
    ends[list(eos)] = True
    return ends


def entropies(logprobs: torch.Tensor) -> torch.Tensor:
    return -(logprobs.exp() * logprobs).sum(-1)


def explore(model, cache, mask, next_pos, logits, branches: dict[int, int], temperature: float, span: int, ends, generator) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Run `branches[b]` trials for each batch position b from its current state (the cache up
    to the step, and `logits` for the step) and return each position's lowest-perplexity
    trial, and the tokens its trials generated in all. The batch's own cache is left untouched."""
    owners = [b for b, n in branches.items() for _ in range(n)]
    trials, logprobs = sample_trials(model, cache, mask, next_pos, logits, owners, temperature, span, ends, generator)
    spent = dict.fromkeys(branches, 0)
    for b, trial in zip(owners, trials):
        spent[b] += len(trial)
    return lowest_perplexity(owners, trials, logprobs), spent


@torch.inference_mode()
def sample_trials(model, cache, mask, next_pos, logits, owners: list[int], temperature: float, span: int, ends, generator):
    """One trial per entry of `owners` (a batch position; repeated for several trials), each
    sampled until a token in `ends` or `span` tokens; returns the trials' tokens and their
    per-token log-probabilities under the model (untempered)."""
    from transformers import DynamicCache

    index = torch.tensor(owners)
    trial_cache = DynamicCache()
    for i, layer in enumerate(cache.layers):
        trial_cache.update(layer.keys[index], layer.values[index], i)
    trial_mask, position, step_logits = mask[index], next_pos[index], logits[index]
    tokens: list[list[int]] = [[] for _ in owners]
    logprobs: list[list[float]] = [[] for _ in owners]
    running = torch.ones(len(owners), dtype=torch.bool)
    for _ in range(span):
        picked = torch.multinomial(torch.softmax(step_logits.float() / temperature, dim=-1), 1, generator=generator).squeeze(-1)
        step_lp = torch.log_softmax(step_logits.float(), dim=-1).gather(-1, picked[:, None]).squeeze(-1)
        for t in running.nonzero().squeeze(-1).tolist():
            tokens[t].append(int(picked[t]))
            logprobs[t].append(float(step_lp[t]))
        running &= ~ends[picked]
        if not running.any():
            break
        trial_mask = torch.cat([trial_mask, torch.ones(len(owners), 1, dtype=trial_mask.dtype)], dim=1)
        step_logits = model(input_ids=picked[:, None], attention_mask=trial_mask, position_ids=position, past_key_values=trial_cache).logits[:, -1, :]
        position = position + 1
    return tokens, logprobs


def lowest_perplexity(owners: list[int], trials: list[list[int]], logprobs: list[list[float]]) -> dict[int, list[int]]:
    """Each owner's trial with the lowest perplexity (highest mean log-probability); the first on ties."""
    best: dict[int, int] = {}
    for t, b in enumerate(owners):
        if b not in best or _mean(logprobs[t]) > _mean(logprobs[best[b]]):
            best[b] = t
    return {b: trials[t] for b, t in best.items()}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
