"""Job records and results, as stored and as returned to users."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

from plait.errors import InvalidInput, PlaitError
from orchestrator.spec import JobSpec
from verifiers.types import Verdict
from workers.types import Attempt

STATUSES = ("queued", "planning", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
TRANSITIONS: dict[str, set[str]] = {
    "queued": {"planning", "failed", "cancelled"},
    "planning": {"running", "failed", "cancelled"},
    "running": {"succeeded", "failed", "cancelled"},
    "succeeded": set(),
    "failed": set(),
    "cancelled": set(),
}


class JobNotFound(PlaitError):
    pass


class IllegalTransition(InvalidInput):
    pass


def check_transition(job_id: str, old: str, new: str) -> None:
    if new not in TRANSITIONS.get(old, set()):
        raise IllegalTransition(f"job {job_id} is {old}; it cannot become {new}")


def new_job_id() -> str:
    return f"job-{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"


@dataclass
class Job:
    id: str
    spec: JobSpec
    status: str = "queued"
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {**asdict(self), "spec": self.spec.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        return cls(**{**data, "spec": JobSpec.model_validate(data["spec"])})


@dataclass
class NodeResult:
    id: str
    question: str
    tier: str
    status: str
    answer: str | None
    attempt: Attempt | None
    worker: dict = field(default_factory=dict)  # ray node id, pid, model that ran it
    retries: int = 0
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "attempt": self.attempt.to_dict() if self.attempt else None}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeResult":
        attempt = Attempt.from_dict(data["attempt"]) if data.get("attempt") else None
        return cls(**{**data, "attempt": attempt})


@dataclass
class Result:
    job_id: str
    status: str  # succeeded | failed | cancelled
    answer: str | None = None
    verified: bool = False
    verdict: Verdict | None = None
    nodes: list[NodeResult] = field(default_factory=list)
    tokens: int = 0  # every token computed for the job: the planner's and the nodes'
    flops: int = 0
    seconds: float = 0.0
    error: str | None = None
    plan: str = ""  # why the graph has the shape it has
    planner_tokens: int = 0
    kv_cache: dict = field(default_factory=dict)  # prefix KV cache counters summed over the job's batches
    decode: dict = field(default_factory=dict)  # decode counters (speculation, sinks, CNTP) summed over the job's calls

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict.to_dict() if self.verdict else None
        data["nodes"] = [n.to_dict() for n in self.nodes]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        return cls(
            **{
                **data,
                "verdict": Verdict.from_dict(data["verdict"]) if data.get("verdict") else None,
                "nodes": [NodeResult.from_dict(n) for n in data.get("nodes", [])],
            }
        )
