"""KV reuse on the llama.cpp tier, and routing a tier's replicas by prompt prefix, in one run.

1. Time to first token with a long shared prefix (a ~`--prefix-words`-word report): a first
   question about a new report (miss: the server prefills all of it), then a second question
   about the same report (hit: llama-server's prompt cache keeps the prefix, so only the new
   question is prefilled). A 1-token greedy `generate` per arm, `--repeats` reports.
2. Across the rounds of one ToRA conversation (basic_arithmetic problems, which the model
   answers with code): each round resends the transcript so far, and the share of the prompt
   tokens of conversations with tool rounds that the server took from its cache is reported.
3. Replicas: the tier with `--replicas` worker actors (one llama-server each), jobs of
   `--reports` reports x `--questions` questions each, submitted `--concurrency` at a time in
   an interleaved order, once with `replica_routing = "prefix"` and once with
   "least_loaded" (fresh actors each arm, a warm-up job first). Reported per arm: the share
   of prompt tokens served from a server's cache (hit rate), end-to-end seconds, and where
   batches went. Last line: one JSON object, ratio = least_loaded / prefix seconds.

    python benchmarks/prefix_routing.py --reports 4 --questions 3 --replicas 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from rich.console import Console
from phases import Phases
from rich.table import Table

from accuracy import load_problems
from orchestrator.client import Client
from orchestrator.config import Config, SchedulerConfig, default_tiers
from workers.engines import make_engine
from workers.engines.base import SamplingParams, chat
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.types import Budget

FRUITS = ("apples", "pears", "plums", "figs", "quinces", "cherries", "lemons", "apricots")
PLACES = ("the coast", "the hills", "the valley", "the river port", "the north farms")
QUESTIONS = (
    "On which day did {f} first arrive? Answer with the day's number.",
    "How many crates of {f} arrived on the first day they came?",
    "Where did the first crates of {f} come from?",
)


def report(index: int, words: int) -> str:
    """A shipping log no other report shares from its first word on."""
    lines, count, day = [f"Shipping log {index}, warehouse {index * 7 + 3}."], 0, 0
    while count < words:
        day += 1
        fruit, place = FRUITS[(day * (index + 3)) % len(FRUITS)], PLACES[(day + index) % len(PLACES)]
        line = f"Day {day}: {3 + (day * 5 + index) % 17} crates of {fruit} arrived from {place}."
        lines.append(line)
        count += len(line.split())
    return " ".join(lines)


def ttft(engine, prompt) -> tuple[float, int, int]:
    began = time.perf_counter()
    ((completion,),) = engine.generate([prompt], SamplingParams(max_tokens=1))
    return time.perf_counter() - began, completion.prompt_tokens, completion.cached_tokens


def cache_arms(args, console) -> dict:
    engine = make_engine(replace(default_tiers()[args.tier].engine_spec(), parallel=1))
    engine.generate(["warm-up"], SamplingParams(max_tokens=1))
    rows: dict[str, list] = {"miss": [], "hit": []}
    with console.status(f"TTFT: {args.repeats} reports, miss then hit"):
        for i in range(args.repeats):
            doc = report(1000 + i, args.prefix_words)
            for arm, question in (("miss", "How many crates of apples arrived in total?"), ("hit", "Where did the plums come from?")):
                rows[arm].append(ttft(engine, chat(("user", f"{doc}\n\n{question}"))))
    # Arithmetic the model computes with code: conversations of several rounds.
    problems = load_problems(["basic_arithmetic"], args.tora_problems, args.seed)
    with console.status(f"ToRA rounds: {len(problems)} problems"):
        attempts = make_strategy("tora", {}).run([p["entry"]["question"] for p in problems], RunContext(engine, Budget()))
    engine.close()
    rounds = [a for a in attempts if a.tool_calls]
    return {
        "prompt_tokens": statistics.median(r[1] for r in rows["hit"]),
        "ttft_seconds": {arm: round(statistics.median(r[0] for r in rs), 3) for arm, rs in rows.items()},
        "cached_tokens": {arm: statistics.median(r[2] for r in rs) for arm, rs in rows.items()},
        "tora": {
            "problems": len(attempts),
            "with_tool_rounds": len(rounds),
            "prompt_tokens": sum(a.prompt_tokens for a in rounds),
            "cached_tokens": sum(a.cached_tokens for a in rounds),
        },
    }


def routing_arm(args, policy: str, jobs: list[dict], progress) -> dict:
    tier = default_tiers()[args.tier].model_copy(update={"replicas": args.replicas, "parallel": args.parallel, "num_cpus": 0})
    config = Config(tiers={args.tier: tier}, routing={1: args.tier}, scheduler=SchedulerConfig(replica_routing=policy))
    with Client(config=config, discover=False) as client:
        client.solve({**jobs[0], "problem": f"{report(999, 60)}\n\nHow many crates of apples arrived in total?"})  # warm-up
        bar = progress.add_task(policy, total=len(jobs))
        began = time.monotonic()

        def solve(job):
            result = client.solve(job)
            progress.advance(bar)
            return result

        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(solve, jobs))
        seconds = time.monotonic() - began
        routed = client.pool.routing()[args.tier]
    attempts = [n.attempt for r in results for n in r.nodes if n.attempt is not None]
    prompt = sum(a.prompt_tokens for a in attempts)
    cached = sum(a.cached_tokens for a in attempts)
    return {
        "seconds": round(seconds, 1),
        "hit_rate": round(cached / prompt, 4) if prompt else 0.0,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "succeeded": sum(r.status == "succeeded" for r in results),
        "routed": routed,
        "replica_of_job": [r.nodes[0].worker.get("replica") for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="large", help="a llamacpp tier of the default config")
    parser.add_argument("--prefix-words", type=int, default=700, help="words of each report (~1.4 tokens a word)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tora-problems", type=int, default=6)
    parser.add_argument("--reports", type=int, default=4)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=2, help="server slots per replica")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs in flight")
    parser.add_argument("--max-tokens", type=int, default=256, help="generated-token budget per job")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    console = Console(stderr=True)

    cache = cache_arms(args, console)
    docs = [report(i, args.prefix_words) for i in range(args.reports)]
    # Interleaved: the questions about one report are never submitted back to back.
    jobs = [
        {"problem": f"{docs[d]}\n\n{QUESTIONS[q % len(QUESTIONS)].format(f=FRUITS[(d + q) % len(FRUITS)])}", "strategy": {"name": "cot"}, "budget": {"max_tokens": args.max_tokens}}
        for q in range(args.questions)
        for d in range(args.reports)
    ]
    with Phases(console) as progress:
        arms = {policy: routing_arm(args, policy, jobs, progress) for policy in ("prefix", "least_loaded")}

    table = Table(title=f"{len(jobs)} jobs ({args.reports} reports x {args.questions} questions), {args.replicas} replicas of {args.tier}, {args.concurrency} in flight")
    for column in ("routing", "seconds", "prompt tokens from cache", "batches by prefix / by load"):
        table.add_column(column, justify="right")
    for policy, arm in arms.items():
        table.add_row(policy, f"{arm['seconds']:.1f}", f"{arm['hit_rate']:.0%}", f"{arm['routed']['prefix']} / {arm['routed']['least_loaded']}")
    console.print(f"TTFT miss {cache['ttft_seconds']['miss']:.2f} s, hit {cache['ttft_seconds']['hit']:.2f} s ({cache['prompt_tokens']} prompt tokens, {cache['cached_tokens']['hit']} from cache)")
    console.print(table)
    tora = cache["tora"]
    print(
        json.dumps(
            {
                "name": "prefix_routing",
                "tier": args.tier,
                "cache": cache,
                "ttft_ratio": round(cache["ttft_seconds"]["miss"] / cache["ttft_seconds"]["hit"], 3),
                "tora_cached_share": round(tora["cached_tokens"] / tora["prompt_tokens"], 4) if tora["prompt_tokens"] else None,
                "jobs": len(jobs),
                "replicas": args.replicas,
                "arms": arms,
                "ratio": round(arms["least_loaded"]["seconds"] / arms["prefix"]["seconds"], 3),
                "ratio_of": "end-to-end seconds, least_loaded / prefix replica routing",
            }
        )
    )


if __name__ == "__main__":
    main()
