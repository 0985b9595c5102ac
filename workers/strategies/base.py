"""What every strategy shares: the protocol, the run context, and how answers are read out of
transcripts and program outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from tools.sandbox import ExecResult, SandboxLimits
from verifiers import math as math_verifier
from verifiers.role import MathVerifier, Verifier
from workers.engines.base import Engine
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
