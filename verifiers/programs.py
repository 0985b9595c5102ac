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

Every checker call runs in a fresh scratch directory under a timeout (its whole process
group is killed when it expires; Dafny gets a few seconds' grace on top of its own limit), and verdicts are cached in-process by the hash of
(language, source, spec, partial, timeout, checker version), so an MCTS that reaches the
same partial program twice pays for one check.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from plait.errors import InvalidInput
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


# --- running a checker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout and stderr, interleaved
    timed_out: bool


def run_tool(argv: list[str], filename: str, text: str, timeout: float, env: dict[str, str] | None = None) -> Run:
    """Write ``text`` to ``filename`` in a fresh scratch directory and run ``argv`` on it
    there (the file's path is the last argument).

    On timeout the whole process group is killed: Dafny runs z3 as a child that would
    otherwise outlive it.
    """
    with tempfile.TemporaryDirectory(prefix="plait-verify-") as scratch:
        path = Path(scratch, filename)
        path.write_text(text)
        proc = subprocess.Popen(
            [*argv, str(path)], cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        try:
            output, _ = proc.communicate(timeout=timeout)
            return Run(proc.returncode, output, False)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return Run(proc.returncode, output, True)


def locate(binary: str, *version_args: str) -> tuple[str, str] | None:
    """(path, version) of a checker on PATH, or None. PATH is read on every call (it may
    change); the version is asked once per binary."""
    path = shutil.which(binary)
    return None if path is None else (path, _cached_version(path, version_args))


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


def missing(checker: Checker, what: str) -> Verdict:
    return Verdict.of("error", f"{checker.name} is not installed: {what}", checker)


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
