"""No job left behind: jobs live through worker deaths, a controller death and a Redis
outage, on the real embedded model, real Ray and a real redis-server. Faults are injected by
signal, as an operator's machine would suffer them."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.cluster import RedisServer
from orchestrator.config import Config
from orchestrator.store import StoreUnavailable

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]


def chain(n: int, tag: str) -> dict:
    """A job of `n` nodes, each after the one before: long enough to be hit mid-run. cot always
    ends with a number in its text, so every node has an answer."""
    graph = [{"id": "n0", "question": f"What is {n} + 2? ({tag})", "difficulty": 1}]
    graph += [{"id": f"n{i}", "question": "What is {" + f"n{i - 1}" + "} + 2?", "depends_on": [f"n{i - 1}"], "difficulty": 1} for i in range(1, n)]
    return {"problem": f"a chain of {n} ({tag})", "strategy": {"name": "cot", "params": {"max_tokens_per_call": 48}}, "graph": graph}


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def started_nodes(client: Client, job_id: str) -> list[str]:
    return [e["node"] for e in client.events(job_id) if e["type"] == "node_started"]


def worker_pid(client: Client, previous: list[int]) -> int | None:
    """The small tier's worker process, once it answers and is not one already killed."""
    import ray
    from ray.exceptions import RayError

    try:
        pid = ray.get(client.pool.actor("small").describe.remote(), timeout=30)["pid"]
    except RayError:
        return None  # restarting
    return None if pid in previous else pid


def test_workers_come_back_every_time_they_die(client):
    # Each kill gets a job of its own, submitted once the worker is back: jobs submitted all
    # at the start may all be done before the last kill, leaving nothing in flight to hit.
    jobs: list[str] = []
    pids: list[int] = []
    for i in range(3):
        pid = wait_for(lambda: worker_pid(client, pids), 120, "the worker")
        jobs.append(client.submit(chain(3, f"kill {i}")))
        wait_for(lambda: started_nodes(client, jobs[-1]), 120, f"job {i} to start a node")
        time.sleep(1.5)  # a batch is in flight on this worker
        os.kill(pid, signal.SIGKILL)
        pids.append(pid)
    results = [client.result(j, wait=True, timeout=600) for j in jobs]
    assert [r.status for r in results] == ["succeeded"] * 3, [r.error for r in results]
    assert len(set(pids)) == 3  # each kill hit a new, restarted worker process
    retried = [e for j in jobs for e in client.events(j) if e["type"] == "node_retry"]
    assert retried and all(e["retry"] <= 3 for e in retried)
    after = client.solve(chain(1, "after the kills"))
    assert after.status == "succeeded"


def test_a_redis_outage_is_waited_out_and_nothing_is_lost(tmp_path, config):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        local = Client(config=config.model_copy(update={"redis_url": server.url}), discover=False)
        jobs = [local.submit(chain(3, f"outage {i}")) for i in range(2)]
        wait_for(lambda: all(started_nodes(local, j) for j in jobs), 180, "both jobs to start")
        server.stop()  # longer than one retry period of the jobs' store calls
        with pytest.raises(StoreUnavailable, match="Redis"):
            local.submit(chain(1, "during the outage"))
        time.sleep(8)
        server.start()  # the same port and append-only file
        results = [local.result(j, wait=True, timeout=600) for j in jobs]
        assert [r.status for r in results] == ["succeeded"] * 2, [r.error for r in results]
        for job_id, result in zip(jobs, results):
            events = local.events(job_id)
            assert [e["seq"] for e in events] == list(range(len(events)))  # no event lost or doubled
            assert {n.id for n in result.nodes} == {"n0", "n1", "n2"} and all(n.answer for n in result.nodes)
            assert local.status(job_id).status == "succeeded"
        local.close()
    finally:
        server.stop()


def test_a_killed_controller_is_restarted_and_resumes_its_jobs(tmp_path, redis_url):
    """A real cluster as `plait up` runs it (its own Ray head and a detached controller); the
    controller's process is SIGKILLed while jobs run."""
    import subprocess
    import sys

    from test_cluster import ray_node, stop
    from tools.processes import free_port

    port = free_port()
    head = ray_node(tmp_path, "head", {"tier_small": 1000}, port, head=True)
    script = tmp_path / "failover.py"
    script.write_text(FAILOVER_SCRIPT)
    try:
        root = Path(__file__).parent.parent
        env = {**os.environ, "PLAIT_REDIS_URL": redis_url, "PLAIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(root)}
        proc = subprocess.run(
            [sys.executable, str(script), f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=900, env=env, cwd=root
        )
    finally:
        stop(head)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["statuses"] == ["succeeded"] * 3, report
    assert report["new_controller_pid"] != report["killed_pid"]
    for job in report["jobs"]:
        # Resumed by the restarted controller: the nodes finished before the kill were kept
        # (started once, never again), the others ran again.
        assert job["resumed"], job
        assert all(job["started"].count(node) == 1 for node in job["kept"]), job
        assert set(job["started"]) == {"n0", "n1", "n2"}


FAILOVER_SCRIPT = """
import json, os, signal, sys, time
import ray
from orchestrator.client import Client
from orchestrator.config import Config, TierConfig
from orchestrator.controller import controller
from tests.test_failover import chain, started_nodes, wait_for

config = Config(tiers={"small": TierConfig(num_cpus=0.5)}, routing={1: "small"}, redis_url=os.environ["PLAIT_REDIS_URL"])
client = Client(sys.argv[1], config=config)
ray.init(address=sys.argv[1], namespace="plait", log_to_driver=False)
actor = controller(client.config, lease_seconds=4.0)
killed = ray.get(actor.pid.remote())
jobs = [client.submit(chain(3, f"failover {i}")) for i in range(3)]
wait_for(lambda: any(e["type"] == "node_done" for j in jobs for e in client.events(j)), 300, "a finished node")
os.kill(killed, signal.SIGKILL)
statuses = [client.result(j, wait=True, timeout=600).status for j in jobs]
report = {"statuses": statuses, "killed_pid": killed, "new_controller_pid": ray.get(actor.pid.remote()), "jobs": []}
for j in jobs:
    events = client.events(j)
    resumed = [e for e in events if e["type"] == "resumed"]
    report["jobs"].append({"started": started_nodes(client, j), "resumed": bool(resumed), "kept": resumed[0]["kept"] if resumed else []})
print(json.dumps(report))
"""
