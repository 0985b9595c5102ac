"""Whether two read answers are the same: math-verify's comparison (numbers, expressions,
sets, intervals, matrices, relations), behind plait's rules for what it gets wrong or
leaves open (see the package docstring)."""

from __future__ import annotations

import sympy
from latex2sympy2_extended.sets import FiniteSet
from math_verify import verify as math_verify
from math_verify.errors import TimeoutException
from math_verify.grader import is_assignment_relation, is_equation, is_relation, take_first_relation, take_last_relation

from verifiers.math.parsing import Answer, Numeral, Ratio, Text, Value

COMPARE_SECONDS = 3  # math-verify's own comparison timeout (signals: honoured in the checker process)
FLOAT_ROUNDING = 6  # math-verify's default: a float matches when equal to 6 decimal places
ROUNDED_MIN_DECIMALS = 3
SIGNIFICANT_DIGITS = 3


class Incomparable(Exception):
    """The two answers cannot be judged equal or different; the message says why."""


def same(candidate: Answer, reference: Answer) -> bool:
    """Whether the candidate is the reference; raises Incomparable when that cannot be told."""
    if candidate.unit and reference.unit and _unit_key(candidate.unit) != _unit_key(reference.unit):
        raise Incomparable(f"their units differ ({candidate.unit} vs {reference.unit}) and units are not converted")
    c, r = candidate.value, reference.value
    if isinstance(c, Text) or isinstance(r, Text):
        return _same_text(c, r)
    if isinstance(c, Numeral) or isinstance(r, Numeral):
        return _same_numeral(c, r)
    if isinstance(c, Ratio) and isinstance(r, Ratio):
        return _same_ratio(c, r)
    c, r = _as_fraction(c), _as_fraction(r)
    if _within_rounding(c, r, reference.decimals):
        return True
    aligned = _align(c, r)
    return aligned is not None and _math_verify_same(*aligned) and _significant_agree(*aligned)


def _unit_key(unit: str) -> str:
    return unit.lower().rstrip("s").replace(" ", "")


def _same_text(c: Value, r: Value) -> bool:
    words = [_spelled(v) for v in (c, r)]
    if None in words:
        raise Incomparable("one answer is words and the other is not")
    return words[0] == words[1]


def _spelled(v: Value) -> str | None:
    """The word a value spells: text itself, or a symbol or product of symbols (``odd`` in
    LaTeX reads as o*d*d), case and spaces aside."""
    if isinstance(v, Text):
        return v.words.replace(" ", "").rstrip(".")
    if v == sympy.E:
        return "e"
    if isinstance(v, sympy.Symbol):
        return v.name.casefold()
    if isinstance(v, sympy.Mul) and all(isinstance(a, sympy.Symbol) or a == sympy.E for a in v.args):
        return "".join(_spelled(a) for a in v.args)  # math-verify's order is the written order
    return None


def _same_numeral(c: Value, r: Value) -> bool:
    """Same digits in the same base; a plain integer written with the same digits leaves the
    base implicit."""
    if isinstance(c, Numeral) and isinstance(r, Numeral):
        return c.base == r.base and c.value == r.value
    numeral, other = (c, r) if isinstance(c, Numeral) else (r, c)
    return isinstance(other, sympy.Integer) and str(other) == numeral.digits


def _same_ratio(c: Ratio, r: Ratio) -> bool:
    if c.clock_like or r.clock_like:
        return c.numbers == r.numbers
    (a, b), (x, y) = c.numbers, r.numbers
    return a * y == b * x and (a, b) != (0, 0)


def _as_fraction(v: Value) -> Value:
    """A ratio compared with anything but a ratio is its quotient (``7:32`` vs ``V_1:V_2 = 7:32``)."""
    if not isinstance(v, Ratio):
        return v
    if len(v.parts) != 2 or v.numbers[1] == 0:
        raise Incomparable(f"{v} is a time or a ratio, not a number")
    return sympy.Rational(*v.numbers)


def _within_rounding(c: Value, r: Value, decimals: int | None) -> bool:
    """A reference written with >= 3 decimals is taken as rounded: anything within half a unit
    of its last place matches (1/3 matches 0.333; pi does not match 3.14)."""
    if decimals is None or decimals < ROUNDED_MIN_DECIMALS:
        return False
    if not all(isinstance(v, sympy.Expr) and v.is_number for v in (c, r)):
        return False
    difference = sympy.Abs(c - r).evalf(30)
    return bool(difference.is_finite and difference <= sympy.Rational(5, 10 ** (decimals + 1)))


def _significant_agree(c: Value, r: Value) -> bool:
    """math-verify matches floats equal to 6 decimal places, so 1.7e-22 matched 3.2e-22:
    numbers must also agree to SIGNIFICANT_DIGITS significant digits."""
    if not all(isinstance(v, sympy.Expr) and v.is_number for v in (c, r)) or not (c.has(sympy.Float) or r.has(sympy.Float)):
        return True
    a, b = (abs(sympy.N(v, 30)) for v in (c, r))
    difference = abs(sympy.N(c - r, 30))
    return bool(difference <= max(a, b) * 10 ** -SIGNIFICANT_DIGITS)


def _align(c: Value, r: Value) -> tuple[Value, Value] | None:
    """Where plait reads the pair differently from math-verify; None when they differ."""
    if is_equation(c) and not is_equation(r):
        # math-verify would compare any equation's right side with a value; only an
        # assignment (x = 5, a + b = 5) or a computation (2 + 3 = 5) states one.
        first = take_first_relation(c)
        if not (is_assignment_relation(c) or not first.lhs.free_symbols):
            return None
        c = take_last_relation(c).rhs
    named = _named_values(c) or _named_values(r)
    if named is not None:
        other = _listed(r if _named_values(c) else c)
        if other is not None and len(other) == len(named):
            return sympy.Tuple(*named), sympy.Tuple(*other)
    if _is_set(c) and _is_pair(r) or _is_set(r) and _is_pair(c):
        return None  # {1, 2} is not the point (1, 2); math-verify matches them
    return _as_union(c), _as_union(r)


def _as_union(v: Value) -> Value:
    """``x < 1 or x > 2`` (read as a list of inequalities in one variable) is a union of intervals."""
    if not isinstance(v, sympy.FiniteSet) or not all(is_relation(a) and not is_equation(a) for a in v.args):
        return v
    if len(set().union(*(a.free_symbols for a in v.args))) != 1:
        return v
    return sympy.Union(*(a.as_set() for a in v.args))


def _named_values(v: Value) -> list | None:
    """The values of ``x = 1, y = 2`` in written order, when it names two or more unknowns."""
    if not isinstance(v, FiniteSet) or not all(is_assignment_relation(a) for a in v._unsorted_args):
        return None
    names = {a.lhs for a in v._unsorted_args}
    return [take_last_relation(a).rhs for a in v._unsorted_args] if len(names) > 1 else None


def _listed(v: Value) -> list | None:
    """The elements of an unnamed list in written order."""
    if isinstance(v, FiniteSet) and not any(is_equation(a) for a in v._unsorted_args):
        return list(v._unsorted_args)
    if isinstance(v, sympy.Tuple):
        return list(v.args)
    if _is_pair(v) and isinstance(v, sympy.Interval):
        return [v.start, v.end]
    return None


def _is_set(v: Value) -> bool:
    return isinstance(v, sympy.FiniteSet) and len(v) > 1


def _is_pair(v: Value) -> bool:
    """(a, b) with finite ends: math-verify reads it as an open interval."""
    if isinstance(v, sympy.Tuple):
        return True
    return isinstance(v, sympy.Interval) and v.left_open and v.right_open and v.start.is_finite and v.end.is_finite


def _math_verify_same(c: Value, r: Value) -> bool:
    try:
        return math_verify(r, c, float_rounding=FLOAT_ROUNDING, strict=True, allow_set_relation_comp=True,
                           timeout_seconds=COMPARE_SECONDS, raise_on_error=True)
    except TimeoutException as e:
        raise Incomparable(f"math-verify's comparison took longer than {COMPARE_SECONDS} s") from e
    except Exception as e:  # whatever SymPy raised inside math-verify
        raise Incomparable(f"math-verify could not compare them ({type(e).__name__}: {str(e)[:80]})") from e
