"""Attention sinks vs the full KV cache on long generations (issue 9): memory and tokens/s
against sequence length.

One row, greedy, generating exactly L tokens for each L in --lengths, on one engine with the
prefix cache off: the full cache keeps every token (its KV grows with L and each step attends
to all of it), the sinks arm keeps --sinks first tokens plus a window of --window recent ones.
The prompt asks the model to count, a text it keeps producing for thousands of tokens, so
neither arm stops early. KV memory is the widest cache the decode loop held (slots per row x
bytes per slot, from the model's KV layout); process peak RSS is printed too. The sinks arm
also runs past the model's context (by 1024 tokens unless told), which the full cache cannot.

Ends with one JSON object: per length and arm, tokens/s and KV MiB, and at the longest common
length the ratios sinks / full of tokens per second and of KV memory.

    python benchmarks/long_trajectory.py --lengths 512,1024,2048,4096
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from rich.console import Console
from phases import Phases
from rich.table import Table

from workers.engines.options import SinkSpec
from workers.engines.base import SamplingParams
from workers.engines.transformers_engine import TransformersEngine
from workers.kvcache import CacheSpec

PROMPT = "Count from 1 to 100000: 1, 2, 3, 4, 5,"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="512,1024,2048,4096", help="generated tokens per run, comma-separated")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=508)
    parser.add_argument("--evict", type=int, default=128)
    parser.add_argument("--past-context", type=int, default=-1, help="sinks arm only: also generate this many tokens (-1: the model's context + 1024; 0: skip)")
    args = parser.parse_args()
    lengths = sorted(int(n) for n in args.lengths.split(","))

    console = Console(stderr=True)
    engine = TransformersEngine(kv_cache=CacheSpec(backend="off"))
    layout, context = engine.info().kv_layout, engine.info().context_length
    slot_bytes = 2 * layout.layers * layout.kv_heads * layout.head_dim * 4  # keys and values, float32
    arms = {"full": SinkSpec(), "sinks": SinkSpec(args.sinks, args.window, args.evict)}
    engine.generate([PROMPT], SamplingParams(max_tokens=4))  # warm-up
    runs = [(n, arm) for n in lengths for arm in arms]
    past = context + 1024 if args.past_context < 0 else args.past_context
    if past:
        runs.append((past, "sinks"))

    rows: dict[int, dict[str, dict]] = {}
    with Phases(console) as progress:
        bar = progress.add_task("runs", total=sum(n for n, _ in runs))
        for n, arm in runs:
            engine.sinks = arms[arm]
            started = time.perf_counter()
            ((completion,),) = engine.generate([PROMPT], SamplingParams(max_tokens=n))
            seconds = time.perf_counter() - started
            rows.setdefault(n, {})[arm] = {
                "tokens": completion.completion_tokens,
                "finish": completion.finish_reason,
                "tokens_per_second": round(completion.completion_tokens / seconds, 2),
                # Without sinks the cache holds every token; with them, at most its peak.
                "kv_mib": round(completion.decode.get("sinks_peak_cache_tokens", completion.prompt_tokens + completion.completion_tokens) * slot_bytes / 2**20, 2),
                "compactions": completion.decode.get("sinks_compactions", 0),
            }
            progress.advance(bar, n)

    table = Table(title=f"{engine.info().model_id}, context {context}: tokens/s and KV MiB per generated length")
    for column in ("tokens", *(f"{arm} {what}" for arm in arms for what in ("tok/s", "KV MiB"))):
        table.add_column(column, justify="right")
    for n, by_arm in rows.items():
        table.add_row(str(n), *(f"{by_arm[a][k]}" if a in by_arm else "-" for a in arms for k in ("tokens_per_second", "kv_mib")))
    console.print(table)
    console.print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    longest = max(n for n, by_arm in rows.items() if len(by_arm) == len(arms))
    full, sinks = rows[longest]["full"], rows[longest]["sinks"]
    print(
        json.dumps(
            {
                "name": "long_trajectory",
                "model": engine.info().model_id,
                "context_length": context,
                "sinks": arms["sinks"].to_dict(),
                "runs": {str(n): by_arm for n, by_arm in rows.items()},
                "ratio": round(sinks["tokens_per_second"] / full["tokens_per_second"], 3),
                "ratio_of": f"sinks / full cache tokens per second at {longest} generated tokens",
                "memory_ratio": round(sinks["kv_mib"] / full["kv_mib"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
