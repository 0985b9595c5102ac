"""Chain of thought: one generation, no tools, answer read from the prose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workers.strategies.base import RunContext, Rollouts, SamplingConfig, transcript_answer
from workers.strategies.prompts import prompt_set
from workers.types import Attempt


@dataclass
class CoT(SamplingConfig):
    name: ClassVar[str] = "cot"

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        rollouts = Rollouts(questions, ctx, self.name, self)
        indices = list(range(len(questions)))
        prompt = prompt_set(rollouts.info.model_id).cot
        for i, completion in rollouts.generate(indices, [prompt.prompt(q) for q in questions], (), 0).items():
            attempt = rollouts.attempts[i]
            attempt.text = completion.text
            attempt.answer, attempt.answer_source = transcript_answer(attempt.question, completion.text, [])
            rollouts.finish(i, "answered")
        return rollouts.close()
