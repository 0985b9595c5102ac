"""Accuracy of the per-sample strategies on procedurally generated math problems, per tier.

Problems come from `reasoning-gym` (fixed seed), in two sets: `mixed`, the four tasks below
with `--per-task` problems each, and `gsm`, `--gsm` gsm_symbolic word problems alone. Each
strategy runs on each tier of plait's default config (small: SmolLM2-135M on transformers,
large: Qwen2.5-Coder-1.5B on llama.cpp) through the same worker code a Ray actor runs
(ModelWorker.run on batches of questions). An answer is graded twice: by plait's math
verifier against the dataset's answer, and by the dataset's own scorer (stricter on form,
e.g. it wants fractions reduced). Prints a table, then one JSON object as the last line.

    python benchmarks/accuracy.py                                    # both tiers, both sets
    python benchmarks/accuracy.py --tiers large --sets gsm --strategies tora,pal
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import reasoning_gym
from rich.console import Console
from phases import Phases
from rich.table import Table

from tools.sandbox import SandboxLimits
from verifiers import math as math_verifier
from orchestrator.config import default_tiers
from workers.actor import Batch, ModelWorker
from workers.types import Budget

TASKS = ("basic_arithmetic", "simple_equations", "fraction_simplification", "gsm_symbolic")


def problem_sets(names: list[str], per_task: int, gsm: int, seed: int) -> dict[str, list[dict]]:
    sets = {"mixed": lambda: load_problems(list(TASKS), per_task, seed), "gsm": lambda: load_problems(["gsm_symbolic"], gsm, seed)}
    return {name: sets[name]() for name in names}


def load_problems(tasks: list[str], per_task: int, seed: int) -> list[dict]:
    problems = []
    for task in tasks:
        dataset = reasoning_gym.create_dataset(task, size=per_task, seed=seed)
        problems += [{"task": task, "entry": entry, "dataset": dataset} for entry in dataset]
    return problems


def correct(answer: str | None, reference: str) -> bool:
    """Right by plait's math verifier against the dataset's answer (no answer is wrong)."""
    return answer is not None and math_verifier.verify(answer, reference).verified


def run_strategy(worker: ModelWorker, name: str, problems: list[dict], batch: int, budget: Budget, progress, label: str) -> list[dict]:
    rows = []
    bar = progress.add_task(label, total=len(problems))
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


def save(args: argparse.Namespace, results: dict) -> None:
    """Written after every strategy, so a long run stopped part-way keeps what it measured."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default="tora,cot,pal")
    parser.add_argument("--tiers", default="small,large", help="tiers of the default config")
    parser.add_argument("--sets", default="mixed,gsm")
    parser.add_argument("--per-task", type=int, default=13)
    parser.add_argument("--gsm", type=int, default=52, help="problems of the gsm set")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=1024, help="generated-token budget per problem")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/accuracy.json"))
    args = parser.parse_args()

    console = Console(stderr=True)
    strategies = args.strategies.split(",")
    sets = problem_sets(args.sets.split(","), args.per_task, args.gsm, args.seed)
    tiers = default_tiers()
    budget = Budget(max_tokens=args.max_tokens)
    results: dict[str, dict] = {}
    per_task: dict[str, dict[str, float]] = defaultdict(dict)
    with Phases(console) as progress:
        for tier in args.tiers.split(","):
            worker = ModelWorker(tiers[tier].engine_spec(), tier)
            for set_name, problems in sets.items():
                for name in strategies:
                    key = f"{tier}/{set_name}/{name}"
                    rows = run_strategy(worker, name, problems, args.batch, budget, progress, key)
                    results[key] = summarize(rows) | {"rows": rows}
                    for task in dict.fromkeys(r["task"] for r in rows):
                        per_task[key][task] = summarize([r for r in rows if r["task"] == task])["accuracy"]
                    save(args, results)
            worker.engine.close()

    tasks = list(dict.fromkeys(p["task"] for problems in sets.values() for p in problems))
    table = Table(title=f"reasoning-gym, seed {args.seed}: " + ", ".join(f"{name} {len(p)} problems" for name, p in sets.items()))
    for column in ("tier", "set", "strategy", "plait verifier", "dataset scorer", "agree", *tasks, "tokens", "generated", "tool calls", "s/problem"):
        table.add_column(column)
    for key, s in results.items():
        table.add_row(
            *key.split("/"),
            f"{s['accuracy']:.1%}",
            f"{s['dataset_accuracy']:.1%}",
            f"{s['graders_agree']:.0%}",
            *(f"{per_task[key][t]:.0%}" if t in per_task[key] else "" for t in tasks),
            f"{s['mean_tokens']:.0f}",
            f"{s['mean_completion_tokens']:.0f}",
            f"{s['mean_tool_calls']:.2f}",
            f"{s['seconds_per_problem']:.2f}",
        )
    Console().print(table)

    summary = {key: {k: v for k, v in s.items() if k != "rows"} for key, s in results.items()}
    pair = [k for k in summary if k.split("/")[1:] == [list(sets)[0], strategies[0]]]
    ratio = None
    if len(pair) == 2 and summary[pair[0]]["accuracy"]:
        ratio = summary[pair[1]]["accuracy"] / summary[pair[0]]["accuracy"]
    print(
        json.dumps(
            {
                "name": "accuracy",
                "seed": args.seed,
                "sets": {name: len(p) for name, p in sets.items()},
                "results": summary,
                "per_task_accuracy": per_task,
                "ratio": ratio,
                "ratio_of": f"{pair[-1] if pair else ''} accuracy / {pair[0] if pair else ''} accuracy (null without two tiers or when the first is 0)",
            }
        )
    )


if __name__ == "__main__":
    main()
