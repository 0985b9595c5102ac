"""Runs a job's skeleton graph on the worker actors.

Each wave takes every ready node, groups the nodes by tier and sends each group to its
tier's actor as one batch, so one engine call decodes them together; the answers of
finished nodes are written into their dependents' questions. A node whose actor died is
retried a bounded number of times. Every step is an event in the job's stream.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from orchestrator.config import Config
from orchestrator.job import NodeResult, Result
from orchestrator.runtime import WorkerPool
from orchestrator.store import Store
from plait.errors import InvalidInput, PlaitError
from planners import Node, SkeletonGraph, plan
from verifiers import math as math_verifier
from workers.actor import Batch, BatchResult
from workers.types import Budget

SUPPORTED_KINDS = ("math",)


class Scheduler:
    def __init__(self, store: Store, pool: WorkerPool, config: Config, max_node_retries: int = 1):
        self.store = store
        self.pool = pool
        self.config = config
        self.max_node_retries = max_node_retries

    def run(self, job_id: str, cancel: threading.Event | None = None) -> Result:
        cancel = cancel or threading.Event()
        spec = self.store.get(job_id).spec
        started = time.monotonic()
        nodes: dict[str, NodeResult] = {}

        def emit(kind: str, **data) -> None:
            self.store.append_event(job_id, {"type": kind, **data})

        def finish(status: str, answer=None, verdict=None, error=None, reason="") -> Result:
            attempts = [n.attempt for n in nodes.values() if n.attempt]
            result = Result(
                job_id=job_id,
                status=status,
                answer=answer,
                verified=bool(verdict and verdict.verified),
                verdict=verdict,
                nodes=list(nodes.values()),
                tokens=sum(a.tokens for a in attempts),
                flops=sum(a.flops for a in attempts),
                seconds=round(time.monotonic() - started, 3),
                error=error,
                plan=reason,
            )
            self.store.put_result(result)
            if self.store.get(job_id).status != status:
                self.store.transition(job_id, status)
            emit("done", status=status, answer=answer, error=error)
            return result

        reason = ""
        try:
            self.store.transition(job_id, "planning")
            if spec.kind not in SUPPORTED_KINDS:
                raise InvalidInput(f"kind {spec.kind!r} cannot run yet: supported kinds are {', '.join(SUPPORTED_KINDS)}")
            routing = {**self.config.routing, **(spec.tiers or {})}
            unknown = sorted(set(routing.values()) - set(self.config.tiers))
            if unknown:
                raise InvalidInput(f"tiers {', '.join(unknown)} are not defined; defined: {', '.join(self.config.tiers)}")
            graph, reason = plan(spec.problem, spec.planner, routing)
            emit("planned", nodes=[n.to_dict() for n in graph.nodes()], reason=reason)
            self.store.transition(job_id, "running")
            budget = Budget(
                max_tokens=spec.budget.max_tokens,
                max_samples=spec.budget.max_samples,
                max_seconds=spec.budget.max_seconds,
                max_flops=spec.budget.max_flops,
            )
            while not graph.finished():
                if cancel.is_set():
                    _mark_pending(graph, "cancelled")
                    return finish("cancelled", error="cancelled by the user", reason=reason)
                ready = graph.ready()
                if not ready:  # what is left depends on a failed node
                    _mark_pending(graph, "failed")
                    break
                self._wave(ready, graph, spec, budget, nodes, emit)
            sink = graph.sinks()[-1]
            answer = sink.answer
            if answer is None:
                return finish("failed", error=f"node {sink.id!r} produced no answer", reason=reason)
            attempt = nodes[sink.id].attempt
            verdict = math_verifier.verify(answer, spec.reference) if spec.reference else attempt.verdict
            emit("verified", status=verdict.status, message=verdict.message)
            return finish("succeeded", answer, verdict, reason=reason)
        except PlaitError as exc:
            return finish("failed", error=str(exc), reason=reason)
        except Exception as exc:  # recorded, so the job keeps its partial trace
            return finish("failed", error=f"internal error: {type(exc).__name__}: {exc}", reason=reason)

    def _wave(self, ready: list[Node], graph: SkeletonGraph, spec, budget: Budget, nodes: dict, emit) -> None:
        by_tier: dict[str, list[Node]] = defaultdict(list)
        for node in ready:
            by_tier[node.tier].append(node)
        for tier, group in by_tier.items():
            questions = [_with_dependencies(node, graph) for node in group]
            for node in group:
                node.status = "running"
                emit("node_started", node=node.id, tier=tier)
            batch = Batch(questions, spec.strategy.name, spec.strategy.params, budget, self.config.sandbox.limits())
            result, retries = self._run_batch(tier, batch, emit)
            for node, question, attempt in zip(group, questions, result.attempts):
                node.answer = attempt.answer
                node.status = "done" if attempt.answer is not None else "failed"
                nodes[node.id] = NodeResult(
                    node.id, question, tier, node.status, node.answer, attempt, result.worker, retries
                )
                emit(
                    "node_done",
                    node=node.id,
                    status=node.status,
                    answer=node.answer,
                    tokens=attempt.tokens,
                    tool_calls=len(attempt.tool_calls),
                    worker=result.worker,
                )

    def _run_batch(self, tier: str, batch: Batch, emit) -> tuple[BatchResult, int]:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        retry = 0
        while True:
            try:
                for ref in self.pool.actor(tier).run_stream.remote(batch):
                    item = ray.get(ref)
                    if isinstance(item, BatchResult):
                        return item, retry
                    emit(item.pop("type"), tier=tier, **item)  # "generated" | "tool_call"
                raise RuntimeError("worker stream ended without a result")
            except (ActorDiedError, ActorUnavailableError) as exc:
                if retry == self.max_node_retries:
                    raise
                retry += 1
                emit("node_retry", tier=tier, retry=retry, reason=str(exc).splitlines()[0])
            except ray.exceptions.RayTaskError as exc:
                raise exc.cause if isinstance(exc.cause, Exception) else exc

def _with_dependencies(node: Node, graph: SkeletonGraph) -> str:
    """A dependent's question carries its dependencies' answers (SGD's information forwarding)."""
    if not node.depends_on:
        return node.question
    known = "\n".join(f"- {graph.node(d).question} Answer: {graph.node(d).answer}" for d in node.depends_on)
    return f"Known results:\n{known}\n\n{node.question}"


def _mark_pending(graph: SkeletonGraph, status: str) -> None:
    for node in graph.nodes():
        if node.status in ("pending", "running"):
            node.status = status
