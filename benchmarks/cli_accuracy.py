"""Accuracy as a user sees it: `plait solve` through the CLI vs the benchmark harness, on the
same gsm_symbolic problems (reasoning-gym, fixed seed: the first problems of
benchmarks/accuracy.py's gsm set).

The CLI arm runs one whole `plait solve QUESTION --answer REF --json` process per problem, on
the default config (its default tier, strategy and budget; Ray started in-process and
stopped each time). The harness arm runs the same strategy, parameters and budget through
`ModelWorker.run`, the code a worker actor runs, one problem per batch as the CLI sends it.
Both answers are graded the same way (plait's math verifier against the dataset's answer);
the CLI's own verdict is reported beside it. The last line is one JSON object: both
accuracies, the problems whose grade differs, and the ratio CLI / harness accuracy.

    python benchmarks/cli_accuracy.py --problems 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from phases import Phases
from rich.table import Table

from accuracy import correct, load_problems
from orchestrator import cluster
from orchestrator.config import load_config
from orchestrator.spec import JobSpec
from planners import plan
from workers.actor import Batch, ModelWorker

PLAIT = str(Path(sys.executable).with_name("plait"))


def solve_cli(question: str, reference: str, env: dict) -> dict:
    began = time.monotonic()
    proc = subprocess.run([PLAIT, "solve", question, "--answer", reference, "--json"], capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.monotonic() - began
    if proc.returncode not in (0, 1):
        raise SystemExit(f"plait solve exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout)
    return {"answer": result.get("answer"), "cli_verified": bool(result.get("verified")), "status": result["status"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    if cluster.read_state() is not None:
        sys.exit("a `plait up` cluster is running: the CLI arm would join it; run `plait down` first")

    console = Console(stderr=True)
    problems = load_problems(["gsm_symbolic"], args.problems, args.seed)
    config, spec = load_config(None), JobSpec(problem="-")
    graph, _ = plan("-", spec.planner, config.routing)  # the CLI's planner: the node's tier
    tier = graph.nodes()[0].tier
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PLAIT_RAY_ADDRESS", "PLAIT_REDIS_URL")}
    rows = []
    with Phases(console) as progress:
        bar = progress.add_task("plait solve", total=len(problems))
        for problem in problems:
            entry = problem["entry"]
            rows.append({"question": entry["question"], "reference": str(entry["answer"]), "cli": solve_cli(entry["question"], str(entry["answer"]), env)})
            progress.advance(bar)
        worker = ModelWorker(config.tiers[tier].engine_spec(), tier)
        bar = progress.add_task(f"harness ({tier})", total=len(problems))
        for row in rows:
            began = time.monotonic()
            batch = Batch([row["question"]], spec.strategy.name, spec.strategy_params(), spec.budget, config.sandbox)
            (attempt,) = worker.run(batch).attempts
            row["harness"] = {"answer": attempt.answer, "seconds": time.monotonic() - began}
            progress.advance(bar)
        worker.engine.close()

    for row in rows:
        for arm in ("cli", "harness"):
            answer = row[arm]["answer"]
            row[arm]["correct"] = correct(None if answer is None else str(answer), row["reference"])
    accuracy = {arm: sum(r[arm]["correct"] for r in rows) / len(rows) for arm in ("cli", "harness")}
    differ = [i for i, r in enumerate(rows) if r["cli"]["correct"] != r["harness"]["correct"]]
    same_answer = sum(r["cli"]["answer"] == r["harness"]["answer"] for r in rows)
    table = Table(title=f"{len(rows)} gsm_symbolic problems, {tier}, {spec.strategy.name}")
    for column in ("arm", "accuracy", "seconds/problem"):
        table.add_column(column, justify="right")
    for arm in ("cli", "harness"):
        table.add_row(arm, f"{accuracy[arm]:.0%}", f"{sum(r[arm]['seconds'] for r in rows) / len(rows):.1f}")
    console.print(table)
    console.print(f"same answer text on {same_answer}/{len(rows)}; grade differs on problems {differ or 'none'}")
    print(
        json.dumps(
            {
                "name": "cli_accuracy",
                "problems": len(rows),
                "tier": tier,
                "strategy": spec.strategy.name,
                "accuracy": accuracy,
                "cli_verified": sum(r["cli"]["cli_verified"] for r in rows),
                "same_answer": same_answer,
                "grade_differs": differ,
                "seconds_per_problem": {arm: round(sum(r[arm]["seconds"] for r in rows) / len(rows), 1) for arm in ("cli", "harness")},
                "ratio": round(accuracy["cli"] / accuracy["harness"], 3) if accuracy["harness"] else None,
                "ratio_of": "CLI / harness accuracy on the same problems",
            }
        )
    )


if __name__ == "__main__":
    main()
