"""Reading a final answer out of model text and tool output."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.$|$|\n)", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; None if there is none."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            content = text[start : i - 1].strip()
            if content:
                return content
    return None


def last_output_line(stdout: str) -> str | None:
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def answer_from_text(text: str) -> tuple[str | None, str]:
    """(answer, source) from prose: \\boxed first, then "the answer is X", then the last number."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed, "boxed"
    stated = _ANSWER_IS.findall(text)
    if stated:
        return stated[-1].strip().rstrip("."), "text"
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].rstrip(".,"), "text"
    return None, ""
