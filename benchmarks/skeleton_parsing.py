"""How often the planner model writes a parseable skeleton, with and without constrained decoding.

The SGD planner prompt (the one `plan_sgd` gives this model) goes to a tier's engine (default
`large`, Qwen2.5-Coder-1.5B on llama.cpp; `small`, SmolLM2-135M) for problems
from `reasoning-gym` (fixed seed; the tasks of benchmarks/accuracy.py plus multi-part problems
from benchmarks/skeleton_quality.py), greedy, once under the skeleton's JSON schema and once
free. For each output:

- strict: the whole output is JSON that validates against the skeleton schema;
- usable: `parse_skeleton` found a skeleton object (possibly inside other text, possibly
  needing repairs) rather than falling back to one node for want of JSON;
- atomic, nodes, repairs: what the planner decided and how much repairing it took.

Last line: one JSON object with both arms' shares.

    python benchmarks/skeleton_parsing.py --problems 50 --batch 5
"""

from __future__ import annotations

import argparse
import json
import time

import jsonschema
from rich.console import Console
from phases import Phases
from rich.table import Table

from multipart import multi_part_problems
from accuracy import TASKS, load_problems
from orchestrator.config import default_tiers
from planners.sgd import parse_skeleton, planner_prompt, skeleton_schema
from workers.engines import make_engine
from workers.engines.base import SamplingParams

NO_JSON = "the output has no skeleton JSON object"


def grade(text: str, problem: str, schema: dict) -> dict:
    try:
        jsonschema.validate(json.loads(text), schema)
        strict = True
    except (json.JSONDecodeError, jsonschema.ValidationError):
        strict = False
    nodes, reason = parse_skeleton(text, problem)
    return {
        "strict": strict,
        "usable": NO_JSON not in reason,
        "atomic": len(nodes) == 1,
        "nodes": len(nodes),
        "repairs": reason.count(";"),  # every repair is one more '; '-separated note
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="large", help="a tier of the default config")
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    half = args.problems // 2
    single = load_problems(list(TASKS), -(-half // len(TASKS)), args.seed)[:half]
    problems = [p["entry"]["question"] for p in single] + [p.question for p in multi_part_problems(args.problems - half, args.seed)]
    schema = skeleton_schema()
    engine = make_engine(default_tiers()[args.tier].engine_spec())
    prompt = planner_prompt(engine.info().model_id)
    console = Console(stderr=True)
    arms = {"constrained": schema, "free": None}
    rows: dict[str, list[dict]] = {arm: [] for arm in arms}
    seconds: dict[str, float] = {}
    with Phases(console) as progress:
        for arm, constraint in arms.items():
            bar = progress.add_task(arm, total=len(problems))
            params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, json_schema=constraint)
            began = time.perf_counter()
            for start in range(0, len(problems), args.batch):
                chunk = problems[start : start + args.batch]
                outputs = engine.generate([prompt.prompt(p) for p in chunk], params)
                rows[arm] += [grade(group[0].text, p, schema) for p, group in zip(chunk, outputs)]
                progress.advance(bar, len(chunk))
            seconds[arm] = (time.perf_counter() - began) / len(problems)
    engine.close()

    def share(arm: str, key: str) -> float:
        return sum(r[key] for r in rows[arm]) / len(rows[arm])

    table = Table(title=f"SGD planner output of {engine.info().model_id} on {len(problems)} problems (seed {args.seed}, greedy)")
    for column in ("arm", "strict JSON", "usable", "atomic", "mean nodes", "mean repairs", "s/problem"):
        table.add_column(column, justify="right")
    summary = {}
    for arm in arms:
        summary[arm] = {
            "strict": round(share(arm, "strict"), 3),
            "usable": round(share(arm, "usable"), 3),
            "atomic": round(share(arm, "atomic"), 3),
            "mean_nodes": round(share(arm, "nodes"), 2),
            "mean_repairs": round(share(arm, "repairs"), 2),
            "seconds_per_problem": round(seconds[arm], 2),
        }
        s = summary[arm]
        table.add_row(arm, f"{s['strict']:.0%}", f"{s['usable']:.0%}", f"{s['atomic']:.0%}", str(s["mean_nodes"]), str(s["mean_repairs"]), str(s["seconds_per_problem"]))
    console.print(table)
    free_usable = summary["free"]["usable"]
    print(
        json.dumps(
            {
                "name": "skeleton_parsing",
                "tier": args.tier,
                "model": engine.info().model_id,
                "problems": len(problems),
                "seed": args.seed,
                **{f"{arm}_{k}": v for arm in arms for k, v in summary[arm].items()},
                "ratio": round(summary["constrained"]["usable"] / free_usable, 3) if free_usable else None,
                "ratio_of": "usable share constrained / usable share free (None: no free output was usable)",
            }
        )
    )


if __name__ == "__main__":
    main()
