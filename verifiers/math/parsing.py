"""Turning one answer's text into a value: math-verify's LaTeX extraction and parser, with
plait's readings of the notations it gets wrong, and plait's size bound.

Plain text (``3*x**2 - 2``, ``sqrt(2)/2``, ``1e-3``) is rewritten as the LaTeX it means and
read by the same parser; nothing is handed to Python's ``eval``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import sympy
from latex2sympy2_extended import NormalizationConfig
from latex2sympy2_extended.sets import FiniteSet
from math_verify import LatexExtractionConfig, parse
from math_verify.errors import TimeoutException
from sympy import MatrixBase
from sympy.core.parameters import evaluate

from verifiers.math.reading import MATH_WORDS, TEXT_COMMAND

MAX_DIGITS = 10_000  # the largest number, in digits, an answer may denote
MAX_SYMBOLIC_EXPONENT = 1_000  # (x+1)^n is cheap to hold but not to expand for larger n
PARSE_SECONDS = 2  # math-verify's own parsing timeout (signals: honoured in the checker process)

# Units, percent and boxes are handled by plait before parsing (see read_value).
_EXTRACTION = (
    LatexExtractionConfig(
        boxed_match_priority=-1,
        normalization_config=NormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="none", equations=False
        ),
    ),
)

_UNICODE = str.maketrans({
    "−": "-", "–": "-", "×": "\\times ", "÷": "\\div ", "·": "\\cdot ", "π": "\\pi ", "∞": "\\infty ",
    "√": "\\sqrt", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "°": "^\\circ ", "∅": "\\emptyset ",
})
_NEGATIVE_SPACE = re.compile(r"\\!\s*")  # 12,\! 345: a thousands separator, whatever follows
_SPACING = re.compile(r"(?<!\\)\\(?:quad|qquad|[,;: ])|~")  # not the row break \\ of a matrix
_BRACED_COMMA = re.compile(r"\s*\{\s*,\s*\}\s*")
_SPACED_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])")
_DIGITS_APART = re.compile(r"\d\s+\d")
_PRIMES = re.compile(r"(?<=[A-Za-z}])('+)")
_TRIG = re.compile(r"(?<![A-Za-z])\\?(?:sin|cos|tan|cot|sec|csc)\b")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?")
_DECIMAL = re.compile(r"-?\d*\.(\d+)")
_CHOICE = re.compile(r"\(([A-Za-z])\)")
_NUMERAL = re.compile(r"(?:\\text\{)?(\d+)\}?_\{?(\d+)\}?")
_RATIO = re.compile(r"\d+(?:\s*:\s*\d+)+")
_UNIT = re.compile(
    r"(?P<value>.*?[\d}])\s*(?:\\(?:text|textnormal|textrm|textbf|textit|mbox|mathrm)\s*\{\s*(?P<braced>[A-Za-z][A-Za-z .]*?)\s*\}"
    r"|\s(?P<plain>[A-Za-z]{2,}(?: [A-Za-z]{2,})?))(?P<power>\^\{?\d\}?)?"
)
_PLAIN_FUNCTION = re.compile(r"\b(sqrt|abs|floor|ceil|exp|log|ln|sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|sinh|cosh|tanh)\s*\(")
_PLAIN_SCIENTIFIC = re.compile(r"(?<![A-Za-z\d.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![A-Za-z\d])")
_PLAIN_ATOM = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|[A-Za-z]\w*)")
_PLAIN_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z]{2,}(?![A-Za-z])")
_PLAIN_INNER_UNIT = re.compile(r"(?<=\d)\s*[A-Za-z]{2,}(?:\^\d)?(?=\s*(?:[,;)}]|$))")
_PLAIN_E = re.compile(r"(?<![A-Za-z])e(?![A-Za-z])")
_PLAIN_CONSTANTS = re.compile(r"\b(?:(pi)|oo|inf|infinity)\b")
_BRACKETS = {
    "sqrt": ("\\sqrt{", "}"), "abs": ("\\left|", "\\right|"), "floor": ("\\lfloor ", "\\rfloor "),
    "ceil": ("\\lceil ", "\\rceil "), "log": ("\\ln(", ")"),  # plain log is natural, as in Python
}


class Unreadable(ValueError):
    """The text is not an answer this checker can read; the message says why."""


@dataclass(frozen=True)
class Text:
    """An answer in words (``\\text{odd}``, ``Evelyn``): compared as words, case aside."""

    words: str

    def __str__(self) -> str:
        return self.words


@dataclass(frozen=True)
class Numeral:
    """``204_5``: digits in a base, a different answer from the number 204 or the number 54."""

    digits: str
    base: int

    @property
    def value(self) -> int:
        return int(self.digits, self.base)

    def __str__(self) -> str:
        return f"{self.digits}_{self.base}"


@dataclass(frozen=True)
class Ratio:
    """``a:b`` (or ``a:b:c``) written on its own. ``10:17`` may be a clock time as well as
    a ratio, so two of that shape (or of three parts) match only when they are the same."""

    parts: tuple[str, ...]  # the digits as written

    @property
    def clock_like(self) -> bool:
        if len(self.parts) > 2:
            return True
        hours, minutes = self.parts
        return len(minutes) == 2 and int(hours) <= 24 and int(minutes) < 60

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.parts)

    def __str__(self) -> str:
        return ":".join(self.parts)


Value = sympy.Basic | MatrixBase | Text | Numeral | Ratio


@dataclass(frozen=True)
class Answer:
    value: Value
    decimals: int | None = None  # places after the point, when the answer is a plain decimal
    unit: str | None = None


def read_value(text: str, *, latex: bool = False) -> Answer:
    """The value one answer's text denotes (no prose around it: see ``reading``). The text
    is plain (not LaTeX) when it has no backslash and ``latex`` is false (it was not found
    between math delimiters)."""
    s = _clean(text)
    if not s:
        raise Unreadable("it holds no value")
    special = _special(s)
    if special is not None:
        return Answer(special)
    s, unit = _split_unit(s)
    s = _SPACED_THOUSANDS.sub(lambda m: m.group().replace(" ", ""), s)
    if _DIGITS_APART.search(s):
        raise Unreadable("it has digits separated by a space, which is neither a product nor one number")
    decimals = len(m.group(1)) if (m := _DECIMAL.fullmatch(s)) else None
    if not latex and "\\" not in s:
        s = _plain_to_latex(s)
    if _TRIG.search(s):
        s = _DEGREES.sub(r"(\1\\cdot\\frac{\\pi}{180})", s)  # a degree inside a trig function is an angle
    s = _PRIMES.sub(lambda m: "^{" + "\\prime" * len(m.group(1)) + "}", s)
    value = _parse_with_signs(s)
    check_size(value)
    return Answer(value, decimals, unit)


def _clean(text: str) -> str:
    s = text.translate(_UNICODE).replace("\n", " ")
    s = _NEGATIVE_SPACE.sub("", s)
    s = _BRACED_COMMA.sub(",", s)
    s = _SPACING.sub(" ", s).replace("\\varnothing", "\\emptyset")
    s = re.sub(r"^\\?\$\s*(?=\d)", "", s.strip())  # a currency sign
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip()


def _special(s: str) -> Value | None:
    """The notations plait reads itself: words, numerals in a base, a lone ratio."""
    inner = TEXT_COMMAND.fullmatch(s)
    words = (inner.group(1) if inner else s).strip()
    if re.fullmatch(r"[A-Za-z ()'.,-]*[A-Za-z][A-Za-z ()'.,-]*", words) and (inner or _is_prose_word(words)):
        choice = _CHOICE.fullmatch(words)
        return Text((choice.group(1) if choice else words).casefold())
    if numeral := _NUMERAL.fullmatch(s):
        digits, base = numeral.groups()
        if 2 <= int(base) <= 36 and all(int(d, 36) < int(base) for d in digits):
            return Numeral(digits.lstrip("0") or "0", int(base))
        raise Unreadable(f"{digits} is not a numeral in base {base}")
    if _RATIO.fullmatch(s):
        return Ratio(tuple(p.strip() for p in s.split(":")))
    return None


def _is_prose_word(s: str) -> bool:
    return any(w.lower() not in MATH_WORDS for w in _PLAIN_WORD.findall(s))


def _split_unit(s: str) -> tuple[str, str | None]:
    found = _UNIT.fullmatch(s)
    if found is None:
        return s, None
    unit = (found["braced"] or found["plain"]).strip()
    if any(w.lower() in MATH_WORDS for w in unit.split()):
        return s, None
    return found["value"].strip(), unit + (found["power"] or "").replace("{", "").replace("}", "")


def _plain_to_latex(s: str) -> str:
    s = _PLAIN_INNER_UNIT.sub(lambda m: m.group() if m.group().strip().lower() in MATH_WORDS else "", s)
    words = [w for w in _PLAIN_WORD.findall(s) if w.lower() not in MATH_WORDS and not w.isupper()]
    if words:  # upper-case names (AB = 4) are points and segments; other words are not maths
        raise Unreadable(f"it contains the word {words[0]!r}, which is not mathematics")
    s = _PLAIN_SCIENTIFIC.sub(r"(\1\\cdot 10^{\2})", s.replace("**", "^"))
    s = _PLAIN_CONSTANTS.sub(lambda m: "\\pi " if m.group(1) else "\\infty ", s)
    # reasoning-gym names unknowns e in plain text; in LaTeX e is Euler's number.
    s = _PLAIN_E.sub(r"\\text{e}", s)
    return _plain_functions(_brace_exponents(s))


def _brace_exponents(s: str) -> str:
    """Group each exponent, right to left, as plain text means it: ``x^10`` -> ``x^{10}``,
    ``x^-1`` -> ``x^{-1}``, ``9^9^9`` -> ``9^{9^{9}}`` (LaTeX would read ``x^1 0``, ``(9^9)^9``)."""
    for caret in reversed([i for i, c in enumerate(s) if c == "^"]):
        start = caret + 1
        while start < len(s) and s[start] == " ":
            start += 1
        end = _operand_end(s, start)
        if end > start and s[start] != "{":
            s = f"{s[:caret]}^{{{s[start:end]}}}{s[end:]}"
    return s


def _operand_end(s: str, start: int) -> int:
    """Where the exponent starting at s[start] ends: a signed number or name, or a bracketed
    group, with the exponents already grouped after it."""
    atom = _PLAIN_ATOM.match(s, start)
    if atom:
        end = atom.end()
    elif start < len(s) and s[start] in "({":
        close = _closing(s, start)
        end = start if close is None else close + 1
    else:
        return start
    while s.startswith("^{", end) and (close := _closing(s, end + 1)) is not None:
        end = close + 1
    return end


def _plain_functions(s: str) -> str:
    """``sqrt(x+1)`` -> ``\\sqrt{x+1}``, ``sin(x)`` -> ``\\sin(x)``; parentheses balanced."""
    out, pos = [], 0
    for call in _PLAIN_FUNCTION.finditer(s):
        if call.start() < pos:
            continue  # inside an argument already rewritten
        close = _closing(s, call.end() - 1)
        if close is None:
            raise Unreadable(f"the parenthesis after {call.group(1)} is not closed")
        name, argument = call.group(1), _plain_functions(s[call.end():close])
        opening, closing = _BRACKETS.get(name, (f"\\{name}(", ")"))
        out += [s[pos:call.start()], opening, argument, closing]
        pos = close + 1
    return "".join(out) + s[pos:]


def _closing(s: str, start: int) -> int | None:
    """The index of the bracket closing the one at s[start], or None."""
    depth = 0
    for i in range(start, len(s)):
        depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(s[i], 0)
        if depth == 0:
            return i
    return None


def _parse_with_signs(s: str):
    """math-verify's parser reads ``1 \\pm \\sqrt{2}`` but not ``\\frac{1 \\pm \\sqrt{2}}{2}``: when it
    fails, read the answer once with each sign and keep both values."""
    try:
        return _parse_latex(s)
    except Unreadable:
        if "\\pm" not in s and "\\mp" not in s:
            raise
    signed = [_parse_latex(s.replace("\\pm", a).replace("\\mp", b)) for a, b in (("+", "-"), ("-", "+"))]
    return FiniteSet(*(e for v in signed for e in (v._unsorted_args if isinstance(v, FiniteSet) else [v])))


def _parse_latex(s: str):
    try:
        found = parse(f"${s}$", _EXTRACTION, fallback_mode="no_fallback", extraction_mode="first_match",
                      parsing_timeout=PARSE_SECONDS, raise_on_error=True)
    except TimeoutException as e:
        raise Unreadable(f"math-verify's parser took longer than {PARSE_SECONDS} s") from e
    except Exception as e:  # math-verify re-raises whatever its parser raised
        raise Unreadable(f"math-verify could not parse it ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})") from e
    if not found or isinstance(found[0], str):
        raise Unreadable("math-verify's parser does not read it as mathematics")
    return found[0]


# --- size ---------------------------------------------------------------------------------


def check_size(value) -> None:
    """Refuse, before anything is computed, a value that denotes a number of more than
    MAX_DIGITS digits or raises an expression in a variable to a huge power."""
    if isinstance(value, MatrixBase):
        for entry in value:
            check_size(entry)
    elif isinstance(value, sympy.Basic):
        _magnitude(value)


def _magnitude(e: sympy.Basic) -> float | None:
    """An upper bound on log10|e| (negative for small numbers), None when e holds a variable."""
    if isinstance(e, sympy.Symbol):
        return None
    if isinstance(e, sympy.Rational):
        size = (abs(e.p).bit_length() - e.q.bit_length() + 1) * math.log10(2)
    elif isinstance(e, sympy.Float):
        _, mantissa, exponent, bits = e._mpf_
        size = (exponent + bits) * math.log10(2) if mantissa else 0.0
    elif not e.args:
        size = 1.0
    else:
        size = _combined(e, [_magnitude(a) if isinstance(a, sympy.Basic) else 1.0 for a in e.args])
    if size is not None and size > MAX_DIGITS:
        raise Unreadable(f"it denotes a number of more than {MAX_DIGITS} digits")
    return size


def _power(e: sympy.Pow, base: float | None, exponent: float | None) -> float | None:
    if exponent is None:
        if base is not None and base > 0:
            # 9^(10^9 x) is huge at every x but small ones: bound it at x = 1.
            with evaluate(False):
                at_one = e.args[1].xreplace({s: sympy.Integer(1) for s in e.args[1].free_symbols})
            _magnitude(sympy.Pow(e.args[0], at_one, evaluate=False))
        return None
    bound = 10 ** min(exponent, 300)  # on |exponent|
    if base is None:
        if bound > MAX_SYMBOLIC_EXPONENT:
            raise Unreadable("it raises an expression in a variable to a huge power")
        return None
    b, x = e.args
    if isinstance(x, sympy.Number) and bound < 1e300:
        if x >= 0:
            return float(x) * base
        if isinstance(b, sympy.Integer) and b != 0:  # |b| >= 1, so b^x <= 1
            return float(x) * (abs(b.p).bit_length() - 1) * math.log10(2)
    return bound * max(abs(base), 1.0)  # |log10|b^x|| <= |x| |log10|b||


def _combined(e: sympy.Basic, sizes: list[float | None]) -> float | None:
    if isinstance(e, sympy.Pow):
        return _power(e, *sizes)
    if any(s is None for s in sizes):
        return None
    if isinstance(e, (sympy.factorial, sympy.binomial, sympy.gamma)):
        n = 10 ** min(sizes[0], 300)
        return n * math.log10(n + 1)
    if isinstance(e, sympy.exp):
        return 10 ** min(sizes[0], 300) * math.log10(math.e)
    if isinstance(e, sympy.Mul):
        return sum(sizes)
    return max(sizes, default=0.0) + math.log10(len(sizes) + 1)
