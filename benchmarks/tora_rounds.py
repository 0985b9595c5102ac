"""A 4-round ToRA conversation: continuing from the conversation's KV vs re-prefilling every
round, in one run.

Each round sends the ToRA prompt with the conversation so far, decodes up to the end of the
next code block (greedy), runs the program in the sandbox when the model wrote one, and
appends the ```output block. The reuse arm keeps each round's KV (`cache_output`), so the
next round prefills only the tool output and the few tokens past the last full chunk; the
re-prefill arm has the prefix cache off. Each repeat starts the reuse arm from an empty
cache, so its first round is a miss like the other arm's. Reports seconds per conversation,
prompt tokens computed vs loaded, the ratio and whether both arms wrote identical text.
Last line: one JSON object.

    python benchmarks/tora_rounds.py --rounds 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from rich.console import Console

from tools.sandbox import SandboxLimits, run_python
from workers.engines.base import SamplingParams
from workers.engines.transformers_engine import TransformersEngine
from workers.kvcache import CacheSpec, open_prefix_cache
from workers.strategies.base import format_output
from workers.strategies.prompts import OUTPUT_FENCE, TORA_PROMPT
from workers.strategies.tora import CODE_STOPS, pending_program

QUESTION = "A farmer has 17 cows and buys 3 times as many sheep. Then he sells 12 sheep. How many animals does he have?"


def conversation(engine: TransformersEngine, rounds: int, max_tokens: int, reuse: bool) -> tuple[str, int, int]:
    """(transcript, prompt tokens, prompt tokens loaded from the cache)."""
    text, prompt_tokens, loaded = "", 0, 0
    for round_ in range(rounds):
        params = SamplingParams(max_tokens=max_tokens, stop=CODE_STOPS, cache_output=reuse and round_ < rounds - 1)
        ((completion,),) = engine.generate([TORA_PROMPT.prompt(QUESTION, text)], params)
        prompt_tokens += completion.prompt_tokens
        loaded += completion.cached_tokens
        code = pending_program(completion)
        output = format_output(run_python(code, SandboxLimits())) if code else "(no program in this round)"
        text += completion.text.rstrip() + f"\n```\n{OUTPUT_FENCE}\n{output}\n```\n"
    return text, prompt_tokens, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96, help="tokens per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    console = Console(stderr=True)
    engine = TransformersEngine()
    info = engine.info()
    engine.generate(["warm-up"], SamplingParams(max_tokens=1))
    seconds: dict[str, list[float]] = {"reuse": [], "reprefill": []}
    transcripts: dict[str, set[str]] = {"reuse": set(), "reprefill": set()}
    tokens: dict[str, tuple[int, int]] = {}
    for repeat in range(args.repeats):
        for arm in seconds:
            reuse = arm == "reuse"
            engine.prefix_cache = open_prefix_cache(CacheSpec(backend="memory" if reuse else "off"), info.fingerprint, info.kv_layout)
            with console.status(f"{arm}: repeat {repeat + 1}/{args.repeats}"):
                began = time.perf_counter()
                text, prompt_tokens, loaded = conversation(engine, args.rounds, args.max_tokens, reuse)
                seconds[arm].append(time.perf_counter() - began)
            transcripts[arm].add(text)
            tokens[arm] = (prompt_tokens, loaded)

    identical = len(transcripts["reuse"] | transcripts["reprefill"]) == 1
    reuse_s, reprefill_s = statistics.median(seconds["reuse"]), statistics.median(seconds["reprefill"])
    console.print(
        f"{args.rounds} rounds: reuse {reuse_s:.2f} s ({tokens['reuse'][1]} of {tokens['reuse'][0]} prompt tokens loaded)   "
        f"re-prefill {reprefill_s:.2f} s   ratio {reprefill_s / reuse_s:.2f}   identical text: {identical}"
    )
    print(
        json.dumps(
            {
                "name": "tora_rounds",
                "rounds": args.rounds,
                "repeats": args.repeats,
                "prompt_tokens": tokens["reuse"][0],
                "loaded_tokens": tokens["reuse"][1],
                "reuse_seconds": round(reuse_s, 3),
                "reprefill_seconds": round(reprefill_s, 3),
                "ratio": round(reprefill_s / reuse_s, 3),
                "ratio_of": "re-prefill seconds / reuse seconds per conversation (median of repeats)",
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
