import pytest

from orchestrator.job import IllegalTransition, Job, JobNotFound, Result
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore
from verifiers.types import Checker, Verdict


@pytest.fixture
def store():
    s = MemoryStore()
    s.create(Job(id="j1", spec=JobSpec(problem="1+1")))
    return s


def test_status_walks_the_legal_path(store):
    for status in ("planning", "running", "succeeded"):
        assert store.transition("j1", status).status == status
    assert store.get("j1").status == "succeeded"


@pytest.mark.parametrize("path", [["running"], ["succeeded"], ["planning", "queued"], ["cancelled", "running"]])
def test_illegal_transitions_are_rejected_and_change_nothing(store, path):
    *legal, bad = path
    for status in legal:
        store.transition("j1", status)
    before = store.get("j1").status
    with pytest.raises(IllegalTransition, match=f"cannot become {bad}"):
        store.transition("j1", bad)
    assert store.get("j1").status == before


def test_events_are_ordered_and_readable_from_an_offset(store):
    for i in range(5):
        assert store.append_event("j1", {"type": "tick", "i": i}) == i
    events = store.events("j1", 3)
    assert [e["i"] for e in events] == [3, 4] and [e["seq"] for e in events] == [3, 4]
    assert store.events("j1", 99) == []


def test_result_round_trips_and_is_a_copy(store):
    verdict = Verdict.of("verified", "equal", Checker("math"))
    store.put_result(Result(job_id="j1", status="succeeded", answer="2", verified=True, verdict=verdict))
    got = store.result("j1")
    got.answer = "tampered"
    assert store.result("j1").answer == "2"
    assert Result.from_dict(store.result("j1").to_dict()) == store.result("j1")


def test_unknown_job_says_how_to_find_jobs(store):
    with pytest.raises(JobNotFound, match="plait jobs"):
        store.get("nope")


def test_jobs_lists_most_recent_first_and_filters(store):
    store.create(Job(id="j2", spec=JobSpec(problem="2+2"), created=store.get("j1").created + 1))
    store.transition("j2", "cancelled")
    assert [j.id for j in store.jobs()] == ["j2", "j1"]
    assert [j.id for j in store.jobs(status="cancelled")] == ["j2"]
