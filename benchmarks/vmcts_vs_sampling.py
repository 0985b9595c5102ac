"""VMCTS vs whole-program resampling at equal token budgets (issue 8).

For every specification under benchmarks/data/<language>/ (Dafny and Coq by default; Lean
where `lean` is installed), both arms get the same generated-token budget per spec and the
same real checker and the same engine, a tier of the default config (`large`: Qwen2.5-Coder-1.5B
on llama.cpp); each stops at its first verified program. All specs of a language run
as one batch, so each engine call carries every live spec's samples. Prints a table per
arm (solved, tokens, checker calls) and ends with one JSON object: solved counts, tokens
and seconds per solve, and the ratio of solved counts (VMCTS / resampling).

    python benchmarks/vmcts_vs_sampling.py --tier large --tokens 1024 --languages dafny coq

`--data benchmarks/data/tuning` runs the tuning specs instead: what VMCTS's knobs (`--vmcts
widen_k=2.0 --vmcts feedback=0`) are chosen on, never the reported ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import fields
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.config import default_tiers
from verifiers.programs import EXTENSIONS, verify_program
from workers.engines import make_engine
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.strategies.synthesis import SynthesisConfig
from workers.strategies.vmcts import VMCTS
from workers.types import Budget

DATA = Path(__file__).parent / "data"
SUFFIXES = {language: suffix.lstrip(".") for suffix, language in EXTENSIONS.items()}
CHECKERS = {"dafny": "dafny", "coq": "coqc", "lean": "lean"}
ARMS = ("vmcts", "resample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="large", help="a tier of the default config")
    parser.add_argument("--data", type=Path, default=DATA, help="a directory with one folder of specs per language")
    parser.add_argument("--vmcts", action="append", default=[], metavar="KEY=VALUE", help="a parameter of the VMCTS arm (default: the strategy's), e.g. feedback=0")
    parser.add_argument("--languages", nargs="+", default=["dafny", "coq"], choices=sorted(SUFFIXES))
    parser.add_argument("--tokens", type=int, default=1024, help="generated tokens per spec, each arm")
    parser.add_argument("--program-tokens", type=int, default=128, help="tokens per sampled program / rollout")
    parser.add_argument("--parallel", type=int, default=4, help="samples per spec per engine call")
    parser.add_argument("--check-timeout", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N specs per language")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="both by default; one to finish a run stopped part-way")
    args = parser.parse_args()

    console = Console(stderr=True)
    engine = make_engine(default_tiers()[args.tier].engine_spec())
    began = time.monotonic()
    arms = [arm for arm in ARMS if arm in args.arms]
    rows: dict[str, list[dict]] = {arm: [] for arm in arms}
    knobs = dict(_knob(pair) for pair in args.vmcts)
    tree_knobs = None  # the VMCTS arm's own parameters as it ran: the flags' values or its defaults
    for language in args.languages:
        if shutil.which(CHECKERS[language]) is None:
            console.print(f"skipping {language}: {CHECKERS[language]} is not installed")
            continue
        specs = sorted(args.data.joinpath(language).glob(f"*.{SUFFIXES[language]}"))[: args.limit]
        texts = [p.read_text() for p in specs]
        for arm in arms:
            params = {
                "language": language, "seed": args.seed, "program_tokens": args.program_tokens,
                "parallel": args.parallel, "samples": 4096, "check_timeout": args.check_timeout,
            }  # fmt: skip
            strategy = make_strategy(arm, {**params, **knobs} if arm == "vmcts" else params)
            if arm == "vmcts":
                shared = {f.name for f in fields(SynthesisConfig)}
                tree_knobs = {f.name: getattr(strategy, f.name) for f in fields(VMCTS) if f.name not in shared}
            events: list[dict] = []
            started = time.monotonic()
            with console.status(f"{arm} on {len(specs)} {language} specs"):
                attempts = strategy.run(texts, RunContext(engine, Budget(max_tokens=args.tokens), emit=events.append))
            seconds = time.monotonic() - started
            for path, text, attempt in zip(specs, texts, attempts):
                # Each solution is re-checked from scratch: the arm's word is not taken for it.
                solved = attempt.answer is not None and verify_program(language, attempt.answer, text).verified
                rows[arm].append(
                    {
                        "language": language,
                        "spec": path.stem,
                        "solved": solved,
                        "tokens": attempt.completion_tokens,
                        "checks": attempt.search["checks"],
                        "seconds": round(seconds / len(specs), 2),  # the batch's time, shared out
                    }
                )
            console.print(f"{arm} {language}: {sum(r['solved'] for r in rows[arm][-len(specs):])}/{len(specs)} in {seconds:.0f} s")
            console.file.flush()  # a run of hours shows each arm as it ends

    table = Table(title=f"VMCTS vs resampling, {args.tokens} generated tokens per spec")
    for column in ("spec", *(f"{arm} {what}" for arm in arms for what in ("solved", "tokens", "checks"))):
        table.add_column(column)
    for k, row in enumerate(rows[arms[0]]):
        cells = [f"{row['language']}/{row['spec']}"]
        for arm in arms:
            r = rows[arm][k]
            cells += ["yes" if r["solved"] else "no", str(r["tokens"]), str(r["checks"])]
        table.add_row(*cells)
    console.print(table)

    summary = {
        "name": "vmcts_vs_sampling", "tier": args.tier, "data": str(args.data), "tokens_per_spec": args.tokens,
        "seed": args.seed, "vmcts_params": tree_knobs, "model": engine.info().model_id,
    }  # fmt: skip
    for arm in arms:
        solved = [r for r in rows[arm] if r["solved"]]
        summary[arm] = {
            "specs": len(rows[arm]),
            "solved": len(solved),
            "solved_by_language": {lang: sum(r["solved"] for r in rows[arm] if r["language"] == lang) for lang in args.languages},
            "tokens": sum(r["tokens"] for r in rows[arm]),
            "tokens_per_solve": round(sum(r["tokens"] for r in rows[arm]) / len(solved)) if solved else None,
            "seconds_per_solve": round(sum(r["seconds"] for r in rows[arm]) / len(solved), 1) if solved else None,
            "checks": sum(r["checks"] for r in rows[arm]),
            "solved_specs": [f"{r['language']}/{r['spec']}" for r in solved],
        }
    base = summary["resample"]["solved"] if len(arms) == len(ARMS) else None
    summary["ratio"] = round(summary["vmcts"]["solved"] / base, 3) if base else None
    summary["ratio_of"] = "specs solved by VMCTS / by resampling at the same token budget (None: resampling solved none)"
    summary["seconds"] = round(time.monotonic() - began, 1)
    engine.close()
    print(json.dumps(summary))


def _knob(pair: str) -> tuple[str, object]:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        raise SystemExit(f"--vmcts {pair!r} must look like key=value, e.g. --vmcts widen_k=2.0")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


if __name__ == "__main__":
    main()
