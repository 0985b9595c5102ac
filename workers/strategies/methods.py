"""Methods: the formats a solution is written in, behind the one interface every search
algorithm drives (after llm-reasoners' world model: a method says what a step does to a
state, an algorithm decides which states to grow).

A method says how to prompt for a path, which stop strings end a call that writes on to the
end or to a tool call (`stop`) and which end one step (`step_stop`, REBASE's unit), what a
completion does to a path (appends text, maybe leaves a program to run), how a program's
result is appended, and how the final answer is read. The math methods are in cot.py, pal.py
and tora.py (registered in run.METHODS), the program methods (Dafny, Coq, Lean) in
programs.py; a new format is one new class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from tools.sandbox import ExecResult
from verifiers.math import FoundAnswer
from workers.engines.base import Completion, Prompt
from workers.strategies.base import format_output, transcript_answer
from workers.strategies.prompts import output_block

if TYPE_CHECKING:
    from workers.strategies.paths import Path


class Method(ABC):
    name: ClassVar[str]
    stop: ClassVar[tuple[str, ...]] = ()  # what ends a call that writes on to the end, or to a program to run
    step_stop: ClassVar[tuple[str, ...]] = ()  # what ends one step
    opening: ClassVar[str] = ""  # how every path's text starts

    @abstractmethod
    def prompt(self, path: Path, model_id: str) -> Prompt:
        """The prompt whose continuation extends `path` (the prompt style follows the model)."""

    @abstractmethod
    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        """Append the completion to the path, setting `path.step` to what it added and
        `path.program` when code must run before the path goes on; True when the solution is
        complete. `capped_step`: the token cap that cut this completion was a search step's,
        and the path's budget goes on (so the cut is not the solution's end)."""

    def cut(self, path: Path) -> None:
        """The budget ended the path before it ended itself: close what it wrote, setting
        `path.program` if that must still run. Nothing to close by default."""


class MathMethod(Method):
    """A method that answers a math question, maybe running programs on the way."""

    def resumes(self, path: Path) -> bool:
        """Whether a program the path writes next will run and the model then write on from
        its output (so the engine keeps the call's KV for the next one)."""
        return False

    def ran(self, path: Path, result: ExecResult) -> bool:
        """Append a program's result to the path; True when that completes the solution."""
        path.text = close_block(path.text) + output_block(format_output(result))
        return False

    def answer(self, path: Path) -> FoundAnswer:
        return transcript_answer(path.question, path.text, path.tool_calls)


def written(completion: Completion) -> str:
    """The completion through its last token: the text, the stop string that ended it and
    what that token wrote past it. A step ends there, not inside a token."""
    return completion.text + (completion.stop_reason or "") + completion.stop_tail


def ended(completion: Completion) -> bool:
    """The model ended the solution itself (EOS), rather than a stop string or the token cap."""
    return completion.finish_reason == "stop" and completion.stop_reason is None


def close_block(text: str) -> str:
    """The text with its last code block closed: a stop string may have cut the fence off."""
    text = text.rstrip()
    return (text if text.endswith("```") else text + "\n```") + "\n"
