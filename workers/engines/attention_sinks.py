"""Attention sinks: a KV policy for generations longer than the model's context (Xiao et al.,
"Efficient Streaming Language Models with Attention Sinks", 2023).

A plain sliding window collapses once the first tokens leave the cache: softmax attention
parks its spare mass on them ("sinks"), and without them every later distribution shifts.
StreamingLLM keeps the first `sink_tokens` of each row plus its most recent tokens and
drops the middle, and it numbers positions *within the cache*: the kept recent tokens are
renumbered to follow the sinks directly, so no position ever exceeds the cache's size and the
model never sees a position it was not trained on.

Our caches store keys after the rotary embedding, so renumbering a token from position p to
p - d means rotating its key by -d (rotations compose: R(-d) R(p) = R(p - d)); values carry no
position. To amortize the copy, a full cache drops `evict_tokens` at once rather than one
token per step, so it holds between `window_tokens - evict_tokens` and `window_tokens` recent
tokens next to its sinks, and never more than `sink_tokens + window_tokens` slots.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import rotate_half

from workers.engines.decoding import DecodeState
from workers.engines.options import SinkSpec


class AttentionSinks:
    """The KV policy: compact the cache whenever the next block would not fit. Positions stay
    within the cache, so a row may generate past the context: `max_tokens` is its only limit."""

    counters = ("sinks_compactions", "sinks_evicted", "sinks_peak_cache_tokens")

    def __init__(self, spec: SinkSpec, inv_freq: torch.Tensor):
        self.spec = spec
        self.inv_freq = inv_freq

    def budget(self, max_tokens: int, context_left: int) -> int:
        return max_tokens

    def make_room(self, state: DecodeState, incoming: int) -> None:
        fitted = compact(state.cache, state.mask, self.spec, self.inv_freq, incoming)
        if fitted is not None:
            state.mask, dropped = fitted
            state.positions = state.mask.sum(-1, keepdim=True)
            state.publish_output = False  # the cache no longer holds whole rows
            for b, evicted in enumerate(dropped):
                stats = state.stats(b)
                stats["sinks_compactions"] += 1
                stats["sinks_evicted"] += evicted
        for b in range(len(state.active)):
            stats = state.stats(b)
            stats["sinks_peak_cache_tokens"] = max(stats["sinks_peak_cache_tokens"], state.mask.shape[1] + incoming)


def inverse_frequencies(model) -> torch.Tensor:
    """The rotary embedding's per-pair frequencies; a clear error for models without one."""
    rotary = getattr(model.base_model, "rotary_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        raise ValueError(
            f"attention sinks need a rotary-embedding model (Llama, Qwen, Mistral, SmolLM...); "
            f"{type(model).__name__} has none: set sink_tokens = 0 for this tier"
        )
    return rotary.inv_freq.float()


def compact(cache, mask: torch.Tensor, spec: SinkSpec, inv_freq: torch.Tensor, incoming: int) -> tuple[torch.Tensor, list[int]] | None:
    """Make room for `incoming` new slots: when the cache would exceed the policy's capacity,
    keep each row's sinks and its latest tokens (right-aligned, padding masked), rotate the
    kept recent keys to their new positions, and return the new mask and each row's tokens dropped.
    A row's position for its i-th unmasked slot is i, before and after. None: nothing to do."""
    if mask.shape[1] + incoming <= spec.capacity:
        return None
    recent = spec.window_tokens - max(spec.evict_tokens, incoming)
    sources, shifts, drops = [], [], []
    for row in mask:
        slots = row.nonzero().squeeze(-1)
        dropped = max(0, len(slots) - spec.sink_tokens - recent)
        kept = torch.cat([slots[: spec.sink_tokens], slots[spec.sink_tokens + dropped :]])
        sources.append(kept)
        shifts.append([0] * min(spec.sink_tokens, len(slots)) + [dropped] * (len(kept) - min(spec.sink_tokens, len(slots))))
        drops.append(dropped)
    width = max(len(s) for s in sources)
    index = torch.zeros(len(sources), width, dtype=torch.long)
    new_mask = torch.zeros(len(sources), width, dtype=mask.dtype)
    shift = torch.zeros(len(sources), width)
    for b, (kept, moved) in enumerate(zip(sources, shifts)):
        if len(kept):
            index[b, width - len(kept) :] = kept
            new_mask[b, width - len(kept) :] = 1
            shift[b, width - len(kept) :] = torch.tensor(moved, dtype=shift.dtype)
    cos, sin = _rotation(-shift, inv_freq)
    for layer in cache.layers:
        gather = index[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
        keys = layer.keys.gather(2, gather)
        layer.keys = (keys.float() * cos + rotate_half(keys.float()) * sin).to(keys.dtype)
        layer.values = layer.values.gather(2, gather)
    return new_mask, drops


def _rotation(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles for a (batch, slots) tensor of position offsets,
    shaped (batch, 1, slots, head_dim) to broadcast over heads."""
    angles = positions[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin()

