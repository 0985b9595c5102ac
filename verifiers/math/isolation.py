"""Bounded time for every check: checks run in a separate checker process.

math-verify bounds its parsing and comparison with ``signal.alarm``, which only works in a
process's main thread, while plait checks answers from worker threads. So every check runs
in the main thread of a long-lived checker process (``isolation._serve``),
where math-verify's own timeouts work, and the caller waits at most ``TIME_LIMIT`` seconds:
a checker that overruns (a long C call that no signal interrupts) is killed and replaced.
The checker also limits itself: ``MEMORY_LIMIT`` of address space, and ``TIME_LIMIT``
seconds of CPU per check, enforced by the kernel even if the caller is gone. At most
``POOL_SIZE`` checks run at once; more callers wait for a free checker.

Requests and replies are pickles framed by their length; only this module writes them, in
both directions, and the answers themselves travel as plain strings.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

TIME_LIMIT = 10.0  # seconds one check may take, wall clock for the caller and CPU for the checker
STARTUP_LIMIT = 120.0  # seconds to import SymPy and math-verify in a fresh checker
MEMORY_LIMIT = 2 << 30  # bytes of address space a checker may map
POOL_SIZE = max(1, min(4, os.cpu_count() or 1))  # checkers running at once, one check each

_HEADER = struct.Struct("!Q")
_READY = "ready"


class CheckerFailed(Exception):
    """The check did not finish: it overran TIME_LIMIT, or the checker process died."""


def call(function: str, *args: Any) -> Any:
    """``checks.CALLS[function](*args)`` run in a checker process, within TIME_LIMIT seconds."""
    checker = _pool.take()
    try:
        ok, value = checker.call(function, args, TIME_LIMIT)
    except BaseException:
        _pool.discard(checker)
        raise
    _pool.give_back(checker)
    if not ok:
        raise CheckerFailed(value)
    return value


class _Checker:
    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        # Its own session: a Ctrl-C meant for the caller's terminal does not reach it; it
        # exits when the caller closes its stdin, i.e. when the caller exits.
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from verifiers.math.isolation import _serve; _serve()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, start_new_session=True,
        )
        try:
            if _read(self.process.stdout, STARTUP_LIMIT) != _READY:
                raise CheckerFailed("the checker process did not start")
        except BaseException:
            self.stop()
            raise

    def call(self, function: str, args: tuple, limit: float) -> tuple[bool, Any]:
        _write(self.process.stdin, (function, args))
        return _read(self.process.stdout, limit)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()


class _Pool:
    """Idle checkers to reuse, at most POOL_SIZE busy at once; a checker that failed is
    stopped and a fresh one started by the next caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL_SIZE)
        self._idle: list[_Checker] = []
        self._pid = os.getpid()

    def take(self) -> _Checker:
        self._slots.acquire()
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not share its parent's pipes
                self._idle, self._pid = [], os.getpid()
            idle = self._idle.pop() if self._idle else None
        if idle is not None and idle.process.poll() is None:
            return idle
        try:
            return _Checker()
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, checker: _Checker) -> None:
        with self._lock:
            self._idle.append(checker)
        self._slots.release()

    def discard(self, checker: _Checker) -> None:
        checker.stop()
        self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for checker in idle:
            checker.stop()


_pool = _Pool()
atexit.register(_pool.close)


def _write(pipe: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message)
    pipe.write(_HEADER.pack(len(data)) + data)
    pipe.flush()


def _read(pipe: BinaryIO, limit: float) -> Any:
    if not select.select([pipe], [], [], limit)[0]:
        raise CheckerFailed(f"the check took longer than {limit:g} s and was stopped")
    header = pipe.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise CheckerFailed(f"the checker process died (over {limit:g} s of CPU or {MEMORY_LIMIT >> 30} GiB of memory?)")
    return pickle.loads(pipe.read(_HEADER.unpack(header)[0]))


def _serve() -> None:
    """The checker's loop: one request at a time in the main thread, until stdin closes."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # running out of CPU time must not dump core
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # timeouts are reported in verdicts
    from verifiers.math import checks

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the replies
    _write(replies, _READY)
    while header := requests.read(_HEADER.size):
        function, args = pickle.loads(requests.read(_HEADER.unpack(header)[0]))
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + TIME_LIMIT) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        try:
            reply = (True, checks.CALLS[function](*args))
        except MemoryError:
            reply = (False, f"the check needed more than {MEMORY_LIMIT >> 30} GiB of memory")
        except Exception as e:  # a bug in a check must cost one verdict, not the checker
            reply = (False, f"the check failed ({type(e).__name__}: {str(e)[:200]})")
        _write(replies, reply)
