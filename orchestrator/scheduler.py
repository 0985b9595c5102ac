"""Runs a job's skeleton graph on the worker actors.

Each wave takes every ready node, groups the nodes by tier and sends each group to its
tier's actor as one batch, so one engine call decodes them together; the answers of
finished nodes are written into their dependents' questions. While batches run, the
scheduler watches the job's cancel flag and deadline. A node whose worker died is sent again,
a bounded number of times per node, after the restarted worker answers; a node that fails
takes down only its dependents, and every other branch's results are kept. Every step is an
event in the job's stream.

A job runs on a thread of its own while its runner holds the job's lease (`Scheduler.start`,
the one runner the local client and the cluster's controller share). Finished nodes are
stored as they finish, so a job whose runner died is resumed by the next one from its plan
and finished nodes (`Scheduler.resume_orphans`); store outages are waited out.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from orchestrator.config import Config
from orchestrator.durability import LEASE_SECONDS, OUTAGE_PATIENCE, JobLease, PatientStore
from orchestrator.job import NodeResult, Result
from orchestrator.runtime import ActorEngine, WorkerPool
from orchestrator.store import Store, StoreUnavailable
from plait.errors import InvalidInput, PlaitError
from plait.events import event
from planners import Node, SkeletonGraph, given, plan, with_dependencies
from verifiers.role import verifier_for
from workers.actor import Batch, BatchResult
from workers.kvcache import add_stats
from workers.types import Budget, Usage

SUPPORTED_KINDS = ("math", "program")


class _LeaseLost(Exception):
    """Another runner took the job over (this one was taken for dead): stop without a word."""


class _Stopped(Exception):
    """The job was cancelled or ran out of time while nodes were running."""

    def __init__(self, status: str, error: str):
        super().__init__(error)
        self.status = status


@dataclass
class _Dispatch:
    tier: str
    replica: int
    nodes: list[Node]
    batch: Batch
    stream: object  # Ray ObjectRefGenerator
    started: float


RESUMABLE = ("queued", "planning", "running")


class Scheduler:
    def __init__(
        self,
        store: Store,
        pool: WorkerPool,
        config: Config,
        max_node_retries: int = 3,
        poll_seconds: float = 0.25,
        lease_seconds: float = LEASE_SECONDS,
    ):
        self.store = store
        self.pool = pool
        self.config = config
        self.max_node_retries = max_node_retries
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def start(self, job_id: str) -> bool:
        """Run a stored job on a thread of its own; False when it runs already (here, or under
        another runner's live lease)."""
        with self._lock:
            if job_id in self._running:
                return False
            lease = JobLease(self.store, job_id, self.owner, self.lease_seconds)
            if not lease.acquire():
                return False
            self._running.add(job_id)
        threading.Thread(target=self._hold, args=(job_id, lease), name=f"plait-{job_id}", daemon=True).start()
        return True

    def _hold(self, job_id: str, lease: JobLease) -> None:
        try:
            _JobRun(self, job_id, lease).run()
        finally:
            lease.release()
            with self._lock:
                self._running.discard(job_id)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def resume_orphans(self) -> list[str]:
        """Start every unfinished job nobody holds the lease of (its runner died); their ids."""
        orphans = [job.id for status in RESUMABLE for job in self.store.jobs(status, 10_000)]
        return [job_id for job_id in orphans if self.start(job_id)]

    def run(self, job_id: str) -> Result:
        """Run a job here and now (no lease: for callers that own the job outright)."""
        return _JobRun(self, job_id).run()


class _JobRun:
    def __init__(self, scheduler: Scheduler, job_id: str, lease: JobLease | None = None):
        self.scheduler = scheduler
        self.config = scheduler.config
        self.job_id = job_id
        self.lease = lease
        self.started = time.monotonic()
        self.store = PatientStore(scheduler.store, self.started + OUTAGE_PATIENCE)
        self.spec = self.store.get(job_id).spec
        self.deadline = self.started + self.spec.timeout if self.spec.timeout else None
        if self.deadline is not None:
            self.store = PatientStore(scheduler.store, self.deadline)
        self.verifier = None  # chosen by the job's kind when it is planned
        self.nodes: dict[str, NodeResult] = {}
        self.retries: dict[str, int] = defaultdict(int)  # worker deaths per node
        self.reason = ""
        self.planner = Usage()  # what the planner's call cost
        self.kv_cache: dict = {}

    def emit(self, kind: str, **data) -> None:
        self.store.append_event(self.job_id, event(kind, **data))

    def run(self) -> Result | None:
        graph = None
        try:
            graph = self.resume() or self.plan_anew()
            while not graph.finished():
                self.check_stop()
                ready = graph.ready()
                if not ready:
                    break
                self.wave(ready, graph)
            self.skip_blocked(graph)
            return self.conclude(graph)
        except _LeaseLost:
            return None  # another runner has the job now; it finishes it
        except _Stopped as stop:
            if graph is not None:
                self.skip_blocked(graph, status="cancelled", why=str(stop))
            return self.finish(stop.status, error=str(stop))
        except StoreUnavailable:
            raise  # the store stayed away past the job's patience: nothing can be recorded
        except PlaitError as exc:
            return self.finish("failed", error=str(exc))
        except Exception as exc:  # recorded, so the job keeps its partial trace
            return self.finish("failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def plan_anew(self) -> SkeletonGraph:
        if self.store.get(self.job_id).status == "queued":
            self.store.transition(self.job_id, "planning")
        graph = self.plan()
        self.store.transition(self.job_id, "running")
        return graph

    def resume(self) -> SkeletonGraph | None:
        """The graph of a job a runner before this one had planned, with the nodes it finished;
        None when there is nothing to resume."""
        if self.store.get(self.job_id).status != "running":
            return None
        planned = next((e for e in reversed(self.store.events(self.job_id)) if e["type"] == "planned"), None)
        if planned is None:
            return None
        self.verifier = verifier_for(self.spec.kind, self.spec.language)
        graph = SkeletonGraph([Node(**{**n, "status": "pending", "answer": None}) for n in planned["nodes"]])
        for node_id, done in self.store.node_results(self.job_id).items():
            node = graph.node(node_id)
            node.status, node.answer = done.status, done.answer
            self.nodes[node_id] = done
        self.reason = planned["reason"]
        self.planner = Usage(**planned["usage"])
        self.emit("resumed", kept=sorted(self.nodes), owner=self.scheduler.owner)
        return graph

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
        elif spec.planner == "sgd":
            self.emit("planning", planner="sgd", tier=self.config.planner_tier)
            with self.scheduler.pool.routed(self.config.planner_tier, [spec.problem]) as actor:
                engine = ActorEngine(actor)
                graph, self.reason = self.run_planner(routing, engine)
        else:
            graph, self.reason = self.run_planner(routing, None)
        if engine is not None:
            self.planner = engine.usage
        self.emit(
            "planned",
            nodes=[n.to_dict() for n in graph.nodes()],
            reason=self.reason,
            tokens=self.planner.tokens,
            completion_tokens=self.planner.completion_tokens,
            usage=self.planner.to_dict(),
        )
        return graph

    def run_planner(self, routing: dict[int, str], engine: ActorEngine | None) -> tuple[SkeletonGraph, str]:
        planner = self.config.planner
        return plan(self.spec.problem, self.spec.planner, routing, engine, max_nodes=planner.max_nodes, constrained=planner.constrained)

    def check_stop(self) -> None:
        if self.lease is not None and self.lease.lost.is_set():
            raise _LeaseLost
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
        pool = self.scheduler.pool
        running: list[_Dispatch] = []
        try:
            for tier, nodes in groups.items():
                running += [self.dispatch(tier, nodes[i : i + size], graph) for i in range(0, len(nodes), size)]
            while running:
                self.check_stop()
                ready_streams, _ = ray.wait([d.stream for d in running], num_returns=1, timeout=self.scheduler.poll_seconds)
                for dispatch in [d for d in running if any(d.stream is s for s in ready_streams)]:
                    replacement = self.step(dispatch, graph)
                    if replacement is not dispatch:
                        running.remove(dispatch)
                        pool.release(dispatch.tier, dispatch.replica)
                        if replacement is not None:
                            running.append(replacement)
        finally:  # a stopped job's batches no longer count against their replicas
            for dispatch in running:
                pool.release(dispatch.tier, dispatch.replica)

    def dispatch(self, tier: str, nodes: list[Node], graph: SkeletonGraph) -> _Dispatch:
        asked = {node_id: done.question for node_id, done in self.nodes.items()}
        questions = [with_dependencies(node, graph, asked) for node in nodes]
        spec = self.spec
        batch = Batch(questions, spec.strategy.name, spec.strategy_params(), self.budget(), self.config.sandbox, self.verifier)
        pool = self.scheduler.pool
        replica = pool.route(tier, questions)
        for node in nodes:
            node.status = "running"
            self.emit("node_started", node=node.id, tier=tier, replica=replica, retry=self.retries[node.id])
        stream = pool.actor(tier, replica).run_stream.remote(batch)
        return _Dispatch(tier, replica, nodes, batch, stream, time.monotonic())

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
            return self.retry(d, graph, str(exc).strip().splitlines()[0])
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            self.fail(d, f"{type(cause).__name__}: {cause}" if not isinstance(cause, PlaitError) else str(cause))
            return None
        if not isinstance(item, BatchResult):
            fields = {k: v for k, v in item.items() if k not in ("type", "v")}
            self.emit(item["type"], tier=d.tier, **fields)  # a worker's progress, with where it ran
            return d
        seconds = round(time.monotonic() - d.started, 3)
        self.kv_cache = add_stats(self.kv_cache, item.kv_cache)
        for node, question, attempt in zip(d.nodes, d.batch.questions, item.attempts):
            node.answer = attempt.answer
            node.status = "done" if attempt.answer is not None else "failed"
            error = None if attempt.answer is not None else f"no answer ({attempt.finish_reason}): {self.why_no_answer(attempt)}"
            result = NodeResult(node.id, question, d.tier, node.status, node.answer, attempt, item.worker, self.retries[node.id], error, seconds)
            self.store.put_node_result(self.job_id, result)  # what a resumed job keeps
            self.record(node, result)
        return None

    def retry(self, d: _Dispatch, graph: SkeletonGraph, reason: str) -> _Dispatch | None:
        """Send a dead worker's nodes again once its restart answers; a node that has lost its
        worker more than `max_node_retries` times fails."""
        for node in d.nodes:
            self.retries[node.id] += 1
        spent = [n for n in d.nodes if self.retries[n.id] > self.scheduler.max_node_retries]
        if spent:
            self.fail(d, f"worker died {self.retries[spent[0].id]} times: {reason}", spent)
        again = [n for n in d.nodes if n not in spent]
        if not again:
            return None
        self.emit("node_retry", tier=d.tier, nodes=[n.id for n in again], retry=max(self.retries[n.id] for n in again), reason=reason)
        self.await_restart(d.tier, d.replica, max(self.retries[n.id] for n in again))
        return self.dispatch(d.tier, again, graph)

    def why_no_answer(self, attempt) -> str:
        # A synthesis verdict says what was spent and what the checker said (or what to install).
        if self.spec.kind == "program" and attempt.verdict is not None:
            return attempt.verdict.message
        return attempt.text[-200:]

    def await_restart(self, tier: str, replica: int, attempt: int, patience: float = 300.0) -> None:
        """Back off (1 s, 2 s, 4 s… for the node's 1st, 2nd, 3rd… retry), then wait until the
        restarted tier actor answers, so the retry is not spent on a 'restarting' refusal."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

        time.sleep(min(2.0 ** (attempt - 1), 30.0))
        deadline = time.monotonic() + patience
        while True:
            self.check_stop()
            try:
                ray.get(self.scheduler.pool.actor(tier, replica).describe.remote(), timeout=10)
                return
            except (ActorUnavailableError, ActorDiedError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def fail(self, d: _Dispatch, error: str, nodes: list[Node] | None = None) -> None:
        for node, question in zip(d.nodes, d.batch.questions):
            if nodes is not None and node not in nodes:
                continue
            node.status = "failed"
            self.record(node, NodeResult(node.id, question, d.tier, "failed", None, None, {}, self.retries[node.id], error))

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
        total = Usage().add(self.planner)
        for node in self.nodes.values():
            if node.attempt:
                total.add(node.attempt.usage)
        result = Result(
            job_id=self.job_id,
            status=status,
            answer=answer,
            verified=bool(verdict and verdict.verified),
            verdict=verdict,
            nodes=list(self.nodes.values()),
            tokens=total.tokens,
            flops=total.flops,
            planner_tokens=self.planner.tokens,
            kv_cache=self.kv_cache,
            decode=total.decode,
            seconds=round(time.monotonic() - self.started, 3),
            error=error,
            plan=self.reason,
        )
        self.store.finish(result)
        self.emit("done", status=status, answer=answer, error=error, kv_cache=self.kv_cache, decode=total.decode)
        return result
