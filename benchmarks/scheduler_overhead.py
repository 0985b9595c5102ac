"""What the orchestrator costs per node, measured on a DAG of cheap arithmetic, in one run.

A layered graph of N nodes (fixed seed): layer 0 holds literal expressions such as `3*7+2`,
every later node combines 1-3 earlier answers through `{id}` placeholders and reduces the
result modulo 97 (written with `floor`, since the answer parser reads `%` as percent), so
each layer is one scheduler wave of many nodes. Both arms do the same work per node with the
model-free `calc` strategy's parser (sympy via `verifiers.math.parse_answer`):

- scheduler: the whole graph as one JobSpec through a local-mode Client on an in-process
  Ray (Ray start-up and the worker actor's creation are excluded by a warm-up job);
- sequential: a plain loop over the nodes in topological order in this process.

Each arm runs once: the parser caches what it has read, so a repeat would measure the cache.
Reports both wall times, the per-node overhead, the ratio and whether every node's answer
is identical between the arms. Last line: one JSON object.

    python benchmarks/scheduler_overhead.py --nodes 50 --depth 5
"""

from __future__ import annotations

import argparse
import json
import random
import time

from rich.console import Console
from rich.table import Table

from orchestrator.client import Client
from orchestrator.config import Config
from orchestrator.runtime import init_ray
from verifiers import math as math_verifier

MODULUS = 97
MAX_GRAPH_NODES = 5_000  # JobSpec's limit on `graph`


def build_graph(nodes: int, depth: int, seed: int) -> list[dict]:
    """Graph nodes in topological order; node i sits in layer i * depth // nodes."""
    rng = random.Random(seed)
    layers: list[list[str]] = [[] for _ in range(depth)]
    graph = []
    for i in range(nodes):
        layer, node_id = i * depth // nodes, f"n{i}"
        if layer == 0:
            question, deps = f"{rng.randint(2, 40)}*{rng.randint(2, 40)}{rng.choice('+-')}{rng.randint(1, 99)}", []
        else:
            # One dependency in the previous layer pins the node to its layer (and wave).
            earlier = [n for layer_ids in layers[:layer] for n in layer_ids]
            deps = [rng.choice(layers[layer - 1])]
            deps += rng.sample([n for n in earlier if n != deps[0]], min(rng.randint(0, 2), len(earlier) - 1))
            terms = [f"{rng.randint(1, 9)}*({{{dep}}})" for dep in deps]
            if len(terms) > 1 and rng.random() < 0.5:
                terms[:2] = [f"({{{deps[0]}}})*({{{deps[1]}}})"]
            total = " + ".join(terms) + f" + {rng.randint(0, 99)}"
            question = f"{total} - {MODULUS}*floor(({total})/{MODULUS})"
        layers[layer].append(node_id)
        graph.append({"id": node_id, "question": question, "depends_on": deps, "difficulty": 1})
    return graph


def run_sequential(graph: list[dict]) -> dict[str, str | None]:
    """What each node costs without an orchestrator: fill in the answers, parse the last line."""
    answers: dict[str, str | None] = {}
    for node in graph:
        question = node["question"]
        for dep in node["depends_on"]:
            question = question.replace("{" + dep + "}", str(answers[dep]))
        value = math_verifier.parse_answer(question.strip().splitlines()[-1])
        answers[node["id"]] = None if value is None else str(value)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000, help=f"graph nodes, 1-{MAX_GRAPH_NODES}")
    parser.add_argument("--depth", type=int, default=10, help="layers, i.e. scheduler waves")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the in-process Ray")
    parser.add_argument("--timeout", type=float, default=1800, help="the job's wall-clock timeout, seconds")
    args = parser.parse_args()
    if not 1 <= args.nodes <= MAX_GRAPH_NODES or args.depth < 1:
        parser.error(f"--nodes must be 1-{MAX_GRAPH_NODES} and --depth at least 1")

    console = Console(stderr=True)
    depth = min(args.depth, args.nodes)
    graph = build_graph(args.nodes, depth, args.seed)
    job = {
        "problem": f"synthetic arithmetic DAG: {args.nodes} nodes in {depth} layers",
        "strategy": {"name": "calc"},
        "graph": graph,
        "timeout": args.timeout,
    }
    config = Config(ray={"num_cpus": args.num_cpus})
    init_ray(config)
    client = Client(config=config, discover=False)
    try:
        with console.status("starting Ray and the worker actor (warm-up job)"):
            warm = client.solve({"problem": "warm-up", "strategy": {"name": "calc"}, "graph": build_graph(2, 2, args.seed + 1)})
            if warm.status != "succeeded":
                raise SystemExit(f"the warm-up job {warm.status}: {warm.error}")
            math_verifier.parse_answer("2*3+1")  # sympy's first parse in this process, outside the timing

        with console.status(f"scheduler arm: {args.nodes} nodes"):
            began = time.perf_counter()
            result = client.solve(job)
            scheduler_s = time.perf_counter() - began
        with console.status("sequential arm"):
            began = time.perf_counter()
            expected = run_sequential(graph)
            sequential_s = time.perf_counter() - began

        got = {node.id: node.answer for node in result.nodes}
        identical = got == expected and None not in expected.values()
        batches = sum(e["type"] == "generated" for e in client.events(result.job_id))  # calc emits one per batch
    finally:
        client.close()
        import ray

        ray.shutdown()

    table = Table(title=f"{args.nodes} calc nodes in {depth} waves (seed {args.seed})")
    for column in ("arm", "seconds", "ms/node"):
        table.add_column(column, justify="right")
    table.add_row("scheduler (one job)", f"{scheduler_s:.3f}", f"{scheduler_s / args.nodes * 1000:.2f}")
    table.add_row("sequential loop", f"{sequential_s:.3f}", f"{sequential_s / args.nodes * 1000:.2f}")
    console.print(table)
    console.print(
        f"job {result.status} in {result.seconds:.3f} s by its own clock; {batches} batches; "
        f"answers identical: {identical}" + (f"; error: {result.error}" if result.error else "")
    )
    print(
        json.dumps(
            {
                "name": "scheduler_overhead",
                "nodes": args.nodes,
                "waves": depth,
                "batches": batches,
                "seed": args.seed,
                "job_status": result.status,
                "scheduler_seconds": round(scheduler_s, 3),
                "sequential_seconds": round(sequential_s, 3),
                "per_node_overhead_ms": round((scheduler_s - sequential_s) / args.nodes * 1000, 3),
                "ratio": round(scheduler_s / sequential_s, 3),
                "ratio_of": "scheduler seconds (one job, Client.solve) / sequential-loop seconds, same nodes",
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
