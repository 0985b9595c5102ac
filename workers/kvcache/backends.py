"""Where chunk values live: an in-process LRU with a byte cap, or Redis.

Both are best-effort by contract: a backend that cannot answer returns misses and drops
writes, so a lost cache slows jobs down and never fails them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

log = logging.getLogger("plait.kvcache")


class ChunkStore(Protocol):
    name: str

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values in key order, None where absent."""

    def put(self, key: str, value: bytes) -> None: ...

    def has(self, key: str) -> bool: ...

    def stats(self) -> dict[str, int]:
        """Backend counters (evictions, errors, bytes held where known)."""


class MemoryChunkStore:
    """Least-recently-used eviction once the values exceed `max_bytes`. Thread-safe: a worker
    may decode while another thread publishes."""

    name = "memory"

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"the KV cache's byte cap must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._values: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        with self._lock:
            found = []
            for key in keys:
                value = self._values.get(key)
                if value is not None:
                    self._values.move_to_end(key)
                found.append(value)
            return found

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        with self._lock:
            old = self._values.pop(key, None)
            self._bytes += len(value) - (len(old) if old is not None else 0)
            self._values[key] = value
            while self._bytes > self.max_bytes:
                _, evicted = self._values.popitem(last=False)
                self._bytes -= len(evicted)
                self._evictions += 1

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._values

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"held_bytes": self._bytes, "entries": len(self._values), "evictions": self._evictions, "errors": 0}


class RedisChunkStore:
    """Values under `plait:kv:<key>` with a TTL, so a Redis shared with the job store can
    evict them under `maxmemory-policy volatile-lru` while job records (no TTL) stay.

    After a Redis error the store answers misses without trying for `retry_seconds`, so a
    dead server costs one timeout per interval, not one per lookup; the first error is
    logged as a warning, later ones at debug level."""

    name = "redis"
    PREFIX = "plait:kv:"

    def __init__(self, url: str, ttl_seconds: int = 86400, timeout: float = 2.0, retry_seconds: float = 5.0):
        import redis

        self.url = url
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._down_until = 0.0
        self._warned = False
        self._errors = 0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self._errors += 1
        self._down_until = time.monotonic() + self.retry_seconds
        message = f"KV cache: Redis at {self.url} is unavailable ({type(exc).__name__}: {exc}); continuing without it"
        if self._warned:
            log.debug(message)
        else:
            self._warned = True
            log.warning(message)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        import redis

        if not keys or not self._available():
            return [None] * len(keys)
        try:
            return self._redis.mget([self.PREFIX + k for k in keys])
        except redis.RedisError as exc:
            self._failed(exc)
            return [None] * len(keys)

    def put(self, key: str, value: bytes) -> None:
        import redis

        if not self._available():
            return
        try:
            self._redis.set(self.PREFIX + key, value, ex=self.ttl_seconds)
        except redis.RedisError as exc:
            self._failed(exc)

    def has(self, key: str) -> bool:
        import redis

        if not self._available():
            return False
        try:
            return bool(self._redis.exists(self.PREFIX + key))
        except redis.RedisError as exc:
            self._failed(exc)
            return False

    def stats(self) -> dict[str, int]:
        return {"errors": self._errors}
