"""The HTTP API (`plait serve`; `serve run orchestrator.api:deployment` under Ray Serve).

Routes: POST/GET /v1/jobs, GET/DELETE /v1/jobs/{id}, GET /v1/jobs/{id}/events (server-sent
events), GET /healthz, GET /metrics. They call the same Client verbs as the CLI.

Retries: a POST /v1/jobs with an `Idempotency-Key` header creates its job once; the same key
sent again within 24 hours with the same body returns that job, with another body a 422.

Auth: when the server has a token, every route but /healthz (including /metrics, which
shows job counts) needs `Authorization: Bearer <token>`; Prometheus sends it with
`authorization: {credentials: ...}` in its scrape config. Without a token the server only
binds loopback. Errors are `{"error": {"message", "type"}}`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import signal
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal, cast

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.config import API_PORT, load_config
from orchestrator.job import STATUSES, TERMINAL, IllegalTransition, Job, JobNotFound, Result
from orchestrator.jobstate import JobState, fold
from orchestrator.spec import JobSpec, parse_json
from orchestrator.store import Store, StoreUnavailable
from plait.errors import InvalidInput, PlaitError

if TYPE_CHECKING:
    from orchestrator.client import Client

StatusName = Literal["queued", "planning", "running", "succeeded", "failed", "cancelled"]

WAIT_SECONDS = 10.0  # one store wait of an event stream; bounds how long a gone client holds a thread
STREAM_THREADS = 64  # event streams wait in their own threads so they cannot starve the other routes
METRICS_SCAN_LIMIT = 10_000  # jobs per status that /metrics reads from the store
KV_COUNTERS = {  # CacheStats fields exported as counters, summed over finished jobs
    "lookups": "Prefix KV cache lookups",
    "hits": "Prefix KV cache lookups that found at least one chunk",
    "misses": "Prefix KV cache lookups that found nothing",
    "hit_tokens": "Prompt tokens loaded from the prefix KV cache instead of prefilled",
    "bad_values": "Corrupt, truncated or mismatched KV cache values (each one a miss)",
    "loaded_bytes": "Bytes loaded from the prefix KV cache",
    "stored_bytes": "Bytes stored into the prefix KV cache",
    "load_ms": "Milliseconds spent loading from the prefix KV cache",
    "store_ms": "Milliseconds spent storing into the prefix KV cache",
}
DECODE_COUNTERS = {  # Completion.decode counters exported, summed over finished jobs
    "speculative_drafted": "Draft tokens proposed by speculative decoding",
    "speculative_accepted": "Draft tokens the target model accepted",
    "sinks_compactions": "Attention-sink KV compactions",
    "sinks_evicted": "Tokens evicted from the KV cache by attention sinks",
    "cautious_steps": "Decode steps cautious decoding looked at",
    "cautious_branched": "Decode steps where cautious decoding ran trials",
    "cautious_trial_tokens": "Tokens generated in cautious decoding's trials",
}
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
MAX_SEQ = 10**15 - 1  # event sequence numbers a client may name (Last-Event-ID, offset)
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_.:-]{1,255}$"  # room for a UUID or a client's own request id
IDEMPOTENCY_TTL = 86_400.0  # how long a key names its job
CLAIM_TTL = 300.0  # how long a submission may hold a key unbound: a crashed server's claim lapses
CLAIM_WAIT = 30.0  # how long a retry waits for a concurrent submission with its key to finish

_ERROR_TYPES = {
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong and what to do about it")
    type: str = Field(description="error class, e.g. invalid_request_error, not_found_error")


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobCreated(BaseModel):
    id: str = Field(description="job id; the Location header points at the job")
    status: StatusName


class JobView(BaseModel):
    id: str
    status: StatusName
    created: float = Field(description="Unix time the job was submitted")
    updated: float = Field(description="Unix time of the last status change")
    spec: JobSpec
    result: dict[str, Any] | None = Field(
        default=None,
        description="the Result (answer, verified, verdict, nodes, tokens, flops, seconds, error) once the job "
        "has finished; only GET /v1/jobs/{job_id} fills it, listings leave it null",
    )


class JobList(BaseModel):
    jobs: list[JobView] = Field(description="newest first")


class Health(BaseModel):
    status: Literal["ok"]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "internal_error")
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}}, headers=headers)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses of a route."""
    described = {
        400: "malformed request",
        401: "missing or wrong bearer token",
        404: "no such job",
        409: "the job has already finished",
        413: "request body too large",
        422: "invalid job or parameter; the message names the field",
        503: "the job store cannot be reached",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


def _fingerprint(data: dict) -> str:
    """The same job body, however its keys are ordered or spaced, has one fingerprint."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _status_code(exc: PlaitError) -> int:
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, IllegalTransition):  # before InvalidInput: it is one
        return 409
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, StoreUnavailable):
        return 503
    return 400


def _view(job: Job, result: Result | None = None) -> JobView:
    return JobView(
        id=job.id,
        status=cast(StatusName, job.status),
        created=job.created,
        updated=job.updated,
        spec=job.spec,
        result=result.to_dict() if result else None,
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit`: from Content-Length
    before reading anything, or while reading a chunked body."""
    declared = request.headers.get("content-length", "")
    too_large = HTTPException(413, f"request body is larger than {limit} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


class _EventMetrics:
    """Metrics read from each job's event stream incrementally at scrape time, so they cover
    every job in the store (up to METRICS_SCAN_LIMIT per status) whichever process ran it:
    node latency, and the prefix KV cache's and the decoder's counters that a job's `done`
    event carries. Each job's stream is folded into its JobState, as every view does."""

    def __init__(self) -> None:
        self.histogram = Histogram(
            "plait_node_latency_seconds",
            "Seconds from a node's node_started event to its node_done event",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.kv = {name: Counter(f"plait_kv_cache_{name}", text, registry=None) for name, text in KV_COUNTERS.items()}
        self.decode = {name: Counter(f"plait_decode_{name}", text, registry=None) for name, text in DECODE_COUNTERS.items()}
        self._lock = threading.Lock()  # scrapes run in threadpool threads and may overlap
        self._states: dict[str, JobState] = {}  # jobs not finished when last read
        self._observed: dict[str, set[str]] = {}  # their nodes whose latency is counted
        self._finished: set[str] = set()

    def update(self, store: Store, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id in self._finished:
                    continue
                state = self._states.setdefault(job_id, JobState())
                fold(store.events(job_id, state.offset), state)
                seen = self._observed.setdefault(job_id, set())
                for node in state.nodes.values():
                    if node.latency is not None and node.id not in seen:
                        self.histogram.observe(node.latency)
                        seen.add(node.id)
                if state.status is not None:
                    for counters, values in ((self.kv, state.kv_cache), (self.decode, state.decode)):
                        for name, counter in counters.items():
                            counter.inc(max(0, values.get(name, 0)))
                    self._finished.add(job_id)
                    del self._states[job_id], self._observed[job_id]

    def collect(self) -> list[Metric]:
        counters = [*self.kv.values(), *self.decode.values()]
        return [*self.histogram.collect(), *(m for counter in counters for m in counter.collect())]


class _StoreCollector(Collector):
    """Job gauges and node latency, read from the store when Prometheus scrapes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events = _EventMetrics()

    def collect(self) -> list[Metric]:
        store = self.client.store
        listed = {status: store.jobs(status, METRICS_SCAN_LIMIT) for status in STATUSES}
        jobs = GaugeMetricFamily("plait_jobs", "Jobs in the store by status", labels=["status"])
        for status, found in listed.items():
            jobs.add_metric([status], len(found))
        depth = GaugeMetricFamily(
            "plait_queue_depth",
            "Jobs waiting to run (queued or planning)",
            value=len(listed["queued"]) + len(listed["planning"]),
        )
        self.events.update(store, [job.id for found in listed.values() for job in found])
        return [jobs, depth, *self.events.collect()]


class _CountRequests:
    """Counts every HTTP request by route template (not raw path, which would make one
    series per job id), method and status code."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router fills scope["route"]
            self.counter.labels(route=route, method=scope["method"], code=str(status)).inc()


def create_app(client: Client, *, token: str | None, max_body_bytes: int = 1_000_000) -> FastAPI:
    """The API over `client`. `token` None (or empty) turns auth off: only for loopback."""
    token = token or None
    app = FastAPI(
        title="plait API",
        version=version("plait"),
        description=__doc__,
        separate_input_output_schemas=False,  # one JobSpec schema, shared by the request and the job view
    )
    registry = CollectorRegistry()
    requests_total = Counter(
        "plait_http_requests", "HTTP requests by route, method and status code", ["route", "method", "code"],
        registry=registry,
    )
    registry.register(_StoreCollector(client))
    app.add_middleware(_CountRequests, counter=requests_total)
    stream_threads = anyio.CapacityLimiter(STREAM_THREADS)
    bearer = HTTPBearer(auto_error=False, description="the server's PLAIT_API_TOKEN")

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the server's PLAIT_API_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.exception_handler(PlaitError)
    async def plait_error(_request: Request, exc: PlaitError) -> JSONResponse:
        return _error(_status_code(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return _error(422, "; ".join(parts))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the server logs the traceback; the client never sees it.
        return _error(500, "internal error; the server log has the details")

    api = APIRouter(dependencies=[Depends(require_token)], responses=_errors(401, 503))

    def submit_once(key: str, data: dict) -> tuple[str, bool]:
        """Submit `data` unless `key` already names a job: (job id, whether it was replayed).
        The store's claim on the key is atomic, so concurrent retries create one job."""
        store, fingerprint = client.store, _fingerprint(data)
        deadline = time.monotonic() + CLAIM_WAIT
        while not (claim := store.claim_idempotency_key(key, fingerprint, CLAIM_TTL)).token:
            if claim.fingerprint != fingerprint:
                raise InvalidInput(
                    f"Idempotency-Key {key!r} was already used with a different job body: send a new key for a new "
                    "job, or the same body to get the job that key created"
                )
            if claim.job_id is not None:
                return claim.job_id, True
            if time.monotonic() > deadline:
                raise HTTPException(409, f"a submission with Idempotency-Key {key!r} is still in progress: retry shortly")
            time.sleep(0.1)
        try:
            job_id = client.submit(data)
        except BaseException:
            store.release_idempotency_key(key, claim.token)  # nothing was created: a retry may try again
            raise
        store.bind_idempotency_key(key, claim.token, job_id, IDEMPOTENCY_TTL)
        return job_id, False

    @api.post(
        "/v1/jobs",
        status_code=201,
        tags=["jobs"],
        summary="Submit a job",
        description="Validate a JobSpec and start the job. The Location header is the job's URL. With an "
        "Idempotency-Key, a retry of the same request returns the job the first one created instead of a new one.",
        responses={
            201: {
                "headers": {
                    "Location": {"description": "URL of the new job", "schema": {"type": "string"}},
                    "Idempotent-Replayed": {
                        "description": "'true' when the Idempotency-Key had already created this job",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                }
            },
            **_errors(400, 413, 422),
            409: {"model": ErrorBody, "description": "a submission with the same Idempotency-Key is still in progress"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
            }
        },
    )
    async def submit_job(
        request: Request,
        response: Response,
        idempotency_key: str | None = Header(
            None,
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY,
            description="a unique id of this submission (e.g. a UUID), the same on every retry of it; it names the "
            "job it created for 24 hours. Letters, digits and _ . : - only, at most 255.",
        ),
    ) -> JobCreated:
        # Read and parsed by hand: the size limit must apply before parsing, and validation
        # errors should carry JobSpec's own messages.
        body = await _read_body(request, max_body_bytes)
        try:
            data = parse_json(body, "the request body")
        except ValueError as exc:
            raise HTTPException(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput("invalid job: the body must be a JSON object (a JobSpec)")
        if idempotency_key is None:
            job_id = await run_in_threadpool(client.submit, data)
        else:
            job_id, replayed = await run_in_threadpool(submit_once, idempotency_key, data)
            if replayed:
                response.headers["Idempotent-Replayed"] = "true"
        job = await run_in_threadpool(client.status, job_id)
        response.headers["Location"] = str(request.url_for("get_job", job_id=job_id))
        return JobCreated(id=job.id, status=cast(StatusName, job.status))

    @api.get("/v1/jobs", tags=["jobs"], summary="List jobs", responses=_errors(422))
    def list_jobs(
        status: StatusName | None = Query(None, description="only jobs with this status"),
        limit: int = Query(100, ge=1, le=1000, description="at most this many jobs"),
    ) -> JobList:
        return JobList(jobs=[_view(job) for job in client.jobs(status, limit)])

    @api.get("/v1/jobs/{job_id}", tags=["jobs"], summary="Get a job and, once finished, its result", responses=_errors(404, 422))
    def get_job(job_id: str) -> JobView:
        job = client.status(job_id)
        return _view(job, client.result(job_id) if job.status in TERMINAL else None)

    @api.delete(
        "/v1/jobs/{job_id}",
        status_code=202,
        tags=["jobs"],
        summary="Cancel a job",
        description="Nodes not yet started never run; the job becomes cancelled shortly after.",
        responses=_errors(404, 409, 422),
    )
    def cancel_job(job_id: str) -> JobView:
        job = client.status(job_id)
        if job.status in TERMINAL:
            raise IllegalTransition(f"job {job_id} has already {job.status}; only an unfinished job can be cancelled")
        job = client.cancel(job_id)
        return _view(job, client.result(job_id) if job.status in TERMINAL else None)

    @api.get(
        "/v1/jobs/{job_id}/events",
        tags=["jobs"],
        summary="Stream a job's events",
        description="Server-sent events: one message per stored event (id = seq, event = its type, data = the "
        "event as JSON), from `offset` or after the Last-Event-ID header; the stream ends after the `done` event.",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}, **_errors(400, 404, 422)},
    )
    async def job_events(
        job_id: str,
        offset: int = Query(0, ge=0, le=MAX_SEQ, description="first sequence number to send"),
        last_event_id: str | None = Header(
            None, description=f"resume after this sequence number, 0-{MAX_SEQ} (wins over offset)"
        ),
    ) -> EventSourceResponse:
        if last_event_id is not None:
            seq = last_event_id.strip()
            if not (seq.isascii() and seq.isdigit() and len(seq) <= len(str(MAX_SEQ))):
                raise HTTPException(
                    400,
                    f"Last-Event-ID must be an event sequence number 0-{MAX_SEQ} (the id of the last event "
                    f"received), not {last_event_id[:40]!r}: reconnect without it to start from the first event",
                )
            offset = int(seq) + 1
        await run_in_threadpool(client.status, job_id)  # 404 now, not inside a started stream

        def past_done(start: int) -> bool:
            return any(e["type"] == "done" and e["seq"] < start for e in client.events(job_id))

        async def stream(start: int) -> AsyncIterator[ServerSentEvent]:
            batch: list[dict] = []
            # An empty wait re-checks whether the client resumed after the end, which would
            # otherwise wait forever.
            while batch or not await run_in_threadpool(past_done, start):
                batch = await anyio.to_thread.run_sync(
                    client.store.wait_events, job_id, start, WAIT_SECONDS, limiter=stream_threads
                )
                for event in batch:
                    start = event["seq"] + 1
                    yield ServerSentEvent(data=json.dumps(event), event=event["type"], id=str(event["seq"]))
                    if event["type"] == "done":
                        return

        return EventSourceResponse(stream(offset))

    @api.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        description="plait_jobs{status}, plait_queue_depth, plait_node_latency_seconds (histogram), "
        "plait_http_requests_total{route,method,code}, plait_decode_*_total (speculation, sinks, CNTP), plait_kv_cache_*_total (prefix KV cache: lookups, hits, "
        "misses, hit_tokens, bad_values, loaded/stored bytes, load/store ms, summed over finished jobs).",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}},
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness and store reachability (no auth)",
        responses=_errors(503),
    )
    def healthz() -> Health:
        try:
            client.store.ping()
        except PlaitError:
            raise
        except Exception as exc:  # any failure to answer means unhealthy, not an internal error
            raise StoreUnavailable(f"the job store did not answer: {type(exc).__name__}") from None
        return Health(status="ok")

    return app


def openapi_schema() -> dict[str, Any]:
    # Building the schema never reaches the client, so none is needed.
    return create_app(cast("Client", None), token=None).openapi()


def export_openapi(path: str | os.PathLike[str]) -> None:
    """Write the OpenAPI document (docs/openapi.json is generated by this)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(openapi_schema(), indent=2) + "\n")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # other names may resolve anywhere
        return False


def run_server(client: Client, host: str = "127.0.0.1", port: int = API_PORT, token: str | None = None) -> None:
    """Serve the API with uvicorn until interrupted; without a token only on loopback."""
    if not token and not is_loopback(host):
        raise InvalidInput(
            f"refusing to serve on {host} without a token: set PLAIT_API_TOKEN (clients then send "
            "'Authorization: Bearer <token>') or bind 127.0.0.1"
        )
    import uvicorn

    # uvicorn re-raises the SIGTERM it caught once it has shut down, which with the default
    # handler ends the process on the spot; as SystemExit it unwinds through the caller's
    # cleanup instead (the local Ray this server started, and the agents Ray forked).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(create_app(client, token=token), host=host, port=port)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _serve_app() -> FastAPI:
    """Runs in each Ray Serve replica: the Client (and its store) exist only there."""
    token = os.environ.get("PLAIT_API_TOKEN")
    if not token:
        raise InvalidInput("set PLAIT_API_TOKEN: under Ray Serve the API is reachable from the cluster network")
    from orchestrator.client import Client

    # Cluster mode even without an address in the config: the replica already runs inside
    # the cluster ("auto" joins it), so jobs go to the controller and the store is Redis.
    config = load_config()
    return create_app(Client(address=config.ray.address or "auto", config=config), token=token)


def __getattr__(name: str) -> Any:
    # `deployment` is built on first access so importing this module stays cheap (no ray.serve).
    if name == "deployment":
        from ray import serve

        return serve.deployment(name="plait-api")(serve.ingress(_serve_app)()).bind()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.api", description="plait HTTP API utilities")
    parser.add_argument("--export-openapi", metavar="PATH", required=True, help="write the OpenAPI document to PATH")
    args = parser.parse_args(argv)
    export_openapi(args.export_openapi)


if __name__ == "__main__":
    main()
