import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.config import Config
from orchestrator.job import IllegalTransition, Job, JobNotFound, NodeResult, Result
from orchestrator.scheduler import Scheduler
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore, RedisStore, Store, StoreUnavailable, open_store
from plait.errors import ConfigError, InvalidInput
from orchestrator.cluster import RedisServer
from tools.processes import free_port
from tools.sandbox import ExecResult
from verifiers.types import Checker, Verdict
from workers.types import Attempt, ToolCall

ROOT = Path(__file__).resolve().parents[1]
HANG = 10  # seconds; only catches hangs, never measures speed


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.needs_redis)])
def empty_store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    store = RedisStore(request.getfixturevalue("redis_url"))
    yield store
    store.close()


@pytest.fixture
def store(empty_store):
    empty_store.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    return empty_store


def test_status_walks_the_legal_path(store):
    for status in ("planning", "running", "succeeded"):
        assert store.transition("j1", status).status == status
    assert store.get("j1").status == "succeeded"


@pytest.mark.parametrize("path", [["running"], ["succeeded"], ["planning", "queued"], ["cancelled", "running"], ["bogus"]])
def test_illegal_transitions_are_rejected_and_change_nothing(store, path):
    *legal, bad = path
    for status in legal:
        store.transition("j1", status)
    before = store.get("j1")
    with pytest.raises(IllegalTransition, match=f"cannot become {bad}"):
        store.transition("j1", bad)
    assert store.get("j1") == before


def test_events_are_ordered_and_readable_from_an_offset(store):
    for i in range(5):
        assert store.append_event("j1", {"type": "tick", "i": i}) == i
    events = store.events("j1", 3)
    assert [e["i"] for e in events] == [3, 4] and [e["seq"] for e in events] == [3, 4]
    assert store.events("j1", 99) == []
    assert [e["seq"] for e in store.events("j1", -5)] == [0, 1, 2, 3, 4]


def test_events_carry_the_store_seq_and_keep_a_given_ts(store):
    store.append_event("j1", {"type": "a", "seq": 41, "ts": 123.5})
    store.append_event("j1", {"type": "b"})
    first, second = store.events("j1")
    assert first == {"type": "a", "seq": 0, "ts": 123.5}
    assert second["seq"] == 1 and isinstance(second["ts"], float)


def test_result_round_trips_and_is_a_copy(store):
    assert store.result("j1") is None
    for status in ("planning", "running"):
        store.transition("j1", status)
    verdict = Verdict.of("verified", "equal", Checker("math"))
    assert store.finish(Result(job_id="j1", status="succeeded", answer="2", verified=True, verdict=verdict)).status == "succeeded"
    assert store.get("j1").status == "succeeded"
    got = store.result("j1")
    got.answer = "tampered"
    assert store.result("j1").answer == "2"
    assert Result.from_dict(store.result("j1").to_dict()) == store.result("j1")


def test_unknown_job_says_how_to_find_jobs(store):
    with pytest.raises(JobNotFound, match="plait jobs"):
        store.get("nope")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("nope"),
        lambda s: s.transition("nope", "planning"),
        lambda s: s.events("nope"),
        lambda s: s.wait_events("nope", 0, 0.1),
        lambda s: s.result("nope"),
        lambda s: s.finish(Result(job_id="nope", status="failed")),
        lambda s: s.append_event("nope", {"type": "tick"}),
        lambda s: s.request_cancel("nope"),
        lambda s: s.cancel_requested("nope"),
        lambda s: s.put_node_result("nope", finished_node("a")),
        lambda s: s.node_results("nope"),
        lambda s: s.acquire_lease("nope", "me", 10),
        lambda s: s.release_lease("nope", "me"),
        lambda s: s.lease_holder("nope"),
    ],
    ids=[
        "get", "transition", "events", "wait_events", "result", "finish", "append_event", "request_cancel",
        "cancel_requested", "put_node_result", "node_results", "acquire_lease", "release_lease", "lease_holder",
    ],
)
def test_every_call_on_an_unknown_job_raises_job_not_found(store, call):
    with pytest.raises(JobNotFound, match="nope"):
        call(store)
    assert [j.id for j in store.jobs()] == ["j1"]


def test_duplicate_create_is_refused_and_keeps_the_original(store):
    original = store.get("j1")
    with pytest.raises(ValueError, match="already exists"):
        store.create(Job(id="j1", spec=JobSpec(problem="2+2"), created=original.created + 5))
    assert store.get("j1") == original
    assert [j.id for j in store.jobs()] == ["j1"]


def test_jobs_lists_most_recent_first_and_filters(store):
    store.create(Job(id="j2", spec=JobSpec(problem="2+2"), created=store.get("j1").created + 1))
    store.transition("j2", "cancelled")
    assert [j.id for j in store.jobs()] == ["j2", "j1"]
    assert [j.id for j in store.jobs(status="cancelled")] == ["j2"]


def test_jobs_limit_and_filter_reach_past_the_first_page(empty_store):
    for i in range(150):
        empty_store.create(Job(id=f"j{i:03}", spec=JobSpec(problem="1+1"), created=1000.0 + i))
    for i in (0, 1):
        empty_store.transition(f"j{i:03}", "failed")
    assert [j.id for j in empty_store.jobs(limit=3)] == ["j149", "j148", "j147"]
    assert len(empty_store.jobs(limit=120)) == 120
    assert [j.id for j in empty_store.jobs(status="failed", limit=5)] == ["j001", "j000"]


def test_wait_events_wakes_when_another_thread_appends(store):
    store.append_event("j1", {"type": "old"})
    got: list[list[dict]] = []
    waiter = threading.Thread(target=lambda: got.append(store.wait_events("j1", 1, timeout=60)), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "wait_events returned before any new event existed"
    store.append_event("j1", {"type": "new"})
    waiter.join(HANG)
    assert not waiter.is_alive(), "wait_events did not wake on append"
    assert [(e["seq"], e["type"]) for e in got[0]] == [(1, "new")]


def test_wait_events_returns_existing_events_at_once(store):
    store.append_event("j1", {"type": "a"})
    start = time.monotonic()
    assert [e["type"] for e in store.wait_events("j1", 0, timeout=60)] == ["a"]
    assert time.monotonic() - start < HANG


def test_wait_events_returns_nothing_after_the_timeout(store):
    store.append_event("j1", {"type": "a"})
    start = time.monotonic()
    assert store.wait_events("j1", 1, timeout=0.3) == []
    assert store.wait_events("j1", 1, timeout=0) == []
    assert time.monotonic() - start < HANG


def test_concurrent_appends_from_threads_get_distinct_ordered_seqs(store):
    writers, per_writer = 6, 30
    seqs: list[int] = []
    lock = threading.Lock()

    def write(w: int) -> None:
        for i in range(per_writer):
            seq = store.append_event("j1", {"w": w, "i": i})
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    total = writers * per_writer
    assert sorted(seqs) == list(range(total))
    events = store.events("j1")
    assert [e["seq"] for e in events] == list(range(total))
    for w in range(writers):  # each writer's events appear once each, in its own order
        assert [e["i"] for e in events if e["w"] == w] == list(range(per_writer))


def test_racing_transitions_let_exactly_one_win(store):
    for round_ in range(10):
        job_id = f"race{round_}"
        store.create(Job(id=job_id, spec=JobSpec(problem="1+1")))
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def attempt() -> None:
            barrier.wait()
            try:
                store.transition(job_id, "planning")
                outcomes.append("won")
            except IllegalTransition:
                outcomes.append("lost")

        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == ["lost", "won"]
        assert store.get(job_id).status == "planning"


def test_cancel_flag_round_trips(store):
    assert store.cancel_requested("j1") is False
    store.request_cancel("j1")
    store.request_cancel("j1")
    assert store.cancel_requested("j1") is True
    assert store.get("j1").status == "queued"  # the flag alone changes no status


def finished_node(node_id: str, answer: str = "4") -> NodeResult:
    """A node result with a full trace: a tool call, a verdict and a search record."""
    run = ExecResult(stdout="4\n", stderr="", exit_code=0, status="ok", seconds=0.01, truncated=False, isolation="bwrap")
    attempt = Attempt(
        question="2+2", strategy="tora", model_id="m", text="```python\nprint(2+2)\n```", answer=answer,
        answer_source="output", tool_calls=[ToolCall("print(2+2)", run, 0)], prompt_tokens=12, completion_tokens=7,
        logprob=-1.5, flops=38, seconds=0.4, finish_reason="answered",
        verdict=Verdict.of("verified", "equal", Checker("math", "1")), search={"samples": [{"answer": answer, "reward": 0.5}]},
    )  # fmt: skip
    return NodeResult(node_id, "2+2", "small", "done", answer, attempt, worker={"pid": 7}, retries=1, seconds=0.5)


def test_node_results_round_trip_with_their_traces_and_are_copies(store):
    assert store.node_results("j1") == {}
    store.put_node_result("j1", finished_node("a"))
    store.put_node_result("j1", NodeResult("b", "why", "large", "failed", None, None, error="worker died"))
    got = store.node_results("j1")
    assert got == {"a": finished_node("a"), "b": NodeResult("b", "why", "large", "failed", None, None, error="worker died")}
    got["a"].attempt.tool_calls.clear()
    assert store.node_results("j1")["a"].attempt.tool_calls[0].result.stdout == "4\n"
    store.put_node_result("j1", finished_node("a", answer="5"))  # a retried node replaces its earlier result
    assert store.node_results("j1")["a"].answer == "5" and set(store.node_results("j1")) == {"a", "b"}


def test_a_lease_is_held_by_one_owner_until_released(store):
    assert store.lease_holder("j1") is None
    assert store.acquire_lease("j1", "ctl-a", 60)
    assert not store.acquire_lease("j1", "ctl-b", 60)
    assert store.acquire_lease("j1", "ctl-a", 60)  # renewing
    store.release_lease("j1", "ctl-b")  # not the holder: nothing changes
    assert store.lease_holder("j1") == "ctl-a"
    store.release_lease("j1", "ctl-a")
    assert store.lease_holder("j1") is None
    assert store.acquire_lease("j1", "ctl-b", 60) and store.lease_holder("j1") == "ctl-b"


@pytest.fixture
def finished(store):
    """The store with j1 run to success and its result recorded."""
    for status in ("planning", "running"):
        store.transition("j1", status)
    store.finish(Result(job_id="j1", status="succeeded", answer="2"))
    return store


def test_a_finished_jobs_result_cannot_be_overwritten(finished):
    """A late runner's result is refused whole: neither its status nor its result is written."""
    with pytest.raises(IllegalTransition, match="j1 is succeeded"):
        finished.finish(Result(job_id="j1", status="failed", error="late"))
    assert finished.get("j1").status == "succeeded" and finished.result("j1").answer == "2"


def test_a_job_already_in_its_results_status_only_gets_the_result(store):
    store.transition("j1", "cancelled")  # as a cancel before any runner would
    store.finish(Result(job_id="j1", status="cancelled", error="cancelled before it ran"))
    assert store.get("j1").status == "cancelled" and store.result("j1").error == "cancelled before it ran"


def test_a_finished_job_has_no_lease_to_take(finished):
    """A controller that listed the job while it was queued must not run it again once it is done."""
    assert not finished.acquire_lease("j1", "ctl-late", 60)
    assert finished.lease_holder("j1") is None


def test_a_second_scheduler_does_not_rerun_a_finished_job(finished):
    late = Scheduler(finished, pool=None, config=Config())  # the pool is never reached
    assert not late.start("j1") and late.running() == []
    assert finished.result("j1").answer == "2" and finished.get("j1").status == "succeeded"


def wait_until(condition) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def test_an_expired_lease_can_be_taken_over(store):
    assert store.acquire_lease("j1", "ctl-a", 0.2)
    wait_until(lambda: store.lease_holder("j1") is None)
    assert store.acquire_lease("j1", "ctl-b", 60)
    assert not store.acquire_lease("j1", "ctl-a", 60)  # the old holder's renewal finds it taken
    store.release_lease("j1", "ctl-a")
    assert store.lease_holder("j1") == "ctl-b"


def race(count: int, call) -> list:
    """`call(i)` from `count` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_racing_controllers_get_one_lease(store):
    for round_ in range(5):
        job_id = f"lease{round_}"
        store.create(Job(id=job_id, spec=JobSpec(problem="1+1")))
        won = race(4, lambda i: store.acquire_lease(job_id, f"ctl-{i}", 60))
        assert sum(won) == 1
        assert store.lease_holder(job_id) == f"ctl-{won.index(True)}"


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_a_ttl_must_be_a_positive_number_of_seconds(store, ttl):
    with pytest.raises(ValueError, match="ttl"):
        store.acquire_lease("j1", "ctl-a", ttl)
    with pytest.raises(ValueError, match="ttl"):
        store.claim_idempotency_key("k", "fp", ttl)
    assert store.lease_holder("j1") is None


def test_an_idempotency_key_is_claimed_once_then_names_its_job(store):
    claim = store.claim_idempotency_key("key-1", "fp-1", 60)
    assert claim.token and claim.fingerprint == "fp-1" and claim.job_id is None
    pending = store.claim_idempotency_key("key-1", "fp-2", 60)
    assert (pending.fingerprint, pending.job_id, pending.token) == ("fp-1", None, None)
    store.bind_idempotency_key("key-1", "someone-elses-token", "job-x", 60)  # not the claim's: ignored
    assert store.claim_idempotency_key("key-1", "fp-1", 60).job_id is None
    store.bind_idempotency_key("key-1", claim.token, "j1", 60)
    bound = store.claim_idempotency_key("key-1", "fp-1", 60)
    assert (bound.fingerprint, bound.job_id, bound.token) == ("fp-1", "j1", None)
    store.release_idempotency_key("key-1", claim.token)  # bound: its claim is over
    assert store.claim_idempotency_key("key-1", "fp-1", 60).job_id == "j1"
    assert store.claim_idempotency_key("key-2", "fp-1", 60).token  # keys are independent


def test_a_released_or_expired_claim_frees_the_key(store):
    claim = store.claim_idempotency_key("key-1", "fp-1", 60)
    store.release_idempotency_key("key-1", "wrong-token")
    assert store.claim_idempotency_key("key-1", "fp-1", 60).token is None
    store.release_idempotency_key("key-1", claim.token)
    retry = store.claim_idempotency_key("key-1", "fp-1", 60)
    assert retry.token and retry.token != claim.token

    store.bind_idempotency_key("key-1", retry.token, "j1", 0.2)
    wait_until(lambda: store.claim_idempotency_key("key-1", "fp-3", 0.2).token is not None)
    late = store.claim_idempotency_key("key-2", "fp-1", 0.2)
    wait_until(lambda: store.claim_idempotency_key("key-2", "fp-1", 60).token is not None)
    store.bind_idempotency_key("key-2", late.token, "j1", 60)  # its claim expired and was taken: ignored
    assert store.claim_idempotency_key("key-2", "fp-1", 60).job_id is None


def test_racing_claims_of_one_key_give_one_token(store):
    for round_ in range(5):
        claims = race(4, lambda i: store.claim_idempotency_key(f"race-{round_}", f"fp-{i}", 60))
        winners = [c for c in claims if c.token]
        assert len(winners) == 1
        assert {c.fingerprint for c in claims} == {winners[0].fingerprint}


def test_both_stores_refuse_bad_input_before_anything_is_written(store):
    store.append_event("j1", {"type": "ok"})
    with pytest.raises(InvalidInput, match="status"):
        store.create(Job(id="j2", spec=JobSpec(problem="1+1"), status="bogus"))
    with pytest.raises(InvalidInput, match="non-empty"):
        store.create(Job(id="", spec=JobSpec(problem="1+1")))
    with pytest.raises(InvalidInput, match="created time"):
        store.create(Job(id="j3", spec=JobSpec(problem="1+1"), created=float("nan")))
    unstorable = finished_node("a")
    unstorable.worker = {"handle": object()}
    with pytest.raises(InvalidInput, match="node a of job j1"):
        store.put_node_result("j1", unstorable)
    with pytest.raises(InvalidInput, match="result of job j1"):
        store.finish(Result(job_id="j1", status="failed", kv_cache={"x": object()}))
    assert [j.id for j in store.jobs()] == ["j1"]
    assert store.node_results("j1") == {} and store.result("j1") is None and store.get("j1").status == "queued"
    assert store.append_event("j1", {"type": "next"}) == 1


def test_open_store_without_a_url_is_in_memory():
    assert isinstance(open_store(None), MemoryStore)


# --- Redis only ---

APPENDER = """
import sys, time
import redis
from orchestrator.store import RedisStore
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RedisStore(url)
sync = redis.Redis.from_url(url)
sync.incr("test:ready")
while int(sync.get("test:ready")) < 2:  # start both writers together
    time.sleep(0.01)
for i in range(count):
    store.append_event("j1", {"w": name, "i": i})
"""


@pytest.mark.needs_redis
def test_concurrent_appends_from_two_processes_get_distinct_ordered_seqs(redis_url):
    store = RedisStore(redis_url)
    store.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    per_writer = 200
    writers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, redis_url, name, str(per_writer)], cwd=ROOT)
        for name in ("a", "b")
    ]
    assert [w.wait(120) for w in writers] == [0, 0]
    events = store.events("j1")
    assert [e["seq"] for e in events] == list(range(2 * per_writer))
    for name in ("a", "b"):
        assert [e["i"] for e in events if e["w"] == name] == list(range(per_writer))
    store.close()


@pytest.mark.needs_redis
def test_a_resent_append_is_stored_once(redis_url):
    """redis-py resends a command whose reply was lost; the resend must not duplicate the event."""
    store = RedisStore(redis_url)
    store.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    keys = [store._key("job", "j1"), store._key("events", "j1")]
    first = store._append(keys=keys, args=['{"type": "x", "ts": 1.0}', "token-1", 16])
    again = store._append(keys=keys, args=['{"type": "x", "ts": 1.0}', "token-1", 16])
    assert first == again == 0
    assert store.append_event("j1", {"type": "y"}) == 1
    assert [e["type"] for e in store.events("j1")] == ["x", "y"]
    store.close()


@pytest.mark.needs_redis
def test_another_client_sees_the_same_jobs(redis_url):
    writer, reader = open_store(redis_url), RedisStore(redis_url)
    assert isinstance(writer, RedisStore)
    writer.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    writer.request_cancel("j1")
    assert reader.cancel_requested("j1") is True
    assert reader.get("j1") == writer.get("j1")
    writer.close()
    reader.close()


@pytest.mark.needs_redis
def test_everything_survives_a_redis_restart_with_aof(tmp_path):
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        store = RedisStore(server.url)
        for i in range(3):
            store.create(Job(id=f"j{i}", spec=JobSpec(problem=f"{i}+{i}"), created=1000.0 + i))
            for k in range(4):
                store.append_event(f"j{i}", {"type": "tick", "k": k})
        store.transition("j0", "planning")
        store.transition("j0", "running")
        verdict = Verdict.of("verified", "equal", Checker("math"))
        store.finish(Result(job_id="j0", status="succeeded", answer="0", verified=True, verdict=verdict))
        store.request_cancel("j1")
        store.put_node_result("j1", finished_node("a"))
        store.acquire_lease("j1", "ctl-a", 600)
        store.bind_idempotency_key("key-1", store.claim_idempotency_key("key-1", "fp", 600).token, "j1", 600)
        before = {
            "jobs": store.jobs(),
            "result": store.result("j0"),
            "events": {f"j{i}": store.events(f"j{i}") for i in range(3)},
            "nodes": store.node_results("j1"),
            "lease": store.lease_holder("j1"),
            "key": store.claim_idempotency_key("key-1", "fp", 600),
        }

        server.restart()

        after = RedisStore(server.url)
        assert {
            "jobs": after.jobs(),
            "result": after.result("j0"),
            "events": {f"j{i}": after.events(f"j{i}") for i in range(3)},
            "nodes": after.node_results("j1"),
            "lease": after.lease_holder("j1"),
            "key": after.claim_idempotency_key("key-1", "fp", 600),
        } == before
        assert after.cancel_requested("j1") and not after.cancel_requested("j2")
        assert after.append_event("j2", {"type": "after"}) == 4
        assert store.get("j2").status == "queued"  # the old client reconnects by itself
        store.close()
        after.close()
    finally:
        server.stop()


@pytest.mark.needs_redis
def test_an_unserializable_event_is_refused_and_takes_no_seq(redis_url):
    store = RedisStore(redis_url)
    store.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    store.append_event("j1", {"type": "ok"})
    with pytest.raises(InvalidInput, match="JSON"):
        store.append_event("j1", {"type": "bad", "payload": object()})
    assert store.append_event("j1", {"type": "next"}) == 1
    store.close()


def test_unreachable_redis_fails_fast_naming_the_url():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match="plait up") as raised:
        open_store(url)
    assert time.monotonic() - start < HANG
    message = str(raised.value)
    assert url.replace("hunter2", "***") in message and "hunter2" not in message
    store = RedisStore(url)
    for call in (lambda: store.get("j1"), lambda: store.wait_events("j1", 0, 30), lambda: store.jobs()):
        with pytest.raises(StoreUnavailable, match="127.0.0.1"):
            call()


@pytest.mark.parametrize("url", ["http://localhost:6379", "localhost:6379", "", "redis://localhost:port/0"])
def test_a_bad_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="PLAIT_REDIS_URL"):
        RedisStore(url)


def test_both_stores_implement_every_protocol_method():
    wanted = {name for name in vars(Store) if not name.startswith("_")}
    assert "wait_events" in wanted and wanted <= set(dir(RedisStore)) and wanted <= set(dir(MemoryStore))
