"""What every search algorithm runs on: paths (partial solutions), the accounts their calls are
charged to, and `PathBatch`, which advances the paths of many questions together.

One step of a batch is one engine call for every path that is to grow, all questions and all
samples together, with one set of sampling parameters (`Decoding`). A path's account (a
question's, a sample's or a spec's budget, with its `Usage`) decides how many tokens its paths
may still take, shared evenly among those in the call, and is charged for what they spent.
The programs paths wait on run in the sandbox a few at a time, each run recorded as a
ToolCall and a `tool_call` event.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from plait.events import event
from tools.sandbox import run_python
from verifiers.types import Verdict
from workers.engines.base import Completion, EngineInfo, Prompt, SamplingParams, check_cautious_entropy
from workers.strategies.base import RunContext, successful_outputs
from workers.strategies.methods import Method
from workers.types import Attempt, Budget, ToolCall, Usage

SANDBOX_WORKERS = 2  # programs run at once: each is a process on cores the decoding shares

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Decoding:
    """The sampling knobs every strategy has; the one place SamplingParams are built."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    cautious_entropy: float | None = None  # CNTP threshold in nats (0: off); None: the tier's setting

    def __post_init__(self) -> None:
        check_cautious_entropy(self.cautious_entropy)

    def params(self, max_tokens: int, stop: tuple[str, ...], round_: int, continues: bool) -> SamplingParams:
        """`continues`: the caller will send these prompts back extended (after a tool round,
        or for a path's next step), so the engine keeps their KV. The seed moves on each round
        so that a prompt sent again is not sampled the same way."""
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=None if self.seed is None else self.seed + round_,
            cache_output=continues,
            cautious_entropy=self.cautious_entropy,
        )


def sample_count(samples: int | None, budget: Budget, default: int) -> int:
    """Samples to draw: the smaller of the strategy's and the budget's limits, else `default`."""
    limits = [x for x in (samples, budget.max_samples) if x is not None]
    return min(limits) if limits else default


def split(budget: Budget, n: int) -> Budget:
    """Each of n samples' share of a question's budget."""
    return dataclasses.replace(
        budget,
        max_tokens=None if budget.max_tokens is None else budget.max_tokens // n,
        max_flops=None if budget.max_flops is None else budget.max_flops / n,
        max_samples=1,
    )


@dataclass
class Account:
    """A budget and the usage charged against it."""

    budget: Budget
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)
    exhausted: bool = False  # a call found no room left for this account's paths

    def tokens_left(self) -> int | None:
        limit = self.budget.max_tokens
        return None if limit is None else limit - self.usage.completion_tokens

    def out_of_time(self) -> bool:
        limit = self.budget.max_seconds
        return limit is not None and time.monotonic() - self.started >= limit

    @property
    def spent(self) -> bool:
        left = self.tokens_left()
        return self.exhausted or self.out_of_time() or (left is not None and left < 1)

    def room(self, prompts: list[Prompt], cap: int, info: EngineInfo, encode: Callable[[Prompt], list] | None) -> int:
        """Tokens each of these prompts' continuations may have: what is left, shared evenly.
        A FLOPs budget also pays for the prompts, counted with the engine's tokenizer when it
        has one (cached tokens are not subtracted: the budget is never overrun)."""
        if self.out_of_time():
            return 0
        n, room = len(prompts), cap
        left = self.tokens_left()
        if left is not None:
            room = min(room, left // n)
        if self.budget.max_flops is not None and info.parameters:
            prompt_tokens = sum(len(encode(p)) for p in prompts) if encode else 0
            room = min(room, (int(self.budget.max_flops // (2 * info.parameters)) - self.usage.tokens - prompt_tokens) // n)
        return room


@dataclass
class Path:
    """A partial solution of one question, charged to `account` (which other paths may share)."""

    question: str
    account: Account
    text: str = ""  # the solution so far: the assistant's turn with tool outputs, or a program's body
    step: str = ""  # what the last completion added
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprob: float = 0.0  # over the path's generated tokens
    completion_tokens: int = 0  # generated along the path
    program: str | None = None  # code to run before the path can go on
    finished: bool = False
    finish_reason: str = ""  # "answered" | "no_answer" | "budget"
    answer: str | None = None
    answer_source: str = ""
    verdict: Verdict | None = None


def pooled(work: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    """`work` on every item, `workers` at a time (each item runs a process: a program, a checker)."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(work, items))


class PathBatch:
    """The paths of a batch of questions under one method, advanced together: `generate` is
    one engine call for any set of paths, `execute` runs the programs they wait on. Running
    programs and reading answers (`execute`, `read`, `judge`) need a MathMethod; program
    search judges its paths with the checker and hands `attempt` a judged one."""

    def __init__(self, ctx: RunContext, method: Method, decoding: Decoding, max_tokens_per_call: int):
        self.ctx = ctx
        self.method = method
        self.decoding = decoding
        self.cap = max_tokens_per_call
        self.info = ctx.engine.info()
        self.started = time.monotonic()

    def start(self, question: str, account: Account) -> Path:
        return Path(question, account, text=self.method.opening)

    def generate(self, paths: list[Path], stop: tuple[str, ...], round_: int, continues: bool = False) -> list[Completion | None]:
        """A completion continuing each path (a path may be listed several times, for several
        samples), charged to its account; None for paths whose account has no room left (the
        account is then marked exhausted). Every call gets as many tokens as the tightest
        account allows."""
        prompts = [self.method.prompt(path, self.info.model_id) for path in paths]
        members: dict[int, list[int]] = {}
        for i, path in enumerate(paths):
            members.setdefault(id(path.account), []).append(i)
        encode = getattr(self.ctx.engine, "encode", None)
        rooms = {key: paths[ix[0]].account.room([prompts[i] for i in ix], self.cap, self.info, encode) for key, ix in members.items()}
        live = [i for i, path in enumerate(paths) if rooms[id(path.account)] >= 1]
        for path in paths:
            path.account.exhausted = path.account.exhausted or rooms[id(path.account)] < 1
        out: list[Completion | None] = [None] * len(paths)
        if not live:
            return out
        params = self.decoding.params(min(rooms[id(paths[i].account)] for i in live), stop, round_, continues)
        for i, (completion,) in zip(live, self.ctx.engine.generate([prompts[i] for i in live], params)):
            paths[i].account.usage.charge(completion, self.info)
            out[i] = completion
        self.ctx.emit(event("generated", round=round_, questions=len(live), tokens=sum(out[i].completion_tokens for i in live)))
        return out

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        """Append a completion to the path by its method; True when the solution is complete
        (`capped_step`: see Method.advance)."""
        path.logprob += sum(completion.logprobs)
        path.completion_tokens += completion.completion_tokens
        return self.method.advance(path, completion, capped_step)

    def execute(self, paths: list[Path], round_: int) -> None:
        """Run the programs these paths wait on and append each result by the (math) method;
        a path its result completes is concluded."""
        waiting = [path for path in paths if path.program is not None]
        for path, result in zip(waiting, pooled(lambda p: run_python(p.program, self.ctx.sandbox), waiting, SANDBOX_WORKERS)):
            path.tool_calls.append(ToolCall(code=path.program, result=result, round=round_))
            path.program = None
            self.ctx.emit(event("tool_call", round=round_, status=result.status, seconds=round(result.seconds, 3)))
            if self.method.ran(path, result):
                self.conclude(path, "answered")

    @staticmethod
    def conclude(path: Path, reason: str) -> None:
        path.finished, path.finish_reason = True, reason

    def cut(self, path: Path) -> None:
        """The budget ends the path: the method closes what it wrote (a program left to run
        runs at the next `execute`); a path with nothing left to run is concluded."""
        self.method.cut(path)
        if path.program is None:
            self.conclude(path, "budget")

    def read(self, path: Path) -> None:
        """The path's final answer, by its (math) method. A path cut off by its budget or the
        token cap has stated no answer if all there is to read is its last value."""
        path.answer, path.answer_source = self.method.answer(path)
        if path.finish_reason == "budget" and path.answer_source == "last":
            path.answer, path.answer_source = None, ""
        if path.finish_reason == "answered" and path.answer is None:
            path.finish_reason = "no_answer"

    def judge(self, path: Path) -> None:
        """The final answer and the job's verifier's reference-free verdict on it."""
        self.read(path)
        path.verdict = self.ctx.verifier.check(path.question, path.answer, outputs=successful_outputs(path.tool_calls))

    def attempt(
        self, strategy: str, question: str, pick: Path | None, usage: Usage, search: dict | None = None, finish_reason: str | None = None
    ) -> Attempt:
        """A question's Attempt: the picked path's transcript, answer and verdict (a verdict on
        no answer when nothing was picked), and `usage`, which covers every path's calls.
        Unless told, the finish reason says whether there is an answer."""
        if pick is None or pick.verdict is None:
            pick = pick or Path(question, Account(self.ctx.budget))
            self.judge(pick)
        if finish_reason is None:
            finish_reason = "answered" if pick.answer is not None else "no_answer"
        return Attempt(
            question=question,
            strategy=strategy,
            model_id=self.info.model_id,
            text=pick.text,
            answer=pick.answer,
            answer_source=pick.answer_source,
            tool_calls=list(pick.tool_calls),
            logprob=pick.logprob,
            seconds=time.monotonic() - self.started,
            finish_reason=finish_reason,
            verdict=pick.verdict,
            search=search,
            **usage.to_dict(),
        )
