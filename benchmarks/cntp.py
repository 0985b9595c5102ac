"""Cautious next-token prediction vs plain decoding (issue 9): accuracy and tokens.

Problems: the `reasoning-gym` set of benchmarks/accuracy.py (fixed seed). Both arms run the
same per-sample method (PAL by default) on one engine of a tier of the default config (`large`:
CNTP's rounds against llama-server; `small`: inside plait's decode loop), batched, greedy
unless --temperature is given; a cautious arm switches CNTP on through the strategy's
`cautious_entropy` parameter (trials at steps whose next-token entropy is above the
threshold in nats; --trials and --span apply). Several comma-separated --entropy values give
one cautious arm each (to choose a threshold on other seeds than the ones reported). Tokens are reported as
output tokens and as computed tokens (output + every trial token: the kept trial is computed
again as output), since CNTP buys
its accuracy with extra compute. Ends with one JSON object: the accuracy of each arm, the
ratio of accuracies and the ratio of computed tokens (first cautious arm / plain).

    python benchmarks/cntp.py --seed 99 --per-task 4 --entropy 0.5,1.0,2.0    # choose
    python benchmarks/cntp.py --per-task 13 --entropy 1.0                     # report
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from rich.console import Console
from phases import Phases

from accuracy import TASKS, correct, load_problems
from orchestrator.config import default_tiers
from workers.engines import make_engine
from workers.engines.options import CautiousSpec
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.types import Budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="large", help="a tier of the default config")
    parser.add_argument("--per-task", type=int, default=13, help=f"problems per task ({len(TASKS)} tasks)")
    parser.add_argument("--method", default="pal", choices=("cot", "pal", "tora"))
    parser.add_argument("--max-tokens", type=int, default=384, help="generated tokens per call at most")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--entropy", default="1.0", help="CNTP: entropy thresholds in nats, one cautious arm each")
    parser.add_argument("--trials", type=int, default=4, help="CNTP: trials at the flattest steps")
    parser.add_argument("--span", type=int, default=16, help="CNTP: longest trial in tokens")
    parser.add_argument("--batch", type=int, default=8, help="problems per engine batch")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    console = Console(stderr=True)
    problems = load_problems(list(TASKS), args.per_task, args.seed)
    questions = [p["entry"]["question"] for p in problems]
    references = [str(p["entry"]["answer"]) for p in problems]
    spec = CautiousSpec(0.0, args.trials, args.span)
    engine = make_engine(replace(default_tiers()[args.tier].engine_spec(), cautious=spec))
    thresholds = [float(e) for e in args.entropy.split(",")]
    arms = {"plain": 0.0, **{f"cautious@{e:g}": e for e in thresholds}}
    results = {}
    with Phases(console) as progress:
        for arm, entropy in arms.items():
            params = {"temperature": args.temperature, "seed": args.seed, "max_tokens_per_call": args.max_tokens, "cautious_entropy": entropy}
            bar = progress.add_task(arm, total=len(questions))
            attempts, began = [], time.monotonic()
            for start in range(0, len(questions), args.batch):
                chunk = questions[start : start + args.batch]
                attempts += make_strategy(args.method, params).run(chunk, RunContext(engine, Budget()))
                progress.advance(bar, len(chunk))
            right = sum(correct(a.answer, r) for a, r in zip(attempts, references))
            output = sum(a.completion_tokens for a in attempts)
            steps, branched = (sum(a.decode.get(k, 0) for a in attempts) for k in ("cautious_steps", "cautious_branched"))
            results[arm] = {
                "accuracy": round(right / len(questions), 4),
                "correct": right,
                "output_tokens": output,
                "computed_tokens": output + sum(a.trial_tokens for a in attempts),
                "branch_rate": round(branched / steps, 4) if steps else 0.0,
                "seconds": round(time.monotonic() - began, 1),
            }
            console.print(f"{arm}: {right}/{len(questions)} correct, {results[arm]}")

    engine.close()
    plain, cautious = results["plain"], results[f"cautious@{thresholds[0]:g}"]
    print(
        json.dumps(
            {
                "name": "cntp",
                "tier": args.tier,
                "model": engine.info().model_id,
                "seed": args.seed,
                "problems": len(questions),
                "method": args.method,
                "temperature": args.temperature,
                "cautious": {"max_trials": spec.max_trials, "span_tokens": spec.span_tokens, "entropy": thresholds},
                "arms": results,
                "ratio": round(cautious["accuracy"] / plain["accuracy"], 3) if plain["accuracy"] else None,
                "ratio_of": f"cautious (entropy {thresholds[0]:g}) / plain accuracy (None: plain scored 0)",
                "compute_ratio": round(cautious["computed_tokens"] / plain["computed_tokens"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
