"""What every strategy shares: the protocol, the run context, and `Rollouts`, which decodes the
transcripts of several questions together and charges each one against its budget."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol

from tools.sandbox import ExecResult, SandboxLimits, run_python
from verifiers import math as math_verifier
from verifiers.role import MathVerifier, Verifier
from workers.engines.base import Completion, Engine, Prompt, SamplingParams, check_cautious_entropy
from workers.types import Attempt, Budget, ToolCall

Emit = Callable[[dict], None]


@dataclass
class RunContext:
    engine: Engine
    budget: Budget = field(default_factory=Budget)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    emit: Emit = lambda event: None
    verifier: Verifier = field(default_factory=MathVerifier)  # the job's: every verdict and vote goes through it


class Strategy(Protocol):
    name: str

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        """One Attempt per question; the questions are decoded as one batch."""


@dataclass
class SamplingConfig:
    """Per-sample decoding knobs shared by the strategies."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens_per_call: int = 384
    cautious_entropy: float | None = None  # CNTP threshold in nats (0: off); None: the tier's setting

    def __post_init__(self) -> None:
        if self.max_tokens_per_call < 1:
            raise ValueError("max_tokens_per_call must be >= 1")
        check_cautious_entropy(self.cautious_entropy)


class Rollouts:
    """Transcripts of several questions, advanced together one engine call at a time."""

    def __init__(self, questions: list[str], ctx: RunContext, strategy: str, sampling: SamplingConfig):
        self.ctx = ctx
        self.sampling = sampling
        self.info = ctx.engine.info()
        self.started = time.monotonic()
        self.attempts = [Attempt(question=q, strategy=strategy, model_id=self.info.model_id) for q in questions]
        self.done = [False] * len(questions)

    def active(self) -> list[int]:
        return [i for i, d in enumerate(self.done) if not d]

    def _room(self, i: int, prompt: Prompt) -> int:
        """Tokens question i may still generate under its budget. A FLOPs budget also pays for
        the prompt, counted with the engine's tokenizer when it exposes one (cached tokens
        are not subtracted: the budget is never overrun)."""
        budget, attempt = self.ctx.budget, self.attempts[i]
        room = self.sampling.max_tokens_per_call
        if budget.max_tokens is not None:
            room = min(room, budget.max_tokens - attempt.completion_tokens)
        if budget.max_flops is not None and self.info.parameters:
            encode = getattr(self.ctx.engine, "encode", None)
            prompt_tokens = len(encode(prompt)) if encode else 0
            room = min(room, int(budget.max_flops // (2 * self.info.parameters)) - attempt.tokens - prompt_tokens)
        return room

    def _out_of_time(self) -> bool:
        limit = self.ctx.budget.max_seconds
        return limit is not None and time.monotonic() - self.started >= limit

    def generate(
        self, indices: list[int], prompts: list[Prompt], stop: tuple[str, ...], round_: int, continues: bool = False
    ) -> dict[int, Completion]:
        """Decode one call for the given questions; those out of budget are finished instead.
        `continues`: the caller will send these conversations back extended (tool rounds), so
        the engine keeps their KV for the next call."""
        rooms = {i: self._room(i, p) for i, p in zip(indices, prompts)}
        for i in indices:
            if rooms[i] < 1 or self._out_of_time():
                self.finish(i, "budget")
        live = [(i, p) for i, p in zip(indices, prompts) if not self.done[i]]
        if not live:
            return {}
        params = SamplingParams(
            max_tokens=min(rooms[i] for i, _ in live),
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            stop=stop,
            seed=None if self.sampling.seed is None else self.sampling.seed + round_,
            cache_output=continues,
            cautious_entropy=self.sampling.cautious_entropy,
        )
        results = self.ctx.engine.generate([p for _, p in live], params)
        out = {}
        for (i, _), (completion,) in zip(live, results):
            attempt = self.attempts[i]
            attempt.prompt_tokens += completion.prompt_tokens
            attempt.completion_tokens += completion.completion_tokens
            attempt.cached_tokens += completion.cached_tokens
            attempt.logprob += sum(completion.logprobs)
            attempt.flops += self.info.flops(completion.computed_tokens)
            out[i] = completion
        self.ctx.emit({"type": "generated", "round": round_, "questions": len(live), "tokens": sum(c.completion_tokens for c in out.values())})
        return out

    def execute(self, jobs: dict[int, str], round_: int) -> dict[int, ExecResult]:
        """Run each question's program in the sandbox (a few at a time) and record the calls."""
        if not jobs:
            return {}
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = dict(zip(jobs, pool.map(lambda code: run_python(code, self.ctx.sandbox), jobs.values())))
        for i, result in results.items():
            self.attempts[i].tool_calls.append(ToolCall(code=jobs[i], result=result, round=round_))
            self.ctx.emit({"type": "tool_call", "round": round_, "status": result.status, "seconds": round(result.seconds, 3)})
        return results

    def finish(self, i: int, reason: str) -> None:
        if not self.done[i]:
            self.done[i] = True
            self.attempts[i].finish_reason = reason

    def close(self) -> list[Attempt]:
        """Seal every attempt: elapsed time and a reference-free verdict on its answer."""
        seconds = time.monotonic() - self.started
        for i, attempt in enumerate(self.attempts):
            self.finish(i, "no_answer")
            if attempt.answer is None and attempt.finish_reason == "answered":
                attempt.finish_reason = "no_answer"
            attempt.seconds = seconds
            attempt.verdict = self.ctx.verifier.check(attempt.question, attempt.answer, outputs=successful_outputs(attempt.tool_calls))
        return self.attempts


def successful_outputs(calls: list[ToolCall]) -> list[str]:
    return [call.result.stdout for call in calls if call.result.ok]


def transcript_answer(question: str, text: str, calls: list[ToolCall]) -> math_verifier.FoundAnswer:
    """The final answer of a transcript, by the one answer reader (boxes, "the answer is",
    the last output of the code that ran, ...)."""
    return math_verifier.read_answer(text, question=question, outputs=successful_outputs(calls))


def output_answer(stdout: str) -> str | None:
    """The answer a program printed: its last line."""
    return math_verifier.read_answer("", outputs=[stdout]).text



def format_output(result: ExecResult, max_lines: int = 12) -> str:
    """What the model sees of a run: stdout, or the tail of the error when it failed."""
    if result.ok:
        return result.stdout.strip() or "(no output: print the result)"
    tail = "\n".join(result.stderr.strip().splitlines()[-max_lines:])
    return f"{result.stdout.strip()}\n{tail}".strip() or f"(run failed: {result.status})"
