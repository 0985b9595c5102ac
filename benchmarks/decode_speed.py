"""Decode speed of the embedded engines, one sequence at a time vs 8 at once, in one run.

Engines: `large` (Qwen2.5-Coder-1.5B Q4_K_M on plait's llama-server), SmolLM2-135M on the same
llama.cpp runtime (its Q4_1 GGUF), and SmolLM2-135M on TransformersEngine (the same weights,
dequantized to fp32). Each decodes the same 8 prompts greedily, up to `--max-tokens` each
(tokens are counted as generated): one by one, then all 8 in one `generate` call, the arms alternating over `--repeats` rounds. Reports
generated tokens per second for each engine and arm, how many of the 8 greedy texts the
batch kept identical to one-by-one decoding, and the ratios. Run it alone on the machine.

    python benchmarks/decode_speed.py --max-tokens 96 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from rich.console import Console
from rich.table import Table

from workers.engines.base import SamplingParams, chat
from workers.engines.llamacpp import LlamaCppEngine
from workers.engines.transformers_engine import TransformersEngine

PROMPTS = [
    chat(("user", "Explain how a bicycle gear works.")),
    chat(("user", "Write a Python function that checks whether a number is prime, with comments.")),
    chat(("user", "A shop sells 4 notebooks for 14 dollars. How much do 6 notebooks cost? Explain.")),
    chat(("user", "Describe the water cycle for a child.")),
    chat(("user", "Solve for x: 3*x + 5 = 20. Show your steps.")),
    chat(("user", "List five uses of a paperclip and say why each works.")),
    chat(("user", "What is the difference between a list and a tuple in Python?")),
    chat(("user", "Tell a short story about a lighthouse keeper.")),
]


def measure(engine, params: SamplingParams) -> tuple[float, float, list[str], list[str]]:
    began = time.perf_counter()
    single = [engine.generate([p], params)[0][0] for p in PROMPTS]
    single_s = time.perf_counter() - began
    began = time.perf_counter()
    batched = [g[0] for g in engine.generate(PROMPTS, params)]
    batch_s = time.perf_counter() - began
    return (
        sum(c.completion_tokens for c in single) / single_s,
        sum(c.completion_tokens for c in batched) / batch_s,
        [c.text for c in single],
        [c.text for c in batched],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    console = Console(stderr=True)
    with console.status("starting the engines"):
        engines = {
            "large (llama.cpp)": LlamaCppEngine("qwen2.5-coder-1.5b", parallel=len(PROMPTS)),
            "smollm2-135m (llama.cpp)": LlamaCppEngine("smollm2-135m", parallel=len(PROMPTS)),
            "smollm2-135m (transformers)": TransformersEngine(),
        }
    params = SamplingParams(max_tokens=args.max_tokens)
    for engine in engines.values():
        engine.generate(PROMPTS[:1], SamplingParams(max_tokens=4))  # warm-up outside the timings
    speeds: dict[str, dict[str, list[float]]] = {name: {"single": [], "batch": []} for name in engines}
    identical: dict[str, int] = {}
    for round_ in range(args.repeats):
        for name, engine in engines.items():
            with console.status(f"round {round_ + 1}/{args.repeats}: {name}"):
                single, batch, single_texts, batch_texts = measure(engine, params)
            speeds[name]["single"].append(single)
            speeds[name]["batch"].append(batch)
            identical[name] = min(identical.get(name, len(PROMPTS)), sum(a == b for a, b in zip(single_texts, batch_texts)))
    for engine in engines.values():
        engine.close()

    median = {name: {arm: statistics.median(values) for arm, values in arms.items()} for name, arms in speeds.items()}
    table = Table(title=f"greedy, {args.max_tokens} tokens, {len(PROMPTS)} prompts, median of {args.repeats} rounds")
    for column in ("engine", "1 at a time tok/s", f"{len(PROMPTS)} at once tok/s", "ratio", "identical texts"):
        table.add_column(column, justify="right")
    for name, m in median.items():
        table.add_row(name, f"{m['single']:.1f}", f"{m['batch']:.1f}", f"{m['batch'] / m['single']:.2f}", f"{identical[name]}/{len(PROMPTS)}")
    Console().print(table)
    small_llama, small_hf = median["smollm2-135m (llama.cpp)"], median["smollm2-135m (transformers)"]
    print(
        json.dumps(
            {
                "name": "decode_speed",
                "max_tokens": args.max_tokens,
                "prompts": len(PROMPTS),
                "tokens_per_second": {name: {arm: round(v, 2) for arm, v in m.items()} for name, m in median.items()},
                "identical_of_8": identical,
                "parallel_ratio": {name: round(m["batch"] / m["single"], 3) for name, m in median.items()},
                "ratio": round(small_llama["single"] / small_hf["single"], 3),
                "ratio_of": "SmolLM2-135M tokens/s one at a time: llama.cpp / TransformersEngine",
            }
        )
    )


if __name__ == "__main__":
    main()
