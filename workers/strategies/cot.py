"""Chain of thought: prose and no tools, the answer read from it. A step is a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from verifiers.math import boxed_answer
from workers.engines.base import Completion, Prompt
from workers.strategies.methods import MathMethod, ended, written
from workers.strategies.paths import Path
from workers.strategies.prompts import prompt_set


@dataclass(frozen=True)
class CoT(MathMethod):
    name: ClassVar[str] = "cot"
    step_stop: ClassVar[tuple[str, ...]] = (". ", "\n")

    def prompt(self, path: Path, model_id: str) -> Prompt:
        return prompt_set(model_id).cot.prompt(path.question, path.text)

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        path.step = written(completion)  # a step's stop string is prose
        path.text += path.step
        return ended(completion) or boxed_answer(path.text) is not None
