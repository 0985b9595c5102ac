"""The program methods: a Dafny method body, a Coq proof, a Lean 4 proof.

The question is the specification; the model writes what follows it inside a fenced block
that starts with the spec, so the program a path stands for is always spec + body. A whole
program ends at the closing fence; a step is one line. The final answer is the program the
job's verifier (the language's real checker) accepts: see synthesis.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from workers.engines.base import Completion, Prompt
from workers.strategies.methods import Method
from workers.strategies.paths import Path
from workers.strategies.prompts import FewShot

FENCE_END = "```"
LOCATION = re.compile(r"^line \d+: ")  # a verdict's own line number, which a note would only shift


@dataclass(frozen=True)
class ProgramMethod(Method):
    stop: ClassVar[tuple[str, ...]] = (FENCE_END,)
    step_stop: ClassVar[tuple[str, ...]] = ("\n", FENCE_END)
    system: ClassVar[str]
    # One worked example, none of them a benchmark problem: (spec, what follows it). The model
    # learns the format (the spec repeated, then the body) from it.
    example: ClassVar[tuple[str, str]]
    comment: ClassVar[tuple[str, str]]  # (opening, closing); no closing: it runs to the line's end

    def program(self, spec: str, body: str) -> str:
        return f"{spec.rstrip()}\n{body}"

    def body_before(self, spec: str, body: str, line: int, column: int | None = None) -> str:
        """What of `body` precedes line `line` (1-based) of its program: its finished lines, and
        with `column`, that line's text before it (the tactics before a failing one), without
        the trailing blanks the model would write again as part of its next token."""
        first = self.program(spec, "").count("\n") + 1  # the program's line the body starts on
        lines = body.split("\n")
        before = "".join(f"{k}\n" for k in lines[:-1][: max(0, line - first)])
        if column is None or not first <= line < first + len(lines):
            return before
        head = lines[line - first][:column].rstrip()
        return before + head if head.strip() else before

    def failure_note(self, line: str, message: str) -> str:
        """A comment line saying that `line`, written here, failed with the checker's `message`:
        for a prompt, so the model sees why before it writes on; never part of a checked program."""
        opening, closing = self.comment
        said = LOCATION.sub("", " ".join(message.split()))
        for delimiter in filter(None, (opening, closing)):
            line, said = line.replace(delimiter, " "), said.replace(delimiter, " ")
        indent = line[: len(line) - len(line.lstrip())]
        return f"{indent}{opening} failed here: {line.strip()} -- {said} {closing}".rstrip() + "\n"

    @property
    def few_shot(self) -> FewShot:
        spec, rest = self.example
        return FewShot(system=self.system, examples=((spec, f"```{self.name}\n{spec}{rest}```"),))

    def prompt(self, path: Path, model_id: str) -> Prompt:
        return self.few_shot.prompt(path.question, f"```{self.name}\n{self.program(path.question, path.text)}")

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        path.step = completion.text
        path.text += completion.text
        return closed(completion)


def closed(completion: Completion) -> bool:
    """The model closed the program: the fence's end, or EOS."""
    return completion.finish_reason == "stop" and completion.stop_reason in (FENCE_END, None)


@dataclass(frozen=True)
class Dafny(ProgramMethod):
    name: ClassVar[str] = "dafny"
    opening: ClassVar[str] = "{\n"  # Dafny needs the body's `{` right after the spec
    comment: ClassVar[tuple[str, str]] = ("//", "")
    system: ClassVar[str] = "Write the body of the Dafny method so that Dafny verifies it. Add loop invariants where a loop needs them."
    example: ClassVar[tuple[str, str]] = (
        """// a times b, by repeated addition.
method Mult(a: nat, b: nat) returns (p: nat)
  ensures p == a * b""",
        """
{
  p := 0;
  var i := 0;
  while i < b
    invariant i <= b
    invariant p == a * i
  {
    p := p + a;
    i := i + 1;
  }
}
""",
    )


@dataclass(frozen=True)
class Coq(ProgramMethod):
    name: ClassVar[str] = "coq"
    opening: ClassVar[str] = "Proof.\n"
    comment: ClassVar[tuple[str, str]] = ("(*", "*)")
    system: ClassVar[str] = "Prove the Coq theorem. Write the proof script, ending with Qed."
    example: ClassVar[tuple[str, str]] = (
        "(** Multiplying by one on the right. *)\nTheorem mult_one_right : forall n : nat, n * 1 = n.",
        """
Proof.
  intros n. induction n as [| k IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
""",
    )


@dataclass(frozen=True)
class Lean(ProgramMethod):
    name: ClassVar[str] = "lean"
    comment: ClassVar[tuple[str, str]] = ("--", "")
    system: ClassVar[str] = "Prove the Lean 4 theorem (core Lean, no Mathlib). Write the proof after :=."
    example: ClassVar[tuple[str, str]] = (
        "/-- Multiplying by one on the right. -/\ntheorem mul_one' (n : Nat) : n * 1 = n :=",
        """ by
  induction n with
  | zero => rfl
  | succ k ih => simp
""",
    )


PROGRAMS: dict[str, type[ProgramMethod]] = {method.name: method for method in (Dafny, Coq, Lean)}
