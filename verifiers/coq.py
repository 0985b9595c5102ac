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
from dataclasses import dataclass

from verifiers.programs import (
    Candidate,
    Prepared,
    ProgramLanguage,
    Run,
    Syntax,
    Toolchain,
    clip,
    locate,
    spec_position,
    theorem_names,
)
from verifiers.types import Verdict

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
LOCATED = re.compile(r'^File "[^"]*", line (\d+), characters (\d+)-\d+:\n(Error:[\s\S]*?)(?=^File "|\Z)', re.MULTILINE)
CLOSED = "Closed under the global context"


@dataclass(frozen=True)
class _Proof(Prepared):
    names: tuple[str, ...]  # the theorems whose assumptions are printed
    last_line: int  # the candidate's last line in the text; our commands follow it
    tail: str  # the unfinished sentence left out
    marker: str  # printed just before the assumptions: the candidate cannot print it


class Coq(ProgramLanguage):
    def toolchain(self) -> Toolchain | None:
        return locate("coqc", "--version")

    def command(self, tool: Toolchain, timeout: float) -> list[str]:
        return [tool.binary, "-q"]

    def keeps_spec(self, source: str, spec: str) -> bool:
        around = spec_position(source, spec, SYNTAX)
        if around is None:
            return False
        sentences = [s for s in re.split(r"\.(?:\s|$)", around[0]) if s.strip()]
        return all(IMPORT_SENTENCE.fullmatch(s.strip()) for s in sentences)

    def prepare(self, c: Candidate) -> _Proof:
        names = tuple(theorem_names(c, THEOREM, SYNTAX))
        finished = c.source[: _finished_end(c.masked)] if c.partial else c.source
        marker = f"plait_{uuid.uuid4().hex}"
        text = finished + f"\nDefinition {marker} := 0.\nPrint {marker}.\n" + "".join(f"Print Assumptions {name}.\n" for name in names)
        return _Proof(text, names, finished.count("\n") + 1, c.source[len(finished) :].strip(), marker)

    def judge(self, c: Candidate, proof: _Proof, run: Run) -> Verdict:
        located = LOCATED.search(run.output)
        if located and int(located[1]) <= proof.last_line:
            return Verdict.of("refuted", f"line {located[1]}: {clip(' '.join(located[3].split()))}", c.checker, line=int(located[1]), column=int(located[2]))
        if run.returncode != 0:  # an error in the appended commands: a proof is still open
            message = "proof not finished" + (f" ({', '.join(proof.names)})" if proof.names else "")
            return Verdict.of("incomplete" if c.partial else "refuted", message, c.checker)
        if proof.tail:
            return Verdict.of("incomplete", f"last sentence not finished: {clip(proof.tail)}", c.checker)
        assumptions = run.output.rpartition(proof.marker)[2]
        if assumptions.count(CLOSED) != len(proof.names) or "Axioms:" in assumptions:
            used = assumptions.partition("Axioms:")[2]
            return Verdict.of("refuted", f"depends on axioms: {clip(' '.join(used.split()))}", c.checker)
        return Verdict.of("verified", "verified", c.checker)


COQ = Coq("coq", SYNTAX, CHEATS, INSTALL, "candidate.v")
check = COQ.check
toolchain = COQ.toolchain


def _finished_end(masked: str) -> int:
    """Offset just past the last finished sentence: a `.` followed by whitespace."""
    ends = [m.end() for m in re.finditer(r"\.(?=\s)", masked)]
    return ends[-1] if ends else 0
