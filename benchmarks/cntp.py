"""Cautious next-token prediction vs plain decoding (issue 9): accuracy and tokens.

Problems: the `reasoning-gym` set of benchmarks/accuracy.py (fixed seed). Both arms run the
same per-sample method (PAL by default: the best of the embedded model's methods here) on one
engine, batched, greedy unless --temperature is given; the cautious arm switches CNTP on
through the strategy's `cautious_entropy` parameter (trials at steps whose next-token
entropy is above --entropy nats; the engine's --trials and --span apply). Tokens are reported as
output tokens and as computed tokens (output + every trial token: the kept trial is computed
again as output), since CNTP buys
its accuracy with extra compute. Ends with one JSON object: the accuracy of each arm, the
ratio of accuracies and the ratio of computed tokens (cautious / plain).

    python benchmarks/cntp.py --per-task 13 --method pal --entropy 2.0
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.progress import Progress

from accuracy import TASKS, load_problems
from verifiers import math as math_verifier
from workers.engines.options import CautiousSpec
from workers.engines.transformers_engine import TransformersEngine
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.types import Budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-task", type=int, default=13, help=f"problems per task ({len(TASKS)} tasks)")
    parser.add_argument("--method", default="pal", choices=("cot", "pal", "tora"))
    parser.add_argument("--max-tokens", type=int, default=96, help="generated tokens per call at most")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--entropy", type=float, default=2.0, help="CNTP: entropy threshold in nats")
    parser.add_argument("--trials", type=int, default=4, help="CNTP: trials at the flattest steps")
    parser.add_argument("--span", type=int, default=16, help="CNTP: longest trial in tokens")
    parser.add_argument("--batch", type=int, default=13, help="problems per engine batch")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    console = Console(stderr=True)
    problems = load_problems(list(TASKS), args.per_task, args.seed)
    questions = [p["entry"]["question"] for p in problems]
    references = [str(p["entry"]["answer"]) for p in problems]
    spec = CautiousSpec(0.0, args.trials, args.span)
    engine = TransformersEngine(max_batch=64, cautious=spec)
    arms = {"plain": 0.0, "cautious": args.entropy}
    results = {}
    with Progress(console=console) as progress:
        for arm, entropy in arms.items():
            params = {"temperature": args.temperature, "seed": args.seed, "max_tokens_per_call": args.max_tokens, "cautious_entropy": entropy}
            bar = progress.add_task(arm, total=len(questions))
            attempts, began = [], time.monotonic()
            for start in range(0, len(questions), args.batch):
                chunk = questions[start : start + args.batch]
                attempts += make_strategy(args.method, params).run(chunk, RunContext(engine, Budget()))
                progress.advance(bar, len(chunk))
            correct = sum(a.answer is not None and math_verifier.verify(a.answer, r).verified for a, r in zip(attempts, references))
            output = sum(a.completion_tokens for a in attempts)
            steps, branched = (sum(a.decode.get(k, 0) for a in attempts) for k in ("cautious_steps", "cautious_branched"))
            results[arm] = {
                "accuracy": round(correct / len(questions), 4),
                "correct": correct,
                "output_tokens": output,
                "computed_tokens": output + sum(a.trial_tokens for a in attempts),
                "branch_rate": round(branched / steps, 4) if steps else 0.0,
                "seconds": round(time.monotonic() - began, 1),
            }
            console.print(f"{arm}: {correct}/{len(questions)} correct, {results[arm]}")

    plain, cautious = results["plain"], results["cautious"]
    print(
        json.dumps(
            {
                "name": "cntp",
                "problems": len(questions),
                "method": args.method,
                "temperature": args.temperature,
                "cautious": {**spec.to_dict(), "entropy": args.entropy},
                "arms": results,
                "ratio": round(cautious["accuracy"] / plain["accuracy"], 3) if plain["accuracy"] else None,
                "ratio_of": "cautious / plain accuracy (None: plain scored 0)",
                "compute_ratio": round(cautious["computed_tokens"] / plain["computed_tokens"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
