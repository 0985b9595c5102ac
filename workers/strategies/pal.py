"""Program-aided language model: the model writes one program, which runs; its printed output
is the answer. A step is a line of the program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tools.sandbox import ExecResult
from verifiers.math import FoundAnswer
from workers.engines.base import Completion, Prompt
from workers.strategies.base import output_answer
from workers.strategies.methods import MathMethod, written
from workers.strategies.paths import Path
from workers.strategies.prompts import prompt_set

OPEN = "```python\n"
LINE_END = "\n"


@dataclass(frozen=True)
class PAL(MathMethod):
    name: ClassVar[str] = "pal"
    stop: ClassVar[tuple[str, ...]] = ("\n```",)
    step_stop: ClassVar[tuple[str, ...]] = (LINE_END,)
    opening: ClassVar[str] = OPEN  # opening the code block for the model keeps even a tiny model on task

    def prompt(self, path: Path, model_id: str) -> Prompt:
        return prompt_set(model_id).pal.prompt(path.question, path.text)

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        """A line of the program (or part of one a step's cap cut: the next step writes on);
        or, at the program's end (the closing fence, EOS, the budget's cap), the program as
        written, closed, to run."""
        fence = completion.text.strip().startswith("```")
        line = completion.stop_reason == LINE_END
        if (line or (capped_step and completion.finish_reason == "length")) and not fence:
            path.step = written(completion)  # a "\n\n" token's blank line stays with its line
            path.text += path.step
            return False
        path.step = "" if fence else completion.text
        self._close(path, path.text + path.step)
        return path.program is None

    def cut(self, path: Path) -> None:
        """The program as written runs, as it does when one call's token cap cuts it."""
        self._close(path, path.text)

    @staticmethod
    def _close(path: Path, written: str) -> None:
        code = written.removeprefix(OPEN).strip("\n")
        path.text = f"{OPEN}{code}\n```\n"
        path.program = code if code.strip() else None

    def ran(self, path: Path, result: ExecResult) -> bool:
        super().ran(path, result)
        return True  # the program's output is the answer: nothing follows it

    def answer(self, path: Path) -> FoundAnswer:
        """The last line the program printed, when it ran without error."""
        result = path.tool_calls[-1].result if path.tool_calls else None
        printed = output_answer(result.stdout) if result is not None and result.ok else None
        return FoundAnswer(printed, "output" if printed is not None else "")
