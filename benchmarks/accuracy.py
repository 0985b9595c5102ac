"""Accuracy of the per-sample strategies on procedurally generated math problems.

Problems come from `reasoning-gym` (fixed seed). Each strategy runs through the same worker
code a Ray actor runs (ModelWorker.run on batches of questions), on the configured engine
(default: the embedded SmolLM2-135M). An answer is graded twice: by plait's math verifier
against the dataset's answer, and by the dataset's own scorer (stricter on form, e.g. it wants
fractions reduced). Prints a table, then one JSON object as the last line.

    python benchmarks/accuracy.py                          # 4 tasks x 13 problems, tora/cot/pal
    python benchmarks/accuracy.py --per-task 25 --strategies tora,pal --batch 8
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import reasoning_gym
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tools.sandbox import SandboxLimits
from verifiers import math as math_verifier
from workers.actor import Batch, ModelWorker
from workers.engines import EngineSpec
from workers.types import Budget

TASKS = ("basic_arithmetic", "simple_equations", "fraction_simplification", "gsm_symbolic")


def load_problems(tasks: list[str], per_task: int, seed: int) -> list[dict]:
    problems = []
    for task in tasks:
        dataset = reasoning_gym.create_dataset(task, size=per_task, seed=seed)
        problems += [{"task": task, "entry": entry, "dataset": dataset} for entry in dataset]
    return problems


def run_strategy(worker: ModelWorker, name: str, problems: list[dict], batch: int, budget: Budget, progress) -> list[dict]:
    rows = []
    bar = progress.add_task(name, total=len(problems))
    for start in range(0, len(problems), batch):
        chunk = problems[start : start + batch]
        began = time.monotonic()
        result = worker.run(Batch([p["entry"]["question"] for p in chunk], name, {}, budget, SandboxLimits()))
        seconds = (time.monotonic() - began) / len(chunk)
        for problem, attempt in zip(chunk, result.attempts):
            reference = str(problem["entry"]["answer"])
            verdict = math_verifier.verify(attempt.answer, reference)
            own = problem["dataset"].score_answer(answer=attempt.answer, entry=problem["entry"]) if attempt.answer else 0.0
            rows.append(
                {
                    "task": problem["task"],
                    "answer": attempt.answer,
                    "reference": reference,
                    "plait_correct": verdict.verified,
                    "dataset_correct": own == 1.0,
                    "tokens": attempt.tokens,
                    "completion_tokens": attempt.completion_tokens,
                    "flops": attempt.flops,
                    "tool_calls": len(attempt.tool_calls),
                    "seconds": seconds,
                }
            )
        progress.advance(bar, len(chunk))
    return rows


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "problems": n,
        "accuracy": sum(r["plait_correct"] for r in rows) / n,
        "dataset_accuracy": sum(r["dataset_correct"] for r in rows) / n,
        "graders_agree": sum(r["plait_correct"] == r["dataset_correct"] for r in rows) / n,
        "mean_tokens": sum(r["tokens"] for r in rows) / n,
        "mean_completion_tokens": sum(r["completion_tokens"] for r in rows) / n,
        "mean_flops": sum(r["flops"] for r in rows) / n,
        "mean_tool_calls": sum(r["tool_calls"] for r in rows) / n,
        "seconds_per_problem": sum(r["seconds"] for r in rows) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default="tora,cot,pal")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--per-task", type=int, default=13)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=1024, help="generated-token budget per problem")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/accuracy.json"))
    args = parser.parse_args()

    console = Console(stderr=True)
    strategies = args.strategies.split(",")
    problems = load_problems(args.tasks.split(","), args.per_task, args.seed)
    worker = ModelWorker(EngineSpec(model=args.model), tier="bench")
    budget = Budget(max_tokens=args.max_tokens)
    results: dict[str, dict] = {}
    per_task: dict[str, dict[str, float]] = defaultdict(dict)
    with Progress(console=console) as progress:
        for name in strategies:
            rows = run_strategy(worker, name, problems, args.batch, budget, progress)
            results[name] = summarize(rows)
            results[name]["rows"] = rows
            for task in dict.fromkeys(r["task"] for r in rows):
                per_task[name][task] = summarize([r for r in rows if r["task"] == task])["accuracy"]

    table = Table(title=f"{args.model}: {len(problems)} reasoning-gym problems, seed {args.seed}")
    for column in ("strategy", "accuracy", "dataset scorer", "agree", *dict.fromkeys(p["task"] for p in problems), "tokens", "tool calls", "s/problem"):
        table.add_column(column)
    for name, s in results.items():
        table.add_row(
            name,
            f"{s['accuracy']:.1%}",
            f"{s['dataset_accuracy']:.1%}",
            f"{s['graders_agree']:.0%}",
            *(f"{v:.0%}" for v in per_task[name].values()),
            f"{s['mean_tokens']:.0f}",
            f"{s['mean_tool_calls']:.2f}",
            f"{s['seconds_per_problem']:.2f}",
        )
    Console().print(table)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1, default=str))
    summary = {name: {k: v for k, v in s.items() if k != "rows"} for name, s in results.items()}
    first, second = strategies[0], strategies[min(1, len(strategies) - 1)]
    ratio = summary[first]["accuracy"] / summary[second]["accuracy"] if summary[second]["accuracy"] else None
    print(
        json.dumps(
            {
                "name": "accuracy",
                "model": args.model,
                "problems": len(problems),
                "seed": args.seed,
                "strategies": summary,
                "per_task_accuracy": per_task,
                "ratio": ratio,
                "ratio_of": f"{first} accuracy / {second} accuracy (null when the second is 0)",
            }
        )
    )


if __name__ == "__main__":
    main()
