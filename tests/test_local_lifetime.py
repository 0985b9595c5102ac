"""Local mode stays up: Ray started lazily by a job thread or an HTTP request's pool thread
must not die when that thread ends (Ray's gcs_server and raylet get SIGKILL when the *thread*
that forked them exits). Each case runs in its own process, as a user's script or server would."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from http_server import PLAIT, local_env, run_job, wait_healthy
from tools.processes import free_port

pytestmark = pytest.mark.slow



def ray_children(pid: int) -> dict[str, str]:
    """Ray's own daemons among `pid`'s children, by name, with their process state (Z: killed)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        name, (state, ppid) = fields[0].split("(", 1)[1], fields[1].split()[:2]
        if int(ppid) == pid and name in ("gcs_server", "raylet"):
            found[name] = state
    return found


CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    sys.path.insert(0, "tests")  # as pytest puts it: the test module imports its helpers from there
    from orchestrator import Client
    from test_local_lifetime import ray_children

    client = Client(discover=False)
    answers, daemons = [], []
    for wave in ([f"{n} * 7" for n in (2, 3)], [f"{n} * 7" for n in (4, 5, 6)]):
        ids = [client.submit({"problem": q, "strategy": {"name": "calc"}}) for q in wave]
        answers += [client.result(i, wait=True, timeout=120).answer for i in ids]
        # Every job thread of this wave (one of them started Ray) has ended before the next.
        while any(t.name.startswith("plait-job-") for t in threading.enumerate()):
            time.sleep(0.1)
        time.sleep(2)
        daemons.append(ray_children(os.getpid()))
    print(json.dumps({"answers": answers, "jobs": len(client.jobs()), "daemons": daemons}))
    """
)


def test_client_keeps_its_ray_after_the_job_thread_that_started_it_ends(tmp_path):
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT], capture_output=True, text=True, timeout=400, env=local_env(tmp_path), cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # Alive (not zombies) after each wave: without the fix the first wave's end kills them and the
    # process follows about a minute later, when Ray gives up on its GCS.
    alive = {"gcs_server": "S", "raylet": "S"}
    assert [{name: "S" if state in "RS" else state for name, state in d.items()} for d in report["daemons"]] == [alive, alive]
    assert (report["answers"], report["jobs"]) == (["14", "21", "28", "35", "42"], 5)


def test_local_server_serves_jobs_after_its_pool_threads_retire(tmp_path):
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([str(PLAIT), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=local_env(tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            wait_healthy(http, server, tmp_path / "serve.log")

            def run(question: str) -> str:
                return run_job(http, question)["result"]["answer"]

            assert run("6 * 7") == "42"  # this request's pool thread started Ray
            # anyio retires pool threads idle for 10 s: the one that started Ray is gone after this.
            time.sleep(15)
            assert all(state in "RS" for state in ray_children(server.pid).values()), ray_children(server.pid)
            assert set(ray_children(server.pid)) == {"gcs_server", "raylet"}
            assert [run(q) for q in ("7 * 7", "8 * 7")] == ["49", "56"]
            listed = http.get("/v1/jobs").json()["jobs"]
            assert len(listed) == 3 and all(j["status"] == "succeeded" for j in listed)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
