"""Dafny programs, checked with the ``dafny`` CLI.

Dafny 2.x/3.x (Debian's is 2.3 on mono) runs as ``dafny /compile:0 /nologo /timeLimit:N
/z3exe:Z file.dfy``, with Z the z3 from the ``z3-solver`` wheel when there is one: the z3
Debian pairs with Dafny 2.3 fails nonlinear loop invariants the wheel's z3 proves in seconds.
Dafny 4+ runs as ``dafny verify --verification-time-limit N file.dfy`` with its own solver.
Exit codes: 0 verified, 2 parse/resolution errors, 4 verification errors or time-outs.

Rejected before Dafny runs: ``assume``, ``free`` specifications, the attributes ``{:axiom}``,
``{:verify false}`` and ``{:extern}``, a method/lemma/function without a body (Dafny 2.3
accepts its contract as an axiom), and, with ``spec``, a candidate that does not contain the
spec verbatim followed directly by the body's ``{``.

Partial programs (``partial=True``): the unclosed braces are closed (``}`` on a new line
after the text) and the result is checked. An error is *at the unfinished end* when

* it is on or after the last non-blank line of the given text (that line may still be
  growing, and errors on the added braces belong to code not written yet), or
* it is one that code still to come can fix — a loop invariant not maintained, a
  termination or decreases failure, a postcondition (Dafny may place a failing return path
  at an ``if`` whose branches are not written yet) — and it lies in a block whose ``{`` is
  not yet closed (its header, e.g. a loop's invariants, counts as inside it).

Only such errors → ``incomplete``; any other → ``refuted``; a time-out → ``refuted``; no
error → ``verified`` when nothing had to be closed and no declaration is still missing its
body, else ``incomplete``.

Warm checks: Dafny 2.x/3.x ship ``DafnyServer.exe`` beside ``Dafny.exe``, which verifies one
program per request read from stdin (``verify``, the base64 of a JSON task, an end line) and
prints the same diagnostics as the CLI, then an end marker. Where it is installed, checks go to
a few such servers kept running in the sandbox (``tools.session``), which saves mono's start-up
on every check; the verdict is read from the diagnostics as for the CLI (a reply has no exit
code). A server that dies or fails a request sends that check to the CLI instead; one that
cannot start at all turns warm checks off for the process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from tools.sandbox import ExecResult
from tools.session import SandboxSession, SessionPool
from verifiers.programs import (
    Candidate,
    Prepared,
    ProgramLanguage,
    Run,
    Syntax,
    Toolchain,
    clip,
    describe,
    installation,
    last_line,
    line_offsets,
    spec_position,
    tool_version,
)
from verifiers.types import Verdict

SYNTAX = Syntax(line_comment="//", block_open="/*", block_close="*/", string_escape="\\")
INSTALL = "apt-get install dafny (Debian/Ubuntu; Dafny 2.3), or a Dafny 4 release from github.com/dafny-lang/dafny on PATH"
CHEATS = {
    r"\bassume\b": "an `assume` statement",
    r"\bfree\s+(requires|ensures|invariant)\b": "a `free` specification",
    r"\{\s*:\s*axiom\b": "the {:axiom} attribute",
    r"\{\s*:\s*verify\s+false\s*\}": "the {:verify false} attribute",
    r"\{\s*:\s*extern\b": "the {:extern} attribute",
}
# Errors that more code inside a still-open block can make go away.
FIXABLE = re.compile(r"maintained by the loop|termination|decrease|postcondition", re.IGNORECASE)
DIAGNOSTIC = re.compile(r"^\S.*?\((\d+),(\d+)\): (Error.*|Timed out on .*|Verification of .* timed out.*)$", re.MULTILINE)
GRACE = 5.0  # seconds past Dafny's own per-proof limit before the process is killed (mono starts slowly)
SERVER_END, CLIENT_END = "[[DAFNY-SERVER: EOM]]", "[[DAFNY-CLIENT: EOM]]"
WARM_SERVERS = min(4, os.cpu_count() or 1)  # as many as checks run at once (synthesis.check_all)
WARM_CPU_SECONDS = 3600  # a server's CPU over its whole life; a spent one is replaced

DECLARATIONS = {"method", "lemma", "function", "predicate", "constructor"}
# Tokens that start a new declaration, so a header still open when one arrives had no body
# (not `var`: a let-expression `var x := e; P` may sit in a contract).
DECLARATION_STARTS = DECLARATIONS | {
    "class", "datatype", "codatatype", "module", "type", "const", "ghost", "static", "import",
    "trait", "iterator", "newtype", "include", "twostate", "least", "greatest", "inductive", "abstract",
}  # fmt: skip
# A `{` right after these (or after an operator) opens a set display, not a body.
EXPRESSION_KEYWORDS = {"requires", "ensures", "reads", "modifies", "decreases", "invariant", "in", "returns", "yields", "then", "else"}
TOKEN = re.compile(r"[A-Za-z_][\w'?]*|\d+|\S")


@dataclass(frozen=True)
class DafnyToolchain(Toolchain):
    z3: str | None = None
    server: tuple[str, ...] = ()  # argv of the DafnyServer that comes with this Dafny, if any

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0]) if self.version else 0


@dataclass(frozen=True)
class _Program(Prepared):
    closers: str  # the braces added to close an unfinished program
    unfinished_header: str | None  # the declaration whose header is still being written


class Dafny(ProgramLanguage):
    def toolchain(self) -> DafnyToolchain | None:
        dafny = shutil.which("dafny")
        return None if dafny is None else _toolchain(dafny)

    def command(self, tool: DafnyToolchain, timeout: float) -> list[str]:
        limit = str(max(1, round(timeout)))
        if tool.major >= 4:
            return [tool.binary, "verify", "--verification-time-limit", limit]
        z3 = [f"/z3exe:{tool.z3}"] if tool.z3 else []
        return [tool.binary, "/compile:0", "/nologo", f"/timeLimit:{limit}", *z3]

    def run(self, tool: DafnyToolchain, prepared: Prepared, timeout: float) -> ExecResult:
        pool = _warm_pool(tool)
        if pool is None:
            return super().run(tool, prepared, timeout)
        with pool.session() as session:
            reply = session.request(_server_request(self.command(tool, timeout)[1:], self.filename, prepared.text), SERVER_END, timeout + self.grace)
        if reply.status == "ended" or "[FAILURE]" in reply.text:
            return super().run(tool, prepared, timeout)
        # A reply has no exit code: `judge` reads the diagnostics, and needs the code only when there are none.
        return ExecResult(stdout=reply.text, stderr="", exit_code=0, status=reply.status,
                          seconds=round(reply.seconds, 3), truncated=False, isolation=session.isolation)

    def keeps_spec(self, source: str, spec: str) -> bool:
        """The spec appears verbatim and the body's `{` follows it (an added clause would change
        the contract). An empty remainder is left to the bodyless check."""
        around = spec_position(source, spec, SYNTAX)
        return around is not None and (not around[1] or around[1].startswith("{"))

    def refusal(self, c: Candidate) -> str | None:
        bodyless, unfinished_header = _bodyless(c.masked)
        if bodyless or (unfinished_header and not c.partial):
            return f"{(bodyless or [unfinished_header])[0]} has no body (Dafny would assume its contract)"
        return None

    def prepare(self, c: Candidate) -> _Program:
        closers = "}" * _unclosed(c.masked) if c.partial else ""
        return _Program(c.source + ("\n" + closers if closers else ""), closers, _bodyless(c.masked)[1])

    def judge(self, c: Candidate, program: _Program, run: Run) -> Verdict:
        errors = _errors(run.output)
        if any("timed out" in e.message.lower() for e in errors):
            return Verdict.of("refuted", f"timed out after {c.timeout:g} s", c.checker)
        if run.returncode == 0 and not errors:
            if program.closers or program.unfinished_header:
                return Verdict.of("incomplete", "verifies so far; the program is not finished", c.checker)
            return Verdict.of("verified", "verified", c.checker)
        if not errors:
            return Verdict.of("error", f"dafny exited with {run.returncode}: {clip(_drop_noise(run.output))}", c.checker)
        if c.partial:
            early = [e for e in errors if not _at_end(e, c.masked)]
            if not early:
                return Verdict.of("incomplete", f"unfinished: {_describe(errors)}", c.checker)
            errors = early
        return Verdict.of("refuted", _describe(errors), c.checker, line=min(e.line for e in errors))


@lru_cache(maxsize=8)
def _toolchain(dafny: str) -> DafnyToolchain:
    version = tool_version([dafny, "/version"]) or tool_version([dafny, "--version"])
    beside = Path(sys.executable).with_name("z3")  # the z3-solver wheel's binary in this venv
    z3 = str(beside) if beside.is_file() else shutil.which("z3")
    return DafnyToolchain(dafny, version, expose=(installation(z3),) if z3 else (), z3=z3, server=_server_argv(dafny))


def _server_argv(dafny: str) -> tuple[str, ...]:
    """The DafnyServer beside the Dafny.exe that the `dafny` wrapper script runs (Debian's
    ``exec /usr/bin/cli /usr/lib/dafny/Dafny.exe "$@"``), under the same runtime; () if none."""
    try:
        with open(dafny, "rb") as f:
            head = f.read(4096)
    except OSError:
        return ()
    found = re.search(rb"exec\s+(\S+)\s+[\"']?(/\S+?/)Dafny\.exe\b", head) if head.startswith(b"#!") else None
    if found is None:
        return ()
    runtime, server = found[1].decode(), found[2].decode() + "DafnyServer.exe"
    return (runtime, server) if os.path.isfile(server) and shutil.which(runtime) else ()


def _server_request(args: list[str], filename: str, source: str) -> str:
    task = {"args": args, "filename": filename, "source": source, "sourceIsFile": False}
    return f"verify\n{base64.b64encode(json.dumps(task).encode()).decode()}\n{CLIENT_END}\n"


_pools: dict[tuple[str, ...], SessionPool | None] = {}
_pools_lock = threading.Lock()


def _warm_pool(tool: DafnyToolchain) -> SessionPool | None:
    """The process's warm servers for this Dafny, started on first use; None when it has no
    server or the server failed its self-test (then every check runs the CLI)."""
    if not tool.server or tool.major >= 4:
        return None
    with _pools_lock:
        if tool.server not in _pools:
            _pools[tool.server] = _started_pool(tool)
        return _pools[tool.server]


def _started_pool(tool: DafnyToolchain) -> SessionPool | None:
    limits = replace(DAFNY.limits(60.0), cpu_seconds=WARM_CPU_SECONDS)
    start = lambda: SandboxSession(tool.server, limits, env=dict(tool.env), expose=(installation(tool.binary), *tool.expose))  # noqa: E731
    pool = SessionPool(start, WARM_SERVERS)
    probe = _server_request(["/compile:0", "/nologo"], "probe.dfy", "method Probe() { assert 1 + 1 == 2; }")
    with pool.session() as session:
        reply = session.request(probe, SERVER_END, 120.0)
    if reply.ok and "[SUCCESS]" in reply.text and not _errors(reply.text):
        return pool
    pool.close()
    return None


DAFNY = Dafny("dafny", SYNTAX, CHEATS, INSTALL, "candidate.dfy", grace=GRACE)
check = DAFNY.check
toolchain = DAFNY.toolchain


# --- diagnostics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostic:
    line: int  # 1-based
    column: int  # 0-based, as Dafny prints it
    message: str


def _errors(output: str) -> list[Diagnostic]:
    """Errors in output order, each once (two postconditions failing on one path repeat)."""
    found = (Diagnostic(int(m[1]), int(m[2]), m[3]) for m in DIAGNOSTIC.finditer(output))
    return list(dict.fromkeys(found))


def _drop_noise(output: str) -> str:
    """Without the `Prover error: unknown parameter 'model_compress'` block Dafny 2.3 prints
    when its z3 options do not match the solver's (the line, `Legal parameters are:` and the
    indented parameter list under it)."""
    kept, in_list = [], False
    for line in output.splitlines():
        if line.startswith(("Prover error:", "Legal parameters are:")):
            in_list = True
        elif not (in_list and line.startswith(" ")):
            in_list = False
            kept.append(line)
    return "\n".join(kept)


def _describe(errors: list[Diagnostic]) -> str:
    return describe([(e.line, e.message) for e in errors])


def _at_end(error: Diagnostic, masked: str) -> bool:
    if error.line >= last_line(masked) or error.line > len(line_offsets(masked)):
        return True
    offset = line_offsets(masked)[error.line - 1] + error.column
    return bool(FIXABLE.search(error.message)) and _in_open_block(masked, offset)


# --- structure from comment-free text -------------------------------------------------------


@dataclass
class _Block:
    header: int  # where the statement or declaration owning the `{` starts
    close: int | None  # offset of the matching `}`, None while unclosed


def _blocks(masked: str) -> list[_Block]:
    """Brace blocks that hold code (attributes and set displays left out)."""
    blocks: list[_Block] = []
    stack: list[_Block | None] = []
    for m in re.finditer(r"[{}]", masked):
        at = m.start()
        if m.group() == "{":
            before = masked[:at].rstrip()
            code = not masked[at + 1 :].lstrip().startswith(":") and not before.endswith(tuple("=(,+-|:[!<&"))
            block = _Block(max(before.rfind(c) for c in ";{}") + 1, None) if code else None
            stack.append(block)
            if block:
                blocks.append(block)
        elif stack and (block := stack.pop()) is not None:
            block.close = at
    return blocks


def _unclosed(masked: str) -> int:
    depth = 0
    for ch in re.findall(r"[{}]", masked):
        depth = depth + 1 if ch == "{" else max(0, depth - 1)
    return depth


def _in_open_block(masked: str, offset: int) -> bool:
    """Whether the innermost code block around ``offset`` is still open."""
    around = [b for b in _blocks(masked) if b.header <= offset and (b.close is None or offset <= b.close)]
    return bool(around) and max(around, key=lambda b: b.header).close is None


def _bodyless(masked: str) -> tuple[list[str], str | None]:
    """(declarations followed by another one or by their scope's end without a body,
    the declaration whose header is still being written at the end of the text)."""
    tokens = [(m.group(), m.start()) for m in TOKEN.finditer(masked)]
    bodyless: list[str] = []
    i = 0
    while i < len(tokens):
        word = tokens[i][0]
        if word in DECLARATIONS and not (i and tokens[i - 1][0] in ("function", "predicate", "by")):
            name = f"{word} {_declared_name(tokens, i + 1)}"
            i, has_body = _header_end(tokens, i + 1)
            if has_body is None:
                return bodyless, name
            if not has_body:
                bodyless.append(name)
        else:
            i += 1
    return bodyless, None


def _declared_name(tokens: list[tuple[str, int]], i: int) -> str:
    while i < len(tokens) and tokens[i][0] == "{":  # attributes before the name
        i = _matching(tokens, i) + 1
    return tokens[i][0] if i < len(tokens) else "?"


def _header_end(tokens: list[tuple[str, int]], i: int) -> tuple[int, bool | None]:
    """Scan a declaration header from token ``i``: (index after it, True if a body follows,
    False if the next declaration or the scope's end comes first, None at end of text)."""
    parens, previous = 0, ""
    while i < len(tokens):
        word = tokens[i][0]
        if word in "([":
            parens += 1
        elif word in ")]":
            parens -= 1
        elif parens == 0 and (word in DECLARATION_STARTS or word == "}"):
            return i, False
        elif word == "{":
            attribute = i + 1 < len(tokens) and tokens[i + 1][0] == ":"
            if parens == 0 and not attribute and _ends_operand(previous, tokens[i - 2][0] if i >= 2 else ""):
                return _matching(tokens, i) + 1, True  # an unclosed body still counts as one
            i = _matching(tokens, i) + 1
            if not attribute:
                previous = "}"
            continue
        previous = word
        i += 1
    return i, None


def _ends_operand(previous: str, before: str) -> bool:
    """Whether a `{` after ``previous`` opens a body rather than a set display."""
    if previous == "*":
        return before == "decreases"  # `decreases *` ends a header
    return previous not in EXPRESSION_KEYWORDS and (previous[:1].isalnum() or previous[:1] == "_" or previous in (")", "]", "}", ">"))


def _matching(tokens: list[tuple[str, int]], i: int) -> int:
    """Index of the `}` matching the `{` at ``i`` (len(tokens) when unclosed)."""
    depth = 0
    for k in range(i, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[k][0], 0)
        if depth == 0:
            return k
    return len(tokens)
