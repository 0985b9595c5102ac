"""Verified program synthesis: what both synthesis strategies share, and the baseline.

A question is a specification in Dafny, Coq or Lean 4 (a method signature with its contract,
or a theorem statement, with any definitions it needs; see benchmarks/data/README.md). The
model writes what follows it — the body or the proof — inside a fenced block that starts
with the spec, so the program it extends is always ``spec + body``. Every candidate is
judged by the job's program verifier (the real checker) with the spec given,
so the cheating guard and the spec-kept rule apply, and verdicts of identical programs are
computed once.

`Resample` is the baseline of VMCTS (Brandfonbrener et al.): whole programs sampled
independently, a few per spec per engine call, each checked, until one verifies or the
budget (tokens, samples, seconds) is spent. `vmcts.py` holds the tree search.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import ClassVar

from plait.errors import InvalidInput
from verifiers.programs import LANGUAGES
from verifiers.role import ProgramVerifier
from verifiers.types import Checker, Verdict
from workers.engines.base import Completion, SamplingParams, check_cautious_entropy
from workers.strategies.base import RunContext
from workers.strategies.prompts import FewShot
from workers.types import Attempt, Budget

FENCE_END = "```"
DEFAULT_SAMPLES = 64  # expansions (vmcts) or programs (resample) per spec without a samples budget


@dataclass(frozen=True)
class Language:
    name: str
    opening: str  # how every body starts: Dafny needs the body's `{` right after the spec
    prompt: FewShot


# One worked example per language, none of them a benchmark problem: the model learns the
# format (spec repeated, then the body) from it.
LANGUAGE_PROMPTS = {
    "dafny": Language(
        "dafny",
        "{\n",
        FewShot(
            system="Write the body of the Dafny method so that Dafny verifies it. Add loop invariants where a loop needs them.",
            examples=(
                (
                    "// a times b, by repeated addition.\nmethod Mult(a: nat, b: nat) returns (p: nat)\n  ensures p == a * b",
                    "```dafny\n// a times b, by repeated addition.\nmethod Mult(a: nat, b: nat) returns (p: nat)\n  ensures p == a * b\n"
                    "{\n  p := 0;\n  var i := 0;\n  while i < b\n    invariant i <= b\n    invariant p == a * i\n  {\n"
                    "    p := p + a;\n    i := i + 1;\n  }\n}\n```",
                ),
            ),
        ),
    ),
    "coq": Language(
        "coq",
        "Proof.\n",
        FewShot(
            system="Prove the Coq theorem. Write the proof script, ending with Qed.",
            examples=(
                (
                    "(** Multiplying by one on the right. *)\nTheorem mult_one_right : forall n : nat, n * 1 = n.",
                    "```coq\n(** Multiplying by one on the right. *)\nTheorem mult_one_right : forall n : nat, n * 1 = n.\n"
                    "Proof.\n  intros n. induction n as [| k IH].\n  - reflexivity.\n  - simpl. rewrite IH. reflexivity.\nQed.\n```",
                ),
            ),
        ),
    ),
    "lean": Language(
        "lean",
        "",
        FewShot(
            system="Prove the Lean 4 theorem (core Lean, no Mathlib). Write the proof after :=.",
            examples=(
                (
                    "/-- Multiplying by one on the right. -/\ntheorem mul_one' (n : Nat) : n * 1 = n :=",
                    "```lean\n/-- Multiplying by one on the right. -/\ntheorem mul_one' (n : Nat) : n * 1 = n := by\n"
                    "  induction n with\n  | zero => rfl\n  | succ k ih => simp\n```",
                ),
            ),
        ),
    ),
}


@dataclass
class SynthesisConfig:
    """Knobs both synthesis strategies share."""

    language: str = "dafny"
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = None
    program_tokens: int = 256  # generated tokens per sampled program (or rollout) at most
    parallel: int = 4  # programs (resample) or expansions (vmcts) per spec in one engine call
    samples: int | None = None  # programs / expansions per spec; default: budget.max_samples, else 64
    check_timeout: float = 30.0  # seconds per checker call
    cautious_entropy: float | None = None  # CNTP threshold in nats (0: off); None: the tier's setting

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {self.language!r}")
        if self.program_tokens < 1 or self.parallel < 1 or self.check_timeout <= 0:
            raise ValueError("program_tokens and parallel must be >= 1 and check_timeout positive")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        check_cautious_entropy(self.cautious_entropy)

    def sample_limit(self, budget: Budget) -> int:
        limits = [x for x in (self.samples, budget.max_samples) if x is not None]
        return min(limits) if limits else DEFAULT_SAMPLES


@dataclass
class Task:
    """One spec under synthesis: what it has spent, and the program once one verifies."""

    spec: str
    language: Language
    budget: Budget
    samples_left: int
    started: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    computed_tokens: int = 0  # what FLOPs are charged for (Completion.computed_tokens)
    checks: int = 0
    solution: str | None = None  # the body that verified
    verdict: Verdict | None = None  # the solution's, or a checker error that ends the search
    last: Verdict | None = None  # the latest verdict, reported when nothing verifies
    best: tuple[float, str] = (-2.0, "")  # (score, body) of the best-judged candidate so far

    def source(self, body: str) -> str:
        return f"{self.spec.rstrip()}\n{body}"

    def prompt(self, body: str):
        return self.language.prompt.prompt(self.spec, f"```{self.language.name}\n{self.source(body)}")

    @property
    def over(self) -> bool:
        return self.verdict is not None or self.samples_left < 1 or self.tokens_left() < 1 or self.out_of_time()

    def slots(self, parallel: int) -> int:
        """Samples to draw for this task in the next engine call: each gets at least one token."""
        return int(min(parallel, self.samples_left, self.tokens_left()))

    def tokens_left(self) -> float:
        limit = self.budget.max_tokens
        return float("inf") if limit is None else limit - self.completion_tokens

    def out_of_time(self) -> bool:
        limit = self.budget.max_seconds
        return limit is not None and time.monotonic() - self.started >= limit

    def charge(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cached_tokens += completion.cached_tokens
        self.computed_tokens += completion.computed_tokens


def sample(
    ctx: RunContext, jobs: list[tuple[Task, str]], config: SynthesisConfig, stop: tuple[str, ...], round_: int
) -> list[Completion]:
    """One batched engine call continuing each (task, body); each task's tokens are charged and
    no task is given more tokens than it has left (shared out among its jobs)."""
    per_task = Counter(id(task) for task, _ in jobs)
    allowance = min([config.program_tokens] + [int(task.tokens_left() // per_task[id(task)]) for task, _ in jobs if task.tokens_left() != float("inf")])
    params = SamplingParams(
        max_tokens=allowance,
        temperature=config.temperature,
        top_p=config.top_p,
        stop=stop,
        seed=None if config.seed is None else config.seed + round_,
        cache_output=True,  # a path's next expansion extends what it wrote
        cautious_entropy=config.cautious_entropy,
    )
    outputs = [c for (c,) in ctx.engine.generate([task.prompt(body) for task, body in jobs], params)]
    for (task, _), completion in zip(jobs, outputs):
        task.charge(completion)
    ctx.emit({"type": "generated", "round": round_, "questions": len(jobs), "tokens": sum(c.completion_tokens for c in outputs)})
    return outputs


def ended(completion: Completion) -> bool:
    """The model closed the program: the fence's end, or EOS."""
    return completion.finish_reason == "stop" and completion.stop_reason in (FENCE_END, None)


def program_verifier(ctx: RunContext, config: SynthesisConfig) -> ProgramVerifier:
    """The job's program verifier (or, run outside a job, one for the configured language),
    with the strategy's check timeout."""
    verifier = ctx.verifier if isinstance(ctx.verifier, ProgramVerifier) else ProgramVerifier(config.language)
    if verifier.language != config.language:
        raise InvalidInput(f"the job checks {verifier.language} programs; the strategy was given language {config.language!r}")
    return replace(verifier, timeout=config.check_timeout)


def check_all(ctx: RunContext, items: list[tuple[Task, str, bool]], config: SynthesisConfig) -> list[Verdict]:
    """Verdicts on (task, body, partial), run a few at a time (each is a checker process)."""
    if not items:
        return []
    verifier = program_verifier(ctx, config)

    def one(item: tuple[Task, str, bool]) -> Verdict:
        task, body, partial = item
        return verifier.check(task.spec, task.source(body), partial=partial)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        verdicts = list(pool.map(one, items))
    for (task, body, _), verdict in zip(items, verdicts):
        task.checks += 1
        task.last = verdict
        if verdict.score >= task.best[0]:
            task.best = (verdict.score, body)
        if verdict.status == "error":  # no checker, or it cannot run: searching on is pointless
            task.verdict = task.verdict or verdict
        ctx.emit({"type": "check", "status": verdict.status, "checker": verdict.checker.name})
    return verdicts


def attempt_of(task: Task, strategy: str, model_id: str, flops_per_token: int, search: dict) -> Attempt:
    """The Attempt for a finished task: the verified program as its answer, or, when none
    verified, the best partial program as its text and an `unknown` verdict saying why."""
    verdict = task.verdict
    if verdict is None:
        spent = f"{task.completion_tokens} tokens, {task.checks} checks"
        said = f"; the last check said: {task.last.status}: {task.last.message}" if task.last else ""
        checker = task.last.checker if task.last else Checker(task.language.name)
        verdict = Verdict.of("unknown", f"no program verified within the budget ({spent}){said}"[:800], checker)
    solved = verdict.verified
    return Attempt(
        question=task.spec,
        strategy=strategy,
        model_id=model_id,
        text=task.source(task.solution if solved else task.best[1]),
        answer=task.source(task.solution) if solved else None,
        answer_source="verifier" if solved else "",
        prompt_tokens=task.prompt_tokens,
        completion_tokens=task.completion_tokens,
        cached_tokens=task.cached_tokens,
        flops=flops_per_token * task.computed_tokens,
        seconds=time.monotonic() - task.started,
        finish_reason="answered" if solved else ("error" if verdict.status == "error" else "budget"),
        verdict=verdict,
        search={**search, "checks": task.checks, "language": task.language.name},
    )


def tasks_for(questions: list[str], config: SynthesisConfig, budget: Budget) -> list[Task]:
    language = LANGUAGE_PROMPTS[config.language]
    return [Task(q, language, budget, config.sample_limit(budget)) for q in questions]


@dataclass
class Resample(SynthesisConfig):
    """Whole programs sampled independently and checked, until one verifies."""

    name: ClassVar[str] = "resample"

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        info = ctx.engine.info()
        tasks = tasks_for(questions, self, ctx.budget)
        samples: dict[int, list[dict]] = {id(t): [] for t in tasks}
        round_ = 0
        while live := [t for t in tasks if not t.over]:
            round_ += 1
            jobs = [(t, t.language.opening) for t in live for _ in range(t.slots(self.parallel))]
            outputs = sample(ctx, jobs, self, (FENCE_END,), round_)
            bodies = [body + c.text for (_, body), c in zip(jobs, outputs)]
            verdicts = check_all(ctx, [(t, b, False) for (t, _), b in zip(jobs, bodies)], self)
            for (task, _), body, completion, verdict in zip(jobs, bodies, outputs, verdicts):
                task.samples_left -= 1
                samples[id(task)].append({"status": verdict.status, "tokens": completion.completion_tokens})
                if verdict.verified and task.solution is None:
                    task.solution, task.verdict = body, verdict
        return [
            attempt_of(t, self.name, info.model_id, info.flops(1), {"strategy": self.name, "samples": samples[id(t)]})
            for t in tasks
        ]
