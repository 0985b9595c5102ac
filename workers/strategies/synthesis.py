"""Verified program synthesis: what both synthesis strategies share, and the baseline.

A question is a specification in Dafny, Coq or Lean 4 (a method signature with its contract,
or a theorem statement, with any definitions it needs; see benchmarks/data/README.md),
written in by the language's method (programs.py): the model writes what follows the spec,
so the program it extends is always ``spec + body``. Every candidate is judged by the job's
program verifier (the real checker) with the spec given, so the cheating guard and the
spec-kept rule apply, and verdicts of identical programs are computed once.

`Resample` is the baseline of VMCTS (Brandfonbrener et al.): whole programs sampled
independently, a few per spec per engine call, each checked, until one verifies or the
budget (tokens, FLOPs, samples, seconds) is spent. `vmcts.py` holds the tree search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import ClassVar

from plait.errors import InvalidInput
from plait.events import event
from verifiers.role import ProgramVerifier
from verifiers.types import Checker, Verdict
from workers.strategies.base import RunContext
from workers.strategies.paths import Account, Decoding, Path, PathBatch, pooled, sample_count
from workers.strategies.programs import PROGRAMS, ProgramMethod
from workers.types import Attempt

DEFAULT_SAMPLES = 64  # expansions (vmcts) or programs (resample) per spec without a samples budget


@dataclass
class SynthesisConfig(Decoding):
    """Knobs both synthesis strategies share."""

    language: str = "dafny"
    temperature: float = 0.8
    top_p: float = 0.95
    program_tokens: int = 256  # generated tokens per sampled program (or rollout) at most
    parallel: int = 4  # programs (resample) or expansions (vmcts) per spec in one engine call
    samples: int | None = None  # programs / expansions per spec; default: budget.max_samples, else 64
    check_timeout: float = 30.0  # seconds per checker call

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.language not in PROGRAMS:
            raise ValueError(f"language must be one of {', '.join(PROGRAMS)}, got {self.language!r}")
        if self.program_tokens < 1 or self.parallel < 1 or self.check_timeout <= 0:
            raise ValueError("program_tokens and parallel must be >= 1 and check_timeout positive")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")

    def batch(self, ctx: RunContext) -> PathBatch:
        return PathBatch(ctx, PROGRAMS[self.language](), self, self.program_tokens)

    def tasks(self, questions: list[str], batch: PathBatch) -> list[Task]:
        limit = sample_count(self.samples, batch.ctx.budget, DEFAULT_SAMPLES)
        return [Task(q, batch.method, Account(batch.ctx.budget), limit) for q in questions]


@dataclass
class Task:
    """One spec under synthesis: its account, and the program once one verifies."""

    spec: str
    method: ProgramMethod
    account: Account
    samples_left: int
    checks: int = 0
    solution: str | None = None  # the body that verified
    verdict: Verdict | None = None  # the solution's, or a checker error that ends the search
    last: Verdict | None = None  # the latest verdict, reported when nothing verifies
    best: tuple[float, str] = (-2.0, "")  # (score, body) of the best-judged candidate so far

    def source(self, body: str) -> str:
        return self.method.program(self.spec, body)

    @property
    def over(self) -> bool:
        return self.verdict is not None or self.samples_left < 1 or self.account.spent

    def slots(self, parallel: int) -> int:
        """Samples to draw for this task in the next engine call: each gets at least one token."""
        return min(x for x in (parallel, self.samples_left, self.account.tokens_left()) if x is not None)


def program_verifier(ctx: RunContext, config: SynthesisConfig) -> ProgramVerifier:
    """The job's program verifier (or, run outside a job, one for the configured language),
    with the strategy's check timeout."""
    verifier = ctx.verifier if isinstance(ctx.verifier, ProgramVerifier) else ProgramVerifier(config.language)
    if verifier.language != config.language:
        raise InvalidInput(f"the job checks {verifier.language} programs; the strategy was given language {config.language!r}")
    return replace(verifier, timeout=config.check_timeout)


def check_all(ctx: RunContext, items: list[tuple[Task, str, bool]], config: SynthesisConfig) -> list[Verdict]:
    """Verdicts on (task, body, partial), run a few at a time (each is a checker process)."""
    verifier = program_verifier(ctx, config)

    def one(item: tuple[Task, str, bool]) -> Verdict:
        task, body, partial = item
        return verifier.check(task.spec, task.source(body), partial=partial)

    verdicts = pooled(one, items, min(4, os.cpu_count() or 1))
    for (task, body, _), verdict in zip(items, verdicts):
        task.checks += 1
        task.last = verdict
        if verdict.score >= task.best[0]:
            task.best = (verdict.score, body)
        if verdict.status == "error":  # no checker, or it cannot run: searching on is pointless
            task.verdict = task.verdict or verdict
        ctx.emit(event("check", status=verdict.status, checker=verdict.checker.name))
    return verdicts


def attempt_of(batch: PathBatch, task: Task, strategy: str, search: dict) -> Attempt:
    """The Attempt for a finished task: the verified program as its answer, or, when none
    verified, the best partial program as its text and an `unknown` verdict saying why."""
    verdict = task.verdict
    if verdict is None:
        spent = f"{task.account.usage.completion_tokens} tokens, {task.checks} checks"
        said = f"; the last check said: {task.last.status}: {task.last.message}" if task.last else ""
        checker = task.last.checker if task.last else Checker(task.method.name)
        verdict = Verdict.of("unknown", f"no program verified within the budget ({spent}){said}"[:800], checker)
    solved = verdict.verified
    shown = Path(
        task.spec,
        task.account,
        text=task.source(task.solution if solved else task.best[1]),
        answer=task.source(task.solution) if solved else None,
        answer_source="verifier" if solved else "",
        verdict=verdict,
    )
    reason = "answered" if solved else ("error" if verdict.status == "error" else "budget")
    return batch.attempt(strategy, task.spec, shown, task.account.usage, {**search, "checks": task.checks, "language": task.method.name}, reason)


@dataclass
class Resample(SynthesisConfig):
    """Whole programs sampled independently and checked, until one verifies."""

    name: ClassVar[str] = "resample"

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        batch = self.batch(ctx)
        tasks = self.tasks(questions, batch)
        samples: dict[int, list[dict]] = {id(t): [] for t in tasks}
        round_ = 0
        while live := [t for t in tasks if not t.over]:
            round_ += 1
            jobs = [(t, batch.start(t.spec, t.account)) for t in live for _ in range(t.slots(self.parallel))]
            outputs = batch.generate([path for _, path in jobs], batch.method.stop, round_, continues=True)
            sampled = [(t, path, c) for (t, path), c in zip(jobs, outputs) if c is not None]
            for _, path, completion in sampled:
                batch.advance(path, completion)
            verdicts = check_all(ctx, [(t, path.text, False) for t, path, _ in sampled], self)
            for (task, path, completion), verdict in zip(sampled, verdicts):
                task.samples_left -= 1
                samples[id(task)].append({"status": verdict.status, "tokens": completion.completion_tokens})
                if verdict.verified and task.solution is None:
                    task.solution, task.verdict = path.text, verdict
        return [attempt_of(batch, t, self.name, {"strategy": self.name, "samples": samples[id(t)]}) for t in tasks]
