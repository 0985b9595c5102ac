"""The checks themselves, as run inside the checker process (see ``isolation``): each turns
texts into a Verdict, or a value, and never raises for any text."""

from __future__ import annotations

import sympy

from verifiers.math import CHECKER
from verifiers.math.comparing import Incomparable, same
from verifiers.math.parsing import Answer, Unreadable, read_value
from verifiers.math.reading import in_latex, read_answer
from verifiers.math.unreferenced import extract_equation, satisfies, solutions
from verifiers.types import Verdict

UNREFERENCED_CODE_SCORE = 0.25


def read(text: str) -> Answer:
    """The value of a reply or a bare answer: its final answer (see ``read_answer``), read."""
    found = read_answer(text)
    if found.text is None:
        raise Unreadable("no final answer was found in it")
    return read_value(found.text, latex=in_latex(text, found))


def check(candidate: str, reference: str) -> Verdict:
    try:
        ref = read(reference)
    except Unreadable as e:
        return Verdict.of("unknown", f"the reference answer {clip(reference)} could not be read: {e}", CHECKER)
    try:
        cand = read(candidate)
    except Unreadable as e:
        return Verdict.of("unknown", f"the candidate answer {clip(candidate)} could not be read: {e}", CHECKER)
    try:
        if same(cand, ref):
            return Verdict.of("verified", f"{show(cand)} equals the reference {show(ref)}", CHECKER)
    except Incomparable as e:
        return Verdict.of("unknown", f"{show(cand)} and the reference {show(ref)} could not be compared: {e}", CHECKER)
    return Verdict.of("refuted", f"{show(cand)} differs from the reference {show(ref)}", CHECKER)


def check_unreferenced(problem: str, candidate: str, from_code: bool) -> Verdict:
    origin = "the answer came from executed code" if from_code else "the answer did not come from executed code"
    unchecked = UNREFERENCED_CODE_SCORE if from_code else 0.0
    found = extract_equation(problem)
    if found is None:
        return Verdict.of("unknown", f"no equation in one unknown could be checked; {origin}", CHECKER, unchecked)
    eq, sym = found
    stated = clip(f"{sympy.sstr(eq.lhs)} = {sympy.sstr(eq.rhs)}", quote=False)
    try:
        cand = read(candidate)
    except Unreadable as e:
        return Verdict.of("unknown", f"the candidate answer could not be read ({e}), so {stated} was not checked; {origin}", CHECKER, unchecked)
    values = solutions(cand.value) if isinstance(cand.value, sympy.Basic) else None
    if values is None:
        return Verdict.of("unknown", f"{show(cand)} is not a number to substitute into {stated}; {origin}", CHECKER, unchecked)
    for v in values:
        try:
            if not satisfies(eq, sym, v, cand.decimals):
                return Verdict.of("refuted", f"{sym} = {clip(sympy.sstr(v), quote=False)} does not satisfy {stated}", CHECKER)
        except Unreadable as e:
            return Verdict.of("unknown", f"{sym} = {clip(sympy.sstr(v), quote=False)} could not be substituted into {stated} ({e}); {origin}", CHECKER, unchecked)
    roots = ", ".join(clip(sympy.sstr(v), quote=False) for v in values)
    identity = "" if (eq.lhs - eq.rhs).free_symbols else f" (it holds for every {sym})"
    return Verdict.of("verified", f"{sym} = {roots} satisfies {stated}{identity}", CHECKER)


def value_of(text: str):
    """A bare answer's value, evaluated (``2*3+1`` -> 7); None when it cannot be read."""
    try:
        value = read_value(text).value
    except Unreadable:
        return None
    if not isinstance(value, sympy.Basic):
        return None
    try:
        return value.doit()
    except Exception:  # SymPy cannot evaluate some well-formed trees (e.g. an undefined limit)
        return value


CALLS = {f.__name__: f for f in (check, check_unreferenced, value_of, extract_equation)}  # what callers may run


def show(answer: Answer) -> str:
    return clip(sympy.sstr(answer.value) + (f" {answer.unit}" if answer.unit else ""), quote=False)


def clip(text: str, quote: bool = True, limit: int = 80) -> str:
    text = text if len(text) <= limit else text[:limit] + "..."
    return repr(text) if quote else text
