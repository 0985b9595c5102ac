"""Choosing a tier's replica per batch (orchestrator.replicas): by shared prompt prefix, by load."""

import pytest

from orchestrator.replicas import ReplicaRouter

REPORT_A = "Report A: the ledger shows twelve crates of apples and nine of pears. "
REPORT_B = "Report B: a late shipment of plums came from the coast on Tuesday. "


def test_batches_sharing_a_prefix_go_where_it_was_served():
    router = ReplicaRouter(2, "prefix")
    first_a = router.choose([REPORT_A + "How many crates?"])
    second_a = router.choose([REPORT_A + "How many pears?"])
    first_b = router.choose([REPORT_B + "When?"])
    second_b = router.choose([REPORT_B + "From where?"])
    assert first_a == second_a and first_b == second_b and first_a != first_b
    assert router.routed == {"prefix": 2, "least_loaded": 2}


def test_least_loaded_ignores_prefixes_and_takes_turns():
    router = ReplicaRouter(2, "least_loaded")
    picks = [router.choose([REPORT_A + q]) for q in ("How many crates?", "How many pears?")]
    assert sorted(picks) == [0, 1]  # both idle: in turn, not the same one twice
    router.release(picks[0])
    assert router.choose([REPORT_A + "Again?"]) == picks[0]  # the idle one


def test_a_short_common_start_is_not_a_prefix():
    router = ReplicaRouter(2, "prefix", min_prefix=32)
    a = router.choose(["What is 2 + 3?"])
    b = router.choose(["What is 2 + 4?"])  # 12 shared characters: chance
    assert a != b and router.routed["prefix"] == 0


def test_a_busy_replica_loses_its_prefix_to_an_idle_one():
    router = ReplicaRouter(2, "prefix", balance=2)
    home = router.choose([REPORT_A + "1"])
    assert router.choose([REPORT_A + "2"]) == home  # one busier than the idle one: still home
    spill = router.choose([REPORT_A + "3"])  # two busier: the idle replica takes it
    assert spill != home
    router.release(home)
    router.release(home)
    assert router.choose([REPORT_A + "4"]) == home  # idle again, and it holds the prefix


def test_a_tier_needs_a_replica():
    with pytest.raises(ValueError, match="at least one replica"):
        ReplicaRouter(0)
