"""Sampling-and-aggregating strategies over any math method (cot, pal, tora), after Wu
et al., "Inference Scaling Laws" (2024): greedy, majority vote, best-of-N and weighted
majority vote. REBASE, which searches over steps, is in `rebase.py`.

The N samples of every question in a batch are N paths run to their end together, so each
engine call carries all of them (and the prompt's KV is computed once per question). Each
sample has its share of the job's budget, so N samples together never spend more than the
budget's tokens or FLOPs. Answers are grouped by the job's verifier (2/4 and 0.5 vote
together).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from plait.errors import InvalidInput
from verifiers.role import Verifier
from workers.strategies.base import RunContext
from workers.strategies.methods import MathMethod
from workers.strategies.paths import Account, Decoding, Path, PathBatch, sample_count, split
from workers.strategies.rewards import REWARDS, Candidate, make_reward
from workers.strategies.run import METHODS, RunToEnd, run_to_end
from workers.types import Attempt, Budget, Usage

DEFAULT_SAMPLES = 8


@dataclass
class SearchConfig(Decoding):
    method: str = "cot"
    samples: int | None = None  # N; default: the budget's max_samples, else 8 (both: the smaller)
    temperature: float = 0.7
    max_tokens_per_call: int = 384
    method_params: dict = field(default_factory=dict)  # e.g. {"max_tool_calls": 2} for tora
    # The reward that told right from wrong samples best on the capable tier (AUC 0.81-0.84 on 52
    # problems; README "Compute-optimal inference"); where it cannot tell (no program, nothing to
    # substitute) samples tie and the weighted vote is a plain majority.
    reward: str = "tool"
    judge: dict | None = None  # reward "prm" on another server: {"base_url": ..., "model": ...}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.samples is not None and not 1 <= self.samples <= 4096:
            raise ValueError(f"samples must be 1-4096, got {self.samples}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        reserved = {f.name for f in dataclasses.fields(RunToEnd)} & set(self.method_params)
        if reserved:
            raise ValueError(f"set {', '.join(sorted(reserved))} on the search strategy itself, not in method_params")

    def build_method(self) -> MathMethod:
        """The method the samples are written in. method_params are checked when the search
        runs, not when it is built."""
        try:
            return METHODS[self.method](**self.method_params)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"method {self.method!r} with method_params {self.method_params}: {exc}") from exc

    def sample_count(self, budget: Budget) -> int:
        n = sample_count(self.samples, budget, DEFAULT_SAMPLES)
        if budget.max_tokens is not None:
            n = min(n, budget.max_tokens)  # every sample gets at least one token
        return n

    def make_reward(self, ctx: RunContext, name: str | None = None):
        """The reward `name` (default: the strategy's `reward`), served as configured."""
        judge = None
        if self.judge:
            from workers.engines import EngineSpec, make_engine

            judge = make_engine(EngineSpec(kind="openai", **self.judge))
        return make_reward(name or self.reward, ctx.engine, judge)


def candidate(solution: Attempt | Path) -> Candidate:
    """What a reward sees of a finished sample or a (partial) path."""
    ok = sum(call.result.ok for call in solution.tool_calls)
    return Candidate(
        question=solution.question,
        text=solution.text,
        answer=solution.answer,
        logprob=solution.logprob,
        generated=solution.completion_tokens,
        tools_ok=ok,
        tools_failed=len(solution.tool_calls) - ok,
        verdict=solution.verdict.status if solution.verdict else "",
    )


def tally(answers: list[str | None], weights: list[float], verifier: Verifier) -> list[tuple[str, float, list[int]]]:
    """(representative answer, total weight, sample indices) per group of answers the verifier
    finds equivalent, heaviest first; ties keep the order in which the answers first appeared."""
    groups: list[tuple[str, float, list[int]]] = []
    for i, (answer, weight) in enumerate(zip(answers, weights)):
        if answer is None:
            continue
        for g, (rep, total, members) in enumerate(groups):
            if verifier.equivalent(answer, rep):
                groups[g] = (rep, total + weight, members + [i])
                break
        else:
            groups.append((answer, weight, [i]))
    return sorted(groups, key=lambda g: -g[1])


@dataclass
class _Voting(SearchConfig):
    name: ClassVar[str]
    uses_reward: ClassVar[bool] = True

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        n = self.sample_count(ctx.budget)
        batch = PathBatch(ctx, self.build_method(), self.decoding(), self.max_tokens_per_call)
        share = split(ctx.budget, n)
        paths = [batch.start(q, Account(share)) for q in questions for _ in range(n)]
        run_to_end(batch, paths)
        reward = self.make_reward(ctx) if self.uses_reward else None
        out = []
        for q, question in enumerate(questions):
            samples = paths[q * n : (q + 1) * n]
            rewards = reward.score([candidate(s) for s in samples]) if reward else [1.0] * n
            chosen, votes = self.choose([s.answer for s in samples], rewards, ctx.verifier)
            record = {
                "strategy": self.name,
                "method": self.method,
                "reward": self.reward if reward else None,
                "samples": [
                    {"answer": s.answer, "reward": round(r, 6), "tokens": s.account.usage.tokens, "finish_reason": s.finish_reason}
                    for s, r in zip(samples, rewards)
                ],
                "votes": votes,
            }
            usage = Usage()
            for s in samples:
                usage.add(s.account.usage)
            out.append(batch.attempt(self.name, question, samples[chosen] if chosen is not None else None, usage, record))
        return out

    def decoding(self) -> Decoding:
        return self

    def choose(self, answers: list[str | None], rewards: list[float], verifier: Verifier) -> tuple[int | None, dict[str, float]]:
        """(index of the sample to report, votes per answer)."""
        groups = tally(answers, rewards, verifier)
        votes = {rep: round(total, 6) for rep, total, _ in groups}
        return (groups[0][2][0] if groups else None), votes


@dataclass
class Greedy(_Voting):
    """One greedy sample: the baseline every other strategy is measured against."""

    name: ClassVar[str] = "greedy"
    uses_reward: ClassVar[bool] = False

    def sample_count(self, budget: Budget) -> int:
        return 1

    def decoding(self) -> Decoding:
        return dataclasses.replace(self, temperature=0.0)


@dataclass
class Majority(_Voting):
    """The most frequent answer among N samples."""

    name: ClassVar[str] = "majority"
    uses_reward: ClassVar[bool] = False


@dataclass
class BestOfN(_Voting):
    """The sample with the highest reward."""

    name: ClassVar[str] = "best_of_n"

    def choose(self, answers, rewards, verifier):
        answered = [i for i, a in enumerate(answers) if a is not None]
        if not answered:
            return None, {}
        best = max(answered, key=lambda i: rewards[i])
        return best, {answers[best]: round(rewards[best], 6)}


@dataclass
class WeightedMajority(_Voting):
    """The answer whose samples' rewards sum highest."""

    name: ClassVar[str] = "weighted_majority"


SEARCHES = (Greedy, Majority, BestOfN, WeightedMajority)

