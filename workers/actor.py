"""ModelWorker: holds one engine and runs strategies on batches of questions.

The orchestrator wraps it with `ray.remote` (one actor per tier, restartable); nothing here
imports Ray except to report which node the work ran on, so the class is also usable
in-process. `run_stream` yields progress events while the batch decodes and the attempts
last, which Ray turns into a streaming generator for live progress.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Iterator

from plait.events import event
from tools.sandbox import SandboxLimits
from verifiers.role import MathVerifier, Verifier
from workers.engines import EngineSpec, make_engine
from workers.strategies import MODEL_FREE, RunContext, make_strategy
from workers.types import Attempt, Budget


@dataclass
class Batch:
    """Questions of one tier that run together, and how to run them."""

    questions: list[str]
    strategy: str
    params: dict
    budget: Budget
    sandbox: SandboxLimits
    verifier: Verifier = field(default_factory=MathVerifier)  # the job's, chosen by its kind


@dataclass
class BatchResult:
    attempts: list[Attempt]
    worker: dict  # where it ran: ray node id, pid, model
    kv_cache: dict = field(default_factory=dict)  # the prefix cache's counters for this batch


class ModelWorker:
    def __init__(self, spec: EngineSpec, tier: str, replica: int = 0):
        self.spec = spec
        self.tier = tier
        self.replica = replica
        self._engine = None

    @property
    def engine(self):
        return self.load()

    def load(self, emit=None):
        """The engine, loaded on first use (a model-free strategy never pays for it); `emit`
        sees what loading does (assembling a model, starting its server)."""
        if self._engine is None:
            progress = (lambda message: emit(event("engine", message=message))) if emit else None
            self._engine = make_engine(self.spec, progress)
        return self._engine

    def describe(self) -> dict:
        import ray

        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        return {"tier": self.tier, "replica": self.replica, "model": self.spec.model, "node_id": node_id, "pid": os.getpid()}

    # The Engine protocol, for callers outside this actor (the SGD planner's one call).
    def generate(self, prompts: list, params) -> list:
        return self.engine.generate(prompts, params)

    def score(self, prompt, continuation: str) -> float:
        return self.engine.score(prompt, continuation)

    def info(self):
        return self.engine.info()

    def run(self, batch: Batch) -> BatchResult:
        return list(self.run_stream(batch))[-1]

    def run_stream(self, batch: Batch) -> Iterator[dict | BatchResult]:
        strategy = make_strategy(batch.strategy, batch.params)
        events: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                engine = None if batch.strategy in MODEL_FREE else self.load(events.put)
                cache = getattr(engine, "prefix_cache", None)
                before = cache.stats.copy() if cache else None
                ctx = RunContext(engine, batch.budget, batch.sandbox, emit=events.put, verifier=batch.verifier)
                outcome["attempts"] = strategy.run(batch.questions, ctx)
                outcome["kv_cache"] = cache.stats.minus(before).to_dict() if cache else {}
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                events.put(None)

        thread = threading.Thread(target=work, name="plait-strategy", daemon=True)
        thread.start()
        while (event := events.get()) is not None:
            yield event
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        yield BatchResult(outcome["attempts"], self.describe(), outcome["kv_cache"])
