"""ToRA: tool-integrated reasoning. The model writes a rationale and a ```python block;
generation stops at the block's end, the block runs in the sandbox, its output is appended
as an ```output block, and the model continues from there, up to `max_tool_calls` rounds.
All questions of a batch advance round by round in shared engine calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from workers.engines.base import Completion
from verifiers.math import boxed_answer
from workers.strategies.base import RunContext, Rollouts, SamplingConfig, format_output, transcript_answer
from workers.strategies.prompts import OUTPUT_FENCE, prompt_set
from workers.types import Attempt

CODE_STOPS = (OUTPUT_FENCE, "\n```\n")
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)(?:\n```|\Z)", re.S)


@dataclass
class ToRA(SamplingConfig):
    name: ClassVar[str] = "tora"
    max_tool_calls: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.max_tool_calls <= 16:
            raise ValueError("max_tool_calls must be between 0 and 16")

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        rollouts = Rollouts(questions, ctx, self.name, self)
        prompt = prompt_set(rollouts.info.model_id).tora
        for round_ in range(self.max_tool_calls + 1):
            active = rollouts.active()
            if not active:
                break
            prompts = [prompt.prompt(questions[i], rollouts.attempts[i].text) for i in active]
            programs = {}
            more = round_ < self.max_tool_calls
            for i, completion in rollouts.generate(active, prompts, CODE_STOPS, round_, continues=more).items():
                attempt = rollouts.attempts[i]
                code = pending_program(completion)
                attempt.text += completion.text
                if code is not None and more:
                    programs[i] = code
                else:
                    rollouts.finish(i, "answered")
            for i, result in rollouts.execute(programs, round_).items():
                attempt = rollouts.attempts[i]
                attempt.text = _close_block(attempt.text) + f"{OUTPUT_FENCE}\n{format_output(result)}\n```\n"
        for attempt in rollouts.attempts:
            attempt.answer, attempt.answer_source = transcript_answer(attempt.question, attempt.text, attempt.tool_calls)
        return rollouts.close()


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


def _close_block(text: str) -> str:
    text = text.rstrip()
    return (text if text.endswith("```") else text + "\n```") + "\n"
