"""Lean 4 proofs, checked with the ``lean`` binary on PATH (as elan installs it).

``lean FILE`` elaborates and kernel-checks the file and prints ``FILE:L:C: error: …``.
Imports beyond Lean's core (Mathlib…) resolve through ``LEAN_PATH``: run plait with the one
``lake env`` prints in a Lake project. ``#print axioms T`` is appended for the theorems that
matter — those the spec states, or else the file's last ``theorem``/``lemma`` — and only
Lean's standard axioms (propext, Classical.choice, Quot.sound) are accepted.

Rejected before Lean runs: ``sorry``, ``admit``, new ``axiom`` declarations, switching off
the kernel (``debug.skipKernelTC``), and, with ``spec``, a candidate that does not contain
the spec verbatim or puts anything but ``import`` lines before it.

Partial proofs (``partial=True``): an error is *at the unfinished end* when it is on or after
the last non-blank line, or it is "unsolved goals" inside the last declaration (Lean reports
an open tactic block at its ``by``). Only such errors → ``incomplete``; any other →
``refuted``; a time-out → ``refuted``; no error and standard axioms only → ``verified``.
"""

from __future__ import annotations

import re

from verifiers.programs import (
    DEFAULT_TIMEOUT,
    Syntax,
    cached,
    clip,
    last_line,
    locate,
    mask,
    missing,
    run_tool,
    screen,
    spec_position,
)
from verifiers.types import Checker, Verdict

SYNTAX = Syntax(line_comment="--", block_open="/-", block_close="-/", string_escape="\\")
INSTALL = (
    "install elan (curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh -sSf | sh), "
    "then `elan default leanprover/lean4:stable` (needs internet) and put ~/.elan/bin on PATH"
)
CHEATS = {
    r"\bsorry\b": "`sorry`",
    r"\badmit\b": "`admit`",
    r"\baxiom\b": "a new `axiom`",
    r"\bskipKernelTC\b": "switching off the kernel check",
}
STANDARD_AXIOMS = {"propext", "Classical.choice", "Quot.sound"}
THEOREM = re.compile(r"\b(?:theorem|lemma)\s+([^\s:({\[]+)")
DECLARATION = re.compile(
    r"^\s*(?:@\[[^\]]*\]\s*)?(?:private\s+|protected\s+|noncomputable\s+)*(?:theorem|lemma|def|example|instance|abbrev)\b", re.MULTILINE
)
ERROR = re.compile(r"^\S*?:(\d+):(\d+): error: (.*)$", re.MULTILINE)
AXIOMS = re.compile(r"depends on axioms: \[([^\]]*)\]|does not depend on any axioms")


def toolchain() -> tuple[str, str] | None:
    """(lean path, version) or None."""
    return locate("lean", "--version")


def check(source: str, *, spec: str | None = None, partial: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    found = toolchain()
    if found is None:
        return missing(Checker("lean"), INSTALL)
    lean, version = found
    key = ("lean", source, spec, partial, timeout, version)
    return cached(key, lambda: _check(lean, Checker("lean", version), source, spec, partial, timeout))


def _check(lean: str, checker: Checker, source: str, spec: str | None, partial: bool, timeout: float) -> Verdict:
    masked = mask(source, SYNTAX)
    refused = screen(masked, CHEATS, spec is None or _keeps_spec(source, spec), checker)
    if refused:
        return refused
    names = THEOREM.findall(mask(spec, SYNTAX)) if spec is not None else THEOREM.findall(masked)[-1:]
    text = source + "\n\n" + "".join(f"#print axioms {name}\n" for name in names)
    run = run_tool([lean], "candidate.lean", text, timeout)
    if run.timed_out:
        return Verdict.of("refuted", f"timed out after {timeout:g} s", checker)
    errors = [(int(m[1]), m[3]) for m in ERROR.finditer(run.output)]
    if errors:
        if partial and all(_at_end(line, message, masked) for line, message in errors):
            return Verdict.of("incomplete", f"unfinished: {_describe(errors)}", checker)
        return Verdict.of("refuted", _describe(errors), checker)
    if run.returncode != 0:
        return Verdict.of("error", f"lean exited with {run.returncode}: {clip(run.output)}", checker)
    listed = AXIOMS.findall(run.output)  # one entry per #print axioms, "" for none
    if len(listed) != len(names):
        return Verdict.of("refuted", f"could not confirm the axioms used: {clip(run.output)}", checker)
    extra = {a.strip() for entry in listed for a in entry.split(",") if a.strip()} - STANDARD_AXIOMS
    if extra:
        return Verdict.of("refuted", f"depends on non-standard axioms: {', '.join(sorted(extra))}", checker)
    return Verdict.of("verified", "verified", checker)


def _keeps_spec(source: str, spec: str) -> bool:
    around = spec_position(source, spec, SYNTAX)
    return around is not None and re.fullmatch(r"(import\s+[\w.]+\s*)*", around[0]) is not None


def _at_end(line: int, message: str, masked: str) -> bool:
    if line >= last_line(masked):
        return True
    starts = [masked.count("\n", 0, m.start()) + 1 for m in DECLARATION.finditer(masked)]
    return message.startswith("unsolved goals") and bool(starts) and line >= starts[-1]


def _describe(errors: list[tuple[int, str]]) -> str:
    return clip("; ".join(f"line {line}: {message}" for line, message in errors[:3]))
