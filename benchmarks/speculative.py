"""Speculative decoding with prompt-lookup (n-gram) drafts vs plain decoding, on one tier.

ToRA-style generations (the tier's own ToRA prompt) on reasoning-gym problems (the set of
benchmarks/accuracy.py, fixed seed), greedy. Two engines of the tier are built, the same but
for `speculative` (the prefix KV cache off): on `small` plait's own decode loop drafts from the
prompt; on `large` llama-server does (`--spec-type ngram-simple`). Each `--batch` size runs
both arms over the same problems, `size` prompts per `generate`, the arms alternating per
batch. Reports generated tokens/s per arm and size, the draft acceptance rate where the engine
reports it, and how many greedy texts the two arms share; the last line is one JSON object
whose ratio is speculative / plain tokens/s at the first size. Run it alone on the machine.

    python benchmarks/speculative.py --tier large --problems 8 --batch 1,8 --max-tokens 160
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from rich.console import Console
from phases import Phases
from rich.table import Table

from accuracy import TASKS, load_problems
from orchestrator.config import default_tiers
from workers.engines import make_engine
from workers.engines.base import SamplingParams
from workers.engines.options import SpeculativeSpec
from workers.kvcache import CacheSpec
from workers.strategies.prompts import OUTPUT_FENCE, prompt_set

ARMS = ("plain", "speculative")


def measure(engines: dict, prompts: list, size: int, params: SamplingParams, progress) -> dict:
    """Both arms over `prompts` in batches of `size`, alternating which arm goes first."""
    out = {arm: {"seconds": 0.0, "tokens": 0, "drafted": 0, "accepted": 0, "texts": []} for arm in ARMS}
    bar = progress.add_task(f"batch {size}", total=len(prompts))
    for k, start in enumerate(range(0, len(prompts), size)):
        chunk = prompts[start : start + size]
        for arm in ARMS if k % 2 == 0 else ARMS[::-1]:
            began = time.perf_counter()
            completions = [c for (c,) in engines[arm].generate(chunk, params)]
            row = out[arm]
            row["seconds"] += time.perf_counter() - began
            row["tokens"] += sum(c.completion_tokens for c in completions)
            row["drafted"] += sum(c.decode.get("speculative_drafted", 0) for c in completions)
            row["accepted"] += sum(c.decode.get("speculative_accepted", 0) for c in completions)
            row["texts"] += [c.text for c in completions]
        progress.advance(bar, len(chunk))
    identical = sum(a == b for a, b in zip(out["plain"]["texts"], out["speculative"]["texts"]))
    return {
        "tokens_per_second": {arm: round(out[arm]["tokens"] / out[arm]["seconds"], 2) for arm in ARMS},
        "tokens": {arm: out[arm]["tokens"] for arm in ARMS},
        "acceptance": round(out["speculative"]["accepted"] / out["speculative"]["drafted"], 4) if out["speculative"]["drafted"] else None,
        "identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="large", help="a tier of the default config")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--batch", default="1,8", help="comma-separated prompts per generate call")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--draft-tokens", type=int, default=4)
    parser.add_argument("--ngram", type=int, default=3, help="small only: longest n-gram looked up")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch.split(",")]

    console = Console(stderr=True)
    per_task = -(-args.problems // len(TASKS))
    problems = load_problems(list(TASKS), per_task, args.seed)[: args.problems]
    base = replace(default_tiers()[args.tier].engine_spec(), kv_cache=CacheSpec(backend="off"), parallel=max(sizes))
    drafts = SpeculativeSpec("prompt_lookup", args.draft_tokens, args.ngram)
    engines = {"plain": make_engine(base), "speculative": make_engine(replace(base, speculative=drafts))}
    model = engines["plain"].info().model_id
    tora = prompt_set(model).tora
    prompts = [tora.prompt(p["entry"]["question"]) for p in problems]
    params = SamplingParams(max_tokens=args.max_tokens, stop=(OUTPUT_FENCE,))
    for engine in engines.values():
        engine.generate([tora.prompt("What is 1 + 1?")], SamplingParams(max_tokens=4))  # warm-up: load, start the server

    with Phases(console) as progress:
        by_size = {size: measure(engines, prompts, size, params, progress) for size in sizes}
    for engine in engines.values():
        engine.close()

    table = Table(title=f"{model}, greedy, {len(prompts)} ToRA prompts, {args.max_tokens} tokens, {args.draft_tokens} draft tokens")
    for column in ("batch", "plain tok/s", "speculative tok/s", "ratio", "acceptance", "identical texts"):
        table.add_column(column, justify="right")
    for size, row in by_size.items():
        rate = row["tokens_per_second"]
        row["ratio"] = round(rate["speculative"] / rate["plain"], 3)
        acceptance = "-" if row["acceptance"] is None else f"{row['acceptance']:.0%}"
        table.add_row(str(size), f"{rate['plain']:.1f}", f"{rate['speculative']:.1f}", f"{row['ratio']:.2f}", acceptance, f"{row['identical']}/{len(prompts)}")
    console.print(table)
    print(
        json.dumps(
            {
                "name": "speculative",
                "tier": args.tier,
                "model": model,
                "problems": len(prompts),
                "max_tokens": args.max_tokens,
                "draft_tokens": args.draft_tokens,
                "by_batch": by_size,
                "ratio": by_size[sizes[0]]["ratio"],
                "ratio_of": f"speculative / plain generated tokens per second at batch {sizes[0]}",
            }
        )
    )


if __name__ == "__main__":
    main()
