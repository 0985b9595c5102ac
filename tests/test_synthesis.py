"""VMCTS and the resampling baseline, with the real Coq checker and a test double for the model.

The double (`ProofScript`) answers by the partial program in the prompt: each body it is
asked to continue has a list of continuations it cycles through, so the search's choices —
not call order — decide what it sees. VMCTS's failure notes (comments after the body) are
not part of the body: the double records them, and a script can answer differently when
the prompt shows one. The end-to-end run with the real model is in
tests/test_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plait.errors import InvalidInput
from workers.strategies import RunContext, make_strategy
from workers.types import Budget

from test_strategies import ScriptedEngine

pytestmark = pytest.mark.needs_coq

SPEC = (Path(__file__).parents[1] / "benchmarks/data/coq/add_zero.v").read_text()
OPEN = "Proof.\n"
INDUCTION = "  induction n as [| k IH].\n  - reflexivity.\n  - simpl. rewrite IH. reflexivity.\nQed.\n```"
NOTES = re.compile(r"(?:^ *\(\* failed here: .*\*\)\n)+\Z", re.MULTILINE)


class ProofScript(ScriptedEngine):
    """Test double: continuations chosen by the body being continued, cycled in order."""

    def __init__(self, by_body: dict[str, list[str]], after_a_note: dict[str, list[str]] | None = None):
        super().__init__(by_body)
        self.after_a_note = after_a_note or {}
        self.asked: list[str] = []
        self.notes: list[str] = []

    def _next_text(self, prompt) -> str:
        shown = prompt[-1].content.split(SPEC.rstrip() + "\n", 1)[1]
        notes = NOTES.search(shown)
        body = shown[: notes.start()] if notes else shown
        self.asked.append(body)
        if notes:
            self.notes.append(notes[0])
        scripts = self.after_a_note if notes and body in self.after_a_note else self.scripts
        texts = scripts.setdefault(body, ["  admit.\n```"])
        texts.append(texts.pop(0))
        return texts[-1]


def synthesize(strategy, by_body, params=None, budget=None, after_a_note=None):
    engine = ProofScript(by_body, after_a_note)
    ctx = RunContext(engine, budget or Budget(max_tokens=4000))
    (attempt,) = make_strategy(strategy, {"language": "coq", "parallel": 1, **(params or {})}).run([SPEC], ctx)
    return attempt, engine


def test_vmcts_returns_the_program_coq_accepts_and_records_the_dead_branch():
    wrong = "  reflexivity.\nQed.\n```"  # n + 0 does not reduce: this tactic fails
    attempt, _ = synthesize("vmcts", {OPEN: [wrong, "  intros n.\n" + INDUCTION]}, {"parallel": 2})
    assert attempt.verdict.verified and attempt.verdict.checker.name == "coq"
    assert attempt.answer == SPEC.rstrip() + "\n" + OPEN + "  intros n.\n" + INDUCTION.removesuffix("```")
    assert attempt.finish_reason == "answered" and attempt.answer_source == "verifier"
    tree = {n["step"]: n for n in attempt.search["tree"]}
    assert tree["  reflexivity.\n"]["status"] == "refuted"  # the first line itself fails: a dead end
    assert attempt.search["solution_node"] == tree["  intros n.\n"]["id"]


def test_vmcts_keeps_a_good_step_whose_rollout_failed_and_extends_it():
    # From the root the model always writes `intros n.` and then a wrong finish; continued
    # from `intros n.` it writes the induction. Only a search that keeps the good first line
    # (its rollout was refuted, the line itself was not) and expands it finds the proof.
    after_intros = OPEN + "  intros n.\n"
    attempt, engine = synthesize("vmcts", {OPEN: ["  intros n.\n  reflexivity.\nQed.\n```"], after_intros: [INDUCTION]})
    assert attempt.verdict.verified
    tree = attempt.search["tree"]
    intros = next(n for n in tree if n["step"] == "  intros n.\n")
    assert intros["rollouts"].get("refuted", 0) >= 1 and intros["status"] != "refuted"
    solution = tree[attempt.search["solution_node"]]
    assert solution["parent"] == intros["id"]
    assert after_intros in engine.asked


def test_vmcts_goes_on_from_the_lines_coq_accepted_before_a_rollouts_error():
    # From the root the model writes three good lines and then a wrong tactic; continued from
    # just before that tactic it writes the right one, and from anywhere else it cheats. Only a
    # search that keeps what coqc accepted of the refuted rollout reaches the proof.
    accepted = OPEN + "  intros n.\n  induction n as [| k IH].\n  - reflexivity.\n  - simpl.\n"
    wrong_finish = "  reflexivity.\nQed.\n```"
    script = {OPEN: [accepted.removeprefix(OPEN) + wrong_finish], accepted: ["  rewrite IH. reflexivity.\nQed.\n```"]}
    attempt, engine = synthesize("vmcts", script)
    assert attempt.verdict.verified and accepted in engine.asked
    tree = attempt.search["tree"]
    intros = next(n for n in tree if n["step"] == "  intros n.\n")
    kept = next(n for n in tree if n["step"] == "  induction n as [| k IH].\n  - reflexivity.\n  - simpl.\n")
    assert kept["parent"] == intros["id"] and kept["status"] == "incomplete"
    assert tree[attempt.search["solution_node"]]["parent"] == kept["id"]


def test_vmcts_goes_on_from_the_tactics_coq_accepted_before_the_failing_one_on_its_line():
    # From the root the model writes a good tactic and a wrong one on one line; continued from
    # just after the good one it writes the induction, and from anywhere else it cheats. Only a
    # search whose step can end inside a line, where coqc's column says the error starts, finds it.
    intros = OPEN + "  intros n."
    attempt, engine = synthesize("vmcts", {OPEN: ["  intros n. reflexivity.\nQed.\n```"], intros: ["\n" + INDUCTION]}, {"samples": 6})
    assert attempt.verdict.verified and intros in engine.asked
    tree = attempt.search["tree"]
    kept = next(n for n in tree if n["step"] == "  intros n.")
    assert kept["parent"] == 0 and kept["status"] == "incomplete"
    assert next(n for n in tree if n["step"] == "  intros n. reflexivity.\n")["status"] == "refuted"
    assert tree[attempt.search["solution_node"]]["parent"] == kept["id"]


def test_vmcts_shows_the_model_the_line_coq_rejected_there_and_why():
    # The model writes the right induction and a wrong last case; continued from just before
    # that case it writes the same wrong line again, unless the prompt tells it the line failed
    # and coqc's message. Only with the notes does it find the proof within the budget.
    accepted = OPEN + "  intros n.\n  induction n as [| k IH].\n  - reflexivity.\n  - simpl.\n"
    wrong = "  reflexivity.\nQed.\n```"
    script = {OPEN: [accepted.removeprefix(OPEN) + wrong], accepted: [wrong]}
    fixed = {accepted: ["  rewrite IH. reflexivity.\nQed.\n```"]}
    attempt, engine = synthesize("vmcts", script, {"samples": 8}, after_a_note=fixed)
    assert attempt.verdict.verified
    assert engine.notes[0] == "  (* failed here: reflexivity. -- " + engine.notes[0].split(" -- ", 1)[1]
    assert "Unable to unify" in engine.notes[0] and "line " not in engine.notes[0]
    assert "(* failed here" not in attempt.answer  # the notes are the prompt's, never the program's
    kept = next(n for n in attempt.search["tree"] if n["step"] == "  induction n as [| k IH].\n  - reflexivity.\n  - simpl.\n")
    assert kept["failed_lines"] == ["  reflexivity."]

    attempt, engine = synthesize("vmcts", script, {"samples": 8, "feedback": 0}, after_a_note=fixed)
    assert not attempt.verdict.verified and engine.notes == []


def test_vmcts_notes_the_newest_rejected_lines_first_wherever_their_program_is_reached():
    # The same partial program is reached by two paths (a kept two-line node, and its lines one
    # by one); the model keeps writing wrong last cases after it. Each prompt shows at most two
    # rejected lines, the newest first, and both nodes know every line rejected after them.
    accepted = OPEN + "  intros n.\n  induction n as [| k IH].\n  - reflexivity.\n  - simpl.\n"
    wrongs = [f"  {tactic}.\nQed.\n```" for tactic in ("reflexivity", "exact eq_refl", "apply eq_refl")]
    intros = OPEN + "  intros n.\n"
    script = {OPEN: [accepted.removeprefix(OPEN) + wrongs[0]], intros: [accepted.removeprefix(intros) + wrongs[0]], accepted: wrongs[1:]}
    attempt, engine = synthesize("vmcts", script, {"samples": 12, "feedback": 2})
    shown = [[line.split(" -- ")[0].removeprefix("  (* failed here: ") for line in note.splitlines()] for note in engine.notes]
    assert shown[:2] == [["reflexivity."], ["exact eq_refl.", "reflexivity."]]
    assert max(len(lines) for lines in shown) == 2
    noted = [n for n in attempt.search["tree"] if n["failed_lines"]]
    assert len(noted) == 2 and noted[0]["failed_lines"] == noted[1]["failed_lines"]
    assert sorted(noted[0]["failed_lines"]) == sorted(w.split("\n")[0] for w in wrongs)


def test_a_vmcts_step_keeps_the_blank_lines_after_its_line():
    # The model writes "intros n." and a blank line (one "\n\n" token): that is the step, and
    # the search continues after the blank line, not inside its token.
    after_intros = OPEN + "  intros n.\n\n"
    attempt, engine = synthesize("vmcts", {OPEN: ["  intros n.\n\n  reflexivity.\nQed.\n```"], after_intros: [INDUCTION]})
    assert attempt.verdict.verified and after_intros in engine.asked
    assert "  intros n.\n\n" in [n["step"] for n in attempt.search["tree"]]


def test_vmcts_stops_exactly_at_its_expansion_and_token_budgets():
    always_wrong = {OPEN: ["  reflexivity.\nQed.\n```", "  simpl.\n  reflexivity.\nQed.\n```"]}
    attempt, _ = synthesize("vmcts", always_wrong, {"samples": 5, "parallel": 2})
    assert attempt.search["expansions"] == 5 and attempt.answer is None
    assert attempt.verdict.status == "unknown" and "no program verified" in attempt.verdict.message
    for strategy in ("vmcts", "resample"):
        for parallel in (1, 4):
            attempt, _ = synthesize(strategy, always_wrong, {"samples": 1000, "parallel": parallel}, Budget(max_tokens=23))
            assert 20 <= attempt.completion_tokens <= 23 and attempt.finish_reason == "budget"


def test_cheating_is_never_accepted():
    attempt, _ = synthesize("vmcts", {OPEN: ["  intros n.\nAdmitted.\n```"]}, {"samples": 3})
    assert attempt.answer is None and not attempt.verdict.verified
    assert all(n["status"] != "verified" for n in attempt.search["tree"])


def test_resample_checks_whole_programs_until_one_verifies():
    attempt, engine = synthesize("resample", {OPEN: ["  reflexivity.\nQed.\n```", "  simpl.\nQed.\n```", "  intros n.\n" + INDUCTION]})
    assert attempt.verdict.verified and [s["status"] for s in attempt.search["samples"]] == ["refuted", "refuted", "verified"]
    assert engine.asked == [OPEN] * 3  # never continues a partial program


def test_a_missing_checker_ends_the_search_with_install_guidance(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    attempt, engine = synthesize("vmcts", {OPEN: ["  intros n.\n" + INDUCTION]}, {"samples": 50})
    assert attempt.verdict.status == "error" and "apt-get install" in attempt.verdict.message
    assert attempt.finish_reason == "error" and len(engine.asked) == 1


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"language": "rust"}, "language must be one of"),
        ({"widen_alpha": 2}, "widen_alpha"),
        ({"parallel": 0}, "parallel"),
        ({"feedback": -1}, "feedback"),
    ],
)
def test_bad_parameters_are_named(params, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        make_strategy("vmcts", params)
