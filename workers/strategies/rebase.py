"""REBASE: reward-balanced tree search over solution steps (Wu et al., "Inference Scaling
Laws", 2024).

The tree starts at the question. At each depth every live node is a partial solution with a
reward; the question's remaining width B (N minus the solutions already finished) is split
among the live nodes in proportion to softmax(reward / temperature), and each node is
extended by that many sampled next steps. Finished solutions leave the tree; the search ends
when B reaches 0, the budget runs out or `max_depth` is reached (then the unfinished paths
are read as they stand). The answer is the weighted majority vote of the finished solutions.

A step depends on the method: a sentence for cot, a line of the program for pal (the
program runs when its block closes), one tool round for tora. All questions of a batch and
all expansions of a depth go to the engine as one call.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

from tools.sandbox import ExecResult, run_python
from verifiers import math as math_verifier
from workers.engines.base import Completion, Prompt, SamplingParams
from workers.strategies.base import RunContext, format_output, output_answer, successful_outputs, transcript_answer
from workers.strategies.prompts import OUTPUT_FENCE, PromptSet, prompt_set
from workers.strategies.rewards import Candidate
from workers.strategies.search import SearchConfig, tally
from workers.strategies.tora import CODE_STOPS, _close_block, pending_program
from workers.types import Attempt, ToolCall

_PAL_OPEN = "```python\n"


@dataclass
class Node:
    id: int
    parent: int | None
    depth: int
    text: str = ""  # the whole partial solution
    step: str = ""  # what this node added
    logprob: float = 0.0  # over the path's generated tokens
    generated: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    finished: bool = False
    answer: str | None = None
    reward: float = 0.0
    program: str | None = None  # pal: a closed program waiting to run; tora: the round's code

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


class _Steps:
    """How a method writes one step, and what a step's completion does to a path."""

    stop: tuple[str, ...] = ()

    def __init__(self, prompts: PromptSet):
        self.prompts = prompts

    def prompt(self, question: str, text: str) -> Prompt:
        raise NotImplementedError

    def advance(self, node: Node, completion: Completion) -> None:
        """Append the step; set `finished`, or `program` when code must run first."""
        raise NotImplementedError

    def ran(self, node: Node, result: ExecResult) -> None:
        """Take a program's result into the path."""

    def final_answer(self, node: Node, question: str) -> str | None:
        return transcript_answer(question, node.text, node.tool_calls).text


class _CoTSteps(_Steps):
    stop = (". ", "\n")

    def prompt(self, question, text):
        return self.prompts.cot.prompt(question, text)

    def advance(self, node, completion):
        node.step = completion.text + (completion.stop_reason or "")
        node.text += node.step
        node.finished = _ended(completion) or math_verifier.boxed_answer(node.text) is not None


class _PALSteps(_Steps):
    stop = ("\n",)

    def prompt(self, question, text):
        return self.prompts.pal.prompt(question, _PAL_OPEN + text)

    def advance(self, node, completion):
        line = completion.text
        closed = line.strip().startswith("```")
        node.step = "" if closed else line + "\n"
        node.text += node.step
        if closed or _ended(completion):
            node.program = node.text

    def ran(self, node, result):
        node.text = f"{_PAL_OPEN}{node.text}```\n{OUTPUT_FENCE}\n{format_output(result)}\n```\n"
        node.answer = output_answer(result.stdout) if result.ok else None
        node.finished = True

    def final_answer(self, node, question):
        return node.answer


class _ToRASteps(_Steps):
    stop = CODE_STOPS

    def prompt(self, question, text):
        return self.prompts.tora.prompt(question, text)

    def advance(self, node, completion):
        node.step = completion.text
        node.text += completion.text
        node.program = pending_program(completion)
        node.finished = node.program is None and (_ended(completion) or math_verifier.boxed_answer(node.text) is not None)

    def ran(self, node, result):
        node.text = _close_block(node.text) + f"{OUTPUT_FENCE}\n{format_output(result)}\n```\n"


STEPS = {"cot": _CoTSteps, "pal": _PALSteps, "tora": _ToRASteps}


def _ended(completion: Completion) -> bool:
    """The model ended the solution itself (EOS), rather than a step's stop string or the cap."""
    return completion.finish_reason == "stop" and completion.stop_reason is None


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
    question: str
    width: int  # N: finished solutions to collect
    tokens_left: int | None
    nodes: list[Node] = field(default_factory=list)
    live: list[tuple[Node, int]] = field(default_factory=list)  # (node, children to sample)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    computed_tokens: int = 0  # what FLOPs are charged for (Completion.computed_tokens)

    @property
    def finished(self) -> list[Node]:
        return [n for n in self.nodes if n.finished]


@dataclass
class Rebase(SearchConfig):
    name: ClassVar[str] = "rebase"
    balance_temperature: float = 0.2  # softmax temperature over rewards when splitting the width
    max_depth: int = 12
    step_tokens: int = 96  # tokens per step at most

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.balance_temperature <= 0:
            raise ValueError("balance_temperature must be positive")
        if not 1 <= self.max_depth <= 256 or self.step_tokens < 1:
            raise ValueError("max_depth must be 1-256 and step_tokens at least 1")

    def run(self, questions: list[str], ctx: RunContext) -> list[Attempt]:
        info = ctx.engine.info()
        steps = STEPS[self.method](prompt_set(info.model_id))
        reward = self.make_reward(ctx)
        n = self.sample_count(ctx.budget)
        trees = [_Tree(q, n, ctx.budget.max_tokens) for q in questions]
        for tree in trees:
            root = Node(0, None, 0)
            tree.nodes.append(root)
            tree.live = [(root, n)]
        for depth in range(1, self.max_depth + 1):
            jobs = [(t, node) for t in trees for node, k in t.live for _ in range(k)]
            if not jobs:
                break
            allowance = min(
                [self.step_tokens]
                + [t.tokens_left // sum(k for _, k in t.live) for t in trees if t.live and t.tokens_left is not None]
            )
            if allowance < 1:
                break
            params = SamplingParams(
                max_tokens=allowance,
                temperature=self.temperature,
                top_p=self.top_p,
                stop=steps.stop,
                seed=None if self.seed is None else self.seed + depth,
                cache_output=True,  # the next depth extends these paths
                cautious_entropy=self.cautious_entropy,
            )
            outputs = ctx.engine.generate([steps.prompt(t.question, node.text) for t, node in jobs], params)
            children = []
            for (tree, parent), (completion,) in zip(jobs, outputs):
                child = Node(len(tree.nodes), parent.id, depth, parent.text, "", parent.logprob, parent.generated, list(parent.tool_calls))
                child.logprob += sum(completion.logprobs)
                child.generated += completion.completion_tokens
                steps.advance(child, completion)
                tree.nodes.append(child)
                tree.prompt_tokens += completion.prompt_tokens
                tree.completion_tokens += completion.completion_tokens
                tree.cached_tokens += completion.cached_tokens
                tree.computed_tokens += completion.computed_tokens
                if tree.tokens_left is not None:
                    tree.tokens_left -= completion.completion_tokens
                children.append((tree, child))
            ctx.emit({"type": "generated", "round": depth, "questions": len(jobs), "tokens": sum(c.completion_tokens for (c,) in outputs)})
            self._run_programs([(t, c) for t, c in children if c.program is not None], steps, ctx, depth)
            for tree, child in children:
                if child.finished:
                    child.answer = steps.final_answer(child, tree.question)
            self._score(children, reward, ctx)
            for tree in trees:
                fresh = [c for t, c in children if t is tree and not c.finished]
                tree.live = [(c, k) for c, k in zip(fresh, allocate(tree.width - len(tree.finished), [c.reward for c in fresh], self.balance_temperature)) if k]
        return [self._attempt(tree, steps, reward, info, ctx) for tree in trees]

    def _run_programs(self, waiting: list[tuple[_Tree, Node]], steps: _Steps, ctx: RunContext, depth: int) -> None:
        if not waiting:
            return
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda pair: run_python(pair[1].program, ctx.sandbox), waiting))
        for (_, node), result in zip(waiting, results):
            node.tool_calls.append(ToolCall(code=node.program, result=result, round=depth))
            steps.ran(node, result)
            node.program = None
            ctx.emit({"type": "tool_call", "round": depth, "status": result.status, "seconds": round(result.seconds, 3)})

    @staticmethod
    def _score(pairs: list[tuple[_Tree, Node]], reward, ctx: RunContext) -> None:
        candidates = []
        for tree, node in pairs:
            ok = sum(call.result.ok for call in node.tool_calls)
            verdict = ""
            if node.finished:
                verdict = ctx.verifier.check(tree.question, node.answer, outputs=successful_outputs(node.tool_calls)).status
            candidates.append(
                Candidate(tree.question, node.text, node.answer, node.logprob, node.generated, ok, len(node.tool_calls) - ok, verdict)
            )
        for (_, node), value in zip(pairs, reward.score(candidates)):
            node.reward = value

    def _attempt(self, tree: _Tree, steps: _Steps, reward, info, ctx: RunContext) -> Attempt:
        # Paths still open at the end are read as they stand.
        for node, _ in tree.live:
            node.finished, node.answer = True, steps.final_answer(node, tree.question)
        done = tree.finished
        groups = tally([n.answer for n in done], [n.reward for n in done], ctx.verifier)
        best = done[groups[0][2][0]] if groups else None
        attempt = Attempt(
            question=tree.question,
            strategy=self.name,
            model_id=info.model_id,
            text=best.text if best else "",
            answer=best.answer if best else None,
            answer_source="search" if best else "",
            tool_calls=list(best.tool_calls) if best else [],
            prompt_tokens=tree.prompt_tokens,
            completion_tokens=tree.completion_tokens,
            cached_tokens=tree.cached_tokens,
            logprob=best.logprob if best else 0.0,
            flops=info.flops(tree.computed_tokens),
            finish_reason="answered" if best and best.answer is not None else "no_answer",
            search={
                "strategy": self.name,
                "method": self.method,
                "reward": reward.name,
                "width": tree.width,
                "samples": [{"answer": n.answer, "reward": round(n.reward, 6), "node": n.id} for n in done],
                "votes": {rep: round(total, 6) for rep, total, _ in groups},
                "tree": [n.record() for n in tree.nodes],
            },
        )
        attempt.verdict = ctx.verifier.check(tree.question, attempt.answer, outputs=successful_outputs(attempt.tool_calls))
        return attempt

