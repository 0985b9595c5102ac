"""calc: no model at all. The question's last line is read as a math expression and evaluated
exactly with sympy (the verifier's safe parser, never Python eval). For skeleton nodes that
are pure arithmetic over their dependencies' answers, and for running the orchestrator
without spending model time (scheduler benchmarks, API tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import sympy

from plait.events import event
from verifiers import math as math_verifier
from workers.strategies.base import RunContext
from workers.types import Attempt


@dataclass
class Calc:
    name: ClassVar[str] = "calc"

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        attempts = []
        for question in questions:
            started = time.monotonic()
            expression = question.strip().splitlines()[-1] if question.strip() else ""
            value = math_verifier.parse_answer(expression)
            attempt = Attempt(question=question, strategy=self.name, model_id="sympy")
            if not isinstance(value, sympy.Expr):  # a list, a relation or nothing is not one value
                attempt.finish_reason = "no_answer"
                attempt.text = f"cannot evaluate {expression!r} as a math expression"
            else:
                attempt.answer, attempt.answer_source, attempt.finish_reason = str(value), "text", "answered"
                attempt.text = f"{expression} = {value}"
            attempt.seconds = time.monotonic() - started
            attempt.verdict = ctx.verifier.check(question, attempt.answer, outputs=[attempt.answer] if attempt.answer else [])
            attempts.append(attempt)
        ctx.emit(event("generated", round=0, questions=len(questions), tokens=0))
        return attempts
