"""Nothing left running: after `plait solve` in local mode and a `plait serve` stopped by
SIGTERM, no process that plait started is alive (`plait down`: tests/test_cluster.py).

"What plait started" is found by session, never by name: each command runs in a session of
its own (as from a terminal), and a watcher records every process of that session, and
every descendant of the command or of a process already recorded, while it runs; other sessions' Ray and Redis on the same
machine are never looked at."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tools.processes import _zombie, descendants, free_port, start_time

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LOCAL = {"RAY_ADDRESS": "", "PLAIT_RAY_ADDRESS": "", "PLAIT_REDIS_URL": ""}


def _session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


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
                self.seen.setdefault((pid, started), _name(pid))
        for parent in [self.root, *(pid for pid, started in list(self.seen) if start_time(pid) == started)]:
            for pid, started in descendants(parent):
                self.seen.setdefault((pid, started), _name(pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[str]:
        return [f"{name} (pid {pid})" for (pid, started), name in self.seen.items() if start_time(pid) == started and not _zombie(pid)]


def _env(tmp_path: Path) -> dict:
    config = tmp_path / "plait.toml"
    config.write_text("[ray]\nnum_cpus = 1\n")
    return {**os.environ, **LOCAL, "PLAIT_CACHE_DIR": str(tmp_path / "cache"), "PLAIT_CONFIG": str(config)}


def _start(args: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, Watcher]:
    proc = subprocess.Popen([str(BIN / "plait"), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, Watcher(proc.pid, proc.pid)  # a new session's id is its leader's pid


def test_plait_solve_in_local_mode_leaves_nothing_running(tmp_path):
    proc, watcher = _start(["solve", "6 * 7", "-s", "calc"], _env(tmp_path), tmp_path / "solve.log")
    try:
        assert proc.wait(300) == 0, (tmp_path / "solve.log").read_text()[-3000:]
    finally:
        watcher.stop()
    names = set(watcher.seen.values())
    assert {"gcs_server", "raylet"} <= names, names  # the watcher did see Ray start
    assert watcher.alive() == []


def test_a_stopped_plait_serve_leaves_nothing_running(tmp_path):
    port = free_port()
    server, watcher = _start(["serve", "--port", str(port)], _env(tmp_path), tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "plait serve did not come up"
                time.sleep(0.5)
            job_id = http.post("/v1/jobs", json={"problem": "6 * 7", "strategy": {"name": "calc"}}).json()["id"]
            end = time.monotonic() + 180
            while http.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
                assert time.monotonic() < end, "the job did not finish"
                time.sleep(0.25)
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
