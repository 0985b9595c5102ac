"""One chunk's KV as bytes: safetensors with the key's metadata and a checksum.

A value carries everything needed to prove it belongs where it is read: the key, the model
namespace, the chunk's token ids, its shape and a sha256 of the tensor bytes. `decode`
returns None (a miss) for anything truncated, corrupt or meant for another key, never a
tensor it cannot vouch for.
"""

from __future__ import annotations

import hashlib
import json

import torch
from safetensors.torch import load, save


class BadValue(Exception):
    """A stored value that must not be used: the reason says why."""


def encode(key: str, space: str, token_ids: list[int], keys: torch.Tensor, values: torch.Tensor) -> bytes:
    """`keys`/`values`: [layers, kv_heads, chunk_tokens, head_dim] for one chunk."""
    keys, values = keys.contiguous(), values.contiguous()
    meta = {
        "key": key,
        "space": space,
        "tokens": json.dumps(token_ids),
        "sha256": _checksum(keys, values),
    }
    return save({"k": keys, "v": values}, metadata=meta)


def decode(data: bytes, key: str, space: str, token_ids: list[int], shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of the chunk, or BadValue."""
    try:
        tensors = load(data)
        meta = _metadata(data)
    except Exception as exc:  # safetensors raises several types for truncated/garbled bytes
        raise BadValue(f"unreadable: {type(exc).__name__}") from None
    if meta.get("key") != key or meta.get("space") != space:
        raise BadValue("stored under another key or model")
    if meta.get("tokens") != json.dumps(token_ids):
        raise BadValue("holds other tokens")
    k, v = tensors.get("k"), tensors.get("v")
    if k is None or v is None or tuple(k.shape) != shape or tuple(v.shape) != shape:
        raise BadValue("wrong tensor shape")
    if meta.get("sha256") != _checksum(k, v):
        raise BadValue("checksum mismatch")
    return k, v


def _checksum(keys: torch.Tensor, values: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (keys, values):
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 too
    return digest.hexdigest()


def _metadata(data: bytes) -> dict:
    """The safetensors header's __metadata__ (the format: 8-byte length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__", {})
