"""How often plait's math verifier agrees with math-verify's own test suite.

PATH is a local checkout of huggingface/Math-Verify (or its ``tests/`` folder); it is not
shipped with plait. The script reads the test files without running them: every
``@pytest.mark.parametrize`` case with a gold answer, a prediction and an expected 0/1
becomes ``verify(candidate=prediction, reference=gold)``. A case whose values are not
literals (computed in the test file) is skipped and counted.

Outcomes: agreement (``verified`` where 1 is expected, ``refuted`` where 0 is), false
acceptance (``verified`` where 0 is expected), false refutation (``refuted`` where 1 is
expected), abstention (``unknown`` or ``error``), crash (``verify`` raised). Agreement is
over the measured cases: all cases but the conventions below. Last line: one JSON object.

    git clone https://github.com/huggingface/Math-Verify /tmp/math-verify
    python benchmarks/verifier_agreement.py /tmp/math-verify

Conventions: cases whose expectation follows a choice of math-verify's or of its test,
not the mathematics; plait's verdict on them is still printed and counted apart.

* ``strict=False`` cases: renamed variables match (``f(x)`` = ``f(y)``); plait is always strict.
* ``allow_set_relation_comp=False`` cases expecting 0: a set does not match the inequality
  describing it unless a flag is set; plait always compares them.
* ``precision`` below 6 expecting 1 (``0.33`` = 1/3 at 2 places): the test rounds floats to
  fewer places than math-verify's default of 6, which plait keeps (a reference written as a
  decimal with 3 or more places sets its own rounding).
* Decimal commas (``1000,99`` = 1000.99, ``1,22`` = 1.22, ``2,74``): plait reads a comma
  between digits as a list separator unless it groups thousands (or follows a lone 0,
  as math-verify's parser does).
* Inline ``$ ... $`` spanning lines expecting 0 (``Answer $ \\n 9 \\n $``): the test limits
  extraction to LaTeX, where inline math cannot span lines; plait reads the 9.
* ``(1,3)`` = ``{1,3}``: plait does not match an ordered pair with a set.
* ``1 - 1/e`` = ``1 + 1/e`` (``\\mathrm{e}``) expecting 1: the two values differ.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from verifiers import math as math_verifier

OUTCOMES = ("agree", "false_acceptance", "false_refutation", "abstention", "crash")
PLURAL = {"false_acceptance": "false_acceptances", "false_refutation": "false_refutations", "abstention": "abstentions", "crash": "crashes"}
DECIMAL_COMMAS = {("1000.99", "1000,99"), ("1,22", "1.22"), ("2.74", "Soucis : 2,74 $ a..")}
CONVENTIONS = {
    ("$9$", "Answer $ \n 9 \n $"): "inline math spanning lines is not LaTeX to the test",
    ("$9$", "Answer \\( \n 9 \n \\)"): "inline math spanning lines is not LaTeX to the test",
    ("$(1,3)$", "${1,3}$"): "an ordered pair is not a set",
    ("$1 - \\frac{1}{\\mathrm{e}}$", "$1 + \\frac{1}{\\mathrm{e}}$"): "the values differ",
    **{pair: "a decimal comma" for pair in DECIMAL_COMMAS},
}


@dataclass
class Case:
    file: str
    test: str
    gold: str
    pred: str
    expected: bool
    params: dict = field(default_factory=dict)

    def convention(self) -> str | None:
        if self.params.get("strict") is False:
            return "strict=False renames variables"
        if self.params.get("allow_set_relation_comp") is False and not self.expected:
            return "allow_set_relation_comp=False keeps a set from its inequality"
        if self.params.get("precision", 6) < 6 and self.expected:
            return f"precision={self.params['precision']} rounds floats to fewer places"
        return CONVENTIONS.get((self.gold, self.pred))


def load_cases(path: Path) -> tuple[list[Case], Counter]:
    """Every literal (gold, pred, expected) case of the suite, and how many were skipped per file."""
    tests = path / "tests" if (path / "tests").is_dir() else path
    cases, skipped = [], Counter()
    for file in sorted(tests.glob("test_*.py")):
        for function in ast.walk(ast.parse(file.read_text())):
            if isinstance(function, ast.FunctionDef):
                for names, rows in _parametrized(function):
                    for row in rows:
                        case = _case(file.name, function.name, names, row)
                        if case is None:
                            skipped[file.name] += 1
                        else:
                            cases.append(case)
    return cases, skipped


def _parametrized(function: ast.FunctionDef):
    """(argument names, case rows) of each parametrize decorator over gold and pred."""
    for decorator in function.decorator_list:
        if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"
                and len(decorator.args) == 2):
            continue
        names = ast.literal_eval(decorator.args[0])
        names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
        if {"gold", "pred"} <= set(names) and {"expected", "result"} & set(names):
            yield names, decorator.args[1].elts


def _case(file: str, test: str, names: list[str], row: ast.expr) -> Case | None:
    try:
        values = dict(zip(names, ast.literal_eval(row)))
    except (ValueError, TypeError, SyntaxError):  # a value computed in the test file
        return None
    expected = values.pop("expected", values.pop("result", None))
    return Case(file, test, values.pop("gold"), values.pop("pred"), bool(expected), values)


def outcome(case: Case) -> tuple[str, str]:
    try:
        verdict = math_verifier.verify(case.pred, case.gold)
    except Exception as e:  # the point of counting crashes
        return "crash", f"{type(e).__name__}: {e}"
    if verdict.status == "verified":
        return ("agree" if case.expected else "false_acceptance"), verdict.message
    if verdict.status == "refuted":
        return ("false_refutation" if case.expected else "agree"), verdict.message
    return "abstention", verdict.message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a checkout of huggingface/Math-Verify, or its tests/ folder")
    parser.add_argument("--quiet", action="store_true", help="do not list the disagreements")
    args = parser.parse_args()
    cases, skipped = load_cases(args.path)
    if not cases:
        raise SystemExit(f"no test cases found under {args.path}")

    per_file: dict[str, Counter] = {}
    conventions: Counter = Counter()
    for case in cases:
        kind, message = outcome(case)
        reason = case.convention()
        counts = per_file.setdefault(case.file, Counter())
        if reason:
            conventions[kind] += 1
            counts["conventions"] += 1
        else:
            counts[kind] += 1
        if kind != "agree" and not args.quiet:
            tag = f"convention ({reason})" if reason else kind
            print(f"{case.file}::{case.test} {tag}: pred={_short(case.pred)} gold={_short(case.gold)} -> {message[:160]}")

    print(f"\n{'file':24} {'cases':>5} {'agreement':>9} {'FA':>3} {'FR':>3} {'abst':>4} {'crash':>5} {'conv':>4} {'skip':>4}")
    for file, c in per_file.items():
        measured = sum(c[k] for k in OUTCOMES)
        print(f"{file:24} {measured:5} {c['agree'] / max(measured, 1):9.1%} {c['false_acceptance']:3} {c['false_refutation']:3} "
              f"{c['abstention']:4} {c['crash']:5} {c['conventions']:4} {skipped[file]:4}")
    total = sum((c for c in per_file.values()), Counter())
    measured = sum(total[k] for k in OUTCOMES)
    summary = {
        "name": "verifier_agreement",
        "cases": measured,
        "agreement": round(total["agree"] / measured, 4),
        **{PLURAL.get(k, k): total[k] for k in OUTCOMES},
        "conventions": sum(conventions.values()),
        "convention_outcomes": dict(conventions),
        "skipped": sum(skipped.values()),
        "per_file": {f: {PLURAL.get(k, k): c[k] for k in (*OUTCOMES, "conventions")} for f, c in per_file.items()},
    }
    print(json.dumps(summary))


def _short(text: str, limit: int = 70) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[:limit] + "...")


if __name__ == "__main__":
    main()
