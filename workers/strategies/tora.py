"""ToRA: tool-integrated reasoning. The model writes a rationale and a ```python block;
generation stops at the block's end, the block runs in the sandbox, its output is appended as
an ```output block, and the model continues from there, up to `max_tool_calls` programs. A
step is one such round."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from verifiers.math import boxed_answer
from workers.engines.base import Completion, Prompt
from workers.strategies.methods import MathMethod, ended
from workers.strategies.paths import Path
from workers.strategies.prompts import OUTPUT_FENCE, prompt_set

CODE_STOPS = (OUTPUT_FENCE, "\n```\n")
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)(?:\n```|\Z)", re.S)


@dataclass(frozen=True)
class ToRA(MathMethod):
    name: ClassVar[str] = "tora"
    stop: ClassVar[tuple[str, ...]] = CODE_STOPS
    step_stop: ClassVar[tuple[str, ...]] = CODE_STOPS
    max_tool_calls: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.max_tool_calls <= 16:
            raise ValueError("max_tool_calls must be between 0 and 16")

    def prompt(self, path: Path, model_id: str) -> Prompt:
        return prompt_set(model_id).tora.prompt(path.question, path.text)

    def resumes(self, path: Path) -> bool:
        return len(path.tool_calls) < self.max_tool_calls

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        """A round: the model wrote up to a program (which runs when rounds are left; else the
        solution ends there) or to its end."""
        code = pending_program(completion)
        path.step = completion.text
        path.text += completion.text
        path.program = code if code is not None and self.resumes(path) else None
        return path.program is None and (code is not None or ended(completion) or boxed_answer(path.text) is not None)


def pending_program(completion: Completion) -> str | None:
    """The program the model just finished writing and now waits to see run, if any: the
    generation stopped (at a stop string, which not every server names) right at the end of a
    python block, closed or not, with no final answer after the block's start."""
    if completion.finish_reason != "stop":
        return None
    text = completion.text.rstrip()
    blocks = list(_BLOCK.finditer(text))
    if not blocks or blocks[-1].end() != len(text) or boxed_answer(text[blocks[-1].start() :]) is not None:
        return None
    code = blocks[-1].group(1).strip("\n")
    return code if code.strip() else None
