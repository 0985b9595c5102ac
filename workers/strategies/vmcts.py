"""VMCTS: verifier-guided Monte Carlo tree search over partial programs (Brandfonbrener et
al., "Verified multi-step synthesis using large language models and Monte Carlo Tree
Search", 2024).

A node is a partial program: the spec and the first lines of its body. One iteration

1. **selects** up to `parallel` leaves per spec by UCT, Q + c·sqrt(ln N_parent / N_child),
   with a virtual loss on paths already chosen in this iteration so the picks spread out;
   a node is expanded again while it has been expanded fewer than ceil(widen_k · N^widen_alpha)
   times (progressive widening; a repeated step counts, so a model that keeps writing the
   same line moves the search down rather than resampling the same node forever), and
   whenever all its children are dead ends;
2. **expands** every picked leaf by sampling from the engine — all leaves of all specs in
   one batched call. With `rollout` on, the sample runs to the program's end: its first line
   becomes the new child (the step) and the whole sample is the rollout; with it off, the
   sample is that one line;
3. **evaluates** with the checker: a verified rollout or child ends the search; the reward
   is the rollout's verdict score (+1 verified, 0 incomplete, -1 refuted), or the child's
   when there is no rollout. A child whose partial program is refuted, or that the model
   ended without it verifying, is a dead end (-1, never selected again). The child itself is
   checked only when needed: a prefix of an unrefuted rollout is taken as unrefuted.
   A refuted rollout whose checker locates its first error (coqc's failing sentence, Dafny's
   first error, Lean's) keeps what precedes that error as a node, checked in the child's
   place: the whole lines before it, and where the checker gives the error's column (coqc
   does) the sentences before it on its line, so a step is a tactic rather than a line when
   a line holds several. The node goes below the child, or below the leaf when the error is
   in the child's own line. The search can go on from just before the mistake instead of
   writing the accepted text again, which is what a tree over partial programs has over
   resampling whole ones;
4. **backs up** the reward along the path (from the kept node when there is one).

With `feedback` on, the tree remembers each line the checker rejected with its message (a
rollout's or a child's first error, located as above) by the partial program it was written
after, and the prompt that expands a node with that program shows the newest few as
comments at its end: the model sees why the last attempts from here failed before it writes
the next one, where resampling (and VMCTS as published) only draws again. The comments are
in the prompt only; the programs checked never hold them.

The search stops at the first verified program or when the spec's budget is spent:
expansions (`samples`, or the budget's max_samples), generated tokens, FLOPs, seconds. The tree —
every node's step, visits, mean value, verdict and the lines rejected after it — is recorded
in the attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from verifiers.types import STATUS_SCORE, Verdict
from workers.engines.base import Completion
from workers.strategies.base import RunContext
from workers.strategies.methods import written
from workers.strategies.paths import Path, PathBatch
from workers.strategies.programs import closed
from workers.strategies.synthesis import SynthesisConfig, Task, attempt_of, check_all
from workers.types import Attempt


@dataclass
class _Node(Path):
    """A partial program: the path's text is its body."""

    id: int = 0
    parent: _Node | None = None
    visits: int = 0
    value: float = 0.0  # sum of backed-up rewards
    pending: int = 0  # picks in flight through this node (virtual loss)
    tries: int = 0  # expansions made here, in flight included (repeated steps too: widening counts samples)
    children: list[_Node] = field(default_factory=list)
    status: str = "incomplete"  # the checker's verdict on this partial program
    complete: bool = False  # the model ended the program here
    rollouts: dict[str, int] = field(default_factory=dict)  # rollout verdict status -> count

    @property
    def dead(self) -> bool:
        return self.complete or self.status in ("refuted", "verified")

    def lineage(self) -> list[_Node]:
        node, out = self, []
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def record(self, failed: dict[str, str]) -> dict:
        return {
            "id": self.id,
            "parent": self.parent.id if self.parent else None,
            "step": self.step,
            "visits": self.visits,
            "value": round(self.value / self.visits, 4) if self.visits else 0.0,
            "status": self.status,
            "complete": self.complete,
            "rollouts": self.rollouts,
            "failed_lines": list(failed),
        }


@dataclass
class _Tree:
    task: Task
    nodes: list[_Node] = field(default_factory=list)
    expansions: int = 0
    solution_node: int | None = None
    # body -> {a line rejected right after it: the checker's message}, oldest first
    failures: dict[str, dict[str, str]] = field(default_factory=dict)

    def child(self, parent: _Node, step: str) -> _Node:
        """The child of `parent` that adds `step` (an existing one when the model repeats itself)."""
        for c in parent.children:
            if c.step == step:
                return c
        node = _Node(parent.question, parent.account, text=parent.text + step, step=step, id=len(self.nodes), parent=parent)
        self.nodes.append(node)
        parent.children.append(node)
        return node


@dataclass
class _Expansion:
    tree: _Tree
    leaf: _Node
    child: _Node
    node: _Node  # where the reward is backed up from: the child, or the accepted lines below it
    rollout: str | None  # the whole sampled body, when it went past the child's line
    rollout_ended: bool  # the model closed the program in it
    verdict: Verdict | None = None  # the rollout's

    @property
    def covers_child(self) -> bool:
        """The reward's node is an accepted partial program that extends the child."""
        return self.node is not self.child and self.node.text.startswith(self.child.text)


@dataclass
class VMCTS(SynthesisConfig):
    name: ClassVar[str] = "vmcts"
    exploration: float = 1.0  # UCT's c
    widen_k: float = 1.0  # progressive widening: expansions allowed = ceil(widen_k * visits^widen_alpha)
    widen_alpha: float = 0.5
    rollout: bool = True
    feedback: int = 2  # rejected lines (with the checker's message) shown when a node is expanded; 0: none

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.exploration < 0 or self.widen_k <= 0 or not 0 <= self.widen_alpha <= 1:
            raise ValueError("exploration must be >= 0, widen_k positive and widen_alpha in [0, 1]")
        if self.feedback < 0:
            raise ValueError(f"feedback must be >= 0 (rejected lines shown per prompt), got {self.feedback}")

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        batch = self.batch(ctx)
        trees = [_Tree(task) for task in self.tasks(questions, batch)]
        for tree in trees:
            tree.nodes.append(_Node(tree.task.spec, tree.task.account, text=batch.method.opening, visits=1))
        stop = batch.method.stop if self.rollout else batch.method.step_stop
        round_ = 0
        while live := [t for t in trees if not t.task.over]:
            round_ += 1
            picks = [(tree, self._select(tree.nodes[0])) for tree in live for _ in range(tree.task.slots(self.parallel))]
            outputs = batch.generate([self._shown(tree, leaf) for tree, leaf in picks], stop, round_, continues=True)
            # A pick its spec's budget could not pay for is dropped: that search is over.
            self._evaluate(ctx, [(pick, c) for pick, c in zip(picks, outputs) if c is not None])
        return [self._attempt(tree, batch) for tree in trees]

    # --- selection ------------------------------------------------------------------------------

    def _select(self, root: _Node) -> _Node:
        node = root
        while True:
            live = [c for c in node.children if not c.dead]
            if not live or node.tries < self._width(node):
                break
            node = max(live, key=lambda c: self._uct(c, node))
        for n in node.lineage():
            n.pending += 1
        node.tries += 1
        return node

    def _width(self, node: _Node) -> int:
        return math.ceil(self.widen_k * max(node.visits + node.pending, 1) ** self.widen_alpha)

    def _uct(self, child: _Node, parent: _Node) -> float:
        visits = child.visits + child.pending
        if visits == 0:
            return math.inf
        mean = (child.value - child.pending) / visits  # an in-flight pick counts as a loss for now
        return mean + self.exploration * math.sqrt(math.log(parent.visits + parent.pending) / visits)

    # --- expansion and evaluation ---------------------------------------------------------------

    def _shown(self, tree: _Tree, leaf: _Node) -> Path:
        """What the model continues to expand `leaf`: its partial program, and after it (when it
        ends a line) the newest lines the checker rejected there, as comments."""
        failures = list(tree.failures.get(leaf.text, {}).items())[-self.feedback :] if self.feedback else []
        if not failures or not leaf.text.endswith("\n"):
            return leaf
        notes = "".join(tree.task.method.failure_note(line, message) for line, message in reversed(failures))
        return Path(leaf.question, leaf.account, text=leaf.text + notes)

    def _evaluate(self, ctx: RunContext, sampled: list[tuple[tuple[_Tree, _Node], Completion]]) -> None:
        expansions = []
        for (tree, leaf), completion in sampled:
            tree.task.samples_left -= 1
            tree.expansions += 1
            # The step ends with its line's newlines, so that no step ends inside a "\n\n" token.
            step, rest = _first_line(written(completion) if completion.stop_reason == "\n" else completion.text)
            child = tree.child(leaf, step + rest[: len(rest) - len(rest.lstrip("\n"))])
            child.complete = child.complete or (closed(completion) and not rest.strip())
            rollout = leaf.text + completion.text if self.rollout and not child.complete else None
            expansions.append(_Expansion(tree, leaf, child, child, rollout, closed(completion)))
        # Rollouts first: a prefix of an unrefuted rollout needs no check of its own.
        rolled = [e for e in expansions if e.rollout is not None]
        for e, verdict in zip(rolled, check_all(ctx, [(e.tree.task, e.rollout, not e.rollout_ended) for e in rolled], self)):
            e.verdict = verdict
            e.child.rollouts[verdict.status] = e.child.rollouts.get(verdict.status, 0) + 1
            if verdict.verified:
                self._solved(e.tree, e.child, e.rollout, verdict)
            elif verdict.line is not None:
                self._keep_accepted(e)
        kept = [e for e in expansions if e.node is not e.child]
        self._check_nodes(ctx, [(e.tree, e.node) for e in kept])
        for e in kept:
            if e.node.status == "refuted":  # cut before its first error, it still fails (a Dafny method may)
                e.node = e.child
        for e in rolled:
            self._learn(e.tree, e.rollout, e.verdict)
        # A child that is a prefix of an accepted node is unrefuted.
        unsure = [e for e in expansions if (e.verdict is None or e.verdict.status == "refuted") and not e.covers_child]
        self._check_nodes(ctx, [(e.tree, e.child) for e in unsure])
        for e in expansions:
            if e.node.dead and e.node.status != "verified":
                reward = -1.0
            else:
                reward = e.verdict.score if e.verdict else STATUS_SCORE[e.node.status]
            for n in e.leaf.lineage():
                n.pending -= 1
            for n in e.node.lineage():
                n.visits += 1
                n.value += reward

    @staticmethod
    def _keep_accepted(e: _Expansion) -> None:
        """What the checker accepted of a refuted rollout, before its first error, becomes a
        node, so the search can go on from where the rollout went wrong rather than sample it
        again: below the child when it goes past the child's line, below the leaf when the
        error is inside that line (coqc locates the failing tactic, and the ones before it on
        the line were accepted)."""
        task = e.tree.task
        accepted = task.method.body_before(task.spec, e.rollout, e.verdict.line, e.verdict.column)
        base = next((n for n in (e.child, e.leaf) if accepted.startswith(n.text)), None)
        if base is not None and len(accepted) > len(base.text):
            e.node = e.tree.child(base, accepted[len(base.text) :])

    def _check_nodes(self, ctx: RunContext, nodes: list[tuple[_Tree, _Node]]) -> None:
        """Each node's own verdict: a partial program's, unless the model ended the program there."""
        checks = [(tree.task, node.text, not node.complete) for tree, node in nodes]
        for (tree, node), verdict in zip(nodes, check_all(ctx, checks, self)):
            node.status = "verified" if verdict.verified else ("refuted" if node.complete else verdict.status)
            if verdict.verified:
                self._solved(tree, node, node.text, verdict)
            self._learn(tree, node.text, verdict)

    @staticmethod
    def _learn(tree: _Tree, body: str, verdict: Verdict) -> None:
        """Where the checker located the error of `body`, the line it rejected is remembered by
        the lines it accepted before it: any node with that partial program (there may be
        several, reached by different steps) is shown it."""
        if verdict.status != "refuted" or verdict.line is None:
            return
        task = tree.task
        lines = task.source(body).split("\n")
        if verdict.line > len(lines) or not lines[verdict.line - 1].strip():
            return
        failed = tree.failures.setdefault(task.method.body_before(task.spec, body, verdict.line), {})
        line = lines[verdict.line - 1]
        failed.pop(line, None)  # seen again: it is the newest
        failed[line] = verdict.message

    @staticmethod
    def _solved(tree: _Tree, node: _Node, body: str, verdict) -> None:
        if tree.task.solution is None:
            tree.task.solution, tree.task.verdict, tree.solution_node = body, verdict, node.id

    def _attempt(self, tree: _Tree, batch: PathBatch) -> Attempt:
        search = {
            "strategy": self.name,
            "expansions": tree.expansions,
            "exploration": self.exploration,
            "widening": [self.widen_k, self.widen_alpha],
            "rollout": self.rollout,
            "solution_node": tree.solution_node,
            "tree": [n.record(tree.failures.get(n.text, {})) for n in tree.nodes],
        }
        return attempt_of(batch, tree.task, self.name, search)


def _first_line(text: str) -> tuple[str, str]:
    """(the first line that holds anything but whitespace, with what precedes it; the rest,
    from the line's own newline on)."""
    at = 0
    while True:
        end = text.find("\n", at)
        if end < 0:
            return text, ""
        if text[:end].strip():
            return text[:end], text[end:]
        at = end + 1

