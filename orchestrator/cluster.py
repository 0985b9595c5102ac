"""`plait up` / `plait down`: a persistent local cluster (a Ray head and a Redis job store)
so repeated `solve`/`submit` calls connect in about a second instead of starting Ray each
time, and jobs outlive the commands that submitted them.

Both run as background processes on loopback; their addresses, pids and start times live in
a state file under the cache directory, which every client reads to find the cluster. `ray
start --block` is used (and stopped with SIGTERM) rather than `ray stop`, which would kill
every Ray on the machine. A pid is signalled only while it is still the process `plait up`
started (same start time): pids wrap, and by `plait down` one may name something else.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.config import Config
from orchestrator.runtime import RAY_ENV, ensure_ray_token, tier_resources
from plait.errors import MissingDependency, PlaitError
from tools.processes import end, free_port, start_time
from workers.engines.packaged import cache_dir

logger = logging.getLogger(__name__)


@dataclass
class ClusterState:
    ray_address: str
    redis_url: str
    ray_pid: int
    redis_pid: int
    directory: str
    started: float
    ray_started: int | None = None  # start times (tools.processes.start_time); None in older state files
    redis_started: int | None = None


def state_path() -> Path:
    return cache_dir() / "cluster" / "state.json"


def read_state() -> ClusterState | None:
    """The running cluster, or None (a state file whose Ray head no longer answers is stale)."""
    path = state_path()
    if not path.exists():
        return None
    try:
        state = ClusterState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    host, port = state.ray_address.rsplit(":", 1)
    return state if _listening(host, int(port)) else None


def up(config: Config, num_cpus: int | None = None) -> tuple[ClusterState, bool]:
    """Start the cluster unless it runs already; returns (state, started_now)."""
    running = read_state()
    if running:
        return running, False
    ray_bin = str(Path(sys.executable).with_name("ray"))
    directory = state_path().parent
    redis_port, ray_port = free_port(), free_port()
    redis_cmd = redis_argv(redis_port, directory)
    ensure_ray_token()
    directory.mkdir(parents=True, exist_ok=True)
    redis = _spawn(redis_cmd, directory / "redis.log")
    ray_cmd = [ray_bin, "start", "--head", "--block", "--port", str(ray_port), "--ray-client-server-port", str(free_port()),
               "--include-dashboard=false", "--disable-usage-stats",
               "--resources", json.dumps(tier_resources(config))]
    if num_cpus:
        ray_cmd += ["--num-cpus", str(num_cpus)]
    ray = _spawn(ray_cmd, directory / "ray.log")
    state = ClusterState(
        f"127.0.0.1:{ray_port}", f"redis://127.0.0.1:{redis_port}/0", ray.pid, redis.pid, str(directory), time.time(),
        start_time(ray.pid), start_time(redis.pid),  # our unreaped children: their pids cannot be reused yet
    )
    try:
        _wait_listening("redis", "127.0.0.1", redis_port, redis, directory / "redis.log")
        _wait_listening("ray", "127.0.0.1", ray_port, ray, directory / "ray.log")
    except PlaitError:
        _stop("the Ray head", ray.pid, state.ray_started, grace=10)
        _stop("redis-server", redis.pid, state.redis_started, grace=10)
        raise
    state_path().write_text(json.dumps(asdict(state), indent=1))
    return state, True


def down() -> ClusterState | None:
    """Stop the cluster this machine's `plait up` started; None if none was running."""
    path = state_path()
    if not path.exists():
        return None
    state = ClusterState(**json.loads(path.read_text()))
    _stop("the Ray head", state.ray_pid, state.ray_started, grace=40)  # Ray drains its node on SIGTERM
    _stop("redis-server", state.redis_pid, state.redis_started, grace=10)  # SIGTERM makes Redis flush its AOF
    path.unlink()
    return state


def _stop(name: str, pid: int, started: int | None, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, the process `plait up` started, if `pid` still is it."""
    now = start_time(pid)
    if now is None:
        return  # gone already
    if started is None:
        logger.warning(
            "not signalling pid %d: the state file records no start time to tell whether it is still the %s "
            "`plait up` started; if it is, stop it by hand", pid, name,
        )  # fmt: skip
    elif now != started:
        logger.warning("not signalling pid %d: it is no longer the %s `plait up` started (the pid was reused)", pid, name)
    else:
        end([(pid, started)], grace)


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **RAY_ENV}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def _wait_listening(name: str, host: str, port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _listening(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise PlaitError(f"{name} did not start (see {log}):\n{tail}")
        time.sleep(0.2)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def redis_argv(port: int, directory: Path, appendonly: bool = True) -> list[str]:
    """A foreground redis-server on loopback, persisting (when asked) to an append-only file in
    `directory` and never to RDB snapshots."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingDependency("redis-server is not installed: `apt-get install redis-server` (or `make test` installs it)")
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes" if appendonly else "no",
            "--dir", str(directory), "--daemonize", "no"]  # fmt: skip


class RedisServer:
    """A throwaway redis-server owned by this process (tests, benchmarks), restartable on the
    same port and data directory."""

    def __init__(self, directory: str | Path, port: int | None = None, appendonly: bool = True) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def _log(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout: float = 30.0) -> None:
        import redis

        command = redis_argv(self.port, self.directory, self.appendonly)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1, retry=None)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._process.poll() is not None:
                    raise PlaitError(f"redis-server exited ({self._process.returncode}): {self._log.read_text()}")
                try:
                    # PING answers only once the AOF is loaded; until then Redis says LOADING.
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise PlaitError(f"redis-server on port {self.port} did not answer PING in {timeout} s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Graceful shutdown: SIGTERM makes Redis flush its AOF before exiting."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()
