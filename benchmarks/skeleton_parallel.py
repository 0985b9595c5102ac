"""Parallel batched vs sequential decoding of one fixed skeleton graph, in one run.

The skeleton (7 nodes, 3 levels, greedy) is a shopping problem: four independent item costs,
two subtotals, one total. Both arms run it as one job through a local-mode Client on the
default config (every node on `large`), each with its own worker actor:

- parallel: the scheduler's default, every ready node of a tier in one engine batch;
- sequential: `[scheduler] max_batch = 1`, so the worker decodes one node at a time.

Model loading is excluded by a warm-up job per arm; the arms alternate over the repeats.
Reports each arm's median wall time, the ratio and whether every node's answer, and every
generated text, came out identical. Last line: one JSON object.

    python benchmarks/skeleton_parallel.py --strategy pal --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from rich.console import Console
from rich.table import Table

from orchestrator.client import Client
from orchestrator.config import Config, SchedulerConfig
from orchestrator.job import Result
from orchestrator.runtime import init_ray

SKELETON = [
    {"id": "pens", "question": "A pen costs $3. How much do 7 pens cost?"},
    {"id": "books", "question": "A notebook costs $5. How much do 4 notebooks cost?"},
    {"id": "rulers", "question": "A ruler costs $2. How much do 6 rulers cost?"},
    {"id": "erasers", "question": "An eraser costs $1. How much do 9 erasers cost?"},
    {"id": "writing", "question": "What is {pens} + {books}?", "depends_on": ["pens", "books"]},
    {"id": "drawing", "question": "What is {rulers} + {erasers}?", "depends_on": ["rulers", "erasers"]},
    {
        "id": "total",
        "question": "Maria spends {writing} dollars on writing things and {drawing} dollars on drawing things. "
        "How much does she spend in total?",
        "depends_on": ["writing", "drawing"],
        "difficulty": 2,
    },
]
LEVELS = 3


def run(client: Client, job: dict) -> tuple[float, Result]:
    began = time.perf_counter()
    result = client.solve(job)
    return time.perf_counter() - began, result


def trace(result: Result) -> dict[str, tuple[str | None, str]]:
    return {n.id: (n.answer, n.attempt.text if n.attempt else "") for n in result.nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="pal", choices=("pal", "cot", "tora"))
    parser.add_argument("--max-tokens", type=int, default=256, help="token budget per node")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    console = Console(stderr=True)
    job = {
        "problem": "Maria buys 7 pens at $3, 4 notebooks at $5, 6 rulers at $2 and 9 erasers at $1. What does she spend?",
        "strategy": {"name": args.strategy},
        "budget": {"max_tokens": args.max_tokens},
        "graph": SKELETON,
    }
    base = Config(ray={"num_cpus": 2})
    init_ray(base)
    clients = {
        "parallel": Client(config=base, discover=False),
        "sequential": Client(config=base.model_copy(update={"scheduler": SchedulerConfig(max_batch=1)}), discover=False),
    }
    seconds: dict[str, list[float]] = {arm: [] for arm in clients}
    traces: dict[str, list[dict]] = {arm: [] for arm in clients}
    results: dict[str, Result] = {}
    try:
        for arm, client in clients.items():
            with console.status(f"{arm}: loading the model (warm-up job)"):
                client.solve({"problem": "What is 1 + 1?", "strategy": {"name": args.strategy}, "budget": {"max_tokens": 8}})
        for repeat in range(args.repeats):
            for arm, client in clients.items():
                with console.status(f"{arm}: repeat {repeat + 1}/{args.repeats}"):
                    spent, result = run(client, job)
                if result.status != "succeeded":
                    console.print(f"[yellow]{arm} job {result.status}: {result.error}")
                seconds[arm].append(spent)
                traces[arm].append(trace(result))
                results[arm] = result
    finally:
        for client in clients.values():
            client.close()
        import ray

        ray.shutdown()

    identical = all(t == traces["parallel"][0] for arm in clients for t in traces[arm])
    # llama.cpp is not batch-invariant: texts may differ in a batch where the answers do not.
    same_answers = all({k: a for k, (a, _) in t.items()} == {k: a for k, (a, _) in traces["parallel"][0].items()} for arm in clients for t in traces[arm])
    parallel_s, sequential_s = statistics.median(seconds["parallel"]), statistics.median(seconds["sequential"])
    table = Table(title=f"{len(SKELETON)}-node skeleton, {LEVELS} levels, strategy {args.strategy}, greedy")
    for column in ("node", "answer", "tokens"):
        table.add_column(column)
    for node in results["parallel"].nodes:
        table.add_row(node.id, str(node.answer), str(node.attempt.tokens if node.attempt else 0))
    console.print(table)
    console.print(
        f"parallel {parallel_s:.2f} s   sequential {sequential_s:.2f} s   ratio {sequential_s / parallel_s:.2f}   "
        f"identical node answers: {same_answers}, and texts: {identical}   final answer: {results['parallel'].answer}"
    )
    print(
        json.dumps(
            {
                "name": "skeleton_parallel",
                "nodes": len(SKELETON),
                "levels": LEVELS,
                "strategy": args.strategy,
                "repeats": args.repeats,
                "parallel_seconds": round(parallel_s, 3),
                "sequential_seconds": round(sequential_s, 3),
                "ratio": round(sequential_s / parallel_s, 3),
                "ratio_of": "sequential (max_batch=1) seconds / parallel batched seconds, median of repeats",
                "identical": identical,
                "identical_answers": same_answers,
                "answer": results["parallel"].answer,
                "tokens": results["parallel"].tokens,
            }
        )
    )


if __name__ == "__main__":
    main()
