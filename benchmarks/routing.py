"""Which tier should answer a node of each difficulty: both default tiers on the same
sub-questions, accuracy and seconds per difficulty, and the routing table that follows.

The sub-questions are the parts of `multipart.py`'s multi-part problems (an earlier part's
answer written in, as the scheduler forwards it), so each has a known answer. Each one's
difficulty is the SGD planner's (on `large`, as in a job): the level of the node it makes of
the sub-question when it judges it atomic, the hardest node's level when it splits it. Then
each tier answers every sub-question with the same strategy through the worker code a Ray
actor runs (ModelWorker.run, batches of `--batch`), one tier after the other, graded by
plait's verifier.

The table routes a difficulty to `small` when small is at most `--tolerance` less accurate
than large there (and faster), else to `large`; levels without sub-questions inherit the
next easier level's tier, as plait's routing does.

    python benchmarks/routing.py --problems 30
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from rich.console import Console
from phases import Phases
from rich.table import Table

from orchestrator.config import default_tiers
from planners.sgd import plan_sgd
from tools.sandbox import SandboxLimits
from verifiers import math as math_verifier
from workers.actor import Batch, ModelWorker
from workers.types import Budget

from multipart import multi_part_problems


def planner_difficulty(engine, question: str) -> int:
    graph, _ = plan_sgd(question, engine, {1: "any"})
    return max(node.difficulty for node in graph.nodes())


def answer_all(worker: ModelWorker, questions: list[dict], strategy: str, batch: int, budget: Budget, progress, label: str) -> None:
    bar = progress.add_task(label, total=len(questions))
    for start in range(0, len(questions), batch):
        chunk = questions[start : start + batch]
        began = time.monotonic()
        result = worker.run(Batch([q["question"] for q in chunk], strategy, {}, budget, SandboxLimits()))
        seconds = (time.monotonic() - began) / len(chunk)
        for q, attempt in zip(chunk, result.attempts):
            q.setdefault("tiers", {})[worker.tier] = {
                "answer": attempt.answer,
                "correct": math_verifier.verify(attempt.answer, q["answer"]).verified,
                "seconds": seconds,
                "tokens": attempt.completion_tokens,
            }
        progress.advance(bar, len(chunk))


def derive_routing(levels: dict[int, dict], tolerance: float) -> dict[int, str]:
    routing: dict[int, str] = {}
    previous = "small"
    for level in range(1, 6):
        row = levels.get(level)
        if row is None:
            routing[level] = previous
            continue
        small, large = row["small"], row["large"]
        cheaper = small["seconds"] <= large["seconds"]
        previous = "small" if cheaper and small["accuracy"] >= large["accuracy"] - tolerance else "large"
        routing[level] = previous
    return routing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--strategy", default="tora")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=1024, help="generated-token budget per sub-question")
    parser.add_argument("--tolerance", type=float, default=0.05, help="accuracy small may give up to be routed a level")
    args = parser.parse_args()

    console = Console(stderr=True)
    questions = [
        {"problem": i, "part": j, "question": part.question, "answer": part.answer}
        for i, problem in enumerate(multi_part_problems(args.problems, args.seed))
        for j, part in enumerate(problem.parts)
    ]
    tiers = default_tiers()
    workers = {name: ModelWorker(tiers[name].engine_spec(), name) for name in ("small", "large")}
    budget = Budget(max_tokens=args.max_tokens)
    with Phases(console) as progress:
        bar = progress.add_task("planner difficulty (large)", total=len(questions))
        for q in questions:
            q["difficulty"] = planner_difficulty(workers["large"].engine, q["question"])
            progress.advance(bar)
        for name, worker in workers.items():
            answer_all(worker, questions, args.strategy, args.batch, budget, progress, f"{name}: {args.strategy}")
            if name == "large":
                worker.engine.close()

    by_level: dict[int, list[dict]] = defaultdict(list)
    for q in questions:
        by_level[q["difficulty"]].append(q)
    levels = {
        level: {
            "questions": len(qs),
            **{
                tier: {
                    "accuracy": sum(q["tiers"][tier]["correct"] for q in qs) / len(qs),
                    "seconds": sum(q["tiers"][tier]["seconds"] for q in qs) / len(qs),
                    "tokens": sum(q["tiers"][tier]["tokens"] for q in qs) / len(qs),
                }
                for tier in workers
            },
        }
        for level, qs in sorted(by_level.items())
    }
    routing = derive_routing(levels, args.tolerance)

    table = Table(title=f"{len(questions)} sub-questions of {args.problems} multi-part problems (seed {args.seed}), {args.strategy}, greedy")
    for column in ("difficulty", "questions", "small acc.", "small s", "large acc.", "large s", "routed to"):
        table.add_column(column, justify="right")
    for level, row in levels.items():
        s, l = row["small"], row["large"]
        table.add_row(str(level), str(row["questions"]), f"{s['accuracy']:.0%}", f"{s['seconds']:.1f}", f"{l['accuracy']:.0%}", f"{l['seconds']:.1f}", routing[level])
    console.print(table)
    total = {tier: sum(q["tiers"][tier]["correct"] for q in questions) / len(questions) for tier in workers}
    routed = sum(q["tiers"][routing[q["difficulty"]]]["correct"] for q in questions) / len(questions)
    routed_seconds = sum(q["tiers"][routing[q["difficulty"]]]["seconds"] for q in questions)
    large_seconds = sum(q["tiers"]["large"]["seconds"] for q in questions)
    print(
        json.dumps(
            {
                "name": "routing",
                "sub_questions": len(questions),
                "seed": args.seed,
                "strategy": args.strategy,
                "levels": levels,
                "accuracy": total,
                "routing": routing,
                "routed_accuracy": routed,
                "ratio": round(routed_seconds / large_seconds, 3) if large_seconds else None,
                "ratio_of": "seconds with the derived routing / seconds with every sub-question on large",
            }
        )
    )


if __name__ == "__main__":
    main()
