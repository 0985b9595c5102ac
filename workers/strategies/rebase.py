"""REBASE: reward-balanced tree search over solution steps (Wu et al., "Inference Scaling
Laws", 2024).

The tree starts at the question. At each depth every live node is a partial solution with a
reward (by `step_reward`, a process reward; `reward` scores the finished ones); the
question's remaining width B (N minus the solutions already finished) is split among the
live nodes in proportion to softmax(reward / temperature), and each node is extended by that
many sampled next steps. Finished solutions leave the tree; the search ends
when B reaches 0, the budget runs out or `max_depth` is reached (then the unfinished paths
end as the method ends a path its cap cuts: a pal program runs as written). The answer is
the weighted majority vote of the finished solutions.

A step is what the method advances by (its `step_stop`): a sentence for cot, a line of the
program for pal (the program runs when its block closes), one tool round for tora; it ends
with the whole token that ended it (`Completion.stop_tail`), so no prompt ends inside one. All
questions of a batch and all expansions of a depth go to the engine as one call; each tree
spends its question's budget, and a tree whose budget is spent stops growing while the others
go on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from workers.strategies.base import RunContext
from workers.strategies.paths import Account, Path, PathBatch
from workers.strategies.rewards import REWARDS, Reward
from workers.strategies.search import SearchConfig, candidate, tally
from workers.types import Attempt


@dataclass
class Node(Path):
    id: int = 0
    parent: int | None = None
    depth: int = 0
    reward: float = 0.0

    def record(self) -> dict:
        return {
            "id": self.id,
            "parent": self.parent,
            "depth": self.depth,
            "step": self.step,
            "reward": round(self.reward, 6),
            "finished": self.finished,
            "answer": self.answer,
        }


def allocate(width: int, rewards: list[float], temperature: float) -> list[int]:
    """`width` children split by softmax(rewards / temperature), rounded by largest remainder
    so they sum to exactly `width`."""
    if not rewards or width <= 0:
        return [0] * len(rewards)
    top = max(rewards)
    weights = [math.exp((r - top) / temperature) for r in rewards]
    shares = [width * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[: width - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class _Tree:
    root: Node
    width: int  # N: finished solutions to collect
    nodes: list[Node] = field(default_factory=list)
    live: list[tuple[Node, int]] = field(default_factory=list)  # (node, children to sample)

    def __post_init__(self) -> None:
        self.nodes.append(self.root)
        self.live.append((self.root, self.width))

    @property
    def finished(self) -> list[Node]:
        return [n for n in self.nodes if n.finished]


@dataclass
class Rebase(SearchConfig):
    name: ClassVar[str] = "rebase"
    balance_temperature: float = 0.2  # softmax temperature over rewards when splitting the width
    max_depth: int = 24  # steps per path: a pal step is one line, and a program of a few hundred tokens has 15-20
    step_tokens: int = 96  # tokens per step at most
    # What scores the open paths the width is split among; None: `reward`. `tool` cannot tell
    # one unrun program from another (they tie, and the width is split evenly); `lm` can.
    step_reward: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.balance_temperature <= 0:
            raise ValueError("balance_temperature must be positive")
        if self.step_reward is not None and self.step_reward not in REWARDS:
            raise ValueError(f"step_reward must be one of {', '.join(REWARDS)}, got {self.step_reward!r}")
        if not 1 <= self.max_depth <= 256 or self.step_tokens < 1:
            raise ValueError("max_depth must be 1-256 and step_tokens at least 1")

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        batch = PathBatch(ctx, self.build_method(), self, self.step_tokens)
        reward = self.make_reward(ctx)
        judges = (reward, self.make_reward(ctx, self.step_reward) if self.step_reward else reward)
        n = self.sample_count(ctx.budget)
        trees = [_Tree(Node(q, Account(ctx.budget), text=batch.method.opening), n) for q in questions]
        for depth in range(1, self.max_depth + 1):
            jobs = [(t, node) for t in trees if not t.root.account.exhausted for node, k in t.live for _ in range(k)]
            if not jobs:
                break
            outputs = batch.generate([node for _, node in jobs], batch.method.step_stop, depth, continues=True)
            children = []
            for (tree, parent), completion in zip(jobs, outputs):
                if completion is None:  # the tree's budget is spent: its open paths are cut at the end
                    continue
                child = dataclasses.replace(parent, id=len(tree.nodes), parent=parent.id, depth=depth, tool_calls=list(parent.tool_calls))
                # A step cut by its own cap, with the question's budget left, is not the path's end.
                if batch.advance(child, completion, capped_step=not tree.root.account.spent):
                    batch.conclude(child, "answered")
                tree.nodes.append(child)
                children.append((tree, child))
            self._settle([child for _, child in children], batch, judges, depth)
            for tree in trees:
                if not tree.root.account.exhausted:
                    fresh = [c for t, c in children if t is tree and not c.finished]
                    shares = allocate(tree.width - len(tree.finished), [c.reward for c in fresh], self.balance_temperature)
                    tree.live = [(c, k) for c, k in zip(fresh, shares) if k]
        self._cut([node for tree in trees for node, _ in tree.live], batch, judges, depth + 1)
        return [self._attempt(tree, batch, reward) for tree in trees]

    @staticmethod
    def _settle(paths: list[Node], batch: PathBatch, judges: tuple[Reward, Reward], round_: int) -> None:
        """Run the programs the paths wait on, judge the finished ones and score them all:
        the finished by the reward, the open by the step reward (`judges`, in that order)."""
        batch.execute(paths, round_)
        for path in paths:
            if path.finished:
                batch.judge(path)
        for finished, reward in zip((True, False), judges):
            group = [path for path in paths if path.finished == finished]
            for path, value in zip(group, reward.score([candidate(path) for path in group])):
                path.reward = value

    def _cut(self, paths: list[Node], batch: PathBatch, judges: tuple[Reward, Reward], round_: int) -> None:
        """Paths still open at the end (budget or depth) end as a plain run of the method
        would at its cap (a pal program runs as written), and join the vote with that."""
        for path in paths:
            batch.cut(path)
        self._settle(paths, batch, judges, round_)

    def _attempt(self, tree: _Tree, batch: PathBatch, reward) -> Attempt:
        done = tree.finished
        groups = tally([n.answer for n in done], [n.reward for n in done], batch.ctx.verifier)
        search = {
            "strategy": self.name,
            "method": self.method,
            "reward": reward.name,
            "step_reward": self.step_reward or reward.name,
            "width": tree.width,
            "samples": [{"answer": n.answer, "reward": round(n.reward, 6), "node": n.id} for n in done],
            "votes": {rep: round(total, 6) for rep, total, _ in groups},
            "tree": [n.record() for n in tree.nodes],
        }
        best = done[groups[0][2][0]] if groups else None
        return batch.attempt(self.name, tree.root.question, best, tree.root.account.usage, search)
