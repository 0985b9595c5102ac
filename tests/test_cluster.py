"""Cluster mode as an operator runs it: Ray nodes started with `ray start` on loopback, a
real Redis job store, and `plait` commands in their own processes (so a submitting client
really exits before its job is done)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.job import Result
from orchestrator.runtime import RAY_ENV, ensure_ray_token
from tools.processes import descendants, free_port, start_time, still_running

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]

BIN = Path(sys.executable).parent
START_BOUND = 900  # seconds a node may take to come up: generous, for a loaded machine; only catches a hang
GRAPH = {
    "problem": "two tiers",
    "strategy": {"name": "calc"},
    "graph": [
        {"id": "easy", "question": "20 + 1", "difficulty": 1},
        {"id": "hard", "question": "{easy} * 2", "depends_on": ["easy"], "difficulty": 5},
    ],
}


def ray_node(tmp: Path, name: str, resources: dict, head_port: int, head: bool) -> subprocess.Popen:
    """A Ray node in the foreground (`--block`): SIGTERM stops exactly this node, unlike `ray stop`."""
    ports = [
        "--num-cpus", "1", "--resources", json.dumps(resources),
        "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
        "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
        "--min-worker-port", str(20000 if head else 22000), "--max-worker-port", str(21999 if head else 23999),
    ]  # fmt: skip
    if head:
        ports += ["--head", "--port", str(head_port), "--include-dashboard=false", "--ray-client-server-port", str(free_port())]
    else:
        ports += ["--address", f"127.0.0.1:{head_port}"]
    log = (tmp / f"{name}.log").open("wb")
    env = {**os.environ, **RAY_ENV}
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *ports], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def plait(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "plait"), *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def wait_until_ready(what: str, ready, node: subprocess.Popen, log: Path) -> None:
    """Poll `ready()` until it holds; fail at once if `node` exits, or after START_BOUND,
    with the tail of the node's log."""
    deadline = time.monotonic() + START_BOUND
    while not ready():
        if node.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {node.returncode}" if node.returncode is not None else f"not ready after {START_BOUND} s"
            pytest.fail(f"{what} {why}; {log} ends:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(1)


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory, redis_server):
    """A head offering tier_a and a second node offering tier_b, plus a config routing
    easy nodes to tier a and hard ones to tier b."""
    tmp = tmp_path_factory.mktemp("cluster")
    ensure_ray_token()
    port = free_port()
    head = ray_node(tmp, "head", {"tier_a": 1000}, port, head=True)
    worker = None
    try:
        def status() -> str:
            """`ray status` of the head, '' while it does not answer."""
            command = [str(BIN / "ray"), "status", "--address", f"127.0.0.1:{port}"]
            try:
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **RAY_ENV}, timeout=120)
            except subprocess.TimeoutExpired:
                return ""
            return done.stdout if done.returncode == 0 else ""

        wait_until_ready("the Ray head", lambda: bool(status()), head, tmp / "head.log")
        worker = ray_node(tmp, "worker", {"tier_b": 1000}, port, head=False)
        wait_until_ready("the worker node", lambda: "tier_b" in status(), worker, tmp / "worker.log")
        config = tmp / "plait.toml"
        config.write_text('[tiers.a]\nnum_cpus = 0.5\n[tiers.b]\nnum_cpus = 0.5\n[routing]\n1 = "a"\n4 = "b"\n')
        job = tmp / "job.json"
        job.write_text(json.dumps(GRAPH))
        env = {"PLAIT_REDIS_URL": redis_server.url, "PLAIT_CONFIG": str(config), "PLAIT_CACHE_DIR": str(tmp / "cache")}
        yield {"address": f"127.0.0.1:{port}", "env": env, "job": job}
    finally:
        for node in (worker, head):
            if node is not None:
                stop(node)


def test_nodes_of_one_job_run_on_both_ray_nodes(two_node_cluster):
    c = two_node_cluster
    proc = plait("solve", f"@{c['job']}", "--json", "--address", c["address"], env=c["env"])
    assert proc.returncode == 0, proc.stderr
    result = Result.from_dict(json.loads(proc.stdout))
    assert result.status == "succeeded" and result.answer == "42"
    workers = {n.id: n.worker for n in result.nodes}
    assert (workers["easy"]["tier"], workers["hard"]["tier"]) == ("a", "b")
    assert workers["easy"]["node_id"] and workers["hard"]["node_id"]
    assert workers["easy"]["node_id"] != workers["hard"]["node_id"]


def test_job_outlives_the_client_that_submitted_it(two_node_cluster):
    c = two_node_cluster
    submitted = plait("submit", f"@{c['job']}", "--address", c["address"], env=c["env"])
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    # The submitting process has exited; a different process asks for the result.
    fetched = plait("result", job_id, "--wait", "--json", "--address", c["address"], env=c["env"])
    assert fetched.returncode == 0, fetched.stderr or fetched.stdout  # a failed job's result says why
    assert Result.from_dict(json.loads(fetched.stdout)).answer == "42"
    listed = plait("jobs", "--json", "--address", c["address"], env=c["env"])
    assert job_id in {j["id"] for j in json.loads(listed.stdout)}
    status = plait("status", job_id, "--json", "--address", c["address"], env=c["env"])
    assert json.loads(status.stdout)["status"] == "succeeded"


def test_unreachable_redis_at_submit_is_a_clear_error(two_node_cluster):
    c = two_node_cluster
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc = plait("submit", "6*7", "-s", "calc", "--address", c["address"], env={**c["env"], "PLAIT_REDIS_URL": dead})
    assert proc.returncode == 2 and "cannot reach Redis" in proc.stderr and "Traceback" not in proc.stderr


def test_submit_without_a_cluster_says_how_to_get_one(tmp_path):
    proc = plait("submit", "6*7", env={"PLAIT_CACHE_DIR": str(tmp_path), "RAY_ADDRESS": "", "PLAIT_RAY_ADDRESS": ""})
    assert proc.returncode == 2 and "plait up" in proc.stderr


def test_up_then_solve_uses_the_cluster_then_down(tmp_path):
    env = {"PLAIT_CACHE_DIR": str(tmp_path), "RAY_ADDRESS": "", "PLAIT_RAY_ADDRESS": "", "PLAIT_REDIS_URL": ""}
    started = plait("up", "--num-cpus", "1", env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert "started" in started.stdout
        assert "already up" in plait("up", env=env).stdout
        solved = plait("solve", "6*7", "-s", "calc", "--json", env=env)
        assert solved.returncode == 0, solved.stderr
        result = Result.from_dict(json.loads(solved.stdout))
        assert result.answer == "42"
        # It ran through the cluster's Redis: another process finds the job by id.
        shown = plait("status", result.job_id, "--json", env=env)
        assert json.loads(shown.stdout)["status"] == "succeeded"
        # What `plait up` started, by PID: the Ray head, Redis, and everything below them.
        state = json.loads((tmp_path / "cluster" / "state.json").read_text())
        started = [(pid, start_time(pid)) for pid in (state["ray_pid"], state["redis_pid"])]
        started += [child for pid, _ in started for child in descendants(pid)]
        assert {"raylet", "gcs_server"} <= {Path(f"/proc/{pid}/comm").read_text().strip() for pid, _ in started}
    finally:
        stopped = plait("down", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert [pid for pid, when in started if still_running(pid, when)] == []  # nothing left running
    assert not (tmp_path / "cluster" / "state.json").exists()
    assert "no cluster was up" in plait("down", env=env).stdout
