"""plait's public API: `from orchestrator import Client, JobSpec`.

The names load on first use, so that a CLI verb that needs none of them (`plait version`)
imports no engine, store or Ray code."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.client import Client
    from orchestrator.job import Job, NodeResult, Result
    from orchestrator.spec import JobSpec
    from plait.errors import PlaitError

_HOMES = {
    "Client": "orchestrator.client",
    "Job": "orchestrator.job",
    "NodeResult": "orchestrator.job",
    "Result": "orchestrator.job",
    "JobSpec": "orchestrator.spec",
    "PlaitError": "plait.errors",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
