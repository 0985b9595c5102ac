"""Job stores behind one protocol."""

from orchestrator.store.base import Store, StoreUnavailable
from orchestrator.store.memory import MemoryStore
from orchestrator.store.redis_store import RedisStore


def open_store(url: str | None) -> Store:
    """The in-process store without a URL, else the Redis store at `url`, checked reachable."""
    if url is None:
        return MemoryStore()
    store = RedisStore(url)
    store.ping()
    return store


__all__ = ["MemoryStore", "RedisStore", "Store", "StoreUnavailable", "open_store"]
