"""Cache keys: a hash chain over fixed-size token chunks, namespaced by the model.

Key i covers tokens [0, (i+1)·chunk): h_i = sha256(h_{i-1} ‖ chunk_i as little-endian
int32), with h_{-1} = sha256(namespace). A key therefore names a whole prefix, not just its
last chunk, so equal keys mean equal prefixes (as in vLLM's prefix caching and LMCache).
sha256 over fixed-width bytes is the same in every process, unlike Python's `hash()`.
"""

from __future__ import annotations

import hashlib

import numpy as np


def namespace(fingerprint: str, chunk_tokens: int) -> str:
    """What the KV of a token depends on besides the tokens: the model (its fingerprint covers
    weights, dtype, KV layout and RoPE settings) and the chunking."""
    return f"{fingerprint}/c{chunk_tokens}"


def chunk_keys(space: str, token_ids: list[int], chunk_tokens: int) -> list[str]:
    """One hex key per full chunk of `token_ids`, in order."""
    keys = []
    digest = hashlib.sha256(space.encode()).digest()
    for start in range(0, len(token_ids) - chunk_tokens + 1, chunk_tokens):
        chunk = np.asarray(token_ids[start : start + chunk_tokens], dtype="<i4").tobytes()
        digest = hashlib.sha256(digest + chunk).digest()
        keys.append(digest.hex())
    return keys
