"""Runs a job's skeleton graph on the worker actors.

Each wave takes every ready node, groups the nodes by tier and sends each group to its
tier's actor as one batch, so one engine call decodes them together; the answers of
finished nodes are written into their dependents' questions. While batches run, the
scheduler watches the job's cancel flag and deadline. A batch whose actor died is retried
a bounded number of times; a node that fails takes down only its dependents, and every
other branch's results are kept. Every step is an event in the job's stream.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from orchestrator.config import Config
from orchestrator.job import NodeResult, Result
from orchestrator.runtime import ActorEngine, WorkerPool
from orchestrator.store import Store
from plait.errors import InvalidInput, PlaitError
from planners import Node, SkeletonGraph, given, plan
from verifiers.role import verifier_for
from workers.actor import Batch, BatchResult
from workers.kvcache import add_stats
from workers.types import Budget

SUPPORTED_KINDS = ("math", "program")


class _Stopped(Exception):
    """The job was cancelled or ran out of time while nodes were running."""

    def __init__(self, status: str, error: str):
        super().__init__(error)
        self.status = status


@dataclass
class _Dispatch:
    tier: str
    nodes: list[Node]
    batch: Batch
    stream: object  # Ray ObjectRefGenerator
    retries: int
    started: float


class Scheduler:
    def __init__(self, store: Store, pool: WorkerPool, config: Config, max_node_retries: int = 1, poll_seconds: float = 0.25):
        self.store = store
        self.pool = pool
        self.config = config
        self.max_node_retries = max_node_retries
        self.poll_seconds = poll_seconds

    def run(self, job_id: str) -> Result:
        return _JobRun(self, job_id).run()


class _JobRun:
    def __init__(self, scheduler: Scheduler, job_id: str):
        self.scheduler = scheduler
        self.store = scheduler.store
        self.config = scheduler.config
        self.job_id = job_id
        self.spec = self.store.get(job_id).spec
        self.verifier = None  # chosen by the job's kind when it is planned
        self.started = time.monotonic()
        self.deadline = self.started + self.spec.timeout if self.spec.timeout else None
        self.nodes: dict[str, NodeResult] = {}
        self.reason = ""
        self.planner_tokens = 0
        self.planner_flops = 0
        self.kv_cache: dict = {}

    def emit(self, kind: str, **data) -> None:
        self.store.append_event(self.job_id, {"type": kind, **data})

    def run(self) -> Result:
        graph = None
        try:
            self.store.transition(self.job_id, "planning")
            graph = self.plan()
            self.store.transition(self.job_id, "running")
            while not graph.finished():
                self.check_stop()
                ready = graph.ready()
                if not ready:
                    break
                self.wave(ready, graph)
            self.skip_blocked(graph)
            return self.conclude(graph)
        except _Stopped as stop:
            if graph is not None:
                self.skip_blocked(graph, status="cancelled", why=str(stop))
            return self.finish(stop.status, error=str(stop))
        except PlaitError as exc:
            return self.finish("failed", error=str(exc))
        except Exception as exc:  # recorded, so the job keeps its partial trace
            return self.finish("failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def plan(self) -> SkeletonGraph:
        spec = self.spec
        if spec.kind not in SUPPORTED_KINDS:
            raise InvalidInput(f"kind {spec.kind!r} cannot run yet: supported kinds are {', '.join(SUPPORTED_KINDS)}")
        self.verifier = verifier_for(spec.kind, spec.language)
        routing = {**self.config.routing, **(spec.tiers or {})}
        unknown = sorted(set(routing.values()) - set(self.config.tiers))
        if unknown:
            raise InvalidInput(f"tiers {', '.join(unknown)} are not defined; defined: {', '.join(self.config.tiers)}")
        engine = None
        if spec.graph:
            nodes = [Node(n.id, n.question, list(n.depends_on), n.difficulty) for n in spec.graph]
            graph, self.reason = given(nodes, routing)
        else:
            if spec.planner == "sgd":
                self.emit("planning", planner="sgd", tier=self.config.planner_tier)
                engine = ActorEngine(self.scheduler.pool.actor(self.config.planner_tier))
            graph, self.reason = plan(
                spec.problem,
                spec.planner,
                routing,
                engine,
                max_nodes=self.config.planner.max_nodes,
                constrained=self.config.planner.constrained,
            )
        generated = 0
        if engine is not None:
            self.planner_tokens, generated = engine.tokens, engine.completion_tokens
            self.planner_flops = engine.info().flops(engine.tokens)
        self.emit(
            "planned",
            nodes=[n.to_dict() for n in graph.nodes()],
            reason=self.reason,
            tokens=self.planner_tokens,
            completion_tokens=generated,
        )
        return graph

    def check_stop(self) -> None:
        if self.store.cancel_requested(self.job_id):
            raise _Stopped("cancelled", "cancelled by the user")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _Stopped("failed", f"timed out: the job's timeout of {self.spec.timeout:g} s ran out")

    def budget(self) -> Budget:
        b = self.spec.budget
        seconds = b.max_seconds
        if self.deadline is not None:
            left = max(self.deadline - time.monotonic(), 0.001)
            seconds = min(seconds, left) if seconds else left
        return Budget(max_tokens=b.max_tokens, max_samples=b.max_samples, max_seconds=seconds, max_flops=b.max_flops)

    def wave(self, ready: list[Node], graph: SkeletonGraph) -> None:
        import ray

        groups: dict[str, list[Node]] = defaultdict(list)
        for node in ready:
            groups[node.tier].append(node)
        size = self.config.scheduler.max_batch
        running = [
            self.dispatch(tier, nodes[i : i + size], graph, retries=0)
            for tier, nodes in groups.items()
            for i in range(0, len(nodes), size)
        ]
        while running:
            self.check_stop()
            ready_streams, _ = ray.wait([d.stream for d in running], num_returns=1, timeout=self.scheduler.poll_seconds)
            for dispatch in [d for d in running if any(d.stream is s for s in ready_streams)]:
                replacement = self.step(dispatch, graph)
                if replacement is not dispatch:
                    running.remove(dispatch)
                    if replacement is not None:
                        running.append(replacement)

    def dispatch(self, tier: str, nodes: list[Node], graph: SkeletonGraph, retries: int) -> _Dispatch:
        asked = {node_id: done.question for node_id, done in self.nodes.items()}
        questions = [_with_dependencies(node, graph, asked) for node in nodes]
        spec = self.spec
        batch = Batch(questions, spec.strategy.name, spec.strategy_params(), self.budget(), self.config.sandbox.limits(), self.verifier)
        for node in nodes:
            node.status = "running"
            self.emit("node_started", node=node.id, tier=tier, retry=retries)
        stream = self.scheduler.pool.actor(tier).run_stream.remote(batch)
        return _Dispatch(tier, nodes, batch, stream, retries, time.monotonic())

    def step(self, d: _Dispatch, graph: SkeletonGraph) -> _Dispatch | None:
        """Consume one item of a batch's stream; returns the dispatch still to watch (itself, a
        retry) or None when the batch is over."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

        try:
            item = ray.get(next(d.stream))
        except StopIteration:
            self.fail(d, "the worker's stream ended without a result")
            return None
        except (ActorDiedError, ActorUnavailableError) as exc:
            reason = str(exc).strip().splitlines()[0]
            if d.retries >= self.scheduler.max_node_retries:
                self.fail(d, f"worker died {d.retries + 1} times: {reason}")
                return None
            self.emit("node_retry", tier=d.tier, nodes=[n.id for n in d.nodes], retry=d.retries + 1, reason=reason)
            self.await_restart(d.tier)
            return self.dispatch(d.tier, d.nodes, graph, d.retries + 1)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            self.fail(d, f"{type(cause).__name__}: {cause}" if not isinstance(cause, PlaitError) else str(cause))
            return None
        if not isinstance(item, BatchResult):
            kind = item.pop("type")  # "generated" | "tool_call"
            self.emit(kind, tier=d.tier, **item)
            return d
        seconds = round(time.monotonic() - d.started, 3)
        self.kv_cache = add_stats(self.kv_cache, item.kv_cache)
        for node, question, attempt in zip(d.nodes, d.batch.questions, item.attempts):
            node.answer = attempt.answer
            node.status = "done" if attempt.answer is not None else "failed"
            error = None if attempt.answer is not None else f"no answer ({attempt.finish_reason}): {self.why_no_answer(attempt)}"
            self.record(node, NodeResult(node.id, question, d.tier, node.status, node.answer, attempt, item.worker, d.retries, error, seconds))
        return None

    def why_no_answer(self, attempt) -> str:
        # A synthesis verdict says what was spent and what the checker said (or what to install).
        if self.spec.kind == "program" and attempt.verdict is not None:
            return attempt.verdict.message
        return attempt.text[-200:]

    def await_restart(self, tier: str, patience: float = 120.0) -> None:
        """Wait until a restarted tier actor answers again, so the retry is not spent on a
        'the actor is restarting' refusal."""
        import ray
        from ray.exceptions import ActorUnavailableError

        deadline = time.monotonic() + patience
        while True:
            self.check_stop()
            try:
                ray.get(self.scheduler.pool.actor(tier).describe.remote(), timeout=10)
                return
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def fail(self, d: _Dispatch, error: str) -> None:
        for node, question in zip(d.nodes, d.batch.questions):
            node.status = "failed"
            self.record(node, NodeResult(node.id, question, d.tier, "failed", None, None, {}, d.retries, error))

    def record(self, node: Node, result: NodeResult) -> None:
        self.nodes[node.id] = result
        attempt = result.attempt
        self.emit(
            "node_done",
            node=node.id,
            status=result.status,
            answer=result.answer,
            error=result.error,
            tokens=attempt.tokens if attempt else 0,
            tool_calls=len(attempt.tool_calls) if attempt else 0,
            seconds=result.seconds,
            worker=result.worker,
        )

    def skip_blocked(self, graph: SkeletonGraph, status: str = "failed", why: str = "") -> None:
        """Nodes that never ran: blocked by a failed dependency, or stopped with the job."""
        for node in graph.nodes():
            if node.status in ("pending", "running"):
                failed = [d for d in node.depends_on if graph.node(d).status != "done"]
                node.status = status
                error = why or f"skipped: dependency {', '.join(repr(d) for d in failed)} failed"
                self.record(node, NodeResult(node.id, node.question, node.tier, status, None, None, {}, 0, error))

    def conclude(self, graph: SkeletonGraph) -> Result:
        sink = graph.sinks()[-1]
        failed = [self.nodes[n.id] for n in graph.nodes() if n.status != "done"]
        if sink.status != "done":
            first = next((f for f in failed if not (f.error or "").startswith("skipped")), failed[0])
            return self.finish("failed", error=f"node {first.id!r} failed: {first.error}")
        attempt = self.nodes[sink.id].attempt
        if self.spec.reference is not None:
            verdict = self.verifier.check(self.spec.problem, sink.answer, reference=self.spec.reference)
        else:
            verdict = attempt.verdict
        self.emit("verified", status=verdict.status, message=verdict.message)
        return self.finish("succeeded", sink.answer, verdict)

    def finish(self, status: str, answer=None, verdict=None, error=None) -> Result:
        attempts = [n.attempt for n in self.nodes.values() if n.attempt]
        result = Result(
            job_id=self.job_id,
            status=status,
            answer=answer,
            verified=bool(verdict and verdict.verified),
            verdict=verdict,
            nodes=list(self.nodes.values()),
            tokens=self.planner_tokens + sum(a.tokens for a in attempts),
            flops=self.planner_flops + sum(a.flops for a in attempts),
            planner_tokens=self.planner_tokens,
            kv_cache=self.kv_cache,
            seconds=round(time.monotonic() - self.started, 3),
            error=error,
            plan=self.reason,
        )
        self.store.put_result(result)
        if self.store.get(self.job_id).status != status:
            self.store.transition(self.job_id, status)
        self.emit("done", status=status, answer=answer, error=error, kv_cache=self.kv_cache)
        return result


def _with_dependencies(node: Node, graph: SkeletonGraph, asked: dict[str, str]) -> str:
    """A dependent's question carries its dependencies' answers (SGD's information forwarding):
    `{id}` placeholders are filled in, and a preamble lists what is known (each dependency as
    it was asked, its own placeholders filled)."""
    if not node.depends_on:
        return node.question
    question = node.question
    for dep in node.depends_on:
        question = question.replace("{" + dep + "}", str(graph.node(dep).answer))
    known = "\n".join(
        f"- {_own_part(asked.get(d, graph.node(d).question))} Answer: {graph.node(d).answer}" for d in node.depends_on
    )
    return f"{_PREAMBLE}{known}\n\n{question}"


_PREAMBLE = "Known results:\n"


def _own_part(question: str) -> str:
    """A question without the preamble it was given (dependencies of dependencies)."""
    return question.split("\n\n", 1)[1] if question.startswith(_PREAMBLE) else question
