"""One decode call as a state and stages.

`DecodeState` is everything a call changes: its rows (prompt, output, logprobs, finish
reason, counters) and the batch still running (which rows, their KV cache, attention mask,
next positions and next-token logits). Batches are left-padded; positions count a row's own
tokens, so a token's KV is the same at any offset; finished rows leave the batch (and its
cache) as soon as they stop. The features act on the state through four interfaces:

- `LogitsMask` narrows what a row may pick (a JSON schema; the draft token a rejection rules out);
- `Proposer` gives a row tokens to feed after the one it outputs now (prompt lookup, a draft
  model), or a run of its own in place of that token (cautious trials);
- `KVPolicy` makes room in the cache before each forward pass (none, attention sinks);
- `Acceptance` decides how many fed tokens a row keeps (the speculative rule; a trial is kept whole).

`run` is the loop; `workers.engines.stages.build` decides which stages a call runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from workers.engines.base import SamplingParams


@dataclass
class Row:
    """One prompt's decode: what it generated and what the features did for it."""

    prompt: list[int]
    cached: int  # prompt tokens whose KV was loaded from the prefix cache
    stats: dict[str, int]  # the features' counters (Completion.decode)
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str = "length"
    done: bool = False


@dataclass(frozen=True)
class Stops:
    """When a row is finished: an end-of-sequence token, a stop string in its tail, its budget."""

    eos: frozenset[int]
    budget: int
    stop: tuple[str, ...] = ()
    detokenize: Callable[[list[int]], str] | None = None

    def finish(self, ids: list[int]) -> str | None:
        """The finish reason once `ids` end the row, else None."""
        if ids[-1] in self.eos or (self.stop and self._stopped(ids)):
            return "stop"
        return "length" if len(ids) >= self.budget else None

    def _stopped(self, ids: list[int]) -> bool:
        window = max(len(s) for s in self.stop) + 8  # tokens enough to span any stop string
        tail = self.detokenize(ids[-window:])
        return any(s in tail for s in self.stop)


class DecodeState:
    def __init__(self, model, rows: list[Row], cache, mask: torch.Tensor, logits: torch.Tensor, stops: Stops, prefix_cache=None, publish_output: bool = False):
        self.model = model
        self.rows = rows
        self.stops = stops
        self.prefix_cache = prefix_cache
        # Publish each finished row's prompt + output KV, while the cache holds rows whole.
        self.publish_output = publish_output and prefix_cache is not None
        self.active = list(range(len(rows)))  # batch position -> row index
        self.cache = cache
        self.mask = mask
        self.positions = mask.sum(-1, keepdim=True)  # each row's next position: its token count so far
        self.logits = logits  # each running row's next-token logits

    @classmethod
    def start(cls, model, prompts: list[list[int]], *, stops: Stops, pad_id: int = 0, prefix_cache=None, publish_output: bool = False, counters=()) -> DecodeState:
        cache, mask, logits, cached = prefill(model, prompts, pad_id, prefix_cache)
        rows = [Row(prompt, hit, dict.fromkeys(counters, 0)) for prompt, hit in zip(prompts, cached)]
        return cls(model, rows, cache, mask, logits, stops, prefix_cache, publish_output)

    def row(self, b: int) -> Row:
        return self.rows[self.active[b]]

    def context(self, b: int) -> list[int]:
        row = self.row(b)
        return row.prompt + row.ids

    def stats(self, b: int) -> dict[str, int]:
        return self.row(b).stats

    def ends_with(self, b: int, token: int) -> bool:
        """Whether taking `token` would finish batch position b."""
        return self.stops.finish(self.row(b).ids + [token]) is not None

    def room(self, b: int) -> int:
        return self.stops.budget - len(self.row(b).ids)

    def take(self, b: int, token: int, logprob: float) -> bool:
        """Append a token to batch position b's row; False once the row is finished."""
        row = self.row(b)
        row.ids.append(token)
        row.logprobs.append(logprob)
        finish = self.stops.finish(row.ids)
        if finish is not None:
            row.finish, row.done = finish, True
        return not row.done

    def take_all(self, b: int, tokens: list[int], logits: torch.Tensor) -> int:
        """Take `tokens` in turn until the row finishes, each with its logprob from `logits`
        (the row's logits after its last token and after each of `tokens`); how many were taken."""
        logprobs = torch.log_softmax(logits[: len(tokens)].float(), dim=-1)
        for used, token in enumerate(tokens):
            if not self.take(b, token, float(logprobs[used, token])):
                return used + 1
        return len(tokens)

    def retire(self) -> list[int]:
        """Drop the finished rows from the batch (publishing their KV first when asked to);
        returns the batch positions (before the cut) of the rows still running."""
        keep = [b for b, row in enumerate(self.active) if not self.rows[row].done]
        if len(keep) == len(self.active):
            return keep
        if self.publish_output:
            for b in sorted(set(range(len(self.active))) - set(keep)):
                row = self.row(b)
                # The cache holds the prompt and every output token but the last (never fed).
                publish(self.prefix_cache, row.prompt + row.ids[:-1], self.cache, self.mask, b, known=len(row.prompt))
        self.active = [self.active[b] for b in keep]
        if keep:
            index = torch.tensor(keep)
            self.cache.batch_select_indices(index)
            self.mask, self.positions, self.logits = self.mask[index], self.positions[index], self.logits[index]
        return keep

    def forward(self, blocks: list[list[int]]) -> torch.Tensor:
        """Feed each batch position its block of tokens (right-padded, padding masked) in one
        forward pass; the logits after each fed token, [batch, widest block, vocab]."""
        width = max(len(block) for block in blocks)
        ids = torch.tensor([block + [0] * (width - len(block)) for block in blocks])
        fed = torch.tensor([[1] * len(block) + [0] * (width - len(block)) for block in blocks], dtype=self.mask.dtype)
        self.mask = torch.cat([self.mask, fed], dim=1)
        positions = self.positions + torch.arange(width)
        return self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, past_key_values=self.cache).logits

    def settle(self, out: torch.Tensor, used: list[int]) -> None:
        """After `forward`: batch position b keeps its block's first token and the `used[b]`
        after it. The slots past them stay in the cache, masked out for good."""
        kept = torch.tensor(used)
        width = out.shape[1]
        self.mask[:, -width:].masked_fill_(torch.arange(width) > kept[:, None], 0)
        self.logits = out[torch.arange(len(used)), kept]
        self.positions = self.positions + 1 + kept[:, None]


@dataclass
class Pick:
    tokens: list[int]  # each running row's pick
    logits: torch.Tensor  # the masked logits it was picked from
    logprobs: torch.Tensor  # the model's own (unmasked) log-probabilities: what is reported


class Sampler:
    """Greedy or sampled picks (temperature, then top-p), and the distribution they draw from."""

    def __init__(self, params: SamplingParams, generator: torch.Generator | None = None):
        self.params = params
        self.generator = generator

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.params.greedy:
            return logits.argmax(dim=-1)
        return torch.multinomial(self.distribution(logits), 1, generator=self.generator).squeeze(-1)

    def distribution(self, logits: torch.Tensor) -> torch.Tensor | None:
        """The sampling distribution over the last dimension; None under greedy decoding."""
        if self.params.greedy:
            return None
        probs = torch.softmax(logits.float() / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > self.params.top_p  # keep the first token past top_p
            sorted_probs[outside] = 0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs


class LogitsMask(Protocol):
    def apply(self, state: DecodeState, logits: torch.Tensor) -> torch.Tensor:
        """The running rows' `logits` with what each may not pick at -inf (not in place)."""


class Acceptance(Protocol):
    def accept(self, state: DecodeState, b: int, logits: torch.Tensor, draft: list[int]) -> int:
        """Take the tokens of `draft` that batch position b keeps, given its logits after the
        token before the draft and after each draft token; returns how many it took."""


class Proposer(Protocol):
    counters: tuple[str, ...]
    acceptance: Acceptance  # how the tokens it proposes are kept

    def propose(self, state: DecodeState, pick: Pick, leads: dict[int, int]) -> dict[int, list[int]]:
        """Blocks for some of the batch positions in `leads` (position -> the token it outputs
        now): each starts with the token the position outputs now (its lead, or one in its
        place), then the tokens to feed tentatively after it."""


class KVPolicy(Protocol):
    counters: tuple[str, ...]

    def budget(self, max_tokens: int, context_left: int) -> int:
        """Tokens a row may generate, given the context its longest prompt leaves."""

    def make_room(self, state: DecodeState, incoming: int) -> None:
        """Fit the cache for `incoming` more slots per row."""


class Kept:
    """The draft is the model's own sample (a cautious trial): every token stays."""

    def accept(self, state: DecodeState, b: int, logits: torch.Tensor, draft: list[int]) -> int:
        return state.take_all(b, draft, logits)


KEPT = Kept()


class FullCache:
    """No KV policy: the cache keeps every token, so a row stops at the context."""

    counters = ()

    def budget(self, max_tokens: int, context_left: int) -> int:
        return min(max_tokens, context_left)

    def make_room(self, state: DecodeState, incoming: int) -> None:
        pass


@dataclass
class Step:
    tokens: list[int]  # the token the row outputs now, then the tokens fed tentatively
    acceptance: Acceptance = KEPT


@dataclass
class Stages:
    sampler: Sampler
    masks: list[LogitsMask]
    proposers: list[Proposer]
    kv: KVPolicy

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(name for stage in (*self.proposers, self.kv) for name in stage.counters)

    def pick(self, state: DecodeState) -> Pick:
        logprobs = torch.log_softmax(state.logits.float(), dim=-1)
        logits = state.logits
        for mask in self.masks:
            logits = mask.apply(state, logits)
        return Pick(self.sampler.pick(logits).tolist(), logits, logprobs)

    def propose(self, state: DecodeState, pick: Pick) -> list[Step]:
        """Each running row's step: its pick, extended or replaced by the first proposer with a
        block for it (a block of one token replaces the pick and leaves the row to the next)."""
        steps = [Step([token]) for token in pick.tokens]
        for proposer in self.proposers:
            leads = {b: step.tokens[0] for b, step in enumerate(steps) if len(step.tokens) == 1}
            for b, block in proposer.propose(state, pick, leads).items():
                steps[b] = Step(block, proposer.acceptance)
        return steps


def run(state: DecodeState, stages: Stages) -> list[Row]:
    """Decode every row to its end. Each step: pick each row's next token under the masks;
    let the proposers extend it (or replace it by a trial of theirs); take it; make room in
    the cache; feed it and the proposals in one forward pass; keep what each row's acceptance
    rule accepts. Proposals come before the take because a trial may replace the pick."""
    while state.active:
        pick = stages.pick(state)
        steps = stages.propose(state, pick)
        for b, step in enumerate(steps):
            state.take(b, step.tokens[0], float(pick.logprobs[b, step.tokens[0]]))
        steps = [steps[b] for b in state.retire()]
        if not steps:
            break
        stages.kv.make_room(state, max(len(step.tokens) for step in steps))
        out = state.forward([step.tokens for step in steps])
        state.settle(out, [step.acceptance.accept(state, b, out[b], step.tokens[1:]) for b, step in enumerate(steps)])
        state.retire()
    return state.rows


def prefill(model, prompts: list[list[int]], pad_id: int, prefix_cache=None):
    """(cache, attention mask, last logits, tokens loaded from the prefix cache per row).
    Identical prompts (the n samples of one question) are prefilled once and copied."""
    unique = list(dict.fromkeys(tuple(p) for p in prompts))
    if len(unique) == len(prompts):
        return _prefill_distinct(model, prompts, pad_id, prefix_cache)
    cache, mask, logits, cached = _prefill_distinct(model, [list(u) for u in unique], pad_id, prefix_cache)
    order = [unique.index(tuple(p)) for p in prompts]
    index = torch.tensor(order)
    cache.batch_select_indices(index)
    return cache, mask[index], logits[index], [cached[i] for i in order]


def _prefill_distinct(model, prompts: list[list[int]], pad_id: int, prefix_cache):
    """The prompts put into a fresh KV cache, each row's longest cached prefix loaded rather
    than computed. The batch is laid out as [cached region | computed region], each row
    right-aligned in both, padding masked. The chunks computed here are published for the
    next prompt that shares them."""
    from transformers import DynamicCache

    hits = [prefix_cache.lookup(p, len(p) - 1) if prefix_cache else (0, None, None) for p in prompts]
    width_cached = max(n for n, _, _ in hits)
    rest = [p[n:] for p, (n, _, _) in zip(prompts, hits)]
    width = max(len(r) for r in rest)
    cache = DynamicCache()
    cached_mask = torch.zeros(len(prompts), width_cached, dtype=torch.long)
    if width_cached:
        sample = next(k for n, k, _ in hits if n)
        layers, heads, _, dim = sample.shape
        keys = torch.zeros(layers, len(prompts), heads, width_cached, dim, dtype=sample.dtype)
        values = torch.zeros_like(keys)
        for i, (n, k, v) in enumerate(hits):
            if n:
                keys[:, i, :, width_cached - n :] = k
                values[:, i, :, width_cached - n :] = v
                cached_mask[i, width_cached - n :] = 1
        for layer in range(layers):
            cache.update(keys[layer], values[layer], layer)
    input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rest])
    rest_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rest])
    mask = torch.cat([cached_mask, rest_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_cached:]
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache).logits[:, -1, :]
    if prefix_cache:
        for b, (ids, (n, _, _)) in enumerate(zip(prompts, hits)):
            publish(prefix_cache, ids, cache, mask, b, known=n)
    return cache, mask, logits, [n for n, _, _ in hits]


def publish(prefix_cache, ids: list[int], cache, mask: torch.Tensor, b: int, known: int) -> None:
    """Publish the chunks of `ids` past `known` tokens from batch row `b` of `cache`."""
    c = prefix_cache.chunk_tokens
    full = len(ids) // c * c
    if full <= known:
        return
    # Only the KV past the known chunks is copied out of the batch.
    where = mask[b].nonzero().squeeze(-1)[prefix_cache.skipped_tokens(known) : full]
    keys = torch.stack([layer.keys[b][:, where] for layer in cache.layers])
    values = torch.stack([layer.values[b][:, where] for layer in cache.layers])
    prefix_cache.publish(ids[:full], keys, values, known_tokens=known)
