"""Lean 4 proofs, checked with the ``lean`` binary on PATH (as elan installs it).

``lean FILE`` elaborates and kernel-checks the file and prints ``FILE:L:C: error: …``. The
sandbox runs the toolchain's own binary (``lean --print-prefix``, so elan's proxy, which needs
its home, is not involved), with the toolchain and the ``LEAN_PATH`` entries visible read-only.
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

import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from verifiers.programs import (
    Candidate,
    Prepared,
    ProgramLanguage,
    Run,
    Syntax,
    Toolchain,
    clip,
    describe,
    last_line,
    locate,
    spec_position,
    theorem_names,
)
from verifiers.types import Verdict

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
# Lean maps every imported .olean into its address space (Mathlib's add up to several GB).
MEMORY_MB = 16384


@dataclass(frozen=True)
class _Proof(Prepared):
    names: tuple[str, ...]  # the theorems whose axioms are printed


class Lean(ProgramLanguage):
    def toolchain(self) -> Toolchain | None:
        found = locate("lean", "--version")
        if found is None:
            return None
        lean_path = os.environ.get("LEAN_PATH", "")
        return Toolchain(
            _toolchain_binary(found.binary), found.version,
            env=(("LEAN_PATH", lean_path),) if lean_path else (), expose=tuple(p for p in lean_path.split(":") if p),
        )  # fmt: skip

    def keeps_spec(self, source: str, spec: str) -> bool:
        around = spec_position(source, spec, SYNTAX)
        return around is not None and re.fullmatch(r"(import\s+[\w.]+\s*)*", around[0]) is not None

    def prepare(self, c: Candidate) -> _Proof:
        names = tuple(theorem_names(c, THEOREM, SYNTAX))
        return _Proof(c.source + "\n\n" + "".join(f"#print axioms {name}\n" for name in names), names)

    def judge(self, c: Candidate, proof: _Proof, run: Run) -> Verdict:
        errors = [(int(m[1]), m[3]) for m in ERROR.finditer(run.output)]
        if errors:
            if c.partial and all(_at_end(line, message, c.masked) for line, message in errors):
                return Verdict.of("incomplete", f"unfinished: {describe(errors)}", c.checker)
            return Verdict.of("refuted", describe(errors), c.checker, line=min(line for line, _ in errors))
        if run.returncode != 0:
            return Verdict.of("error", f"lean exited with {run.returncode}: {clip(run.output)}", c.checker)
        listed = AXIOMS.findall(run.output)  # one entry per #print axioms, "" for none
        if len(listed) != len(proof.names):
            return Verdict.of("refuted", f"could not confirm the axioms used: {clip(run.output)}", c.checker)
        extra = {a.strip() for entry in listed for a in entry.split(",") if a.strip()} - STANDARD_AXIOMS
        if extra:
            return Verdict.of("refuted", f"depends on non-standard axioms: {', '.join(sorted(extra))}", c.checker)
        return Verdict.of("verified", "verified", c.checker)


LEAN = Lean("lean", SYNTAX, CHEATS, INSTALL, "candidate.lean", memory_mb=MEMORY_MB)
check = LEAN.check
toolchain = LEAN.toolchain


@lru_cache(maxsize=8)
def _toolchain_binary(lean: str) -> str:
    """The toolchain's own ``lean`` behind ``lean`` on PATH (elan's proxy or the binary itself)."""
    try:
        prefix = subprocess.run([lean, "--print-prefix"], check=False, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return lean
    binary = os.path.join(prefix, "bin", "lean")
    return binary if prefix and os.path.isfile(binary) else lean


def _at_end(line: int, message: str, masked: str) -> bool:
    if line >= last_line(masked):
        return True
    starts = [masked.count("\n", 0, m.start()) + 1 for m in DECLARATION.finditer(masked)]
    return message.startswith("unsolved goals") and bool(starts) and line >= starts[-1]
