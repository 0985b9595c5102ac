"""A soak you can rerun: N jobs through the HTTP API of a cluster while faults are injected.

The cluster is what `plait up` + `plait serve --address` run: a Ray head on loopback (a
`ray start --block` process), a redis-server with its append-only file, and the HTTP API in
cluster mode, so jobs run in the detached controller. Jobs go in at `--rate` per second,
each POST with an `Idempotency-Key` and retried on timeouts and 5xx like a careful client
would. Most jobs are 3-node graphs of `calc` nodes (no model); every `--model-every`-th is a
`cot` job on the embedded small model. The fault schedule, spread over the submission window:
the model worker's process SIGKILLed twice, the controller's process SIGKILLed once, Redis
stopped and restarted once (`--outage` seconds down).

At the end (all jobs finished, or `--deadline` passed): submitted, succeeded, failed, lost
(accepted but gone), duplicated (more stored jobs than keys), stuck (not finished), and the
p50/p99 latency from first POST to the job's `done`. Last line: one JSON object.

    python benchmarks/soak.py --jobs 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from phases import Phases

from orchestrator.cluster import RedisServer
from orchestrator.config import Config, TierConfig
from orchestrator.runtime import RAY_ENV, ensure_ray_token, tier_resources
from tools.processes import descendants, free_port

BIN = Path(sys.executable).parent
TOKEN = "soak-token"


def job(i: int, model_every: int) -> dict:
    if model_every and i % model_every == 0:
        return {"problem": f"What is {i} + 17?", "strategy": {"name": "cot", "params": {"max_tokens_per_call": 32}}, "reference": str(i + 17)}
    graph = [
        {"id": "a", "question": f"{i} * 3", "difficulty": 1},
        {"id": "b", "question": f"{i} + 5", "difficulty": 1},
        {"id": "c", "question": "{a} + {b}", "depends_on": ["a", "b"], "difficulty": 1},
    ]
    return {"problem": f"soak {i}", "strategy": {"name": "calc"}, "graph": graph, "reference": str(4 * i + 5)}


class Cluster:
    def __init__(self, directory: Path, config: Config):
        self.directory = directory
        self.redis = RedisServer(directory / "redis")
        self.ray_port, self.api_port = free_port(), free_port()
        self.config_path = directory / "plait.toml"
        self.config_path.write_text('[tiers.small]\nnum_cpus = 0.5\n[routing]\n1 = "small"\n')
        self.config = config
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict:
        return {**os.environ, **RAY_ENV, "PLAIT_REDIS_URL": self.redis.url, "PLAIT_CONFIG": str(self.config_path), "PLAIT_API_TOKEN": TOKEN}

    def start(self) -> None:
        self.redis.start()
        ensure_ray_token()
        head = [str(BIN / "ray"), "start", "--head", "--block", "--port", str(self.ray_port), "--ray-client-server-port", str(free_port()),
                "--include-dashboard=false", "--disable-usage-stats", "--resources", json.dumps(tier_resources(self.config))]  # fmt: skip
        self.processes.append(self._spawn(head, "ray.log"))
        self._wait(lambda: subprocess.run([str(BIN / "ray"), "status", "--address", self.address], capture_output=True, env=self.env).returncode == 0, "the Ray head")
        serve = [str(BIN / "plait"), "serve", "--port", str(self.api_port), "--address", self.address]
        self.processes.append(self._spawn(serve, "serve.log"))
        self._wait(lambda: self._healthy(), "the API")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ray_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        with (self.directory / log).open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    @staticmethod
    def _wait(ready, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not come up")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.redis.stop()


def model_workers(cluster: Cluster) -> list[int]:
    """The model worker processes of this soak's cluster, found below its Ray head: asking the
    controller would wait behind a restarted worker that is busy loading its model."""
    head = cluster.processes[0].pid
    found = []
    for pid, _ in descendants(head):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ModelWorker"):
                found.append(pid)
        except OSError:
            pass
    return found


def faults(cluster: Cluster, window: float, outage: float, log: list[str]) -> None:
    """Worker kill, controller kill, worker kill, Redis restart, spread over the window."""
    import ray

    from orchestrator.controller import CONTROLLER_NAME
    from orchestrator.runtime import NAMESPACE

    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    actor = None
    while actor is None:  # the one the API created for its first job, with the cluster's store
        try:
            actor = ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
        except ValueError:
            time.sleep(0.5)
    step = window / 5
    for i, fault in enumerate(("worker", "controller", "worker", "redis")):
        time.sleep(step)
        try:
            if fault == "worker":
                pids = model_workers(cluster)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                log.append(f"{time.strftime('%H:%M:%S')} killed model worker(s) {pids}")
            elif fault == "controller":
                pid = ray.get(actor.pid.remote(), timeout=60)
                os.kill(pid, signal.SIGKILL)
                log.append(f"{time.strftime('%H:%M:%S')} killed the controller ({pid})")
            else:
                cluster.redis.stop()
                log.append(f"{time.strftime('%H:%M:%S')} stopped Redis for {outage:g} s")
                time.sleep(outage)
                cluster.redis.start()
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            log.append(f"{fault} fault not injected: {type(exc).__name__}: {exc}")


def submit(http: httpx.Client, body: dict, key: str, tries: int = 60) -> str | None:
    for _ in range(tries):
        try:
            reply = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            time.sleep(1)
            continue
        if reply.status_code == 201 or reply.status_code == 200:
            return reply.json()["id"]
        if reply.status_code < 500:
            return None
        time.sleep(1)  # 503 while Redis is away
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="submissions per second")
    parser.add_argument("--model-every", type=int, default=10, help="every k-th job runs the model (0: none)")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds Redis stays down")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds to wait for every job to finish")
    args = parser.parse_args()

    console = Console(stderr=True)
    directory = Path(tempfile.mkdtemp(prefix="plait-soak-"))
    config = Config(tiers={"small": TierConfig(num_cpus=0.5)}, routing={1: "small"})
    cluster = Cluster(directory, config)
    with console.status("starting the cluster"):
        cluster.start()
    fault_log: list[str] = []
    accepted: dict[str, tuple[str, float]] = {}  # key -> (job id, submitted at)
    try:
        window = args.jobs / args.rate
        injector = threading.Thread(target=faults, args=(cluster, window, args.outage, fault_log), daemon=True)
        injector.start()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=cluster.url, headers=headers, timeout=10) as http, Phases(console) as progress:
            bar = progress.add_task("submitting", total=args.jobs)
            for i in range(args.jobs):
                key = uuid.uuid4().hex
                began = time.monotonic()
                job_id = submit(http, job(i, args.model_every), key)
                if job_id:
                    accepted[key] = (job_id, began)
                progress.advance(bar)
                time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - began)))
            injector.join()
            done: dict[str, float] = {}
            statuses: dict[str, str] = {}
            deadline = time.monotonic() + args.deadline
            bar = progress.add_task("finishing", total=len(accepted))
            while len(statuses) < len(accepted) and time.monotonic() < deadline:
                for key, (job_id, began) in accepted.items():
                    if key in statuses:
                        continue
                    try:
                        reply = http.get(f"/v1/jobs/{job_id}")
                    except httpx.TransportError:
                        continue
                    if reply.status_code == 404:
                        statuses[key] = "lost"
                    elif reply.status_code == 200 and reply.json()["status"] in ("succeeded", "failed", "cancelled"):
                        statuses[key] = reply.json()["status"]
                        done[key] = time.monotonic() - began
                    progress.update(bar, completed=len(statuses))
                time.sleep(1)
            stored = http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
    finally:
        cluster.stop()

    latencies = sorted(done.values())
    counts = {s: sum(v == s for v in statuses.values()) for s in ("succeeded", "failed", "cancelled", "lost")}
    report = {
        "name": "soak",
        "jobs": args.jobs,
        "submitted": len(accepted),
        **counts,
        "stuck": len(accepted) - len(statuses),
        "duplicated": max(0, len(stored) - len(accepted)),
        "p50_seconds": round(statistics.median(latencies), 2) if latencies else None,
        "p99_seconds": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2) if latencies else None,
        "faults": fault_log,
        "logs": str(directory),
    }
    for line in fault_log:
        console.print(line, style="dim")
    report["ratio"] = round(counts["succeeded"] / args.jobs, 3)
    report["ratio_of"] = "jobs that succeeded / jobs submitted"
    print(json.dumps(report))


if __name__ == "__main__":
    main()
