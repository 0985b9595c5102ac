"""The math methods by name, running one to its end, and the strategies that do only that
(`cot`, `pal`, `tora`: one solution a question).

A call writes up to the method's stop strings; when the path then waits on a program, the
program runs, its output is appended and the next call continues the path; a path that waits
on nothing is over. All paths of a batch (all questions, all samples) advance round by round
in shared engine calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workers.strategies.base import RunContext
from workers.strategies.cot import CoT
from workers.strategies.methods import MathMethod
from workers.strategies.pal import PAL
from workers.strategies.paths import Account, Decoding, Path, PathBatch
from workers.strategies.tora import ToRA
from workers.types import Attempt

METHODS: dict[str, type[MathMethod]] = {method.name: method for method in (CoT, PAL, ToRA)}


def run_to_end(batch: PathBatch, paths: list[Path]) -> None:
    """Advance every path to its end, tool rounds included, and judge its answer."""
    round_ = 0
    while active := [path for path in paths if not path.finished]:
        continues = any(batch.method.resumes(path) for path in active)
        for path, completion in zip(active, batch.generate(active, batch.method.stop, round_, continues)):
            if completion is None:
                batch.cut(path)
            elif batch.advance(path, completion):
                batch.conclude(path, "answered")
            elif path.program is None:
                batch.conclude(path, "budget" if completion.finish_reason == "length" else "answered")
        batch.execute(active, round_)
        round_ += 1
    for path in paths:
        batch.judge(path)


@dataclass
class RunToEnd(Decoding):
    """One solution a question, written by the strategy's method to its end."""

    name: ClassVar[str]
    max_tokens_per_call: int = 384

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_tokens_per_call < 1:
            raise ValueError("max_tokens_per_call must be >= 1")
        self.build_method()  # the method checks its own parameters

    def build_method(self) -> MathMethod:
        return METHODS[self.name]()

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        batch = PathBatch(ctx, self.build_method(), self, self.max_tokens_per_call)
        paths = [batch.start(q, Account(ctx.budget)) for q in questions]
        run_to_end(batch, paths)
        return [batch.attempt(self.name, path.question, path, path.account.usage, finish_reason=path.finish_reason) for path in paths]


@dataclass
class CoTRun(RunToEnd):
    name: ClassVar[str] = CoT.name


@dataclass
class PALRun(RunToEnd):
    name: ClassVar[str] = PAL.name


@dataclass
class ToRARun(RunToEnd):
    name: ClassVar[str] = ToRA.name
    max_tool_calls: int = ToRA.max_tool_calls

    def build_method(self) -> ToRA:
        return ToRA(self.max_tool_calls)


RUNS = (ToRARun, CoTRun, PALRun)
