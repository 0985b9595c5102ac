"""The Verifier role: every verdict of a job comes from one object, chosen by the job's kind.

The scheduler grades a final answer against the reference with it; workers give their
answers reference-free verdicts with it; votes group answers with its `equivalent`; rewards
read its verdicts; program search checks partial and whole programs with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from plait.errors import InvalidInput
from verifiers import math as math_verifier
from verifiers.programs import DEFAULT_TIMEOUT, LANGUAGES, verify_program
from verifiers.types import Verdict


class Verifier(Protocol):
    def check(
        self, problem: str, candidate: str | None, *, reference: str | None = None, partial: bool = False, outputs: Sequence[str] = ()
    ) -> Verdict:
        """The verdict on `candidate` as an answer to `problem`: against `reference` when one
        is given, else by what the verifier can check alone. `partial`: an unfinished
        candidate (programs). `outputs`: stdout of the code that ran while it was found."""

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two candidates are the same answer (they vote together)."""


@dataclass(frozen=True)
class MathVerifier:
    def check(self, problem, candidate, *, reference=None, partial=False, outputs=()) -> Verdict:
        if reference is not None:
            return math_verifier.verify(candidate, reference)
        return math_verifier.verify_unreferenced(problem, candidate, from_code=self._from_code(candidate, outputs))

    @staticmethod
    def _from_code(candidate: str | None, outputs: Sequence[str]) -> bool:
        """Whether the answer is what a program printed (its last line)."""
        if candidate is None:
            return False
        printed = (math_verifier.read_answer("", outputs=[stdout]).text for stdout in outputs)
        return any(line is not None and (line == candidate or math_verifier.equivalent(candidate, line)) for line in printed)

    def equivalent(self, a: str, b: str) -> bool:
        return a == b or math_verifier.equivalent(a, b)


@dataclass(frozen=True)
class ProgramVerifier:
    """A program or proof checked by its language's real checker; the problem is the spec,
    which the candidate must keep."""

    language: str
    timeout: float = DEFAULT_TIMEOUT

    def check(self, problem, candidate, *, reference=None, partial=False, outputs=()) -> Verdict:
        return verify_program(self.language, candidate or "", problem, partial, self.timeout)

    def equivalent(self, a: str, b: str) -> bool:
        return a.split() == b.split()


def verifier_for(kind: str, language: str | None = None) -> Verifier:
    """The verifier of a job's kind: the one place that chooses it."""
    if kind == "program":
        if language not in LANGUAGES:
            raise InvalidInput(f"a program job needs a language: one of {', '.join(LANGUAGES)}")
        return ProgramVerifier(language)
    if kind == "math":
        return MathVerifier()
    raise InvalidInput(f"no verifier for jobs of kind {kind!r}: math or program")
