"""Which replica of a tier runs a batch.

A tier with several replicas has one worker actor (and, on llama.cpp, one server with its own
prompt cache) per replica. A prompt whose prefix a replica has just processed is cheap there
and a full prefill anywhere else, so the "prefix" policy sends a batch to the replica that
recently served the longest common prefix of its questions, as cache-aware routers for LLM
servers do, unless that replica is `balance` batches busier than the idlest one. The
"least_loaded" policy ignores prefixes: fewest batches in flight, ties taken in turn.
"""

from __future__ import annotations

import threading
from collections import deque
from os.path import commonprefix
from typing import Literal

ReplicaPolicy = Literal["prefix", "least_loaded"]


class ReplicaRouter:
    def __init__(self, replicas: int, policy: ReplicaPolicy = "prefix", *, min_prefix: int = 32, balance: int = 2, history: int = 256):
        if replicas < 1:
            raise ValueError(f"a tier needs at least one replica, got {replicas}")
        self.policy = policy
        self.min_prefix = min_prefix  # characters: a shorter shared start is chance, not a cached prefix
        self.balance = balance
        self._seen = [deque(maxlen=history) for _ in range(replicas)]
        self._load = [0] * replicas
        self._turn = 0
        self._lock = threading.Lock()
        self.routed = {"prefix": 0, "least_loaded": 0}  # why each batch went where it went

    def choose(self, texts: list[str]) -> int:
        """The replica for a batch of these prompts' texts; counted busy until `release`."""
        with self._lock:
            n = len(self._load)
            idlest = min(((self._turn + i) % n for i in range(n)), key=lambda r: self._load[r])
            pick, why = idlest, "least_loaded"
            if self.policy == "prefix":
                best, shared = max(((r, self._shared(r, texts)) for r in range(n)), key=lambda rs: rs[1])
                if shared >= self.min_prefix and self._load[best] - self._load[idlest] < self.balance:
                    pick, why = best, "prefix"
            if why == "least_loaded":
                self._turn = (pick + 1) % n
            self._load[pick] += 1
            self._seen[pick].extend(texts)
            self.routed[why] += 1
            return pick

    def release(self, replica: int) -> None:
        with self._lock:
            self._load[replica] = max(self._load[replica] - 1, 0)

    def _shared(self, replica: int, texts: list[str]) -> int:
        return max((len(commonprefix([text, seen])) for text in texts for seen in self._seen[replica]), default=0)
