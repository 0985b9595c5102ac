"""Checks final math answers by value, never by string.

Answers (plain text or LaTeX) are read into SymPy objects: numbers and expressions, ordered
tuples ``(1, 2)`` (returned as Python tuples), sets ``{1, 2}`` (``FiniteSet``), intervals
``[0, 1)`` (``Interval``/``Union``) and equations whose left side is not a lone variable.

Rules, chosen so that a verdict is deterministic and errs towards "not equal":

* Exact values (integers, fractions, radicals, pi...) must be equal exactly: ``3/6 == 1/2``,
  ``sqrt(8) == 2*sqrt(2)``; a fraction need not be reduced, only its value counts.
* As soon as a side holds a decimal, values may differ by 1e-6 relatively (1e-9 absolutely
  near zero): ``1e3 == 1000``, ``pi != 3.14``.
* A reference written as a plain decimal with k >= 3 places is taken as rounded to k places:
  any candidate within half a unit of its last place matches (``1/3`` matches ``0.333``).
  Fewer places are read as exact values, so ``pi`` does not match ``3.14``. This leniency
  follows the reference only: a candidate ``0.333`` does not match a reference ``1/3``.
* A trailing percent sign is dropped (``parse_answer("50%") == 50``); when exactly one side
  carries it, ``50%`` also matches ``0.5``.
* ``1,234`` is a number with a thousands separator; ``1, 234`` and ``1,23`` are sets.
  Bare lists of values are sets; ``(a, b)`` is a point unless an end is infinite, while
  ``[a, b]``, ``[a, b)`` and ``(a, b]`` are intervals. A one-element set equals its element.
* ``x = 5`` and ``The answer is 5`` read as ``5``; the last ``\\boxed{}`` wins.
* A plain-text ``e`` or ``i`` is a variable (reasoning-gym names unknowns that way); in LaTeX
  they are Euler's number and the imaginary unit, as LaTeX readers expect.
* Units are not understood: any word other than a function name makes an answer unreadable.

Untrusted text is never handed to Python's ``eval`` unchecked: plain text reaches SymPy's
``parse_expr`` only with a whitelist of characters and names and no builtins, LaTeX goes
through latex2sympy2_extended (math-verify's parser), both build unevaluated trees, and a
tree is evaluated only after it has been checked to hold nothing but known operations and no
number with more than ``MAX_DIGITS`` digits, so ``9**9**9`` is refused instead of computed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version

import sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy
from latex2sympy2_extended.math_normalization import NormalizationConfig
from sympy.core.parameters import evaluate
from sympy.logic.boolalg import BooleanAtom
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from verifiers.types import Checker, Verdict

CHECKER = Checker("math", f"sympy {sympy.__version__}, math-verify {version('math-verify')}")

MAX_CHARS = 500
MAX_DIGITS = 10_000  # largest integer, in digits, that parsing may build
MAX_SYMBOLIC_EXPONENT = 1_000  # (x+1)^n is cheap to hold but not to expand for larger n
REL_TOL = 1e-6
ABS_TOL = 1e-9
ROUNDED_MIN_DECIMALS = 3
UNREFERENCED_CODE_SCORE = 0.25

_EXACT_TOL = sympy.Float("1e-40")  # exact values are compared at 60 digits
_DPS = 60

_PLAIN_NAMES = {
    "sqrt": sympy.sqrt, "exp": sympy.exp, "log": sympy.log, "ln": sympy.log,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot,
    "sec": sympy.sec, "csc": sympy.csc, "asin": sympy.asin, "acos": sympy.acos,
    "atan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "abs": sympy.Abs, "floor": sympy.floor, "ceil": sympy.ceiling,
    "pi": sympy.pi, "oo": sympy.oo, "inf": sympy.oo, "infinity": sympy.oo,
}
# What parse_expr's generated code calls; no builtins, so nothing else is reachable.
_PLAIN_GLOBALS = {
    "__builtins__": {}, "Integer": sympy.Integer, "Float": sympy.Float,
    "Rational": sympy.Rational, "Symbol": sympy.Symbol, "Add": sympy.Add,
    "Mul": sympy.Mul, "Pow": sympy.Pow, "factorial": sympy.factorial,
}
_PLAIN_TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)
_PLAIN_CHARS = re.compile(r"[0-9A-Za-z_\s+\-*/^().!]+")

_LATEX_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="none", equations=False
)
_LATEX_CONVERSION = ConversionConfig(lowercase_symbols=False)

_ALLOWED_NODES = (
    sympy.Add, sympy.Mul, sympy.Pow, sympy.Number, sympy.NumberSymbol, sympy.Symbol,
    type(sympy.I), sympy.Tuple, sympy.FiniteSet, sympy.Interval, sympy.Union,
    type(sympy.S.EmptySet), sympy.Equality, sympy.UnevaluatedExpr, BooleanAtom,
    sympy.exp, sympy.log, sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc,
    sympy.asin, sympy.acos, sympy.atan, sympy.acot, sympy.sinh, sympy.cosh, sympy.tanh,
    sympy.Abs, sympy.sign, sympy.floor, sympy.ceiling, sympy.factorial, sympy.binomial,
    sympy.Max, sympy.Min, sympy.re, sympy.im,
)

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_MIXED_LATEX = re.compile(r"(-?)(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_MIXED_PLAIN = re.compile(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_ASSIGNMENT = re.compile(r"(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?\s*(?:=|\\in\b)\s*(?P<rhs>[^=]+)", re.S)
_ANSWER_MARKER = re.compile(r"(?i)(?:\banswer(?:\s+is)?\s*[:=]?|####)\s*")
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*\\?%\s*\}|\s+percent)\s*$", re.I)
_SPACING = re.compile(r"\\[,;:! ]|~|\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_EMPTY_SETS = {"\\emptyset", "\\varnothing", "\\{\\}", "{}", "∅"}
_UNICODE = str.maketrans({"−": "-", "–": "-", "×": "*", "÷": "/", "·": "*", "π": "\\pi ", "∞": "\\infty ", "√": "\\sqrt"})


class _Unreadable(ValueError):
    """The text is not an answer this checker can read; the message says why."""


class _NotPlain(Exception):
    """Plain-text parsing failed in a way LaTeX parsing may handle (e.g. ``|x|``)."""


@dataclass(frozen=True)
class _Answer:
    value: object
    decimals: int | None  # places after the point when the answer is a plain decimal
    percent: bool


def parse_answer(text: str):
    """The value of a final answer, or None when it cannot be read (see the module rules)."""
    try:
        return _read(text).value
    except _Unreadable:
        return None


def equivalent(candidate: str, reference: str) -> bool:
    """Whether the candidate answer has the reference's value; False if either is unreadable."""
    return verify(candidate, reference).verified


def verify(candidate: str | None, reference: str) -> Verdict:
    """verified/refuted when both answers can be read, error without a candidate, unknown
    when either side cannot be read (the message says which and why)."""
    if candidate is None or not candidate.strip():
        return Verdict.of("error", "no answer was produced", CHECKER)
    try:
        ref = _read(reference)
    except _Unreadable as e:
        return Verdict.of("unknown", f"the reference answer {_clip(reference)} could not be read: {e}", CHECKER)
    try:
        cand = _read(candidate)
    except _Unreadable as e:
        return Verdict.of("unknown", f"the candidate answer {_clip(candidate)} could not be read: {e}", CHECKER)
    try:
        same = _matches(cand, ref)
    except Exception as e:  # SymPy can fail on exotic values; a checker must still answer
        return Verdict.of("unknown", f"{_show(cand.value)} and {_show(ref.value)} could not be compared: {e}", CHECKER)
    if same:
        return Verdict.of("verified", f"{_show(cand.value)} equals the reference {_show(ref.value)}", CHECKER)
    return Verdict.of("refuted", f"{_show(cand.value)} differs from the reference {_show(ref.value)}", CHECKER)


def verify_unreferenced(problem: str, candidate: str | None, *, from_code: bool) -> Verdict:
    """Without a reference, check the answer against an equation stated in the problem."""
    if candidate is None or not candidate.strip():
        return Verdict.of("error", "no answer was produced", CHECKER)
    origin = "the answer came from executed code" if from_code else "the answer did not come from executed code"
    unchecked = UNREFERENCED_CODE_SCORE if from_code else 0.0
    found = extract_equation(problem)
    if found is None:
        return Verdict.of("unknown", f"no equation in one unknown could be checked; {origin}", CHECKER, unchecked)
    eq, sym = found
    shown = _show_equation(eq)
    try:
        cand = _read(candidate)
    except _Unreadable as e:
        return Verdict.of("unknown", f"the candidate answer could not be read ({e}), so {shown} was not checked; {origin}", CHECKER, unchecked)
    values = _as_values(cand.value)
    if values is None:
        return Verdict.of("unknown", f"{_show(cand.value)} is not a number to substitute into {shown}; {origin}", CHECKER, unchecked)
    for v in values:
        options = [v, v / 100] if cand.percent else [v]
        try:
            if not any(_satisfies(eq, sym, o, cand.decimals) for o in options):
                return Verdict.of("refuted", f"{sym} = {_show(v)} does not satisfy {shown}", CHECKER)
        except _Unreadable as e:
            return Verdict.of("unknown", f"{sym} = {_show(v)} could not be substituted into {shown} ({e}); {origin}", CHECKER, unchecked)
    solutions = ", ".join(_show(v) for v in values)
    identity = "" if (eq.lhs - eq.rhs).free_symbols else f" (it holds for every {sym})"
    return Verdict.of("verified", f"{sym} = {solutions} satisfies {shown}{identity}", CHECKER)


def extract_equation(problem: str) -> tuple[sympy.Eq, sympy.Symbol] | None:
    """The one equation stated in the problem and its unknown, or None if there is no single
    equation in at most one unknown (systems and parametric equations are not checked)."""
    text = problem.translate(_UNICODE)
    spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(text)]
    sources = [s for s in spans if "=" in s] or _plain_equations(text)
    equations = []
    for src in dict.fromkeys(s.strip() for s in sources):
        sides = _split_top(src, "=")
        if len(sides) != 2:
            return None
        try:
            equations.append((_parse_scalar(sides[0]), _parse_scalar(sides[1])))
        except _Unreadable:
            continue
    if len(equations) != 1:
        return None
    lhs, rhs = equations[0]
    if not all(isinstance(side, sympy.Expr) for side in (lhs, rhs)):
        return None
    for letter in _named_unknowns(problem):
        sym = sympy.Symbol(letter)
        # LaTeX reads a lone e or i as a constant; the problem says it is the unknown.
        if letter == "e":
            sides = tuple(side.replace(sympy.exp, lambda a: sym**a).xreplace({sympy.E: sym}) for side in (lhs, rhs))
        elif letter == "i":
            sides = (lhs.xreplace({sympy.I: sym}), rhs.xreplace({sympy.I: sym}))
        else:
            sides = (lhs, rhs)
        free = (sides[0] - sides[1]).free_symbols
        if free <= {sym}:
            return sympy.Eq(*sides, evaluate=False), sym
        if sym in free:
            return None  # other unknowns remain once this one is known
    free = (lhs - rhs).free_symbols
    if len(free) == 1:
        return sympy.Eq(lhs, rhs, evaluate=False), next(iter(free))
    return None


# --- reading answers ---------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _read(text: str) -> _Answer:
    if text is None or not text.strip():
        raise _Unreadable("it is empty")
    if len(text) > MAX_CHARS:
        raise _Unreadable(f"it is longer than {MAX_CHARS} characters")
    s, percent = _final_answer(text)
    if not s:
        raise _Unreadable("it holds no value")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    decimals = None
    if _NUMBER.fullmatch(s) and "." in s and "e" not in s.lower():
        decimals = len(s.split(".")[1])
    try:
        value = _parse_value(s)
    except _Unreadable:
        raise
    except Exception as e:  # SymPy's set, interval and equation constructors reject some values
        raise _Unreadable(f"its parts do not form a value ({e})") from e
    return _Answer(value, decimals, percent)


def _final_answer(text: str) -> tuple[str, bool]:
    """Cut the final answer out of a reply: last box, text after "answer is", math mode, x = ."""
    s = text.translate(_UNICODE).strip()
    boxed = _last_boxed(s)
    if boxed is not None:
        s = boxed
    else:
        markers = list(_ANSWER_MARKER.finditer(s))
        if markers:
            s = s[markers[-1].end():]
        spans = list(_MATH_SPAN.finditer(s))
        if spans:
            s = next(g for g in spans[-1].groups() if g is not None)
        elif re.match(r"\$\s*\d", s):
            s = s[1:]  # a currency sign, not math mode
    s = _SPACING.sub("", s).replace("{,}", ",").strip().rstrip(".").strip()
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s)
    assignment = _ASSIGNMENT.fullmatch(s)
    if assignment:
        s = assignment["rhs"].strip()
    return s, percent


def _last_boxed(s: str) -> str | None:
    start = max(s.rfind("\\boxed{"), s.rfind("\\fbox{"))
    if start < 0:
        return None
    i = s.index("{", start)
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return s[i + 1:j]
    return None


def _parse_value(s: str):
    s = s.strip()
    if s in _EMPTY_SETS:
        return sympy.S.EmptySet
    pieces = _split_top(s, "\\cup")
    if len(pieces) > 1:
        parts = [_parse_value(p) for p in pieces]
        if not all(isinstance(p, sympy.Set) for p in parts):
            raise _Unreadable("a union joins something that is not a set")
        return sympy.Union(*parts)
    for opener, closer in (("\\{", "\\}"), ("{", "}")):
        if s.startswith(opener) and s.endswith(closer) and _wraps(s):
            inner = s[len(opener):-len(closer)]
            if not inner.strip():
                return sympy.S.EmptySet
            return sympy.FiniteSet(*(_parse_item(p) for p in _split_top(inner, ",")))
    if s[:1] in "([" and s[-1:] in ")]" and _wraps(s):
        items = _split_top(s[1:-1], ",")
        if len(items) >= 2:
            values = [_parse_item(p) for p in items]
            infinite = any(v in (sympy.oo, -sympy.oo) for v in values)
            if len(values) == 2 and (s[0] + s[-1] != "()" or infinite):
                return sympy.Interval(values[0], values[1], s[0] == "(", s[-1] == ")")
            return tuple(values)
    items = _split_top(s, ",")
    if len(items) > 1:
        return sympy.FiniteSet(*(_parse_item(p) for p in items))
    sides = _split_top(s, "=")
    if len(sides) == 2:
        return sympy.Eq(_parse_scalar(sides[0]), _parse_scalar(sides[1]), evaluate=False)
    return _parse_scalar(s)


def _parse_item(s: str):
    """An element of a tuple or set, where "x = 1" also means 1."""
    s = s.strip()
    assignment = _ASSIGNMENT.fullmatch(s)
    return _parse_scalar(assignment["rhs"] if assignment else s)


def _parse_scalar(s: str) -> sympy.Basic:
    """One value: a number or expression (a FiniteSet for LaTeX's \\pm)."""
    s = s.strip()
    if not s:
        raise _Unreadable("a value is missing")
    if _NUMBER.fullmatch(s):
        if re.search(r"[.eE]", s):
            digits = len(re.sub(r"\D", "", s.split("e")[0].split("E")[0]))
            return _checked(sympy.Float(s, max(15, digits + 2)))
        return sympy.Integer(s)
    mixed = _MIXED_LATEX.fullmatch(s) or _MIXED_PLAIN.fullmatch(s)
    if mixed:
        sign, whole, num, den = mixed.groups()
        if int(den) == 0:
            raise _Unreadable("it divides by zero")
        value = sympy.Integer(whole) + sympy.Rational(int(num), int(den))
        return -value if sign else value
    for word in re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", s)):
        if word not in _PLAIN_NAMES:
            raise _Unreadable(f"it contains the word {word!r}, which is not mathematics")
    if not re.search(r"[\\{}]", s):
        try:
            return _checked(_parse_plain(s))
        except _NotPlain:
            pass
    return _checked(_parse_latex(s))


def _parse_plain(s: str):
    if not _PLAIN_CHARS.fullmatch(s) or "__" in s or re.search(r"\.\s*[A-Za-z_]", s):
        raise _NotPlain
    try:
        with evaluate(False):
            return parse_expr(s, local_dict=dict(_PLAIN_NAMES), global_dict=dict(_PLAIN_GLOBALS),
                              transformations=_PLAIN_TRANSFORMS, evaluate=False)
    except Exception as e:  # parse_expr raises anything from SyntaxError to TypeError
        raise _NotPlain from e


def _parse_latex(s: str):
    try:
        with evaluate(False):
            return latex2sympy(s, normalization_config=_LATEX_NORMALIZATION, conversion_config=_LATEX_CONVERSION)
    except Exception as e:  # the ANTLR parser reports bad input as a bare Exception
        raise _Unreadable(f"it is not a mathematical expression ({str(e).splitlines()[0][:80]})") from e


def _checked(tree):
    if not isinstance(tree, sympy.Basic):
        raise _Unreadable("it is not a single value")
    value = _safe_evaluate(tree)
    if isinstance(value, sympy.Expr) and value.has(sympy.nan, sympy.zoo):
        raise _Unreadable("its value is undefined")
    if isinstance(value, sympy.Set) and not isinstance(value, sympy.FiniteSet):
        raise _Unreadable("it is a set, not a single value")
    return value


def _substitute(expr, mapping: dict):
    """expr evaluated at mapping, or None where it is undefined; raises _Unreadable rather
    than compute a huge number (9**x at x = 10**9)."""
    with evaluate(False):
        tree = expr.xreplace(mapping)
    value = _safe_evaluate(tree)
    return None if value.has(sympy.nan, sympy.zoo) else value


def _safe_evaluate(tree):
    """Evaluate an unevaluated tree once it is known to be small and made of known parts."""
    _magnitude(tree)
    try:
        return _evaluate(tree)
    except Exception as e:  # SymPy rejects some combinations only when evaluating them
        raise _Unreadable(f"it could not be evaluated ({e})") from e


def _magnitude(e) -> float | None:
    """An upper bound on log10|e| (None if e is not a number); raises if e holds an unknown
    operation or a number of more than MAX_DIGITS digits, before anything is computed."""
    if not isinstance(e, _ALLOWED_NODES):
        raise _Unreadable(f"it uses {type(e).__name__}, which this checker does not evaluate")
    if isinstance(e, sympy.Symbol):
        return None
    if isinstance(e, sympy.Rational):
        size = max(abs(e.p), e.q).bit_length() * math.log10(2)
    elif isinstance(e, sympy.Float):
        _, man, exp, bits = e._mpf_
        size = abs(exp + bits) * math.log10(2) if man else 0.0
    elif not e.args:
        size = 1.0
    else:
        size = _combined_magnitude(e, [_magnitude(a) for a in e.args])
    if size is not None and size > MAX_DIGITS:
        raise _Unreadable(f"it holds a number of more than {MAX_DIGITS} digits")
    return size


def _combined_magnitude(e, sizes: list[float | None]) -> float | None:
    if isinstance(e, sympy.Pow):
        base, exponent = sizes
        if exponent is None:
            return None
        bound = 10 ** min(exponent, 300)
        if base is None:
            if bound > MAX_SYMBOLIC_EXPONENT:
                raise _Unreadable("it raises a variable to a huge power")
            return None
        return bound * max(base, 1.0)
    if any(s is None for s in sizes):
        return None
    if isinstance(e, (sympy.factorial, sympy.binomial)):
        n = 10 ** min(sizes[0], 300)
        return n * math.log10(n + 1)
    if isinstance(e, sympy.exp):
        return 10 ** min(sizes[0], 300) * math.log10(math.e)
    if isinstance(e, sympy.Mul):
        return sum(sizes)
    return max(sizes) + 1.0


def _evaluate(e):
    if isinstance(e, sympy.UnevaluatedExpr):
        return _evaluate(e.args[0])
    if not e.args:
        return e
    args = [_evaluate(a) for a in e.args]
    if isinstance(e, sympy.Equality):
        return sympy.Eq(*args, evaluate=False)  # keep an equation, not its truth value
    return e.func(*args)


def _split_top(s: str, sep: str) -> list[str]:
    """Split at separators outside brackets; "=" inside <=, >=, != does not split."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i) and not (sep == "=" and (s[i - 1:i] in ("<", ">", "!", "\\") or s[i + 1:i + 2] == "=")):
            parts.append(s[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _wraps(s: str) -> bool:
    """Whether the bracket opening s closes only at the very end."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return depth == 0


# --- comparing ---------------------------------------------------------------------------


def _matches(cand: _Answer, ref: _Answer) -> bool:
    if _same(cand.value, ref.value, ref.decimals):
        return True
    if cand.percent == ref.percent or not all(isinstance(a.value, sympy.Expr) for a in (cand, ref)):
        return False
    if cand.percent:
        return _same(cand.value / 100, ref.value, ref.decimals)
    return _same(cand.value, ref.value / 100, ref.decimals + 2 if ref.decimals is not None else None)


def _same(c, r, decimals: int | None) -> bool:
    c, r = _unwrap_singleton(c), _unwrap_singleton(r)
    if isinstance(c, tuple) or isinstance(r, tuple):
        return (isinstance(c, tuple) and isinstance(r, tuple) and len(c) == len(r)
                and all(_same(a, b, None) for a, b in zip(c, r)))
    if isinstance(c, sympy.FiniteSet) or isinstance(r, sympy.FiniteSet):
        if not (isinstance(c, sympy.FiniteSet) and isinstance(r, sympy.FiniteSet)) or len(c) != len(r):
            return False
        unmatched = list(r.args)
        for a in c.args:
            hit = next((b for b in unmatched if _same(a, b, None)), None)
            if hit is None:
                return False
            unmatched.remove(hit)
        return True
    if isinstance(c, sympy.Interval) and isinstance(r, sympy.Interval):
        return (c.left_open == r.left_open and c.right_open == r.right_open
                and _same(c.start, r.start, None) and _same(c.end, r.end, None))
    if isinstance(c, sympy.Union) and isinstance(r, sympy.Union):
        return len(c.args) == len(r.args) and all(_same(a, b, None) for a, b in zip(c.args, r.args))
    if isinstance(c, sympy.Equality) and isinstance(r, sympy.Equality):
        return _same_equation(c, r)
    if isinstance(c, sympy.Expr) and isinstance(r, sympy.Expr):
        return _same_expr(c, r, decimals)
    return c == r  # empty sets, or kinds that cannot be equal


def _unwrap_singleton(v):
    return v.args[0] if isinstance(v, sympy.FiniteSet) and len(v) == 1 else v


def _same_expr(c: sympy.Expr, r: sympy.Expr, decimals: int | None) -> bool:
    if c == r:
        return True
    if c.free_symbols or r.free_symbols:
        return _same_function(c, r)
    if not (c.is_finite and r.is_finite):
        return c == r
    if c.is_Rational and r.is_Rational:
        return c == r
    diff = _difference(c, r)
    if diff is None:
        return False
    if decimals is not None and decimals >= ROUNDED_MIN_DECIMALS and diff <= sympy.Rational(5, 10 ** (decimals + 1)):
        return True
    return _close(diff, c, r)


def _same_function(c: sympy.Expr, r: sympy.Expr) -> bool:
    """Equal as functions of their variables, judged at fixed sample points."""
    symbols = sorted(c.free_symbols | r.free_symbols, key=str)
    points = [sympy.Rational(n, d) for n, d in ((3, 7), (-5, 3), (11, 4), (-2, 9), (13, 5), (7, 11))]
    agreed = 0
    for i in range(len(points)):
        at = {s: points[(i + 2 * j) % len(points)] for j, s in enumerate(symbols)}
        cv, rv = _substitute(c, at), _substitute(r, at)
        diff = None if cv is None or rv is None else _difference(cv, rv)
        if diff is None:
            continue  # a pole or a branch point of either side
        if not _close(diff, cv, rv, tolerant=c.has(sympy.Float) or r.has(sympy.Float)):
            return False
        agreed += 1
    return agreed >= 3


def _same_equation(c: sympy.Equality, r: sympy.Equality) -> bool:
    """Equations are the same when one is a nonzero constant multiple of the other."""
    dc, dr = c.lhs - c.rhs, r.lhs - r.rhs
    if dr == 0:
        return dc == 0
    ratio = sympy.cancel(dc / dr)
    return bool(ratio.is_number and ratio.is_finite and ratio != 0)


def _difference(a: sympy.Expr, b: sympy.Expr) -> sympy.Float | None:
    d = sympy.Abs((a - b).evalf(_DPS))
    if not d.is_number or not d.is_finite or d.has(sympy.nan):
        return None
    return d


def _close(diff, a, b, tolerant: bool | None = None) -> bool:
    if tolerant is None:
        tolerant = a.has(sympy.Float) or b.has(sympy.Float)
    scale = max(abs(a.evalf(_DPS)), abs(b.evalf(_DPS)))
    if tolerant:
        return bool(diff <= REL_TOL * scale or diff <= ABS_TOL)
    return bool(diff <= _EXACT_TOL * scale or diff <= _EXACT_TOL)


# --- equations in problems ---------------------------------------------------------------

_FUNCTION_WORDS = {w for w in _PLAIN_NAMES if w not in ("oo", "inf", "infinity")}


def _plain_equations(text: str) -> list[str]:
    """Stretches of plain math around each "=", cut at the first English word on each side."""
    tokens = list(re.finditer(r"\d+(?:\.\d+)?|[A-Za-z]+|\S", text))

    def is_math(tok: str) -> bool:
        return tok[0].isdigit() or len(tok) == 1 and (tok.isalpha() or tok in "+-*/^()") or tok in _FUNCTION_WORDS

    found = []
    for k, tok in enumerate(tokens):
        if tok.group() != "=" or (k + 1 < len(tokens) and tokens[k + 1].group() in "=<>"):
            continue
        if k and tokens[k - 1].group() in "<>!=":
            continue
        lo = k
        while lo > 0 and is_math(tokens[lo - 1].group()):
            lo -= 1
        hi = k
        while hi + 1 < len(tokens) and is_math(tokens[hi + 1].group()):
            hi += 1
        if lo < k < hi:
            found.append(text[tokens[lo].start():tokens[hi].end()])
    return found


def _named_unknowns(problem: str) -> list[str]:
    pattern = r"(?i:solve\s+for|values?\s+of|find|determine|for)\s+(?:\$|\\\()?\s*([A-Za-z])(?![A-Za-z])"
    return list(dict.fromkeys(m.group(1) for m in re.finditer(pattern, problem)))


def _as_values(value) -> list[sympy.Expr] | None:
    """The numbers a candidate proposes as solutions, or None if it is not numbers."""
    items = list(value.args) if isinstance(value, sympy.FiniteSet) else [value]
    if not items or not all(isinstance(v, sympy.Expr) and v.is_number and v.is_finite for v in items):
        return None
    return items


def _satisfies(eq: sympy.Eq, sym: sympy.Symbol, v: sympy.Expr, decimals: int | None) -> bool:
    """Whether v solves eq: exactly for exact v, within 1e-6 relatively for decimals, and for
    a decimal with >= 3 places also when a root lies within half a unit of its last place."""
    f = eq.lhs - eq.rhs
    lhs, rhs = _substitute(eq.lhs, {sym: v}), _substitute(eq.rhs, {sym: v})
    residual = None if lhs is None or rhs is None else _difference(lhs, rhs)
    if residual is None:
        return False  # the equation is undefined at v
    tolerant = v.has(sympy.Float) or f.has(sympy.Float)
    if _close(residual, lhs, rhs, tolerant):
        return True
    if decimals is None or decimals < ROUNDED_MIN_DECIMALS:
        return False
    half = sympy.Rational(5, 10 ** (decimals + 1))
    below, above = (_substitute(f, {sym: v + d}) for d in (-half, half))
    if below is None or above is None:
        return False
    below, above = below.evalf(_DPS), above.evalf(_DPS)
    if not all(x.is_real and x.is_finite for x in (below, above)):
        return False
    # A sign change around v brackets a root, unless v sits on a pole (then |f(v)| is large).
    return bool(below * above <= 0 and residual <= max(abs(below), abs(above)))


def _show(value) -> str:
    if isinstance(value, tuple):
        text = "(" + ", ".join(sympy.sstr(v, full_prec=False) for v in value) + ")"
    elif isinstance(value, sympy.Equality):
        text = _show_equation(value)
    else:
        text = sympy.sstr(value, full_prec=False)
    return _clip(text, quote=False)


def _show_equation(eq: sympy.Eq) -> str:
    return f"{sympy.sstr(eq.lhs, full_prec=False)} = {sympy.sstr(eq.rhs, full_prec=False)}"


def _clip(text: str, quote: bool = True, limit: int = 80) -> str:
    text = text if len(text) <= limit else text[:limit] + "..."
    return repr(text) if quote else text
