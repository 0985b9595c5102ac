"""Run an ASGI app on a free loopback port in a background thread, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tools.processes import free_port


@contextmanager
def serving(app, timeout: float = 30.0) -> Iterator[str]:
    """Yields http://127.0.0.1:PORT while uvicorn serves `app` there."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# `plait serve` as a process of its own, in local mode: what a user's server is.
PLAIT = Path(sys.executable).parent / "plait"
LOCAL = {"RAY_ADDRESS": "", "PLAIT_RAY_ADDRESS": "", "PLAIT_REDIS_URL": ""}


def local_env(tmp_path: Path) -> dict:
    """Environment for a local-mode plait under `tmp_path`: no cluster, one Ray CPU, its own cache."""
    config = tmp_path / "plait.toml"
    config.write_text("[ray]\nnum_cpus = 1\n")
    return {**os.environ, **LOCAL, "PLAIT_CACHE_DIR": str(tmp_path / "cache"), "PLAIT_CONFIG": str(config)}


def wait_healthy(http, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Until the `plait serve` process `server` answers /healthz; its log's tail if it dies first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "plait serve did not come up"
        time.sleep(0.5)


def run_job(http, question: str, timeout: float = 180.0) -> dict:
    """Submit a `calc` job and poll it until it is finished; the finished job."""
    job_id = http.post("/v1/jobs", json={"problem": question, "strategy": {"name": "calc"}}).json()["id"]
    end = time.monotonic() + timeout
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < end, f"job {job_id} is still {job['status']}"
        time.sleep(0.25)
    return job
