"""A sandboxed process kept running to answer many requests: a checker kept warm.

Starting a checker can cost more than the check (Dafny 2.3 on mono: ~2 s of start-up for a
0.3 s proof). A `SandboxSession` starts the program once, with the isolation and limits of
`run_command` (same launcher, same namespaces, same fresh uid, same hidden directories), and
then exchanges text with it over stdin/stdout: `request` writes a request and reads until the
program prints the reply's end marker. The session's limits hold for its whole life: its
`cpu_seconds` bound the CPU of every request together (a spent session dies and the next one
starts fresh); each request has its own wall-clock timeout, after which the session is killed
with everything it started. Nothing model-written is run by the session's program here: the
requests are data (a program to check), as the files of `run_command` are.

`SessionPool` keeps up to `size` sessions of one command for a process, one request at a time
each, restarting dead ones; the pool closes them at exit.
"""

from __future__ import annotations

import atexit
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tools.sandbox import SandboxLimits, _command_job, _fresh_uid, _kill_uid, _plan, _popen, _scratch, remove_tree


@dataclass(frozen=True)
class Reply:
    text: str  # everything the program printed for this request, the end marker's line included
    status: str  # ok | timeout | ended (the program exited or died) | output_limit
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SandboxSession:
    """One sandboxed process answering requests on stdin/stdout. Not thread-safe."""

    def __init__(self, argv: Sequence[str], limits: SandboxLimits | None = None, *,
                 env: Mapping[str, str] | None = None, expose: Sequence[str] = ()):
        job = _command_job(argv, None, env, expose)
        self.limits = limits or SandboxLimits()
        plan = _plan()
        self.isolation = plan.isolation
        self._uid = _fresh_uid() if plan.drop_uid else None
        scratch = _scratch(job, plan, self._uid)
        self._scratch = None if plan.isolation == "bwrap" else scratch  # a host dir, removed at close
        self._proc = _popen(job, self.limits, plan, scratch, self._uid, {}, -1,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._pending = b""  # read past the last reply's end (a program may print ahead)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def request(self, text: str, end: str, timeout: float) -> Reply:
        """Send `text` and read until a line containing `end`. A reply that does not come within
        `timeout` seconds, or outgrows the output limit, ends the session."""
        began = time.monotonic()
        try:
            self._proc.stdin.write(text.encode("utf-8"))
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return self._end(self._pending, "ended", began)
        marker, data = end.encode("utf-8"), self._pending
        limit = 4 * self.limits.max_output_chars
        fd = self._proc.stdout.fileno()
        while True:
            at = data.find(marker)
            if at >= 0:
                cut = data.find(b"\n", at)
                cut = len(data) if cut < 0 else cut + 1
                self._pending = data[cut:]
                return Reply(data[:cut].decode("utf-8", "replace"), "ok", time.monotonic() - began)
            if len(data) > limit:
                return self._end(data, "output_limit", began)
            left = timeout - (time.monotonic() - began)
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return self._end(data, "timeout", began)
            chunk = os.read(fd, 65536)
            if not chunk:
                return self._end(data, "ended", began)
            data += chunk

    def _end(self, data: bytes, status: str, began: float) -> Reply:
        self.close()
        return Reply(data.decode("utf-8", "replace"), status, time.monotonic() - began)

    def close(self) -> None:
        """Kill the program and everything it started; idempotent."""
        proc = self._proc
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # before reaping: the group id cannot be reused yet
            except ProcessLookupError:
                pass
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:  # a broken pipe's buffered bytes cannot be flushed: they are not wanted
                pass
        if self._uid is not None:
            _kill_uid(self._uid)  # processes that left the group, or outlived the wrapper
        if self._scratch is not None:
            remove_tree(self._scratch)
            self._scratch = None


class SessionPool:
    """Up to `size` warm sessions of one command, each serving one request at a time."""

    def __init__(self, start: Callable[[], SandboxSession], size: int):
        self._start = start
        self._idle: queue.LifoQueue[SandboxSession] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: set[SandboxSession] = set()
        self._lock = threading.Lock()
        atexit.register(self.close)

    @contextmanager
    def session(self):
        """A live session for this thread until the block ends (a new one if none is idle)."""
        with self._slots:
            try:
                current = self._idle.get_nowait()
            except queue.Empty:
                current = None
            if current is not None and not current.alive:  # died while idle
                self._forget(current)
                current = None
            current = current or self._started()
            try:
                yield current
            finally:
                if current.alive:
                    self._idle.put(current)
                else:
                    self._forget(current)

    def _forget(self, dead: SandboxSession) -> None:
        dead.close()
        with self._lock:
            self._all.discard(dead)

    def _started(self) -> SandboxSession:
        new = self._start()
        with self._lock:
            self._all.add(new)
        return new

    def close(self) -> None:
        with self._lock:
            sessions, self._all = list(self._all), set()
        for s in sessions:
            s.close()
        while not self._idle.empty():
            self._idle.get_nowait()
