"""The HTTP API over real HTTP (uvicorn on a loopback port) in front of a real Client on Ray,
running the model-free `calc` strategy so jobs finish quickly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import api
from orchestrator.api import create_app, is_loopback, run_server
from orchestrator.job import STATUSES, TERMINAL, Job
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore
from orchestrator.store.base import StoreUnavailable
from plait.errors import InvalidInput
from plait.events import event

pytestmark = pytest.mark.slow

TOKEN = "test-token-0123456789"
BODY_LIMIT = 4096
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base_url(client):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, token=TOKEN, max_body_bytes=BODY_LIMIT), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as session:
        yield session


def calc_job(problem: str) -> dict:
    return {"problem": problem, "strategy": {"name": "calc"}}


def nested(depth: int) -> list:
    """A list `depth` levels deep, built without recursion."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def submit(http: httpx.Client, problem: str) -> str:
    response = http.post("/v1/jobs", json=calc_job(problem))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_finished(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 300  # a guard against hanging, not a timing assertion
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not finish")


def read_sse(response: httpx.Response) -> list[dict[str, str]]:
    """Messages of a server-sent event stream (comments such as pings skipped)."""
    messages, fields = [], {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                messages.append(fields)
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
    return messages


def stream(http: httpx.Client, job_id: str, **kwargs) -> list[dict[str, str]]:
    with http.stream("GET", f"/v1/jobs/{job_id}/events", **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_sse(response)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type"}, body
    return body["error"]


def test_submit_then_poll_for_the_result(http):
    response = http.post("/v1/jobs", json=calc_job("6*7"))
    assert response.status_code == 201
    created = response.json()
    assert created["status"] in STATUSES
    location = response.headers["location"]
    assert location.endswith(f"/v1/jobs/{created['id']}")

    job = wait_finished(http, created["id"])
    assert job == http.get(location).json()
    assert job["status"] == "succeeded"
    assert job["spec"]["problem"] == "6*7" and job["spec"]["strategy"]["name"] == "calc"
    assert job["result"]["job_id"] == created["id"] and job["result"]["answer"] == "42"


def test_listing_is_newest_first_and_filters(http):
    first, second = submit(http, "1+1"), submit(http, "2+2")
    wait_finished(http, first), wait_finished(http, second)

    listed = http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
    ids = [job["id"] for job in listed]
    assert ids.index(second) < ids.index(first)
    assert [job["created"] for job in listed] == sorted((job["created"] for job in listed), reverse=True)
    assert all(job["result"] is None for job in listed)
    assert len(http.get("/v1/jobs", params={"limit": 1}).json()["jobs"]) == 1
    succeeded = http.get("/v1/jobs", params={"status": "succeeded", "limit": 1000}).json()["jobs"]
    assert {first, second} <= {job["id"] for job in succeeded}
    assert {job["status"] for job in succeeded} == {"succeeded"}
    for status in STATUSES:
        assert http.get("/v1/jobs", params={"status": status}).status_code == 200

    for params, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"status": "done"}, "status")):
        response = http.get("/v1/jobs", params=params)
        assert response.status_code == 422 and field in error_of(response)["message"]


def test_event_stream_is_ordered_ends_with_done_and_resumes(http, client):
    job_id = submit(http, "3*5")
    messages = stream(http, job_id)  # starts while the job is running: the stream waits for events
    events = [json.loads(m["data"]) for m in messages]

    assert [int(m["id"]) for m in messages] == [e["seq"] for e in events] == list(range(len(events)))
    assert [m["event"] for m in messages] == [e["type"] for e in events]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "submitted" and kinds[-1] == "done" and {"node_started", "node_done"} <= set(kinds)
    assert events[-1]["answer"] == "15"
    assert events == client.events(job_id)

    assert stream(http, job_id, headers={"Last-Event-ID": "1"}) == messages[2:]
    assert stream(http, job_id, params={"offset": 3}) == messages[3:]
    # Last-Event-ID (a browser's reconnect) wins over the offset the URL still carries.
    assert stream(http, job_id, params={"offset": 0}, headers={"Last-Event-ID": "2"}) == messages[3:]
    assert stream(http, job_id, headers={"Last-Event-ID": messages[-1]["id"]}) == []  # resumed after the end

    for bad_id in (b"abc", "\u00b2".encode(), "\u0661".encode(), b"9" * 5000, b"-1", b""):
        bad = http.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad_id})
        assert bad.status_code == 400 and "Last-Event-ID must be an event sequence number" in error_of(bad)["message"]
    assert http.get(f"/v1/jobs/{job_id}/events", params={"offset": 10**16}).status_code == 422


def test_bearer_token_is_required_except_on_healthz(base_url, client):
    before = len(client.jobs(limit=1000))
    with httpx.Client(base_url=base_url, timeout=60) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in (("GET", "/v1/jobs"), ("GET", "/metrics"), ("GET", "/v1/jobs/job-x/events")):
                response = anonymous.request(method, path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert error_of(response)["type"] == "authentication_error"
        refused = anonymous.post("/v1/jobs", json=calc_job("1+2"))
        assert refused.status_code == 401

        health = anonymous.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert len(client.jobs(limit=1000)) == before


def test_oversized_bodies_are_refused_before_parsing(http, client):
    body = json.dumps(calc_job("+".join(["1"] * 2500))).encode()  # a valid job, over the limit
    assert len(body) > BODY_LIMIT
    before = len(client.jobs(limit=1000))

    declared = http.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and error_of(declared)["type"] == "request_too_large"
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))  # no Content-Length: chunked
    chunked = http.post("/v1/jobs", content=chunks, headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and str(BODY_LIMIT) in error_of(chunked)["message"]
    assert len(client.jobs(limit=1000)) == before


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"problme": "1+1", "problem": "1+1"}, ["problme", "unknown field"]),
        ({"strategy": {"name": "calc"}}, ["problem"]),
        ({"problem": "   ", "strategy": {"name": "calc"}}, ["problem", "must not be empty"]),
        ({"problem": "1+1", "budget": {"max_tokens": 0}}, ["budget.max_tokens"]),
        ({"problem": "1+1", "strategy": {"name": "magic"}}, ["strategy.name"]),
        ({"problem": "1+1", "strategy": {"name": "tora", "params": {"temperature": "hot"}}}, ["temperature", "a number"]),
        ({"problem": "1+1", "strategy": {"name": "calc", "params": {"x": nested(20)}}}, ["strategy.params", "levels deep"]),
        ({"problem": "1+1", "budget": {"max_flops": float("inf")}}, ["budget.max_flops", "finite"]),
        ({"problem": "1+1", "budget": {"max_seconds": float("nan")}}, ["budget.max_seconds", "finite"]),
    ],
)
def test_invalid_jobs_are_422_naming_the_field(http, client, spec, expected):
    before = len(client.jobs(limit=1000))
    # json.dumps writes inf and nan as Infinity and NaN, which Python's json reads back
    response = http.post("/v1/jobs", content=json.dumps(spec), headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    for part in expected:
        assert part in error["message"]
    assert len(client.jobs(limit=1000)) == before
    assert http.get("/v1/jobs").status_code == 200  # nothing stored that breaks the listing


def test_a_deeply_nested_body_is_a_422_not_a_crash(http, client):
    before = len(client.jobs(limit=1000))
    deep_params = json.dumps({"problem": "1+1", "strategy": {"name": "calc", "params": nested(40)}}).encode()
    for body in (b"[" * (BODY_LIMIT - 1), deep_params):  # deeper than json.loads can go; deeper than allowed
        response = http.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and "32 levels deep" in error_of(response)["message"], response.text
    assert len(client.jobs(limit=1000)) == before


def test_malformed_bodies(http):
    response = http.post("/v1/jobs", content=b"problem: 6*7", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in error_of(response)["message"]
    response = http.post("/v1/jobs", json=["6*7"])
    assert response.status_code == 422 and "JSON object" in error_of(response)["message"]


def test_a_retried_submission_with_its_idempotency_key_creates_one_job(http, client):
    before = len(client.jobs(limit=1000))
    key = {"Idempotency-Key": f"retry-{time.time_ns()}"}
    first = http.post("/v1/jobs", json=calc_job("4*4"), headers=key)
    again = http.post("/v1/jobs", content=json.dumps(calc_job("4*4"), indent=2), headers={**key, "Content-Type": "application/json"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.headers["location"] == again.headers["location"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert len(client.jobs(limit=1000)) == before + 1

    other = http.post("/v1/jobs", json=calc_job("5*5"), headers=key)
    assert other.status_code == 422 and "different job body" in error_of(other)["message"]
    assert submit(http, "5*5") != first.json()["id"]  # without a key, every POST is a new job
    wait_finished(http, first.json()["id"])


def test_concurrent_retries_with_one_idempotency_key_create_one_job(http, client):
    before = len(client.jobs(limit=1000))
    key = {"Idempotency-Key": f"race-{time.time_ns()}"}
    barrier = threading.Barrier(4)
    responses: list[httpx.Response] = []

    def post() -> None:
        barrier.wait()
        responses.append(http.post("/v1/jobs", json=calc_job("9*9"), headers=key))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(client.jobs(limit=1000)) == before + 1


def test_a_failed_submission_frees_its_idempotency_key(http):
    key = {"Idempotency-Key": f"fix-{time.time_ns()}"}
    refused = http.post("/v1/jobs", json={"problem": "1+1", "strategy": {"name": "calc", "params": {"x": 1}}}, headers=key)
    assert refused.status_code == 422
    fixed = http.post("/v1/jobs", json=calc_job("1+1"), headers=key)  # the corrected retry is a new job
    assert fixed.status_code == 201
    wait_finished(http, fixed.json()["id"])


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_a_malformed_idempotency_key_is_422(http, client, key):
    before = len(client.jobs(limit=1000))
    response = http.post("/v1/jobs", json=calc_job("1+1"), headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422 and "idempotency-key" in error_of(response)["message"].lower()
    assert len(client.jobs(limit=1000)) == before


def test_unknown_jobs_are_404(http):
    for method, path in (("GET", "/v1/jobs/job-nope"), ("DELETE", "/v1/jobs/job-nope"), ("GET", "/v1/jobs/job-nope/events")):
        response = http.request(method, path)
        assert response.status_code == 404, path
        error = error_of(response)
        assert error["type"] == "not_found_error" and "job-nope" in error["message"]


def test_cancel(http, client):
    finished = submit(http, "2*3")
    wait_finished(http, finished)
    response = http.delete(f"/v1/jobs/{finished}")
    assert response.status_code == 409
    error = error_of(response)
    assert error["type"] == "conflict_error" and "succeeded" in error["message"]
    assert http.get(f"/v1/jobs/{finished}").json()["status"] == "succeeded"

    # A job no scheduler is running, so it is certainly unfinished when the request arrives.
    unfinished = Job(id="job-api-cancel-test", spec=JobSpec.parse({"problem": "1"}), status="running")
    client.store.create(unfinished)
    try:
        response = http.delete(f"/v1/jobs/{unfinished.id}")
        assert response.status_code == 202
        assert response.json()["id"] == unfinished.id and response.json()["status"] in STATUSES
    finally:
        if client.status(unfinished.id).status not in TERMINAL:
            client.store.transition(unfinished.id, "cancelled")


def metric_samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(samples: list, name: str, **labels: str) -> float:
    (value,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return value


def test_metrics_after_jobs_ran(http, client):
    job_id = submit(http, "7*8")
    wait_finished(http, job_id)
    nodes_done = sum(e["type"] == "node_done" for e in client.events(job_id))

    before = metric_samples(http.get("/metrics").text)
    assert sample(before["plait_jobs"], "plait_jobs", status="succeeded") == len(client.jobs("succeeded", 10_000)) >= 1
    assert set(before) >= {"plait_jobs", "plait_queue_depth", "plait_node_latency_seconds", "plait_http_requests"}
    latency = before["plait_node_latency_seconds"]
    count = sample(latency, "plait_node_latency_seconds_count")
    assert count >= nodes_done >= 1 and sample(latency, "plait_node_latency_seconds_sum") > 0
    assert sample(latency, "plait_node_latency_seconds_bucket", le="+Inf") == count

    assert http.get("/v1/jobs/job-nope").status_code == 404
    after = metric_samples(http.get("/metrics").text)
    route = {"route": "/v1/jobs/{job_id}", "method": "GET", "code": "404"}
    requests = "plait_http_requests_total"
    assert sample(after["plait_http_requests"], requests, **route) - sample(before["plait_http_requests"], requests, **route) == 1
    # Scraping again reads only new events: nodes are not counted twice.
    assert sample(after["plait_node_latency_seconds"], "plait_node_latency_seconds_count") == count


def planned(*ids: str) -> dict:
    nodes = [{"id": i, "question": i, "depends_on": [], "difficulty": 1, "tier": "small", "answer": None, "status": "pending"} for i in ids]
    return event("planned", nodes=nodes, reason="given", tokens=0, completion_tokens=0, usage={})


def started(node: str) -> dict:
    return {"node": node, "tier": "small", "replica": 0, "retry": 0}


def finished(node: str) -> dict:
    return {"node": node, "status": "done", "answer": "1", "error": None, "tokens": 3, "tool_calls": 0, "seconds": 0.1, "worker": {}}


def done(kv_cache: dict, decode: dict) -> dict:
    return {"status": "succeeded", "answer": "1", "error": None, "kv_cache": kv_cache, "decode": decode}


def test_metrics_from_a_known_store():
    store = MemoryStore()
    spec = JobSpec.parse({"problem": "1"})
    for job_id, path in (("job-a", ["planning", "running", "succeeded"]), ("job-b", ["planning", "running"]), ("job-c", [])):
        store.create(Job(id=job_id, spec=spec))
        for status in path:
            store.transition(job_id, status)
    for job_id in ("job-a", "job-b"):
        store.append_event(job_id, planned("x", "y"))
    for kind, ts, fields in (
        ("node_started", 100.0, started("x")),
        ("node_done", 100.2, finished("x")),
        ("node_started", 100.2, started("y")),
        ("node_done", 104.2, finished("y")),
        ("done", 104.3, done({"lookups": 3, "hits": 2, "misses": 1, "hit_tokens": 128, "loaded_bytes": 4096}, {"speculative_drafted": 9, "speculative_accepted": 4})),
    ):
        store.append_event("job-a", {**event(kind, **fields), "ts": ts})
    store.append_event("job-b", {**event("node_started", **started("x")), "ts": 200.0})
    http = TestClient(create_app(SimpleNamespace(store=store), token=None))

    first = metric_samples(http.get("/metrics").text)
    jobs = {s.labels["status"]: s.value for s in first["plait_jobs"]}
    assert jobs == {"queued": 1, "planning": 0, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert sample(first["plait_queue_depth"], "plait_queue_depth") == 1
    latency = first["plait_node_latency_seconds"]
    assert sample(latency, "plait_node_latency_seconds_count") == 2
    assert sample(latency, "plait_node_latency_seconds_sum") == pytest.approx(4.2)
    assert sample(latency, "plait_node_latency_seconds_bucket", le="0.25") == 1
    assert sample(latency, "plait_node_latency_seconds_bucket", le="2.5") == 1
    assert sample(latency, "plait_node_latency_seconds_bucket", le="5.0") == 2

    kv = {name: sample(first[f"plait_kv_cache_{name}"], f"plait_kv_cache_{name}_total") for name in ("lookups", "hits", "misses", "hit_tokens", "loaded_bytes", "bad_values")}
    assert kv == {"lookups": 3, "hits": 2, "misses": 1, "hit_tokens": 128, "loaded_bytes": 4096, "bad_values": 0}

    assert sample(first["plait_decode_speculative_accepted"], "plait_decode_speculative_accepted_total") == 4

    store.append_event("job-b", {**event("node_done", **finished("x")), "ts": 201.0})
    store.append_event("job-b", {**event("done", **done({"lookups": 1, "misses": 1}, {})), "ts": 201.1})
    for _ in range(2):  # the second scrape must not count anything again
        scraped = metric_samples(http.get("/metrics").text)
        latency = scraped["plait_node_latency_seconds"]
        assert sample(latency, "plait_node_latency_seconds_count") == 3
        assert sample(latency, "plait_node_latency_seconds_sum") == pytest.approx(5.2)
        assert sample(scraped["plait_kv_cache_lookups"], "plait_kv_cache_lookups_total") == 4
        assert sample(scraped["plait_kv_cache_misses"], "plait_kv_cache_misses_total") == 2


class _FailingStore:
    def __init__(self, ping_error: Exception):
        self.ping_error = ping_error

    def ping(self) -> None:
        raise self.ping_error

    def jobs(self, status=None, limit=100):
        raise RuntimeError("secret internals")


def test_store_failures_are_json_errors_without_tracebacks():
    unavailable = TestClient(create_app(SimpleNamespace(store=_FailingStore(StoreUnavailable("redis is down"))), token=None))
    response = unavailable.get("/healthz")
    assert response.status_code == 503 and error_of(response) == {"message": "redis is down", "type": "service_unavailable"}

    crashing = TestClient(
        create_app(SimpleNamespace(store=_FailingStore(ConnectionError("secret"))), token=None), raise_server_exceptions=False
    )
    response = crashing.get("/healthz")
    assert response.status_code == 503 and "secret" not in response.text
    response = crashing.get("/metrics")
    assert response.status_code == 500 and error_of(response)["type"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_run_server_refuses_a_public_address_without_a_token(client):
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        for token in (None, ""):
            with pytest.raises(InvalidInput, match="PLAIT_API_TOKEN"):
                run_server(client, host, 0, token)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")


def test_serve_replica_needs_a_token(monkeypatch):
    monkeypatch.delenv("PLAIT_API_TOKEN", raising=False)
    with pytest.raises(InvalidInput, match="PLAIT_API_TOKEN"):
        api._serve_app()


def test_openapi_document_is_current(client):
    committed = json.loads((REPO / "docs" / "openapi.json").read_text())
    live = json.loads(json.dumps(create_app(client, token=TOKEN).openapi()))
    assert committed == live, "regenerate: python -m orchestrator.api --export-openapi docs/openapi.json"
    assert set(committed["paths"]) == {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/healthz", "/metrics"}
    submit_op = committed["paths"]["/v1/jobs"]["post"]
    (key,) = [p for p in submit_op["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and "24 hours" in key["description"] and key["schema"]["anyOf"][0]["pattern"]
    assert "Idempotent-Replayed" in submit_op["responses"]["201"]["headers"] and "409" in submit_op["responses"]


def test_import_is_cheap_and_the_serve_deployment_lazy():
    code = (
        "import sys, orchestrator.api as api\n"
        "assert 'ray.serve' not in sys.modules\n"
        "app = api.deployment\n"
        "import ray\n"
        "from ray.serve import Application\n"
        "assert isinstance(app, Application), type(app)\n"
        "assert not ray.is_initialized()\n"
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
