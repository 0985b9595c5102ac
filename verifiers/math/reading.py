"""Finding the final answer in a model's transcript: text in, answer text and its source out.

This is the one place that decides which part of a reply is the answer; ``verify`` reads
both sides with it, and strategies call it on their transcripts. It only cuts text; turning
the answer into a value is ``parsing``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from latex2sympy2_extended.math_normalization import extract_boxed_content

MAX_ANSWER_CHARS = 500  # a longer "answer" is a transcript, not an answer
READ_CHARS = 8_000  # the tail of a transcript that is searched: final answers come last

# Words that may appear in a bare answer without making it prose.
MATH_WORDS = frozenset(
    "sqrt exp log ln sin cos tan cot sec csc asin acos atan arcsin arccos arctan sinh cosh tanh "
    "abs floor ceil pi oo inf infty infinity and or mod pmod frac dfrac tfrac cdot times div pm mp "
    "le leq ge geq ne neq lt gt in cup cap emptyset varnothing circ percent percentage pct dx dy dz dt".split()
)

TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textnormal|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_BOX = re.compile(r"\\(?:boxed|fbox)")
_ANSWER_IS = re.compile(r"(?i)(?:\banswers?\b(?:\s+(?:is|are))?\s*[:=]|\banswers?\s+(?:is|are)\b|####)\s*")
_MATH_SPAN = re.compile(
    r"(?<!\\)\$\$(?P<a>.+?)(?<!\\)\$\$|\\\[(?P<b>.+?)\\\]|\\\((?P<c>.+?)\\\)|(?<![\\$])\$(?P<d>(?:\\\$|[^$\n])+?)(?<!\\)\$",
    re.S,
)
_CONNECTIVE = re.compile(r"(?i)(?:\s*(?:,|;|\band\b|\bor\b|\\quad|\\qquad|\\text\{\s*(?:and|or)\s*\}))*\s*")
_NUMBER = re.compile(r"(?<![A-Za-z\d_.])-?\d+(?:[, ]\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_LEAD = re.compile(r"[\s\"'*]*")
_OUTPUT_BLOCK = re.compile(r"```output[ \t]*\n(.*?)(?:```|\Z)", re.S)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_ENVIRONMENT = re.compile(r"\\(?:begin|end|operatorname)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z]|\s*\()")
# Questions that ask for a collection of values, and those that ask for one number about one.
_SEVERAL = re.compile(r"(?i)\b(?:all|each|every|both)\b|\b(?:values|solutions|roots|zeros|zeroes|pairs|triples|answers)\b")
_ONE_NUMBER = re.compile(r"(?i)\bhow many\b|\b(?:sum|product|number|count|total|average|mean)\s+of\b|\b(?:largest|smallest|greatest|least|maximum|minimum)\b")


class FoundAnswer(NamedTuple):
    text: str | None
    source: str  # "boxed" | "output" | "text" (stated or bare) | "last" (the last value of prose), or "" when nothing was found


def read_answer(transcript: str, *, question: str | None = None, outputs: Sequence[str] = ()) -> FoundAnswer:
    """The final answer of a transcript and where it came from.

    In order:

    1. ``\\boxed{}``: the last box, with the boxes written just before it as one list
       (math-verify's rule) when no question is given; every box as one list when the
       question asks for several values; only the last box otherwise. The text after the
       last "the answer is" / "answer:" / "####" wins instead when it comes after the
       boxes and holds a digit (``... \\boxed{255} ... The final answer is $10,455$``).
    2. The last line of the last tool output: ``outputs`` (the stdout of the runs that
       succeeded), else the last ```output block of the transcript.
    3. The whole transcript, when it is a bare answer (``x = 3``, ``\\frac{1}{2}``, ``5 cm``).
    4. The last math span (with the spans joined to it by "and", "or", commas) or the last
       number, whichever comes last: source "last", a guess that a caller may refuse (a
       transcript cut off mid-sentence states no answer, and its last number is not one).
    """
    text = transcript[-READ_CHARS:].strip()
    boxed = _boxed(text, question)
    stated = _stated(text)
    if stated and (not boxed or stated.at > boxed.at and re.search(r"\d", stated.text)):
        return FoundAnswer(stated.text, "text")
    if boxed:
        return FoundAnswer(boxed.text, "boxed")
    output = _last_output(text, outputs)
    if output:
        return FoundAnswer(output, "output")
    if is_bare(text):
        return FoundAnswer(text, "text")
    last = _last_value(text)
    return FoundAnswer(last, "last") if last else FoundAnswer(None, "")


def boxed_answer(text: str, question: str | None = None) -> str | None:
    """What the transcript's boxes say (read as `read_answer` reads them), or None: for a
    caller that must know whether a final answer has been written yet."""
    found = _boxed(text[-READ_CHARS:].strip(), question)
    return found.text if found else None


def math_spans(text: str) -> list[str]:
    """The contents of the ``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` spans of text."""
    return [_span_text(s) for s in _MATH_SPAN.finditer(text)]


def in_latex(transcript: str, found: FoundAnswer) -> bool:
    """Whether the answer was written as LaTeX: boxed, or inside math delimiters."""
    return found.source == "boxed" or any(found.text in span for span in math_spans(transcript))


def is_bare(text: str) -> bool:
    """Whether text is an answer by itself rather than prose around one: one line with no
    math delimiters and at most two words (a unit or a label: ``5 cm``, ``67 days, 01:04``),
    four without a digit (``regular hexagon``), or any in one ``\\text{}``. Names of
    functions (``sqrt``, ``Integral(``) and connectives are not words. A bare answer is read
    whole, so that an unreadable one stays unreadable instead of shrinking to a number in it."""
    if "\n" in text or len(text) > MAX_ANSWER_CHARS or _MATH_SPAN.search(text) or not text:
        return False
    if TEXT_COMMAND.fullmatch(text):
        return True
    words = [w for w in _WORD.findall(_ENVIRONMENT.sub(" ", text)) if w.lower() not in MATH_WORDS]
    return len(words) <= (2 if re.search(r"\d", text) else 4)


def asks_for_several(question: str) -> bool:
    return bool(_SEVERAL.search(question)) and not _ONE_NUMBER.search(question)


class _Found(NamedTuple):
    text: str
    at: int  # where it starts in the transcript, to tell which came last


def _boxed(text: str, question: str | None) -> _Found | None:
    starts = [m.start() for m in _BOX.finditer(text)]
    if not starts:
        return None
    if question is None:
        content = extract_boxed_content(text, mode="last")
    elif asks_for_several(question):
        content = extract_boxed_content(text, mode="all")
    else:
        content = extract_boxed_content(text[starts[-1]:], mode="last")
    content = content.strip()
    if content.startswith("{") and content.count("{") > content.count("}"):
        content = content[1:].strip()  # an unclosed box (a reply cut short) runs to the end
    # math-verify hands back the text itself when no box has an argument.
    return None if not content or content == text else _Found(content, starts[-1])


def _stated(text: str) -> _Found | None:
    """What follows the last "the answer is" / "answer:" / "####", up to the end of its sentence."""
    markers = list(_ANSWER_IS.finditer(text))
    if not markers:
        return None
    rest = text[markers[-1].end():]
    spans = _leading_spans(rest)
    if spans:
        return _Found(spans, markers[-1].start())
    end = _SENTENCE_END.search(rest)
    segment = (rest[: end.start()] if end else rest).strip().strip("\"'*").strip()
    answer = segment if is_bare(segment) else _last_value(segment)
    return _Found(answer, markers[-1].start()) if answer else None


def _leading_spans(text: str) -> str | None:
    """The math spans that open text, joined into one list when connectives join them."""
    spans, pos = [], 0
    while True:
        gap = (_CONNECTIVE if spans else _LEAD).match(text, pos)
        found = _MATH_SPAN.match(text, gap.end())
        if not found:
            break
        spans.append(_span_text(found))
        pos = found.end()
    return ", ".join(spans) if spans else None


def _last_output(text: str, outputs: Sequence[str]) -> str | None:
    blocks = [o for o in outputs if o.strip()] or _OUTPUT_BLOCK.findall(text)
    if not blocks:
        return None
    lines = [line.strip() for line in blocks[-1].strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def _last_value(text: str) -> str | None:
    """The last math span (with the spans joined to it by connectives) or the last number,
    whichever ends later."""
    spans = list(_MATH_SPAN.finditer(text))
    numbers = [m for m in _NUMBER.finditer(text) if not _inside(m, spans)]
    last_span = spans[-1] if spans else None
    last_number = numbers[-1] if numbers else None
    if last_number and (last_span is None or last_number.end() > last_span.end()):
        return last_number.group().strip()
    if last_span is None:
        return None
    first = len(spans) - 1
    while first and _CONNECTIVE.fullmatch(text, spans[first - 1].end(), spans[first].start()):
        first -= 1
    return ", ".join(_span_text(s) for s in spans[first:])


def _inside(match: re.Match, spans: list[re.Match]) -> bool:
    return any(s.start() <= match.start() < s.end() for s in spans)


def _span_text(span: re.Match) -> str:
    return next(g for g in span.groups() if g is not None).strip()
