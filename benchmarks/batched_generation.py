"""Batched vs one-by-one greedy generation on the TransformersEngine, in one run.

Both arms decode the same mixed prompts (chat and raw text, different lengths) with the same
parameters; the batch arm sends them in one `generate` call. Reports each arm's wall time,
the speed-up and whether every text came out identical. Last line: one JSON object.

    python benchmarks/batched_generation.py --prompts 4 --max-tokens 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from workers.engines.base import SamplingParams, chat
from workers.engines.transformers_engine import TransformersEngine

PROMPTS = [
    chat(("user", "What is 2+3?")),
    "The capital of France is",
    chat(("user", "Write a Python function that adds two numbers.")),
    chat(("system", "Answer in one word."), ("user", "Name a colour.")),
    chat(("user", "Solve for x: 3*x + 5 = 20. Show your steps.")),
    "def fibonacci(n):",
    chat(("user", "A shop sells 4 notebooks for 14 dollars. How much do 6 notebooks cost?")),
    "Once upon a time",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, len(PROMPTS) + 1))
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    engine = TransformersEngine()
    prompts = PROMPTS[: args.prompts]
    params = SamplingParams(max_tokens=args.max_tokens)
    engine.generate(prompts[:1], SamplingParams(max_tokens=2))  # warm-up outside the timings

    batch_times, single_times, identical = [], [], True
    for _ in range(args.repeats):
        began = time.perf_counter()
        batched = [g[0].text for g in engine.generate(prompts, params)]
        batch_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        single = [engine.generate([p], params)[0][0].text for p in prompts]
        single_times.append(time.perf_counter() - began)
        identical &= batched == single

    batch_s, single_s = statistics.median(batch_times), statistics.median(single_times)
    print(f"batch of {len(prompts)}: {batch_s:.2f} s   one by one: {single_s:.2f} s   identical text: {identical}")
    print(
        json.dumps(
            {
                "name": "batched_generation",
                "prompts": len(prompts),
                "max_tokens": args.max_tokens,
                "batch_seconds": round(batch_s, 3),
                "sequential_seconds": round(single_s, 3),
                "ratio": round(single_s / batch_s, 3),
                "ratio_of": "one-by-one seconds / batched seconds (median of repeats)",
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
