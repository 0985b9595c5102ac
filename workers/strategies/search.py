"""Sampling-and-aggregating strategies over any per-sample method (cot, pal, tora), after Wu
et al., "Inference Scaling Laws" (2024): greedy, majority vote, best-of-N and weighted
majority vote. REBASE, which searches over steps, is in `rebase.py`.

The N samples of every question in a batch decode together: the method runs once on the
questions repeated N times, so each engine call carries all of them (and the prompt's KV is
computed once per question). The job's budget is split evenly, so N samples together never
spend more than the budget's tokens or FLOPs. Answers are grouped by mathematical
equivalence (2/4 and 0.5 vote together).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from verifiers.role import Verifier
from workers.engines.base import check_cautious_entropy
from workers.strategies.base import RunContext
from workers.strategies.rewards import REWARDS, Candidate, make_reward
from workers.types import Attempt, Budget

METHODS = ("cot", "pal", "tora")
DEFAULT_SAMPLES = 8


@dataclass
class SearchConfig:
    method: str = "cot"
    samples: int | None = None  # N; default: the budget's max_samples, else 8 (both: the smaller)
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    max_tokens_per_call: int = 384
    cautious_entropy: float | None = None  # CNTP threshold in nats (0: off); None: the tier's setting
    method_params: dict = field(default_factory=dict)  # e.g. {"max_tool_calls": 2} for tora
    reward: str = "lm"
    judge: dict | None = None  # reward "prm" on another server: {"base_url": ..., "model": ...}

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.samples is not None and not 1 <= self.samples <= 4096:
            raise ValueError(f"samples must be 1-4096, got {self.samples}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        check_cautious_entropy(self.cautious_entropy)
        reserved = {"temperature", "top_p", "seed", "max_tokens_per_call", "cautious_entropy"} & set(self.method_params)
        if reserved:
            raise ValueError(f"set {', '.join(sorted(reserved))} on the search strategy itself, not in method_params")

    def sample_count(self, budget: Budget) -> int:
        limits = [x for x in (self.samples, budget.max_samples) if x is not None]
        n = min(limits) if limits else DEFAULT_SAMPLES
        if budget.max_tokens is not None:
            n = min(n, budget.max_tokens)  # every sample gets at least one token
        return n

    def method_strategy(self, temperature: float | None = None):
        from workers.strategies import make_strategy

        params = {"temperature": self.temperature if temperature is None else temperature, "top_p": self.top_p}
        params.update(seed=self.seed, max_tokens_per_call=self.max_tokens_per_call, cautious_entropy=self.cautious_entropy, **self.method_params)
        return make_strategy(self.method, params)

    def make_reward(self, ctx: RunContext):
        judge = None
        if self.judge:
            from workers.engines import EngineSpec, make_engine

            judge = make_engine(EngineSpec(kind="openai", **self.judge))
        return make_reward(self.reward, ctx.engine, judge)


def split(budget: Budget, n: int) -> Budget:
    """Each of n samples' share of a question's budget."""
    return dataclasses.replace(
        budget,
        max_tokens=None if budget.max_tokens is None else budget.max_tokens // n,
        max_flops=None if budget.max_flops is None else budget.max_flops / n,
        max_samples=1,
    )


def candidate(attempt: Attempt) -> Candidate:
    ok = sum(call.result.ok for call in attempt.tool_calls)
    return Candidate(
        question=attempt.question,
        text=attempt.text,
        answer=attempt.answer,
        logprob=attempt.logprob,
        generated=attempt.completion_tokens,
        tools_ok=ok,
        tools_failed=len(attempt.tool_calls) - ok,
        verdict=attempt.verdict.status if attempt.verdict else "",
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


def combine(question: str, name: str, samples: list[Attempt], chosen: int | None, record: dict) -> Attempt:
    """One Attempt for the question: the chosen sample's transcript and answer, every sample's
    compute, and the search record."""
    pick = samples[chosen] if chosen is not None else None
    return Attempt(
        question=question,
        strategy=name,
        model_id=samples[0].model_id if samples else "",
        text=pick.text if pick else "",
        answer=pick.answer if pick else None,
        answer_source=pick.answer_source if pick else "",
        tool_calls=list(pick.tool_calls) if pick else [],
        prompt_tokens=sum(s.prompt_tokens for s in samples),
        completion_tokens=sum(s.completion_tokens for s in samples),
        cached_tokens=sum(s.cached_tokens for s in samples),
        logprob=pick.logprob if pick else 0.0,
        flops=sum(s.flops for s in samples),
        seconds=max((s.seconds for s in samples), default=0.0),
        finish_reason="answered" if pick and pick.answer is not None else "no_answer",
        verdict=pick.verdict if pick else None,
        search=record,
    )


@dataclass
class _Voting(SearchConfig):
    name: ClassVar[str]
    uses_reward: ClassVar[bool] = True

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        n = self.sample_count(ctx.budget)
        rows = [q for q in questions for _ in range(n)]
        sub = RunContext(ctx.engine, split(ctx.budget, n), ctx.sandbox, ctx.emit, ctx.verifier)
        flat = self.method_strategy(self._temperature(n)).run(rows, sub)
        reward = self.make_reward(ctx) if self.uses_reward else None
        out = []
        for q, question in enumerate(questions):
            samples = flat[q * n : (q + 1) * n]
            rewards = reward.score([candidate(s) for s in samples]) if reward else [1.0] * n
            chosen, votes = self.choose([s.answer for s in samples], rewards, ctx.verifier)
            record = {
                "strategy": self.name,
                "method": self.method,
                "reward": self.reward if reward else None,
                "samples": [
                    {"answer": s.answer, "reward": round(r, 6), "tokens": s.tokens, "finish_reason": s.finish_reason}
                    for s, r in zip(samples, rewards)
                ],
                "votes": votes,
            }
            out.append(combine(question, self.name, samples, chosen, record))
        return out

    def _temperature(self, n: int) -> float:
        return self.temperature

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

    def _temperature(self, n: int) -> float:
        return 0.0


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

