"""Checks final math answers by value, on math-verify's parsing and comparison.

Layout: ``reading`` finds the final answer in a transcript (the one answer reader);
``parsing`` turns an answer's text into a value with math-verify's LaTeX extraction and
parser; ``comparing`` decides equality with math-verify's comparison; ``unreferenced``
checks an answer against the problem's own equation; ``checks`` builds verdicts;
``isolation`` runs every check in a checker process so that it is bounded in time.

What math-verify provides: LaTeX and its normalisation (``\\frac``, ``\\left``, ``\\!``,
``\\%``), numbers, fractions, radicals, sets, intervals and unions, tuples, matrices,
equations, inequalities and chains of them, ``\\pm``; equality of values (exact, or to 6
decimal places once a side is a float), of sets in any order, of intervals, of relations (a
flipped or rescaled inequality, an equation solved the same way), of a set and the
inequality that describes it; the unwrapping of ``x = 5`` against ``5``.

Where plait reads or compares differently, on purpose (each has a test):

* The answer is found by ``read_answer`` (boxes, "the answer is", tool output, the whole
  text when it is a bare answer, the last math span, the last number), then parsed alone.
* Plain text is read as the mathematics it means: ``3*x**2 - 2``, ``x^10``, ``9**9**9``
  (right to left), ``1e-3``, ``sqrt(x+1)``, ``log`` natural. A plain-text ``e`` is a
  variable (reasoning-gym names unknowns so); in LaTeX it is Euler's number. (``i`` is a
  variable in both, as in math-verify, whose parser reads only ``I`` as the imaginary unit.)
* ``\\frac{-1 \\pm \\sqrt{13}}{4}``, which math-verify's parser cannot read, is read once
  with each sign: the set of both values.
* Digits separated only by spaces are one number when grouped in thousands (``1 000``) and
  unreadable otherwise (``2 5``); math-verify reads the latter as a sum.
* ``204_5`` is a numeral in base 5: it matches the same number in base 5, or ``204`` with
  the base left implicit, never the number 204 in another base. math-verify drops the base.
* A lone ``a:b`` is a ratio, but one shaped like a clock time (``10:17``) matches only the
  same pair; math-verify reads both as fractions, so ``10:17`` equalled ``20:34``.
* Primes are kept (``E'`` is not ``E``); math-verify's normaliser deletes quotes.
* A degree sign inside a trigonometric function makes an angle (``\\sin 30^\\circ = 1/2``);
  elsewhere it is a unit and dropped. math-verify never converts degrees.
* Units after a value (``5 \\text{ cm}``, ``125 miles``) are set aside; when both sides
  carry units and they differ the verdict is unknown (units are not converted). math-verify
  deletes a fixed list of unit words, including single letters (``3t`` became ``3``); plait
  does not use that list.
* Words (``\\text{odd}``, ``Evelyn``, ``\\text{(C)}``) are compared as words, case aside;
  words against a number is unknown, not refuted.
* An equation is compared with a value only when it states one: an assignment
  (``x = 5``, ``a + b = 5``) or a computation (``2 + 3 = 5``); ``x + 1 = 5`` against ``5``
  is refuted, where math-verify compares any equation's right side.
* ``x = 1, y = 2`` against an unnamed list compares values in written order, not sorted.
* A set matches the inequality that describes it on either side (``x \\in [-2, 7]`` and
  ``-2 \\le x \\le 7``; math-verify's default only when the candidate is the set), and a
  list of inequalities in one variable (``x < 1`` or ``x > 2``) is the union of their sets.
* An ordered pair is not a set: ``(1, 2)`` does not match ``{1, 2}`` (math-verify matches them).
* A reference written as a plain decimal with k >= 3 places is taken as rounded to k places:
  anything within half a unit of its last place matches (``1/3`` matches ``0.333``, ``pi``
  does not match ``3.14``). This follows the reference only.
* Numbers that math-verify finds equal to 6 decimal places must also agree to 3
  significant digits: ``3.2e-22`` is not ``1.76e-22``.
* Symbol names are compared case-insensitively, as math-verify's parser lower-cases them.

Guarantees: untrusted text never reaches ``eval``: plain text is rewritten as LaTeX and
math-verify's plain-expression extraction (SymPy's ``parse_expr``, which evaluates Python)
is not used; the one string SymPy still parses is a number token of math-verify's grammar
(digits), turned into a number by ``sympy.Number``. A value denoting a number of
more than ``MAX_DIGITS`` digits is refused before anything computes it; every check runs in
a checker process within ``TIME_LIMIT`` seconds and ``MEMORY_LIMIT`` bytes; every call
returns a verdict whose message says what was compared, for any input, never an exception.
"""

from __future__ import annotations

from importlib.metadata import version

from verifiers.math import isolation
from verifiers.math.isolation import MEMORY_LIMIT, TIME_LIMIT, CheckerFailed
from verifiers.math.parsing import MAX_DIGITS
from verifiers.math.reading import FoundAnswer, boxed_answer, read_answer
from verifiers.types import Checker, Verdict

CHECKER = Checker("math", f"math-verify {version('math-verify')}, sympy {version('sympy')}")
MAX_TEXT_CHARS = 100_000  # longer texts are refused unread; of a transcript only the tail is read

__all__ = [
    "CHECKER", "MAX_DIGITS", "MAX_TEXT_CHARS", "MEMORY_LIMIT", "TIME_LIMIT", "FoundAnswer", "boxed_answer",
    "equivalent", "extract_equation", "parse_answer", "read_answer", "verify", "verify_unreferenced",
]


def verify(candidate: str | None, reference: str | None) -> Verdict:
    """verified/refuted when both answers can be read and compared; error without a
    candidate; unknown otherwise (the message says which side and why)."""
    if _missing(candidate):
        return Verdict.of("error", "no answer was produced", CHECKER)
    refused = _refused(candidate, "candidate answer") or _refused(reference, "reference answer")
    return Verdict.of("unknown", refused, CHECKER) if refused else _checked("check", candidate, reference)


def equivalent(candidate: str | None, reference: str | None) -> bool:
    """Whether the candidate answer has the reference's value; False when that is not known."""
    return verify(candidate, reference).verified


def verify_unreferenced(problem: str, candidate: str | None, *, from_code: bool) -> Verdict:
    """Without a reference, check the answer against an equation stated in the problem; an
    answer that cannot be checked scores a little when it came from executed code."""
    if _missing(candidate):
        return Verdict.of("error", "no answer was produced", CHECKER)
    refused = _refused(candidate, "candidate answer") or _refused(problem, "problem")
    if refused:
        return Verdict.of("unknown", refused, CHECKER)
    return _checked("check_unreferenced", problem, candidate, bool(from_code))


def parse_answer(text: str | None):
    """The value of a bare answer as a SymPy object, evaluated (``2*3+1`` -> 7), or None when
    it cannot be read as mathematics."""
    return None if _refused(text, "answer") else _called("value_of", text)


def extract_equation(problem: str):
    """The one equation stated in a problem and its unknown, as SymPy objects, or None."""
    return None if _refused(problem, "problem") else _called("extract_equation", problem)


def _missing(text: object) -> bool:
    return text is None or isinstance(text, str) and not text.strip()


def _refused(text: object, role: str) -> str | None:
    """Why a text is refused before any reading, or None."""
    if _missing(text):
        return f"the {role} is empty"
    if not isinstance(text, str):
        return f"the {role} is a {type(text).__name__}, not text"
    if len(text) > MAX_TEXT_CHARS:
        return f"the {role} is longer than {MAX_TEXT_CHARS} characters"
    return None


def _checked(function: str, *args) -> Verdict:
    try:
        return isolation.call(function, *args)
    except CheckerFailed as e:
        return Verdict.of("unknown", str(e), CHECKER)


def _called(function: str, *args):
    try:
        return isolation.call(function, *args)
    except CheckerFailed:
        return None
