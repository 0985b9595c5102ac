"""Checks without a reference answer: substitute the answer into the one equation the problem
states (``Solve for x: 3*x + 5 = 20``)."""

from __future__ import annotations

import re

import sympy
from sympy.core.parameters import evaluate

from verifiers.math.parsing import Unreadable, check_size, read_value
from verifiers.math.reading import math_spans

REL_TOL = 1e-6
ABS_TOL = 1e-9
ROUNDED_MIN_DECIMALS = 3
_DPS = 60
_EXACT_TOL = sympy.Float("1e-40")  # exact values are compared at 60 digits

_NAMED_UNKNOWN = re.compile(r"(?i:solve\s+for|values?\s+of|find|determine|for)\s+(?:\$|\\\()?\s*([A-Za-z])(?![A-Za-z])")
_PLAIN_TOKEN = re.compile(r"\d+(?:\.\d+)?|[A-Za-z]+|\S")
_FUNCTION_WORDS = {"sqrt", "exp", "log", "ln", "sin", "cos", "tan", "abs", "pi"}


def extract_equation(problem: str) -> tuple[sympy.Eq, sympy.Symbol] | None:
    """The one equation stated in the problem and its unknown, or None if there is no single
    equation in at most one unknown (systems and parametric equations are not checked)."""
    sources = [s for s in math_spans(problem) if "=" in s] or _plain_equations(problem)
    equations = []
    for source in dict.fromkeys(s.strip() for s in sources):
        sides = re.split(r"(?<![<>!\\])=(?!=)", source)
        if len(sides) != 2:
            return None
        try:
            equations.append(tuple(_side(s) for s in sides))
        except Unreadable:
            continue
    if len(equations) != 1:
        return None
    return _with_unknown(problem, *equations[0])


def _side(text: str) -> sympy.Expr:
    value = read_value(text).value
    if not isinstance(value, sympy.Expr):
        raise Unreadable("a side of the equation is not an expression")
    # Plain symbols, so that x read from LaTeX (real) and x from plain text are one unknown.
    return value.xreplace({s: sympy.Symbol(s.name) for s in value.free_symbols})


def _with_unknown(problem: str, lhs: sympy.Expr, rhs: sympy.Expr) -> tuple[sympy.Eq, sympy.Symbol] | None:
    for letter in dict.fromkeys(m.group(1) for m in _NAMED_UNKNOWN.finditer(problem)):
        sym = sympy.Symbol(letter)
        # LaTeX reads a lone e or i as a constant; the problem says it is the unknown.
        if letter == "e":
            sides = tuple(s.replace(sympy.exp, lambda a: sym**a).xreplace({sympy.E: sym}) for s in (lhs, rhs))
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


def _plain_equations(text: str) -> list[str]:
    """Stretches of plain math around each "=", cut at the first English word on each side."""
    tokens = list(_PLAIN_TOKEN.finditer(text))

    def is_math(tok: str) -> bool:
        return tok[0].isdigit() or len(tok) == 1 and (tok.isalpha() or tok in "+-*/^()") or tok in _FUNCTION_WORDS

    found = []
    for k, tok in enumerate(tokens):
        neighbours = (tokens[k - 1].group() if k else "", tokens[k + 1].group() if k + 1 < len(tokens) else "")
        if tok.group() != "=" or neighbours[0] in ("<", ">", "!", "=") or neighbours[1] in ("<", ">", "="):
            continue
        lo = hi = k
        while lo > 0 and is_math(tokens[lo - 1].group()):
            lo -= 1
        while hi + 1 < len(tokens) and is_math(tokens[hi + 1].group()):
            hi += 1
        if lo < k < hi:
            found.append(text[tokens[lo].start():tokens[hi].end()])
    return found


def solutions(value) -> list[sympy.Expr] | None:
    """The numbers a candidate proposes as solutions (``5``, ``x = 5``, ``{2, -2}``), or None."""
    if isinstance(value, sympy.Eq) and isinstance(value.lhs, sympy.Symbol):
        value = value.rhs
    items = list(value.args) if isinstance(value, sympy.FiniteSet) else [value]
    items = [v.rhs if isinstance(v, sympy.Eq) and isinstance(v.lhs, sympy.Symbol) else v for v in items]
    if not items or not all(isinstance(v, sympy.Expr) and v.is_number and v.is_finite for v in items):
        return None
    return items


def satisfies(eq: sympy.Eq, sym: sympy.Symbol, v: sympy.Expr, decimals: int | None) -> bool:
    """Whether v solves eq: exactly for exact v, within 1e-6 relatively for decimals, and for
    a decimal with >= 3 places also when a root lies within half a unit of its last place.
    Raises Unreadable rather than compute a huge number (9**x at x = 10**9)."""
    sides = [_at(side, sym, v) for side in (eq.lhs, eq.rhs)]
    if None in sides:
        return False  # the equation is undefined at v
    residual = abs(sides[0] - sides[1])
    scale = max(abs(sides[0]), abs(sides[1]))
    if v.has(sympy.Float) or eq.has(sympy.Float):
        if residual <= REL_TOL * scale or residual <= ABS_TOL:
            return True
    elif residual <= _EXACT_TOL * max(scale, 1):
        return True
    if decimals is None or decimals < ROUNDED_MIN_DECIMALS:
        return False
    half = sympy.Rational(5, 10 ** (decimals + 1))
    f = eq.lhs - eq.rhs
    below, above = (_at(f, sym, v + d) for d in (-half, half))
    if below is None or above is None or not all(x.is_real for x in (below, above)):
        return False
    # A sign change around v brackets a root, unless v sits on a pole (then |f(v)| is large).
    return bool(below * above <= 0 and residual <= max(abs(below), abs(above)))


def _at(expr: sympy.Expr, sym: sympy.Symbol, v: sympy.Expr) -> sympy.Expr | None:
    """expr at sym = v, to 60 digits; None where it is undefined."""
    with evaluate(False):
        tree = expr.xreplace({sym: v})
    check_size(tree)
    value = sympy.N(tree, _DPS)
    if not value.is_number or value.has(sympy.nan, sympy.zoo) or not value.is_finite:
        return None
    return value
