"""Program verifiers against the real checkers (Dafny, Coq; Lean where installed), the
benchmark problems' known-good and known-bad solutions, and `plait verify` as a subprocess."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools.sandbox import isolation_available
from verifiers import coq, dafny
from verifiers.programs import clear_cache, verify_program
from workers.strategies.programs import PROGRAMS

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
PLAIT = str(Path(sys.executable).with_name("plait"))
NEEDS_DAFNY, NEEDS_COQ, needs_lean = pytest.mark.needs_dafny, pytest.mark.needs_coq, pytest.mark.needs_lean


def problems(language: str, ext: str) -> list[str]:
    return sorted(p.stem for p in (DATA / language).glob(f"*.{ext}"))


def spec(language: str, name: str, ext: str) -> str:
    return (DATA / language / f"{name}.{ext}").read_text()


def solution(language: str, name: str, kind: str, ext: str) -> str:
    return (DATA / language / "solutions" / f"{name}.{kind}.{ext}").read_text()


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()


@pytest.fixture(params=["warm", "cli"])
def dafny_route(request, monkeypatch):
    """Each Dafny check both ways: through the warm DafnyServer sessions and through the CLI."""
    if request.param == "cli":
        monkeypatch.setattr(dafny, "_warm_pool", lambda tool: None)
    else:
        assert dafny._warm_pool(dafny.toolchain()) is not None, "Debian's Dafny 2.3 ships DafnyServer.exe: it should start"
    return request.param


def test_every_language_has_at_least_ten_problems_with_good_and_bad_solutions():
    for language, ext in (("dafny", "dfy"), ("coq", "v"), ("lean", "lean")):
        names = problems(language, ext)
        assert len(names) >= 10, language
        for name in names:
            spec_text = spec(language, name, ext)
            for kind in ("good", "bad"):
                assert spec_text.strip() in solution(language, name, kind, ext), (language, name)


TUNING = [
    pytest.param(language, p.stem, ext, marks=mark, id=f"{language}/{p.stem}")
    for language, ext, mark in (("dafny", "dfy", NEEDS_DAFNY), ("coq", "v", NEEDS_COQ))
    for p in sorted((DATA / "tuning" / language).glob(f"*.{ext}"))
]


@pytest.mark.parametrize("language, name, ext", TUNING)
def test_every_tuning_spec_is_provable_and_none_is_a_reported_one(language, name, ext):
    # What VMCTS is tuned on must be solvable (else it tunes nothing) and held apart from the
    # specs it is measured on.
    text = (DATA / "tuning" / language / f"{name}.{ext}").read_text()
    good = (DATA / "tuning" / language / "solutions" / f"{name}.good.{ext}").read_text()
    assert verify_program(language, good, spec=text).verified
    assert all(text.strip() != spec(language, other, ext).strip() for other in problems(language, ext))
    assert name not in problems(language, ext)


# --- Dafny ----------------------------------------------------------------------------------

MAX = spec("dafny", "max", "dfy")
SUM_TO = spec("dafny", "sum_to", "dfy")
SUM_TO_HEAD = SUM_TO + "{\n  s := 0;\n  var i := 0;\n  while i < n\n    invariant 0 <= i <= n\n    invariant s == i * (i + 1) / 2\n  {\n"


@NEEDS_DAFNY
@pytest.mark.parametrize("name", problems("dafny", "dfy"))
def test_dafny_good_solution_verifies_and_bad_one_is_refuted(name, dafny_route):
    def check(kind: str):
        return verify_program("dafny", solution("dafny", name, kind, "dfy"), spec=spec("dafny", name, "dfy"))

    with ThreadPoolExecutor(2) as pool:  # ~1.2 s of mono and z3 each
        good, bad = pool.map(check, ("good", "bad"))
    assert good.status == "verified" and good.score == 1.0, good.message
    assert good.checker.name == "dafny" and good.checker.version[:1].isdigit()
    assert bad.status == "refuted" and bad.score == -1.0 and "Error" in bad.message, bad.message


@NEEDS_DAFNY
@pytest.mark.parametrize(
    "partial_program, status",
    [
        (MAX, "incomplete"),  # the signature alone: its body is not written yet
        (MAX + "{\n  if a >= b {\n    m := a;\n", "incomplete"),  # postconditions fail only at the closing braces added
        (MAX + "{\n  if a >= b {\n    m := ", "incomplete"),  # parse error at the end
        (MAX + "{\n  assert a == b;\n  if a >= b {\n", "refuted"),  # an earlier assertion fails
        (MAX + "{\n  m := a +;\n  if a >= b {\n", "refuted"),  # an earlier parse error
        (SUM_TO_HEAD + "    i := i + 1;\n", "incomplete"),  # invariant not maintained yet, loop still open
        (SUM_TO_HEAD + "    i := i + 1;\n  }\n  s := s;\n", "refuted"),  # the loop is closed: no more fixing it
        (solution("dafny", "max", "good", "dfy"), "verified"),
    ],
)
def test_dafny_partial_programs(partial_program, status, dafny_route):
    verdict = verify_program("dafny", partial_program, spec=MAX if partial_program.startswith(MAX) else SUM_TO, partial=True)
    assert verdict.status == status, verdict.message
    assert verdict.score == {"verified": 1.0, "incomplete": 0.0, "refuted": -1.0}[status]


@NEEDS_DAFNY
@pytest.mark.parametrize("partial", [True, False])
def test_a_refuted_dafny_program_names_the_line_of_its_first_error(partial, dafny_route):
    accepted = MAX + "{\n  m := a;\n"
    verdict = verify_program("dafny", accepted + "  assert a == b;\n}\n", spec=MAX, partial=partial)  # the postcondition fails too, later
    assert verdict.status == "refuted" and verdict.line == accepted.count("\n") + 1, (verdict.line, verdict.message)
    assert verify_program("dafny", accepted, spec=MAX, partial=True).line is None  # incomplete: nothing to locate


@NEEDS_DAFNY
def test_dafny_timeout_is_refuted(dafny_route):
    hard = "lemma Cubes(a: int, b: int, c: int)\n  requires a > 0 && b > 0 && c > 0\n  ensures a*a*a + b*b*b != c*c*c\n{\n}\n"
    verdict = verify_program("dafny", hard, timeout=2)
    assert verdict.status == "refuted" and "timed out" in verdict.message


@NEEDS_DAFNY
def test_a_warm_dafny_server_that_dies_is_replaced_and_the_verdicts_stay_right():
    good, bad = solution("dafny", "abs", "good", "dfy"), solution("dafny", "abs", "bad", "dfy")
    pool = dafny._warm_pool(dafny.toolchain())
    with pool.session() as session:
        assert session.alive
        os.killpg(session._proc.pid, 9)  # the whole sandboxed server, as a crash or the OOM killer would
        session._proc.wait()
    assert verify_program("dafny", good).status == "verified"
    assert verify_program("dafny", bad).status == "refuted"
    with pool.session() as session:
        assert session.alive


@NEEDS_DAFNY
@pytest.mark.parametrize(
    "candidate, words",
    [
        (MAX + "{\n  assume a >= b;\n  m := a;\n}\n", "assume"),
        (MAX + "{\n  Helper(a, b);\n  m := a;\n}\nlemma {:axiom} Helper(a: int, b: int) ensures a >= b\n", "{:axiom}"),
        (MAX + "{\n  Helper(a, b);\n  m := a;\n}\nlemma Helper(a: int, b: int) ensures a >= b\n", "Helper has no body"),
        (MAX + "{\n  m := a;\n}\nlemma Helper(a: int, b: int) ensures a >= b\nlemma Other() { }\n", "Helper has no body"),
        (MAX.replace("method Max", "method {:verify false} Max") + "{\n  m := a;\n}\n", "verify false"),
        (MAX + "  free ensures m > a\n{\n  m := a;\n}\n", "free"),
        (MAX, "Max has no body"),
        (MAX.replace("ensures m == a || m == b\n", "") + "{\n  m := a + b;\n}\n", "specification"),
        (MAX + "  requires a == b\n{\n  m := a;\n}\n", "specification"),
    ],
)
def test_dafny_cheating_and_spec_edits_are_rejected(candidate, words):
    verdict = verify_program("dafny", candidate, spec=MAX)
    assert verdict.status == "refuted" and words in verdict.message, verdict.message


@NEEDS_DAFNY
def test_dafny_forbidden_words_in_comments_and_set_displays_are_fine():
    candidate = MAX + "{\n  // no assume here, nor {:axiom}\n  var s := {a, b};\n  if a >= b { m := a; } else { m := b; }\n}\n"
    assert verify_program("dafny", candidate, spec=MAX).verified


# --- Coq ------------------------------------------------------------------------------------

ADD_ZERO = spec("coq", "add_zero", "v")


@NEEDS_COQ
@pytest.mark.parametrize("name", problems("coq", "v"))
def test_coq_good_solution_verifies_and_bad_one_is_refuted(name):
    good = verify_program("coq", solution("coq", name, "good", "v"), spec=spec("coq", name, "v"))
    assert good.status == "verified" and good.score == 1.0, good.message
    assert good.checker.name == "coq" and good.checker.version[:1].isdigit()
    bad = verify_program("coq", solution("coq", name, "bad", "v"), spec=spec("coq", name, "v"))
    assert bad.status == "refuted" and "Error" in bad.message, bad.message


@NEEDS_COQ
@pytest.mark.parametrize(
    "partial_proof, status",
    [
        ("", "incomplete"),  # the statement alone
        ("Proof.\n  intros n. induction n as [| k IH].\n", "incomplete"),  # pending proof
        ("Proof.\n  intros n. induction n as [| k IH].\n  - reflexivity.\n  - simpl. rewri", "incomplete"),  # unfinished sentence
        ("Proof.\n  intros n. reflexivity.\n  simpl.\n", "refuted"),  # a failed tactic earlier
        ("Proof.\n  intros n. induction n as [| k IH].\n  - reflexivity.\nQed.\n", "refuted"),  # Qed with goals left
        ("Proof.\n  intros n. simpl. reflexivity.\n", "refuted"),  # the last finished sentence fails
        (solution("coq", "add_zero", "good", "v")[len(ADD_ZERO) :], "verified"),
    ],
)
def test_coq_partial_proofs(partial_proof, status):
    verdict = verify_program("coq", ADD_ZERO + partial_proof, spec=ADD_ZERO, partial=True)
    assert verdict.status == status, verdict.message


@NEEDS_COQ
@pytest.mark.parametrize(
    "failing",
    [
        "  reflexivity.\n  simpl.\n",  # a tactic that fails, more sentences after it
        "  induction n as [| k IH].\n  - reflexivity.\nQed.\n",  # a Qed with goals left, where coqc stops
    ],
)
def test_a_refuted_coq_proof_names_the_line_coqc_stopped_at(failing):
    accepted = ADD_ZERO + "Proof.\n  intros n.\n"
    verdict = verify_program("coq", accepted + failing, spec=ADD_ZERO, partial=True)
    stopped_at = accepted.count("\n") + 1 + (failing.count("\n") - 1 if "Qed" in failing else 0)
    assert verdict.status == "refuted" and verdict.line == stopped_at, (verdict.line, verdict.message)
    cheat = verify_program("coq", accepted + "Admitted.\n", spec=ADD_ZERO)
    assert cheat.status == "refuted" and cheat.line is None  # refused before coqc ran: no line to point at


@NEEDS_COQ
def test_a_refuted_coq_proof_names_where_in_its_line_the_failing_tactic_starts():
    accepted = ADD_ZERO + "Proof.\n"
    for before in ("  ", "  intros n. ", "  intros n.  simpl. "):
        verdict = verify_program("coq", accepted + before + "reflexivity.\nQed.\n", spec=ADD_ZERO, partial=True)
        assert verdict.status == "refuted" and verdict.line == accepted.count("\n") + 1, verdict.message
        assert verdict.column == len(before), (before, verdict.column, verdict.message)


@NEEDS_COQ
@pytest.mark.parametrize(
    "candidate, words",
    [
        (ADD_ZERO + "Proof.\n  intros n.\nAdmitted.\n", "Admitted"),
        (ADD_ZERO + "Proof.\n  intros n. admit.\nQed.\n", "admit"),
        ("Axiom cheat : forall n : nat, n + 0 = n.\n" + ADD_ZERO + "Proof. exact cheat. Qed.\n", "axiom"),
        ("Parameter cheat : forall n : nat, n + 0 = n.\n" + ADD_ZERO + "Proof. exact cheat. Qed.\n", "axiom"),
        (ADD_ZERO.replace("n + 0 = n", "n = n") + "Proof. reflexivity. Qed.\n", "specification"),
        ("Definition helper := 0.\n" + solution("coq", "add_zero", "good", "v"), "specification"),
    ],
)
def test_coq_cheating_and_spec_edits_are_rejected(candidate, words):
    verdict = verify_program("coq", candidate, spec=ADD_ZERO)
    assert verdict.status == "refuted" and words in verdict.message, verdict.message


@NEEDS_COQ
def test_coq_axioms_from_the_library_are_caught_by_print_assumptions():
    candidate = "Require Import Classical.\nTheorem lem : forall P : Prop, P \\/ ~ P.\nProof. intros P. apply classic. Qed.\n"
    verdict = verify_program("coq", candidate)
    assert verdict.status == "refuted" and "classic" in verdict.message, verdict.message


@pytest.mark.parametrize("language, ext, name", [pytest.param("dafny", "dfy", "abs", marks=NEEDS_DAFNY), pytest.param("coq", "v", "add_zero", marks=NEEDS_COQ)])
def test_a_vmcts_failure_note_is_one_comment_line_the_checker_passes_over(language, ext, name):
    # A note quotes a model's line and a checker's message: whatever delimiters they hold, it
    # stays one comment, so the program around it checks as it would without it.
    note = PROGRAMS[language]().failure_note("    x := y; (* a *) // b -- c", 'line 3: Error: could not *) unify\n  "S k" (* // here')
    assert note.endswith("\n") and note.count("\n") == 1 and note.startswith("    ") and "line 3" not in note
    text = spec(language, name, ext).rstrip() + "\n"
    first, rest = solution(language, name, "good", ext).removeprefix(text).split("\n", 1)
    assert verify_program(language, text + first + "\n" + note + rest, text).verified


@NEEDS_COQ
def test_identical_programs_are_checked_once(monkeypatch):
    coq.toolchain()  # the version lookup, cached per binary, is not what is counted
    isolation_available()  # nor the sandbox's one-time probe
    calls = []
    real = subprocess.Popen

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    partial = ADD_ZERO + "Proof.\n  intros n.\n"
    first = [verify_program("coq", partial, spec=ADD_ZERO, partial=True) for _ in range(3)]
    assert len(calls) == 1 and all(v == first[0] for v in first)
    verify_program("coq", partial, spec=ADD_ZERO, partial=False)
    assert len(calls) == 2


@NEEDS_COQ
@pytest.mark.parametrize("where", ["/etc", os.path.expanduser("~"), tempfile.gettempdir()])
def test_a_coq_file_cannot_write_outside_its_scratch_directory(where):
    target = os.path.join(where, f"plait_probe_{uuid.uuid4().hex}")  # Redirect writes target + ".out"
    candidate = f'Redirect "{target}" Print nat.\nTheorem t : 1 = 1.\nProof. reflexivity. Qed.\n'
    try:
        verdict = verify_program("coq", candidate)
        assert not os.path.exists(target + ".out")
        if where != tempfile.gettempdir():  # the sandbox's /tmp is its own, and writable
            assert verdict.status == "refuted" and "Read-only file system" in verdict.message, verdict.message
    finally:
        if os.path.exists(target + ".out"):
            os.remove(target + ".out")


@NEEDS_COQ
def test_a_checker_that_prints_past_its_output_limit_is_refuted():
    candidate = "Theorem t : 1 = 1.\nProof. reflexivity. Qed.\n" + "Print nat.\n" * 2000
    verdict = verify_program("coq", candidate)
    assert verdict.status == "refuted" and "output limit" in verdict.message, verdict.message


# --- missing toolchains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "language, install",
    [("dafny", "apt-get install dafny"), ("coq", "apt-get install coq"), ("lean", "elan default leanprover/lean4:stable")],
)
def test_a_missing_toolchain_is_an_error_verdict_that_says_what_to_install(monkeypatch, tmp_path, language, install):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    verdict = verify_program(language, "anything", spec="anything", partial=True)
    assert verdict.status == "error" and verdict.score == 0.0 and install in verdict.message
    assert verdict.checker.name == language


# --- Lean (where a toolchain exists) --------------------------------------------------------


ADD_COMM = spec("lean", "add_comm", "lean")
REVERSE = spec("lean", "reverse_involution", "lean")
DISTR = "∀ a b : List Nat, reverse (a ++ b) = reverse b ++ reverse a"


@needs_lean
@pytest.mark.parametrize("name", problems("lean", "lean"))
def test_lean_good_solution_verifies_and_bad_one_is_refuted(name):
    good = verify_program("lean", solution("lean", name, "good", "lean"), spec=spec("lean", name, "lean"))
    assert good.status == "verified" and good.checker.name == "lean", good.message
    bad = verify_program("lean", solution("lean", name, "bad", "lean"), spec=spec("lean", name, "lean"))
    assert bad.status == "refuted", bad.message


@needs_lean
@pytest.mark.parametrize(
    "partial_program, status",
    [
        (REVERSE.rstrip() + " by\n  have distr : " + DISTR + " := by\n    intro a b\n", "incomplete"),  # its goals are still open
        (ADD_COMM.rstrip() + " by\n  rfl\n  omega\n", "refuted"),
        (solution("lean", "add_comm", "good", "lean"), "verified"),
    ],
)
def test_lean_partial_proofs(partial_program, status):
    verdict = verify_program("lean", partial_program, spec=REVERSE if "reverse" in partial_program else ADD_COMM, partial=True)
    assert verdict.status == status, verdict.message


@needs_lean
@pytest.mark.parametrize(
    "candidate, words",
    [
        (ADD_COMM.rstrip() + " by sorry\n", "sorry"),
        ("axiom cheat (a b : Nat) : a + b = b + a\n" + ADD_COMM.rstrip() + " cheat a b\n", "axiom"),
        (ADD_COMM.replace("a + b = b + a", "a = a").rstrip() + " rfl\n", "specification"),
    ],
)
def test_lean_cheating_and_spec_edits_are_rejected(candidate, words):
    verdict = verify_program("lean", candidate, spec=ADD_COMM)
    assert verdict.status == "refuted" and words in verdict.message, verdict.message


@needs_lean
def test_lean_eval_cannot_reach_the_network_or_write_outside_its_scratch_directory():
    target = os.path.join("/etc", f"plait_probe_{uuid.uuid4().hex}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        # Lean's core has no stable socket API across versions: #eval starts a process that dials.
        dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        candidate = (
            f'#eval IO.FS.writeFile "{target}" "x"\n\n'
            "def dial : IO Unit := do\n"
            f'  let out ← IO.Process.output {{ cmd := "python3", args := #["-c", "{dial}"] }}\n'
            "  IO.println out.exitCode\n\n"
            "#eval dial\n\n"
            "theorem t : 1 = 1 := rfl\n"
        )
        verdict = verify_program("lean", candidate)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert not os.path.exists(target)
    assert verdict.status == "refuted", verdict.message  # the write failed, so the first #eval errs


# --- plait verify ---------------------------------------------------------------------------


def plait(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PLAIT, *args], check=False, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@NEEDS_DAFNY
def test_cli_verify_prints_the_verdict_and_exits_0_when_verified():
    good, spec_file = DATA / "dafny" / "solutions" / "max.good.dfy", DATA / "dafny" / "max.dfy"
    proc = plait("verify", str(good), "--spec", str(spec_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified  score +1  checker dafny ")


@NEEDS_COQ
def test_cli_verify_json_and_exit_1_when_not_verified(tmp_path):
    proc = plait("verify", str(DATA / "coq" / "solutions" / "add_zero.bad.v"), "--json")
    assert proc.returncode == 1, proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["status"] == "refuted" and verdict["score"] == -1.0 and verdict["checker"]["name"] == "coq"
    unfinished = tmp_path / "proof.txt"
    unfinished.write_text(ADD_ZERO + "Proof.\n  intros n.\n")
    proc = plait("verify", str(unfinished), "--lang", "coq", "--partial", "--spec", str(DATA / "coq" / "add_zero.v"))
    assert proc.returncode == 1 and proc.stdout.startswith("incomplete  score +0  checker coq ")


def test_cli_verify_without_the_toolchain_exits_1_with_install_guidance(tmp_path):
    proc = plait("verify", str(DATA / "coq" / "solutions" / "add_zero.good.v"), env={"PATH": str(tmp_path)})
    assert proc.returncode == 1 and proc.stdout.startswith("error") and "apt-get install coq" in proc.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["verify", "/nonexistent/x.dfy"], "does not exist"),
        (["verify", str(DATA / "README.md")], "cannot tell the language"),
    ],
)
def test_cli_verify_bad_input_exits_2(args, words):
    proc = plait(*args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
