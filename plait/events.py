"""The events of a job's stream: every kind declared here, every event made here.

Workers report progress (`generated`, `tool_call`, `check`, `engine`) while a batch runs;
the scheduler and the client record the job's course around them. Each event is a plain
JSON object with a `type`, the format's version `v`, and the fields its kind declares; the
store adds `seq` and `ts`. `orchestrator.jobstate` folds a stream into one job state, which
the live view, the graph view, the HTTP stream's consumers and /metrics all read.
"""

from __future__ import annotations

from typing import Any, TypedDict, get_type_hints

VERSION = 1


class Submitted(TypedDict):
    strategy: str
    mode: str  # "local" | "cluster"


class CancelRequested(TypedDict):
    pass


class Planning(TypedDict):
    planner: str
    tier: str


class Planned(TypedDict):
    nodes: list[dict]  # planners.Node.to_dict() of each node
    reason: str
    tokens: int
    completion_tokens: int
    usage: dict  # the planner call's workers.types.Usage


class Resumed(TypedDict):
    kept: list[str]  # nodes finished under an earlier runner, not run again
    owner: str


class NodeStarted(TypedDict):
    node: str
    tier: str
    replica: int  # which of the tier's worker actors
    retry: int


class NodeRetry(TypedDict):
    tier: str
    nodes: list[str]
    retry: int
    reason: str


class NodeDone(TypedDict):
    node: str
    status: str
    answer: str | None
    error: str | None
    tokens: int
    tool_calls: int
    seconds: float
    worker: dict


class Generated(TypedDict):
    round: int
    questions: int
    tokens: int


class ToolCallRun(TypedDict):
    round: int
    status: str
    seconds: float


class Check(TypedDict):
    status: str
    checker: str


class EngineProgress(TypedDict):
    message: str


class Verified(TypedDict):
    status: str
    message: str


class Done(TypedDict):
    status: str
    answer: str | None
    error: str | None
    kv_cache: dict
    decode: dict


KINDS: dict[str, type] = {
    "submitted": Submitted,
    "cancel_requested": CancelRequested,
    "planning": Planning,
    "planned": Planned,
    "resumed": Resumed,
    "node_started": NodeStarted,
    "node_retry": NodeRetry,
    "node_done": NodeDone,
    "generated": Generated,
    "tool_call": ToolCallRun,
    "check": Check,
    "engine": EngineProgress,
    "verified": Verified,
    "done": Done,
}
# Worker events pass through the scheduler, which adds the tier they ran on.
WORKER_KINDS = frozenset({"generated", "tool_call", "check", "engine"})
_FIELDS = {kind: frozenset(get_type_hints(shape)) for kind, shape in KINDS.items()}


def event(kind: str, **fields: Any) -> dict:
    """An event of `kind` with exactly the fields its kind declares (worker events may also
    carry `tier`). A mistake here is a bug in plait, so it raises ValueError at once."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    allowed = _FIELDS[kind] | ({"tier"} if kind in WORKER_KINDS else set())
    missing, unknown = _FIELDS[kind] - set(fields), set(fields) - allowed
    if missing or unknown:
        raise ValueError(f"event {kind!r}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {"type": kind, "v": VERSION, **fields}
