"""Coq proofs, checked with ``coqc`` (Debian package ``coq``, 8.16).

``coqc`` exits 0 even for ``Admitted.`` proofs, so ``Print Assumptions T.`` is appended for
the theorems that matter — those the spec states, or else the file's last
Theorem/Lemma/Example/... — and each must answer "Closed under the global context".
``coqc`` stops at the first failing sentence and reports ``File …, line L, characters A-B:
Error: …``; an open proof at the end of the file is "There are pending proofs".

Rejected before Coq runs: ``Admitted``, ``admit``, ``Admit Obligations``, declarations of
``Axiom``/``Parameter``/``Hypothesis``/``Conjecture`` (and their plurals), switching off
guard/positivity/universe checking, and, with ``spec``, a candidate that does not contain
the spec verbatim or puts anything but ``Require``/``Import``/``Export`` sentences before it
(a definition there could change what the spec's names mean).

Partial proofs (``partial=True``): a sentence is finished once its ``.`` is followed by
whitespace; the unfinished tail after the last such sentence is not sent to Coq. The
finished sentences are checked. An error in any of them → ``refuted`` (a failing tactic or
a ``Qed`` on an unproved goal cannot be repaired by later text); only the proof still being
open, or an unfinished tail → ``incomplete``; everything closed and free of axioms →
``verified``; a time-out → ``refuted``.
"""

from __future__ import annotations

import re
import uuid

from verifiers.programs import (
    DEFAULT_TIMEOUT,
    Syntax,
    cached,
    clip,
    locate,
    mask,
    missing,
    run_tool,
    screen,
    spec_position,
)
from verifiers.types import Checker, Verdict

SYNTAX = Syntax(line_comment=None, block_open="(*", block_close="*)", string_escape='"')
INSTALL = "apt-get install coq (Debian/Ubuntu), or `opam install coq`"
CHEATS = {
    r"\bAdmitted\b": "`Admitted`",
    r"\badmit\b": "the `admit` tactic",
    r"\bAdmit\s+Obligations\b": "`Admit Obligations`",
    r"\b(Axioms?|Parameters?|Hypothes[ie]s|Conjecture)\b": "a new axiom (Axiom/Parameter/Hypothesis/Conjecture)",
    r"\bUnset\s+(Guard|Positivity|Universe)\s+Checking\b": "switching off Coq's checking",
}
THEOREM = re.compile(r"\b(?:Theorem|Lemma|Example|Corollary|Proposition|Fact|Remark)\s+([\w']+)")
IMPORT_SENTENCE = re.compile(r"(From\s+[\w.]+\s+)?(Require(\s+(Import|Export))?|Import|Export)(\s+[\w.']+)+")
LOCATED = re.compile(r'^File "[^"]*", line (\d+), characters \d+-\d+:\n(Error:[\s\S]*?)(?=^File "|\Z)', re.MULTILINE)
CLOSED = "Closed under the global context"


def toolchain() -> tuple[str, str] | None:
    """(coqc path, version) or None."""
    return locate("coqc", "--version")


def check(source: str, *, spec: str | None = None, partial: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    found = toolchain()
    if found is None:
        return missing(Checker("coq"), INSTALL)
    coqc, version = found
    key = ("coq", source, spec, partial, timeout, version)
    return cached(key, lambda: _check(coqc, Checker("coq", version), source, spec, partial, timeout))


def _check(coqc: str, checker: Checker, source: str, spec: str | None, partial: bool, timeout: float) -> Verdict:
    masked = mask(source, SYNTAX)
    refused = screen(masked, CHEATS, spec is None or _keeps_spec(source, spec), checker)
    if refused:
        return refused
    names = THEOREM.findall(mask(spec, SYNTAX)) if spec is not None else THEOREM.findall(masked)[-1:]
    finished = source[: _finished_end(masked)] if partial else source
    tail = source[len(finished) :].strip()
    marker = f"plait_{uuid.uuid4().hex}"  # our output starts after it: the candidate cannot print it
    text = finished + f"\nDefinition {marker} := 0.\nPrint {marker}.\n" + "".join(f"Print Assumptions {name}.\n" for name in names)
    run = run_tool([coqc, "-q"], "candidate.v", text, timeout)
    if run.timed_out:
        return Verdict.of("refuted", f"timed out after {timeout:g} s", checker)
    located = LOCATED.search(run.output)
    if located and int(located[1]) <= finished.count("\n") + 1:
        return Verdict.of("refuted", f"line {located[1]}: {clip(' '.join(located[2].split()))}", checker)
    if run.returncode != 0:  # an error in the appended commands: a proof is still open
        message = "proof not finished" + (f" ({', '.join(names)})" if names else "")
        return Verdict.of("incomplete" if partial else "refuted", message, checker)
    if tail:
        return Verdict.of("incomplete", f"last sentence not finished: {clip(tail)}", checker)
    assumptions = run.output.rpartition(marker)[2]
    if assumptions.count(CLOSED) != len(names) or "Axioms:" in assumptions:
        used = assumptions.partition("Axioms:")[2]
        return Verdict.of("refuted", f"depends on axioms: {clip(' '.join(used.split()))}", checker)
    return Verdict.of("verified", "verified", checker)


def _keeps_spec(source: str, spec: str) -> bool:
    around = spec_position(source, spec, SYNTAX)
    if around is None:
        return False
    sentences = [s for s in re.split(r"\.(?:\s|$)", around[0]) if s.strip()]
    return all(IMPORT_SENTENCE.fullmatch(s.strip()) for s in sentences)


def _finished_end(masked: str) -> int:
    """Offset just past the last finished sentence: a `.` followed by whitespace."""
    ends = [m.end() for m in re.finditer(r"\.(?=\s)", masked)]
    return ends[-1] if ends else 0
