"""Checks programs and proofs with real verifiers: Dafny, Coq and Lean 4.

One protocol for every language: ``check(source, *, spec=None, partial=False, timeout=...)``
returns a :class:`Verdict`; :func:`verify_program` dispatches on the language name. Each
language module (``verifiers.dafny``, ``verifiers.coq``, ``verifiers.lean``) finds its
toolchain on PATH and, when it is missing, returns an ``error`` verdict that says what to
install: never an exception, never ``verified``. Only bad arguments (an unknown language, a
timeout <= 0) raise ``InvalidInput``.

Verdicts for a partial program (``partial=True``), after VMCTS (Brandfonbrener et al.):
``verified`` (+1) when it is complete and accepted, ``incomplete`` (0) when the only errors
sit at its unfinished end, ``refuted`` (-1) when an earlier part is wrong or the checker
timed out. Each language module's docstring states its exact rule.

Cheating is refuted before the checker runs: constructs that assume instead of prove
(named in the message) and any edit to the given specification. A spec is compared after
comments are removed and whitespace collapsed; what may precede it in the candidate is
set per language (only imports for Coq and Lean, where an earlier definition could change
what the spec's names mean; anything for Dafny, which refuses to redeclare a name).

Every language follows one flow (:class:`ProgramLanguage`), and every checker call runs in the
sandbox (``tools.sandbox.run_command``): a fresh scratch directory, no network, ``/`` read-only,
only the environment the checker needs, limits sized for checkers (``CHECKER_LIMITS``) and a wall
clock of the check's timeout (Dafny gets a few seconds' grace on top of its own limit), after
which everything it started is killed. A check stopped by a limit is ``refuted``. Verdicts are
cached in-process by the hash of (language, source, spec, partial, timeout, checker version), so
an MCTS that reaches the same partial program twice pays for one check.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from plait.errors import InvalidInput
from tools.sandbox import ExecResult, SandboxLimits, run_command
from verifiers.types import Checker, Verdict

DEFAULT_TIMEOUT = 60.0
LANGUAGES = {"dafny": "verifiers.dafny", "coq": "verifiers.coq", "lean": "verifiers.lean"}
EXTENSIONS = {".dfy": "dafny", ".v": "coq", ".lean": "lean"}
CACHE_SIZE = 4096
MAX_MESSAGE = 600  # characters of checker output kept in a verdict


class ProgramChecker(Protocol):
    def __call__(self, source: str, *, spec: str | None = None, partial: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Verdict: ...


def verify_program(
    language: str, source: str, spec: str | None = None, partial: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> Verdict:
    """Check ``source`` (a whole or, with ``partial``, unfinished program) in ``language``."""
    if timeout <= 0:
        raise InvalidInput(f"timeout must be positive, got {timeout}")
    return checker_for(language)(source, spec=spec, partial=partial, timeout=timeout)


def checker_for(language: str) -> ProgramChecker:
    module = LANGUAGES.get(language)
    if module is None:
        raise InvalidInput(f"unknown program language {language!r}: choose one of {', '.join(LANGUAGES)}")
    return importlib.import_module(module).check  # imported lazily: the modules import this one


def language_of(path: Path) -> str:
    """The language a file's extension names (.dfy, .v, .lean)."""
    language = EXTENSIONS.get(path.suffix)
    if language is None:
        raise InvalidInput(f"{path}: cannot tell the language from {path.suffix or 'no extension'!r}; pass --lang dafny|coq|lean")
    return language


# --- verdict cache ------------------------------------------------------------------------

_cache: OrderedDict[str, Verdict] = OrderedDict()
_cache_lock = threading.Lock()


def cached(key: tuple, compute: Callable[[], Verdict]) -> Verdict:
    """LRU memo of verdicts by sha256 of ``key``; two threads may both compute a new key."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    with _cache_lock:
        if digest in _cache:
            _cache.move_to_end(digest)
            return _cache[digest]
    verdict = compute()
    with _cache_lock:
        _cache[digest] = verdict
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return verdict


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# --- one checker flow ----------------------------------------------------------------------

# Checkers get more room than model code (measured: mono, which runs Dafny 2.3, does not start in
# 512 MB of address space and needs 9-16 threads, which RLIMIT_NPROC counts; coqc runs out of
# memory loading its library in 512 MB); 4 GB leaves z3 room on hard goals. The wall clock and
# CPU time come from each check's timeout. Network stays off and / read-only, as for any run.
CHECKER_LIMITS = SandboxLimits(memory_mb=4096, max_processes=128, file_size_mb=64, disk_mb=128, max_output_chars=100_000)
STOPPED = {  # sandbox statuses that end a check before the checker could answer
    "timeout": "timed out after {timeout:g} s",
    "cpu_limit": "timed out after {timeout:g} s",
    "output_limit": "the checker's output or a file it wrote outgrew its limit",
    "disk_limit": "the checker's scratch disk quota ran out",
    "truncated": "the checker printed more than its output limit",
}


@dataclass(frozen=True)
class Toolchain:
    """A located checker: its binary, its version, and what a run of it needs."""

    binary: str
    version: str
    env: tuple[tuple[str, str], ...] = ()  # variables it needs (the sandbox passes no others)
    expose: tuple[str, ...] = ()  # paths it reads besides its own installation


@dataclass(frozen=True)
class Candidate:
    """One check: what was asked, and the candidate with comments and strings masked."""

    source: str
    masked: str
    spec: str | None
    partial: bool
    timeout: float
    checker: Checker


@dataclass(frozen=True)
class Prepared:
    """The text the checker is given; languages add what reading its answer needs."""

    text: str


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout, then stderr


@dataclass(frozen=True, eq=False)
class ProgramLanguage:
    """The flow every program checker follows: locate the binary (an ``error`` verdict saying
    what to install when it is missing), refuse cheats and spec edits, prepare the text, run the
    checker on it through the sandbox, map its answer to a Verdict; verdicts are cached.
    A language is a subclass that implements the methods below, built with its facts."""

    name: str
    syntax: Syntax
    cheats: dict[str, str]
    install: str
    filename: str  # what the candidate is called in the checker's scratch directory
    grace: float = 0.0  # seconds the checker may run past the check's timeout
    memory_mb: int = CHECKER_LIMITS.memory_mb

    def toolchain(self) -> Toolchain | None:
        raise NotImplementedError

    def keeps_spec(self, source: str, spec: str) -> bool:
        """Whether the candidate states ``spec`` verbatim, with only what may precede it."""
        raise NotImplementedError

    def refusal(self, c: Candidate) -> str | None:
        """A reason to refuse the candidate beyond the shared cheats and spec rule."""
        return None

    def command(self, tool: Toolchain, timeout: float) -> list[str]:
        """The checker's argv; the candidate's file name is appended."""
        return [tool.binary]

    def prepare(self, c: Candidate) -> Prepared:
        raise NotImplementedError

    def judge(self, c: Candidate, prepared: Prepared, run: Run) -> Verdict:
        raise NotImplementedError

    def check(self, source: str, *, spec: str | None = None, partial: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
        tool = self.toolchain()
        if tool is None:
            return Verdict.of("error", f"{self.name} is not installed: {self.install}", Checker(self.name))
        key = (self.name, source, spec, partial, timeout, tool.version)
        return cached(key, lambda: self._check(tool, source, spec, partial, timeout))

    def _check(self, tool: Toolchain, source: str, spec: str | None, partial: bool, timeout: float) -> Verdict:
        c = Candidate(source, mask(source, self.syntax), spec, partial, timeout, Checker(self.name, tool.version))
        refused = screen(c.masked, self.cheats, spec is None or self.keeps_spec(source, spec), c.checker)
        if refused:
            return refused
        reason = self.refusal(c)
        if reason:
            return Verdict.of("refuted", f"rejected: {reason}", c.checker)
        prepared = self.prepare(c)
        result = self.run(tool, prepared, timeout)
        stopped = STOPPED.get(result.status, STOPPED["truncated"] if result.truncated else None)
        if stopped:  # the answer is missing or cut: a proof that needs more than this fails
            return Verdict.of("refuted", stopped.format(timeout=timeout), c.checker)
        return self.judge(c, prepared, Run(result.exit_code, result.stdout + result.stderr))

    def run(self, tool: Toolchain, prepared: Prepared, timeout: float) -> ExecResult:
        """The checker on the prepared text, in the sandbox."""
        return run_command(
            [*self.command(tool, timeout), self.filename], {self.filename: prepared.text}, self.limits(timeout),
            env=dict(tool.env), expose=(installation(tool.binary), *tool.expose),
        )  # fmt: skip

    def limits(self, timeout: float) -> SandboxLimits:
        wall = timeout + self.grace
        # CPU time counts every thread: a multi-threaded checker may use more of it than wall time.
        return replace(CHECKER_LIMITS, timeout=wall, cpu_seconds=2 * math.ceil(wall), memory_mb=self.memory_mb)


def installation(binary: str) -> str:
    """The directory tree a checker binary belongs to: the parent of its ``bin/`` (an opam switch,
    a Lean toolchain), else its own directory; never the home directory or one above it."""
    directory = os.path.dirname(os.path.realpath(binary))
    root = os.path.dirname(directory) if os.path.basename(directory) == "bin" else directory
    home = os.path.realpath(os.path.expanduser("~"))
    return directory if home == root or home.startswith(root.rstrip("/") + "/") else root


def locate(binary: str, *version_args: str) -> Toolchain | None:
    """The checker ``binary`` on PATH, or None. PATH is read on every call (it may change); the
    version is asked once per binary."""
    path = shutil.which(binary)
    return None if path is None else Toolchain(path, _cached_version(path, version_args))


@lru_cache(maxsize=16)
def _cached_version(path: str, version_args: tuple[str, ...]) -> str:
    return tool_version([path, *version_args])


def tool_version(argv: list[str]) -> str:
    """First dotted version number ``argv`` prints, or '' (callers cache it per binary)."""
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"\d+\.\d+(?:\.\d+)*", proc.stdout + proc.stderr)
    return found.group(0) if found else ""


def theorem_names(c: Candidate, pattern: re.Pattern, syntax: Syntax) -> list[str]:
    """The theorems whose axioms matter: those the spec states, or else the candidate's last."""
    return pattern.findall(mask(c.spec, syntax)) if c.spec is not None else pattern.findall(c.masked)[-1:]


def describe(errors: list[tuple[int, str]]) -> str:
    """The first three (line, message) errors, on one clipped line."""
    return clip("; ".join(f"line {line}: {message}" for line, message in errors[:3]))


def clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


# --- source text ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Syntax:
    """How a language writes comments and strings, enough to mask them."""

    line_comment: str | None
    block_open: str
    block_close: str
    string_escape: str  # '\\' for backslash escapes; '"' when a string doubles its quote (Coq)


def mask(text: str, syntax: Syntax) -> str:
    """``text`` with comments and string literals blanked to spaces (newlines kept), so offsets
    and line numbers still match and no keyword inside them counts. Block comments nest, as
    in all three languages; an unterminated one runs to the end."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if syntax.line_comment and text.startswith(syntax.line_comment, i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif text.startswith(syntax.block_open, i):
            end = _block_end(text, i, syntax)
        elif text[i] == '"':
            end = _string_end(text, i, syntax.string_escape)
        else:
            i += 1
            continue
        blank(i, end)
        i = end
    return "".join(out)


def _block_end(text: str, i: int, syntax: Syntax) -> int:
    depth, i = 1, i + len(syntax.block_open)
    while i < len(text) and depth:
        if text.startswith(syntax.block_open, i):
            depth, i = depth + 1, i + len(syntax.block_open)
        elif text.startswith(syntax.block_close, i):
            depth, i = depth - 1, i + len(syntax.block_close)
        else:
            i += 1
    return min(i, len(text))


def _string_end(text: str, i: int, escape: str) -> int:
    i += 1
    while i < len(text):
        if escape == "\\" and text[i] == "\\":
            i += 2
        elif text[i] == '"':
            if escape == '"' and text.startswith('""', i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(text)


def normalize(text: str, syntax: Syntax) -> str:
    """Comments removed, whitespace collapsed: the form in which specs are compared."""
    return " ".join(mask(text, syntax).split())


def find_cheat(masked: str, patterns: dict[str, str]) -> str | None:
    """The first forbidden construct (pattern -> name) present in comment-free text."""
    for pattern, name in patterns.items():
        if re.search(pattern, masked):
            return name
    return None


def screen(masked: str, cheats: dict[str, str], spec_kept: bool, checker: Checker) -> Verdict | None:
    """The refusal for a candidate that cheats or edits its specification, before any checker
    runs; None when it may be checked."""
    cheat = find_cheat(masked, cheats)
    if cheat:
        return Verdict.of("refuted", f"rejected: {cheat} is not allowed (it assumes instead of proving)", checker)
    if not spec_kept:
        return Verdict.of("refuted", "rejected: the specification is missing or was edited (it must appear verbatim)", checker)
    return None


def spec_position(source: str, spec: str, syntax: Syntax) -> tuple[str, str] | None:
    """(what precedes, what follows) the spec in the normalized candidate, or None when the
    candidate does not contain the spec verbatim."""
    wanted, have = normalize(spec, syntax), normalize(source, syntax)
    at = have.find(wanted)
    if not wanted or at < 0 or have[at - 1 : at] not in ("", " "):  # must start at a word boundary
        return None
    return have[:at].strip(), have[at + len(wanted) :].strip()


def line_offsets(text: str) -> list[int]:
    """Start offset of every line (1-based line L starts at offsets[L - 1])."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def last_line(text: str) -> int:
    """1-based number of the last line holding anything but whitespace (0 for blank text)."""
    lines = text.splitlines()
    return max((k + 1 for k, line in enumerate(lines) if line.strip()), default=0)
