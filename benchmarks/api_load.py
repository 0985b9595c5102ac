"""Load on the HTTP API: many clients submitting model-free jobs at once, in one run.

A real uvicorn server (loopback, free port, bearer token) serves `create_app` in front of a
local-mode Client on an in-process Ray. Each request submits a `calc` job (`a*b+c`, varied
per request so no answer is cached) with POST /v1/jobs, then waits for it to finish: by
following its event stream to `done` (--wait sse) or by polling GET /v1/jobs/{id} (--wait
poll), and finally reads the answer with GET /v1/jobs/{id} and checks it. The load comes from
a separate process so that the clients do not share the server's interpreter lock.

Two arms, same server: --jobs requests with --concurrency clients, and --sequential-jobs
requests one at a time. Reports jobs/s, p50/p99 of submit (POST) and end-to-end (POST to
finished) latency, errors (HTTP errors, failed jobs, wrong answers, timeouts) and the ratio
of the two arms' jobs/s. Last line: one JSON object.

    python benchmarks/api_load.py --jobs 20 --concurrency 4 --sequential-jobs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import secrets
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from orchestrator.api import create_app
from orchestrator.client import Client
from orchestrator.config import Config
from orchestrator.job import TERMINAL
from orchestrator.runtime import init_ray


def make_problems(count: int, start: int) -> list[tuple[str, str]]:
    """(problem, expected answer); `start` keeps every arm's problems distinct."""
    problems = []
    for i in range(start, start + count):
        a, b, c = 2 + i % 89, 3 + (i * 7) % 97, i
        problems.append((f"{a}*{b}+{c}", str(a * b + c)))
    return problems


async def _one(http: httpx.AsyncClient, problem: str, expected: str, wait: str, poll: float) -> tuple[float, float]:
    """Submit one job and wait for it; (submit seconds, end-to-end seconds). Raises on any error."""
    began = time.perf_counter()
    response = await http.post("/v1/jobs", json={"problem": problem, "strategy": {"name": "calc"}})
    submitted = time.perf_counter() - began
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/jobs answered {response.status_code}: {response.text[:200]}")
    job_id = response.json()["id"]
    if wait == "sse":
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if line.strip() == "event: done":
                    break
    while True:  # after `done` the first look already finds the job finished
        response = await http.get(f"/v1/jobs/{job_id}")
        response.raise_for_status()
        job = response.json()
        if job["status"] in TERMINAL:
            break
        await asyncio.sleep(poll)
    finished = time.perf_counter() - began
    result = job["result"] or {}
    if job["status"] != "succeeded" or result.get("answer") != expected:
        raise RuntimeError(f"job {job_id} {job['status']} with answer {result.get('answer')!r}, expected {expected!r}")
    return submitted, finished


async def _arm(base_url: str, token: str, problems: list[tuple[str, str]], concurrency: int, wait: str, poll: float,
               job_timeout: float, max_seconds: float) -> dict:
    todo = iter(problems)
    submit, e2e, errors = [], [], []
    deadline = time.perf_counter() + max_seconds

    async def client_loop(http: httpx.AsyncClient) -> None:
        for problem, expected in todo:  # the iterator is shared: each problem is taken once
            if time.perf_counter() >= deadline:
                errors.append(f"{problem}: not sent, the arm ran out of its {max_seconds:g} s")
                continue
            try:
                s, e = await asyncio.wait_for(_one(http, problem, expected, wait, poll), job_timeout)
                submit.append(s)
                e2e.append(e)
            except Exception as exc:
                errors.append(f"{problem}: {type(exc).__name__}: {exc}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=job_timeout,
                                 limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "submit": submit, "e2e": e2e, "errors": errors}


def run_arm(*args) -> dict:
    """Entry point in the load process."""
    return asyncio.run(_arm(*args))


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize(arm: dict, jobs: int) -> dict:
    return {
        "jobs": jobs,
        "finished": len(arm["e2e"]),
        "seconds": round(arm["seconds"], 3),
        "jobs_per_s": round(len(arm["e2e"]) / arm["seconds"], 2),
        "submit_p50_ms": _ms(percentile(arm["submit"], 0.5)),
        "submit_p99_ms": _ms(percentile(arm["submit"], 0.99)),
        "e2e_p50_ms": _ms(percentile(arm["e2e"], 0.5)),
        "e2e_p99_ms": _ms(percentile(arm["e2e"], 0.99)),
        "errors": len(arm["errors"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="requests in the concurrent arm")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once in the concurrent arm")
    parser.add_argument("--sequential-jobs", type=int, default=30, help="requests in the one-at-a-time arm")
    parser.add_argument("--wait", choices=("sse", "poll"), default="sse", help="follow the event stream or poll the job")
    parser.add_argument("--poll-seconds", type=float, default=0.05, help="pause between polls (--wait poll)")
    parser.add_argument("--job-timeout", type=float, default=120, help="seconds one request may take, submit to finished")
    parser.add_argument("--max-seconds", type=float, default=900, help="an arm sends no new request after this long")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the in-process Ray")
    args = parser.parse_args()
    if min(args.jobs, args.concurrency, args.sequential_jobs) < 1:
        parser.error("--jobs, --concurrency and --sequential-jobs must be at least 1")

    console = Console(stderr=True)
    token = secrets.token_urlsafe(24)
    config = Config(ray={"num_cpus": args.num_cpus})
    init_ray(config)
    client = Client(config=config, discover=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(client, token=token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    load = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("uvicorn did not start")
            time.sleep(0.01)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        common = (args.wait, args.poll_seconds, args.job_timeout, args.max_seconds)

        def arm(problems: list[tuple[str, str]], concurrency: int) -> dict:
            return load.submit(run_arm, base_url, token, problems, concurrency, *common).result()

        with console.status("warm-up: worker actor, load process"):
            warm = arm(make_problems(2, 0), 1)
            if warm["errors"]:
                raise SystemExit(f"the warm-up failed: {warm['errors'][0]}")
        with console.status(f"sequential arm: {args.sequential_jobs} jobs one at a time"):
            sequential = arm(make_problems(args.sequential_jobs, 2), 1)
        with console.status(f"concurrent arm: {args.jobs} jobs, {args.concurrency} at a time"):
            concurrent = arm(make_problems(args.jobs, 2 + args.sequential_jobs), args.concurrency)
    finally:
        load.shutdown()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        client.close()
        import ray

        ray.shutdown()

    arms = {"concurrent": summarize(concurrent, args.jobs), "sequential": summarize(sequential, args.sequential_jobs)}
    table = Table(title=f"plait API on loopback: calc jobs, wait by {args.wait}")
    columns = {"finished": "done", "seconds": "s", "jobs_per_s": "jobs/s", "submit_p50_ms": "POST p50 ms",
               "submit_p99_ms": "POST p99 ms", "e2e_p50_ms": "e2e p50 ms", "e2e_p99_ms": "e2e p99 ms", "errors": "errors"}
    table.add_column("clients")
    for label in columns.values():
        table.add_column(label, justify="right")
    for name, s in arms.items():
        table.add_row(str(args.concurrency if name == "concurrent" else 1), *(str(s[c]) for c in columns))
    console.print(table)
    for message in (sequential["errors"] + concurrent["errors"])[:5]:
        console.print(f"[red]error[/red] {message}")
    seq_rate = arms["sequential"]["jobs_per_s"]
    print(
        json.dumps(
            {
                "name": "api_load",
                "wait": args.wait,
                "jobs": args.jobs,
                "concurrency": args.concurrency,
                "sequential_jobs": args.sequential_jobs,
                "jobs_per_s": arms["concurrent"]["jobs_per_s"],
                "sequential_jobs_per_s": seq_rate,
                **{k: arms["concurrent"][k] for k in ("submit_p50_ms", "submit_p99_ms", "e2e_p50_ms", "e2e_p99_ms")},
                "sequential_e2e_p50_ms": arms["sequential"]["e2e_p50_ms"],
                "errors": arms["concurrent"]["errors"] + arms["sequential"]["errors"],
                "ratio": round(arms["concurrent"]["jobs_per_s"] / seq_rate, 3) if seq_rate else None,
                "ratio_of": f"jobs/s with {args.concurrency} concurrent clients / jobs/s one at a time (end to end)",
            }
        )
    )


if __name__ == "__main__":
    main()
