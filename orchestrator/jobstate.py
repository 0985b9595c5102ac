"""One fold from a job's events to its state: what the live view shows, the graph view
draws, and /metrics counts, all read from the same `JobState`."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.types import merge_decode

STAGES = {
    "submitted": "starting Ray and the model worker",
    "planning": "the planner model writes the skeleton graph",
    "planned": "planned",
    "resumed": "resumed after its runner was lost",
    "node_started": "decoding",
    "verified": "checking the answer",
    "done": "done",
}


@dataclass
class NodeState:
    id: str
    question: str
    depends_on: list[str]
    difficulty: int
    tier: str
    status: str = "pending"
    answer: str | None = None
    error: str | None = None
    tokens: int = 0
    tool_calls: int = 0
    started: float | None = None  # `ts` of its latest node_started
    latency: float | None = None  # node_started to node_done, once done

    def as_node(self) -> dict:
        """The node as planners.Node fields (and its error), for the graph view."""
        keys = ("id", "question", "depends_on", "difficulty", "tier", "status", "answer", "error")
        return {k: getattr(self, k) for k in keys}


@dataclass
class JobState:
    stage: str = "queued"
    status: str | None = None  # the job's final status, once `done`
    nodes: dict[str, NodeState] = field(default_factory=dict)
    last: str = ""  # the latest worker progress, as a line of text
    checks: dict[str, int] = field(default_factory=dict)  # program synthesis: verdicts by status
    kv_cache: dict = field(default_factory=dict)
    decode: dict = field(default_factory=dict)
    offset: int = 0  # the next event's sequence number

    def apply(self, event: dict) -> None:
        kind = event["type"]
        self.offset = max(self.offset, event.get("seq", -1) + 1)
        self.stage = STAGES.get(kind, self.stage)
        node = self.nodes.get(event.get("node", ""))
        if kind == "planned":
            self.nodes = {
                n["id"]: NodeState(n["id"], n["question"], list(n["depends_on"]), n["difficulty"], n["tier"]) for n in event["nodes"]
            }
        elif kind == "node_started" and node:
            node.status, node.tier, node.started = "running", event["tier"] or node.tier, event.get("ts")
        elif kind == "node_done" and node:
            node.status, node.answer, node.error = event["status"], event["answer"], event["error"]
            node.tokens, node.tool_calls = event["tokens"], event["tool_calls"]
            if node.started is not None and event.get("ts") is not None:
                node.latency = max(0.0, event["ts"] - node.started)
        elif kind == "generated":
            self.last = f"round {event['round']}: generated {event['tokens']} tokens"
        elif kind == "tool_call":
            self.last = f"round {event['round']}: ran code ({event['status']}, {event['seconds']} s)"
        elif kind == "check":
            self.checks[event["status"]] = self.checks.get(event["status"], 0) + 1
            self.last = f"{event['checker']} checks: " + ", ".join(f"{n} {status}" for status, n in self.checks.items())
        elif kind == "engine":
            self.last = f"{event['tier']}: {event['message']}"
        elif kind == "node_retry":
            self.last = f"worker lost, retrying ({event['reason']})"
        elif kind == "resumed":
            self.last = f"resumed by {event['owner']}; kept {len(event['kept'])} finished node(s)"
        elif kind == "done":
            self.status, self.kv_cache = event["status"], event.get("kv_cache") or {}
            self.decode = merge_decode({}, event.get("decode") or {})


def fold(events: list[dict], state: JobState | None = None) -> JobState:
    state = state or JobState()
    for event in events:
        state.apply(event)
    return state
