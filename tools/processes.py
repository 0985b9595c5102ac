"""Long-running helper processes that plait itself starts (Ray, model servers): trusted
programs, unlike the model-written code that `tools.sandbox` runs.

Linux's PR_SET_PDEATHSIG, which Ray sets on its daemons and plait sets on the servers it
supervises, fires when the *thread* that forked the child exits, not the process. So every
such start runs on one thread that lives as long as the process (`on_lifetime_thread`),
whichever thread asked for it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

_LIFETIME = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plait-lifetime")
_PR_SET_PDEATHSIG = 1


def on_lifetime_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run `fn` on the process-lifetime thread and return its result (re-raising its error)."""
    return _LIFETIME.submit(fn, *args, **kwargs).result()


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...);
    None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the PID it
    names one process, even after the PID is reused. None if there is no such process."""
    return _started(proc_stat(pid))


def still_running(pid: int, started: int) -> bool:
    """Whether the process that started at `started` as `pid` is alive (not reused, not a zombie)."""
    fields = proc_stat(pid)  # one read: state and start time of the same process
    return fields is not None and fields[0] != "Z" and _started(fields) == started


def _started(fields: list[str] | None) -> int | None:
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live process below `pid`, children first."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int | None] = {}  # from the same read of each process's stat
    for stat in Path("/proc").glob("[0-9]*/stat"):
        proc = int(stat.parent.name)
        fields = proc_stat(proc)
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(proc)
            starts[proc] = _started(fields)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        started = starts[child]
        if started is not None:
            found.append((child, started))
        todo += children.get(child, [])
    return found


def end(processes: list[tuple[int, int]], grace: float = 5.0) -> None:
    """SIGTERM the given (pid, start time) processes that are still those processes, then
    SIGKILL what is left after `grace` seconds."""
    def alive() -> list[int]:
        return [pid for pid, started in processes if still_running(pid, started)]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the parent goes, so a killed
    # worker actor never leaves its model server behind.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervised:
    """One child process: started with a clean environment on the lifetime thread, in its own
    session (so stopping it reaches everything it forked), logging to a file, dying with this
    process, and restartable."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = on_lifetime_thread(self._spawn)
        self.starts += 1

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            return subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to its process group, SIGKILL after `grace` seconds; reaps it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
