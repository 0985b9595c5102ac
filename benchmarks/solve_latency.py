"""Time to answer a one-step problem with `plait solve`, cold and warm, in one run.

Cold: nothing is running; each `plait solve` starts Ray in-process, runs the job and stops
everything it started. Warm: `plait up` runs a cluster (Ray head + Redis) first; `plait solve`
connects to it, and the tier's worker actor (with its model, or its llama-server) stays up
between jobs, so only the first warm job of a tier loads anything. Each arm runs the
model-free `calc` problem and a one-step ToRA problem on the default tier (`large`), a few
times each, as whole `plait` processes timed from outside. Run it alone on the machine.

    python benchmarks/solve_latency.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator import cluster

PLAIT = str(Path(sys.executable).with_name("plait"))
PROBLEMS = {
    "calc (no model)": ["-s", "calc", "2+3"],
    "tora on large": ["What is 17 * 23 + 4?", "--answer", "395"],
}


def timed(args: list[str], env: dict) -> tuple[float, bool]:
    began = time.perf_counter()
    proc = subprocess.run([PLAIT, *args], capture_output=True, text=True, env=env, timeout=900)
    return time.perf_counter() - began, proc.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console(stderr=True)
    if cluster.read_state() is not None:
        sys.exit("a `plait up` cluster is running: this benchmark starts and stops its own; run `plait down` first")
    env = {**os.environ, "RAY_ADDRESS": "", "PLAIT_RAY_ADDRESS": "", "PLAIT_REDIS_URL": ""}
    seconds: dict[str, dict[str, list[float]]] = {arm: {name: [] for name in PROBLEMS} for arm in ("cold", "warm")}
    failures = 0
    for name, problem in PROBLEMS.items():
        for i in range(args.repeats):
            with console.status(f"cold {name} {i + 1}/{args.repeats}"):
                took, ok = timed(["solve", *problem], env)
            seconds["cold"][name].append(took)
            failures += not ok
    with console.status("plait up"):
        subprocess.run([PLAIT, "up"], env=env, check=True, capture_output=True)
    try:
        for name, problem in PROBLEMS.items():
            with console.status(f"warm-up {name}: the first job of its tier loads it"):
                first, ok = timed(["solve", *problem], env)
            failures += not ok
            for i in range(args.repeats):
                with console.status(f"warm {name} {i + 1}/{args.repeats}"):
                    took, ok = timed(["solve", *problem], env)
                seconds["warm"][name].append(took)
                failures += not ok
            seconds.setdefault("first warm", {})[name] = [first]
    finally:
        subprocess.run([PLAIT, "down"], env=env, capture_output=True)

    median = {arm: {name: statistics.median(v) for name, v in runs.items()} for arm, runs in seconds.items()}
    table = Table(title=f"plait solve wall time, seconds (median of {args.repeats})")
    table.add_column("problem")
    for arm in median:
        table.add_column(arm, justify="right")
    for name in PROBLEMS:
        table.add_row(name, *(f"{median[arm][name]:.1f}" for arm in median))
    Console().print(table)
    calc = "calc (no model)"
    print(
        json.dumps(
            {
                "name": "solve_latency",
                "repeats": args.repeats,
                "seconds": {arm: {name: round(v, 2) for name, v in m.items()} for arm, m in median.items()},
                "failed_runs": failures,
                "ratio": round(median["cold"][calc] / median["warm"][calc], 3),
                "ratio_of": "cold / warm seconds of `plait solve -s calc 2+3`",
            }
        )
    )


if __name__ == "__main__":
    main()
