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

from dataclasses import asdict, dataclass

import torch
from transformers.models.llama.modeling_llama import rotate_half


@dataclass(frozen=True)
class SinkSpec:
    sink_tokens: int = 0  # first tokens kept for good; 0 turns the policy off
    window_tokens: int = 2048  # recent tokens kept at most
    evict_tokens: int = 256  # dropped together when the cache is full

    def __post_init__(self) -> None:
        if not 0 <= self.sink_tokens <= 64:
            raise ValueError(f"sink_tokens must be 0-64, got {self.sink_tokens}")
        if self.window_tokens < 64:
            raise ValueError(f"window_tokens must be at least 64, got {self.window_tokens}")
        if not 1 <= self.evict_tokens <= self.window_tokens // 2:
            raise ValueError(f"evict_tokens must be 1 to window_tokens/2 ({self.window_tokens // 2}), got {self.evict_tokens}")

    @property
    def on(self) -> bool:
        return self.sink_tokens > 0

    @property
    def capacity(self) -> int:
        return self.sink_tokens + self.window_tokens

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StreamingStats:
    """What the policy did since the engine started."""

    compactions: int = 0
    evicted_tokens: int = 0
    peak_cache_tokens: int = 0  # widest KV cache (slots per row) any decode step attended to

    def seen(self, width: int) -> None:
        self.peak_cache_tokens = max(self.peak_cache_tokens, width)


def inverse_frequencies(model) -> torch.Tensor:
    """The rotary embedding's per-pair frequencies; a clear error for models without one."""
    rotary = getattr(model.base_model, "rotary_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        raise ValueError(
            f"attention sinks need a rotary-embedding model (Llama, Qwen, Mistral, SmolLM...); "
            f"{type(model).__name__} has none: set sink_tokens = 0 for this tier"
        )
    return rotary.inv_freq.float()


def compact(cache, mask: torch.Tensor, spec: SinkSpec, inv_freq: torch.Tensor, incoming: int) -> tuple[torch.Tensor, int] | None:
    """Make room for `incoming` new slots: when the cache would exceed the policy's capacity,
    keep each row's sinks and its latest tokens (right-aligned, padding masked), rotate the
    kept recent keys to their new positions, and return the new mask and the tokens dropped.
    A row's position for its i-th unmasked slot is i, before and after. None: nothing to do."""
    if mask.shape[1] + incoming <= spec.capacity:
        return None
    recent = spec.window_tokens - max(spec.evict_tokens, incoming)
    sources, shifts = [], []
    for row in mask:
        slots = row.nonzero().squeeze(-1)
        dropped = max(0, len(slots) - spec.sink_tokens - recent)
        kept = torch.cat([slots[: spec.sink_tokens], slots[spec.sink_tokens + dropped :]])
        sources.append(kept)
        shifts.append([0] * min(spec.sink_tokens, len(slots)) + [dropped] * (len(kept) - min(spec.sink_tokens, len(slots))))
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
    return new_mask, int(mask.sum() - new_mask.sum())


def _rotation(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles for a (batch, slots) tensor of position offsets,
    shaped (batch, 1, slots, head_dim) to broadcast over heads."""
    angles = positions[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin()

