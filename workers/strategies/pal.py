"""Program-aided language model: the model writes one program; its printed output is the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workers.strategies.base import RunContext, Rollouts, SamplingConfig, format_output, output_answer
from workers.strategies.prompts import OUTPUT_FENCE, prompt_set
from workers.types import Attempt

_OPEN = "```python\n"


@dataclass
class PAL(SamplingConfig):
    name: ClassVar[str] = "pal"

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        rollouts = Rollouts(questions, ctx, self.name, self)
        indices = list(range(len(questions)))
        # Opening the code block for the model keeps even a tiny model on task.
        prompt = prompt_set(rollouts.info.model_id).pal
        prompts = [prompt.prompt(q, _OPEN) for q in questions]
        programs = {}
        for i, completion in rollouts.generate(indices, prompts, ("\n```",), 0).items():
            code = completion.text.strip("\n")
            rollouts.attempts[i].text = f"{_OPEN}{code}\n```\n"
            if code.strip():
                programs[i] = code
        for i, result in rollouts.execute(programs, 0).items():
            attempt = rollouts.attempts[i]
            attempt.text += f"{OUTPUT_FENCE}\n{format_output(result)}\n```\n"
            if result.ok:
                attempt.answer = output_answer(result.stdout)
                attempt.answer_source = "output" if attempt.answer is not None else ""
        for i in indices:
            rollouts.finish(i, "answered")
        return rollouts.close()
