"""SGD (planner + skeleton graph) vs one single pass, at matched token budgets, in one run.

Multi-part problems come from `multipart.py` (reasoning-gym tasks, fixed seed): pair,
chain and word problems whose later parts use earlier answers.

Per problem, the SGD arm runs first (`planner: sgd`, each node with the chosen strategy);
then the single arm runs the whole problem as one node with the same strategy and a
generated-token budget equal to what the SGD arm generated on that problem (planner
included). Both run through a local-mode Client on the default config (every difficulty on
`large`). With --routed, a third arm runs SGD again with that routing table instead (e.g.
`1=small,3=large`: the planner's easy nodes on the 135M model). Reports accuracy (plait's
verifier against the reference), tokens and seconds per problem for every arm.
Last line: one JSON object.

    python benchmarks/skeleton_quality.py --problems 30 --strategy pal [--routed 1=small,3=large]
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from phases import Phases
from rich.table import Table

from orchestrator.client import Client
from orchestrator.config import Config
from orchestrator.runtime import init_ray

from multipart import KINDS, multi_part_problems

def generated_tokens(client: Client, job_id: str) -> int:
    """Tokens the job generated: its nodes' and, under SGD, the planner's."""
    result = client.result(job_id)
    nodes = sum(n.attempt.completion_tokens for n in result.nodes if n.attempt)
    planned = next((e for e in client.events(job_id) if e["type"] == "planned"), {})
    return nodes + planned.get("completion_tokens", 0)


def run_arm(client: Client, job: dict) -> dict:
    began = time.perf_counter()
    result = client.solve(job)
    return {
        "correct": result.verified,
        "status": result.status,
        "answer": result.answer,
        "nodes": len(result.nodes),
        "tokens": result.tokens,
        "generated": generated_tokens(client, result.job_id),
        "seconds": time.perf_counter() - began,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--strategy", default="pal", choices=("pal", "cot", "tora"))
    parser.add_argument("--max-tokens", type=int, default=256, help="SGD arm: generated-token budget per node")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--routed", default="", help="a third arm: SGD with this routing, e.g. 1=small,3=large")
    args = parser.parse_args()
    routed = {int(level): tier for level, tier in (pair.split("=") for pair in args.routed.split(",") if pair)}
    arms = ("sgd", "single", *(("sgd_routed",) if routed else ()))

    console = Console(stderr=True)
    problems = multi_part_problems(args.problems, args.seed)
    config = Config(ray={"num_cpus": 2})
    init_ray(config)
    client = Client(config=config, discover=False)
    rows = []
    try:
        with console.status("loading the model (warm-up job)"):
            client.solve({"problem": "What is 1 + 1?", "strategy": {"name": args.strategy}, "budget": {"max_tokens": 8}})
        with Phases(console) as progress:
            bar = progress.add_task("problems", total=len(problems))
            for problem in problems:
                base = {"problem": problem.question, "strategy": {"name": args.strategy}, "reference": problem.answer}
                sgd = run_arm(client, {**base, "planner": "sgd", "budget": {"max_tokens": args.max_tokens}})
                single = run_arm(client, {**base, "planner": "none", "budget": {"max_tokens": max(sgd["generated"], 1)}})
                row = {"kind": problem.kind, "reference": problem.answer, "sgd": sgd, "single": single}
                if routed:
                    row["sgd_routed"] = run_arm(client, {**base, "planner": "sgd", "tiers": routed, "budget": {"max_tokens": args.max_tokens}})
                rows.append(row)
                progress.advance(bar)
    finally:
        client.close()
        import ray

        ray.shutdown()

    def mean(arm: str, key: str, kind: str | None = None) -> float:
        picked = [r[arm][key] for r in rows if kind in (None, r["kind"])]
        return sum(picked) / len(picked) if picked else 0.0

    table = Table(title=f"{len(rows)} multi-part problems (seed {args.seed}), strategy {args.strategy}, greedy")
    for column in ("arm", "accuracy", *(f"acc. {k}" for k in KINDS), "tokens", "generated", "nodes", "s/problem"):
        table.add_column(column, justify="right")
    for arm in arms:
        table.add_row(
            arm,
            f"{mean(arm, 'correct'):.0%}",
            *(f"{mean(arm, 'correct', k):.0%}" for k in KINDS),
            f"{mean(arm, 'tokens'):.0f}",
            f"{mean(arm, 'generated'):.0f}",
            f"{mean(arm, 'nodes'):.1f}",
            f"{mean(arm, 'seconds'):.1f}",
        )
    console.print(table)
    single_acc = mean("single", "correct")
    print(
        json.dumps(
            {
                "name": "skeleton_quality",
                "problems": len(rows),
                "strategy": args.strategy,
                "seed": args.seed,
                "routed": {str(level): tier for level, tier in routed.items()} or None,
                **{f"{arm}_{key}": round(mean(arm, key), 3) for arm in arms for key in ("correct", "tokens", "generated", "seconds", "nodes")},
                **{f"{arm}_correct_{k}": round(mean(arm, "correct", k), 3) for arm in arms for k in KINDS},
                "ratio": round(mean("sgd", "correct") / single_acc, 3) if single_acc else None,
                "ratio_of": "SGD accuracy / single-pass accuracy (None: the single pass solved nothing)",
            }
        )
    )


if __name__ == "__main__":
    main()
