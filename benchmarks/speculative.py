"""Speculative decoding with prompt-lookup drafts vs plain decoding (issue 9).

ToRA-style generations: the ToRA few-shot prompt on reasoning-gym problems (the set of
benchmarks/accuracy.py, fixed seed), greedy, one problem at a time (speculation pays most
when a step is latency-bound). Both arms run on one engine with the prefix KV cache off,
alternating per problem; the outputs must be identical. Prints tokens/s per arm, the draft
acceptance rate, and one JSON object with the ratio (speculative / plain tokens per second).

    python benchmarks/speculative.py --problems 8 --max-tokens 160
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.progress import Progress

from accuracy import TASKS, load_problems
from workers.engines.base import SamplingParams
from workers.engines.speculative import SpeculativeSpec
from workers.engines.transformers_engine import TransformersEngine
from workers.kvcache import CacheSpec
from workers.strategies.prompts import TORA_PROMPT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--draft-tokens", type=int, default=4)
    parser.add_argument("--ngram", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    console = Console(stderr=True)
    per_task = -(-args.problems // len(TASKS))
    problems = load_problems(list(TASKS), per_task, args.seed)[: args.problems]
    engine = TransformersEngine(kv_cache=CacheSpec(backend="off"))
    drafts = SpeculativeSpec("prompt_lookup", args.draft_tokens, args.ngram)
    params = SamplingParams(max_tokens=args.max_tokens, stop=("```output",))
    engine.generate([TORA_PROMPT.prompt("What is 1 + 1?")], SamplingParams(max_tokens=4))  # warm-up

    seconds = {"plain": 0.0, "speculative": 0.0}
    tokens = {"plain": 0, "speculative": 0}
    identical, proposed, accepted = 0, 0, 0
    with Progress(console=console) as progress:
        bar = progress.add_task("problems", total=len(problems))
        for k, problem in enumerate(problems):
            prompt = TORA_PROMPT.prompt(problem["entry"]["question"])
            texts = {}
            for arm in (("plain", "speculative") if k % 2 == 0 else ("speculative", "plain")):
                engine.speculative = drafts if arm == "speculative" else SpeculativeSpec()
                started = time.perf_counter()
                ((completion,),) = engine.generate([prompt], params)
                seconds[arm] += time.perf_counter() - started
                tokens[arm] += completion.completion_tokens
                texts[arm] = completion.token_ids
                proposed += completion.decode.get("speculative_drafted", 0)
                accepted += completion.decode.get("speculative_accepted", 0)
            identical += texts["plain"] == texts["speculative"]
            progress.advance(bar)

    rate = {arm: tokens[arm] / seconds[arm] for arm in seconds}
    acceptance = accepted / proposed if proposed else 0.0
    console.print(
        f"plain {rate['plain']:.1f} tok/s, speculative {rate['speculative']:.1f} tok/s; "
        f"drafts accepted {accepted}/{proposed} ({acceptance:.0%}); identical {identical}/{len(problems)}"
    )
    print(
        json.dumps(
            {
                "name": "speculative",
                "problems": len(problems),
                "max_tokens": args.max_tokens,
                "draft_tokens": args.draft_tokens,
                "ngram": args.ngram,
                "tokens_per_second": {arm: round(r, 2) for arm, r in rate.items()},
                "seconds": {arm: round(s, 2) for arm, s in seconds.items()},
                "acceptance": round(acceptance, 4),
                "proposed": proposed,
                "accepted": accepted,
                "identical": identical,
                "ratio": round(rate["speculative"] / rate["plain"], 3),
                "ratio_of": "speculative / plain generated tokens per second",
            }
        )
    )


if __name__ == "__main__":
    main()
