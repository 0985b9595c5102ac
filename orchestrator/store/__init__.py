"""Job stores behind one protocol."""

from orchestrator.store.base import Store
from orchestrator.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store"]
