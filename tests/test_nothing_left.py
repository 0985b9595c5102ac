"""Nothing left running: after `plait solve` in local mode and a `plait serve` stopped by
SIGTERM, no process that plait started is alive (`plait down`: tests/test_cluster.py).

"What plait started" is found by session, never by name: each command runs in a session of
its own (as from a terminal), and a watcher records every process of that session, and
every descendant of the command or of a process already recorded, while it runs; other sessions' Ray and Redis on the same
machine are never looked at."""

import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from http_server import PLAIT, local_env, run_job, wait_healthy
from tools.processes import descendants, free_port, proc_stat, start_time, still_running

pytestmark = pytest.mark.slow



def _session_of(pid: int) -> int | None:
    fields = proc_stat(pid)
    return int(fields[3]) if fields else None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Watcher:
    """Records (pid, start time, name) of every process in `session`, below `root`, or below
    any process already recorded (a daemon may start a session of its own)."""

    def __init__(self, session: int, root: int):
        self.session, self.root = session, root
        self.seen: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.snapshot()
            self._stop.wait(0.2)

    def snapshot(self) -> None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            pid = int(stat.parent.name)
            if _session_of(pid) == self.session and (started := start_time(pid)) is not None:
                self._record(pid, started)
        for parent in [self.root, *(pid for pid, started in list(self.seen) if still_running(pid, started))]:
            for pid, started in descendants(parent):
                self._record(pid, started)

    def _record(self, pid: int, started: int) -> None:
        # A process caught between fork and exec still has its parent's name; the name it
        # execs into replaces it on a later look (the start time, the key, stays the same).
        if (name := _name(pid)) != "?" or (pid, started) not in self.seen:
            self.seen[(pid, started)] = name

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[str]:
        return [f"{name} (pid {pid})" for (pid, started), name in self.seen.items() if still_running(pid, started)]


def _start(args: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, Watcher]:
    proc = subprocess.Popen([str(PLAIT), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, Watcher(proc.pid, proc.pid)  # a new session's id is its leader's pid


def test_plait_solve_in_local_mode_leaves_nothing_running(tmp_path):
    proc, watcher = _start(["solve", "6 * 7", "-s", "calc"], local_env(tmp_path), tmp_path / "solve.log")
    try:
        assert proc.wait(300) == 0, (tmp_path / "solve.log").read_text()[-3000:]
    finally:
        watcher.stop()
    names = set(watcher.seen.values())
    assert {"gcs_server", "raylet"} <= names, names  # the watcher did see Ray start
    assert watcher.alive() == []


def test_a_stopped_plait_serve_leaves_nothing_running(tmp_path):
    port = free_port()
    server, watcher = _start(["serve", "--port", str(port)], local_env(tmp_path), tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            wait_healthy(http, server, tmp_path / "serve.log")
            assert run_job(http, "6 * 7")["status"] == "succeeded"
        watcher.snapshot()
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    finally:
        watcher.stop()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert {"gcs_server", "raylet"} <= set(watcher.seen.values())
    assert watcher.alive() == []
