"""Per-check time of the program checkers run directly (how plait ran them before the sandbox:
the parent's whole environment, no limits, network on) against the same checks through
tools.sandbox.run_command, on the benchmark problems' good and bad solutions.

For Dafny a third arm, `warm`, sends the same checks to the DafnyServer sessions plait keeps
running in the sandbox (verifiers.dafny), which skips mono's start-up per check.

The arms run in one process on the same prepared texts and command lines, interleaved (the
order rotates every repetition). Prints a line per language and, last, one JSON object:
ratio = total sandboxed seconds / total direct seconds; each language's ratio, median seconds
per check and, for Dafny, warm_ratio = sandboxed seconds / warm seconds alongside, and how
many checks got the same verdict every way.

    python benchmarks/checker_timing.py [--reps 3] [--languages dafny coq lean]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.sandbox import isolation_available  # noqa: E402
from verifiers.coq import COQ  # noqa: E402
from verifiers.dafny import DAFNY, _warm_pool  # noqa: E402
from verifiers.lean import LEAN  # noqa: E402
from verifiers.programs import Candidate, ProgramLanguage, Run, mask  # noqa: E402
from verifiers.types import Checker  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SUFFIX = {"dafny": "dfy", "coq": "v", "lean": "lean"}
TIMEOUT = 60.0


def direct(argv: list[str], filename: str, text: str, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="plait-verify-") as scratch:
        Path(scratch, filename).write_text(text)
        proc = subprocess.run([*argv, filename], cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=os.environ, timeout=timeout, check=False)
        return Run(proc.returncode, proc.stdout)


def as_run(result) -> Run:
    return Run(result.exit_code, result.stdout + result.stderr)


def measure(language: ProgramLanguage, reps: int) -> dict | None:
    tool = language.toolchain()
    if tool is None:
        return None
    argv = language.command(tool, TIMEOUT)
    warm = language is DAFNY and _warm_pool(tool) is not None  # started (and self-tested) before timing
    times: dict[str, list[float]] = {arm: [] for arm in ("direct", "sandboxed", *(("warm",) if warm else ()))}
    same = checks = 0
    for path in sorted((DATA / language.name / "solutions").glob(f"*.{SUFFIX[language.name]}")):
        source = path.read_text()
        spec = (DATA / language.name / f"{path.name.split('.')[0]}.{SUFFIX[language.name]}").read_text()
        c = Candidate(source, mask(source, language.syntax), spec, False, TIMEOUT, Checker(language.name, tool.version))
        prepared = language.prepare(c)
        arms = {
            "direct": lambda: direct(argv, language.filename, prepared.text, TIMEOUT + language.grace),
            # The checker's CLI in the sandbox, as every language runs it (Dafny's own run goes warm).
            "sandboxed": lambda: as_run(ProgramLanguage.run(language, tool, prepared, TIMEOUT)),
        }
        if warm:
            arms["warm"] = lambda: as_run(language.run(tool, prepared, TIMEOUT))
        verdicts = {}
        for rep in range(reps):
            order = list(arms)[rep % len(arms) :] + list(arms)[: rep % len(arms)]
            for arm in order:
                start = time.perf_counter()
                run = arms[arm]()
                times[arm].append(time.perf_counter() - start)
                verdicts[arm] = language.judge(c, prepared, run).status
        checks += 1
        same += len(set(verdicts.values())) == 1
    total = {arm: sum(t) for arm, t in times.items()}
    return {
        "checks": checks * reps,
        "same_verdict": f"{same}/{checks}",
        **{f"median_{arm}_s": round(statistics.median(t), 4) for arm, t in times.items()},
        "ratio": round(total["sandboxed"] / total["direct"], 4),
        **({"warm_ratio": round(total["sandboxed"] / total["warm"], 4)} if warm else {}),
        "totals": total,
    }



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--languages", nargs="+", default=["dafny", "coq", "lean"], choices=list(SUFFIX))
    args = parser.parse_args()
    languages = {"dafny": DAFNY, "coq": COQ, "lean": LEAN}
    results, direct_total, sandboxed_total = {}, 0.0, 0.0
    for name in args.languages:
        found = measure(languages[name], args.reps)
        if found is None:
            print(f"{name}: not installed, skipped")
            continue
        totals = found.pop("totals")
        direct_total += totals["direct"]
        sandboxed_total += totals["sandboxed"]
        results[name] = found
        print(f"{name}: {json.dumps(found)}")
    ratio = round(sandboxed_total / direct_total, 4) if direct_total else None
    print(json.dumps({"name": "checker_timing", "ratio": ratio, "isolation": isolation_available(), "reps": args.reps, **results}))


if __name__ == "__main__":
    main()
