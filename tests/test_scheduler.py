"""The DAG scheduler on real Ray workers: graphs given in the job, information forwarding,
failure isolation, cancellation, timeouts and worker crashes. Graph tests use the model-free
`calc` strategy so they exercise the orchestrator, not the model."""

import pytest

pytestmark = pytest.mark.slow


def graph_job(nodes, **extra):
    return {"problem": "graph", "strategy": {"name": "calc"}, "graph": nodes, **extra}


def test_ready_nodes_run_together_and_answers_flow_to_dependents(client):
    nodes = [
        {"id": "a", "question": "6 * 7"},
        {"id": "b", "question": "2 ** 5"},
        {"id": "c", "question": "{a} + {b}", "depends_on": ["a", "b"]},
        {"id": "d", "question": "{c} / 2", "depends_on": ["c"]},
    ]
    events = []
    result = client.solve(graph_job(nodes, reference="37"), on_event=events.append)
    assert result.status == "succeeded" and result.answer == "37" and result.verified
    answers = {n.id: n.answer for n in result.nodes}
    assert answers == {"a": "42", "b": "32", "c": "74", "d": "37"}
    # a and b were one wave, sent as one batch; c and d each came later.
    batches = [e["questions"] for e in events if e["type"] == "generated"]
    assert batches == [2, 1, 1]
    started = [e["node"] for e in events if e["type"] == "node_started"]
    assert started[:2] == ["a", "b"] and started[2:] == ["c", "d"]
    # The dependent's question carried its dependencies' answers.
    c = next(n for n in result.nodes if n.id == "c")
    assert c.question.endswith("42 + 32") and "Known results" in c.question
    assert "graph given in the job" in result.plan


def test_max_batch_splits_a_wave_into_batches_of_at_most_that_many(client, config):
    from orchestrator.client import Client
    from orchestrator.config import SchedulerConfig

    # Its own worker (no CPU reserved: the session's workers hold the Ray CPUs).
    small = config.tiers["small"].model_copy(update={"num_cpus": 0})
    capped = Client(config=config.model_copy(update={"tiers": {"small": small}, "scheduler": SchedulerConfig(max_batch=2)}), discover=False)
    try:
        nodes = [{"id": f"n{i}", "question": f"{i} * 3"} for i in range(5)]
        nodes.append({"id": "sum", "question": " + ".join(f"{{n{i}}}" for i in range(5)), "depends_on": [f"n{i}" for i in range(5)]})
        events = []
        result = capped.solve(graph_job(nodes, reference="30"), on_event=events.append)
    finally:
        capped.close()
    assert result.status == "succeeded" and result.verified
    batches = sorted(e["questions"] for e in events if e["type"] == "generated")
    assert batches == [1, 1, 2, 2]


@pytest.mark.parametrize("policy", ["prefix", "least_loaded"])
def test_a_tier_with_two_replicas_routes_each_batch_by_policy(client, config, policy):
    from orchestrator.client import Client
    from orchestrator.config import SchedulerConfig

    small = config.tiers["small"].model_copy(update={"num_cpus": 0, "replicas": 2})
    scheduler = SchedulerConfig(max_batch=1, replica_routing=policy)
    two = Client(config=config.model_copy(update={"tiers": {"small": small}, "scheduler": scheduler}), discover=False)
    # Two families of questions; within a family they share a long start (a prompt prefix).
    a, b = "123456789 * 1000 + 987654321 * 1000 - 111111111 * 1000 + ", "(5555555 - 4444444) * (3333333 - 2222222) / 1111111 - "
    nodes = [{"id": f"{family}{i}", "question": f"{start}{i}"} for family, start in (("a", a), ("b", b)) for i in (1, 2)]
    events = []
    try:
        result = two.solve(graph_job(nodes), on_event=events.append)
        routed = two.pool.routing()["small"]
    finally:
        two.close()
    assert result.status == "succeeded" and all(n.status == "done" for n in result.nodes)
    replica = {n.id: n.worker["replica"] for n in result.nodes}
    pids = {n.worker["replica"]: n.worker["pid"] for n in result.nodes}
    assert set(replica.values()) == {0, 1} and pids[0] != pids[1]  # two actors, both used
    started = {e["node"]: e["replica"] for e in events if e["type"] == "node_started"}
    assert started == replica  # the event says where each node ran
    if policy == "prefix":
        assert replica["a1"] == replica["a2"] != replica["b1"] == replica["b2"]
        assert routed == {"prefix": 2, "least_loaded": 2}
    else:
        assert replica["a1"] != replica["a2"] and replica["b1"] != replica["b2"]
        assert routed == {"prefix": 0, "least_loaded": 4}


def test_a_failing_node_fails_the_job_but_keeps_other_branches(client):
    nodes = [
        {"id": "ok", "question": "1 + 1"},
        {"id": "bad", "question": "the moon"},
        {"id": "after_bad", "question": "{bad} + 1", "depends_on": ["bad"]},
        {"id": "also_ok", "question": "{ok} * 10", "depends_on": ["ok"]},
        {"id": "end", "question": "{after_bad} + {also_ok}", "depends_on": ["after_bad", "also_ok"]},
    ]
    result = client.solve(graph_job(nodes))
    assert result.status == "failed" and "node 'bad' failed" in result.error
    by_id = {n.id: n for n in result.nodes}
    assert (by_id["ok"].answer, by_id["also_ok"].answer) == ("2", "20")
    assert by_id["bad"].status == "failed" and "cannot evaluate" in by_id["bad"].error
    assert by_id["after_bad"].status == "failed" and "dependency 'bad'" in by_id["after_bad"].error
    assert "dependency 'after_bad'" in by_id["end"].error
    assert client.status(result.job_id).status == "failed"


def test_cancel_stops_nodes_that_have_not_started(client):
    nodes = [
        {"id": "first", "question": "What is 2 + 2?"},
        {"id": "second", "question": "Add 1 to {first}.", "depends_on": ["first"]},
    ]
    job_id = client.submit({"problem": "chain", "strategy": {"name": "pal"}, "graph": nodes})
    for event in client.watch(job_id):
        if event["type"] == "node_started":
            client.cancel(job_id)
    result = client.result(job_id)
    assert result.status == "cancelled" and client.status(job_id).status == "cancelled"
    started = [e["node"] for e in client.events(job_id) if e["type"] == "node_started"]
    assert started == ["first"]
    assert {n.id: n.status for n in result.nodes}["second"] == "cancelled"


def test_job_timeout_fails_the_job_and_says_so(client):
    result = client.solve({"problem": "Write a long story about a robot.", "strategy": {"name": "cot"}, "timeout": 0.5})
    assert result.status == "failed" and "timed out" in result.error
    assert client.status(result.job_id).status == "failed"


def test_killed_worker_restarts_and_the_node_is_retried(client):
    import time

    import ray

    client.solve({"problem": "1", "strategy": {"name": "cot"}, "budget": {"max_tokens": 1}})  # worker up, model loaded
    job = {"problem": "Count from 1 to 100, separated by commas.", "strategy": {"name": "cot"}, "budget": {"max_tokens": 120}}
    job_id = client.submit(job)
    for event in client.watch(job_id):
        if event["type"] == "node_started" and event["retry"] == 0:
            time.sleep(1.5)  # well inside the ~120-token decode: the batch is lost mid-flight
            ray.kill(client.pool.actor("small"), no_restart=False)
    result = client.result(job_id)
    retries = [e for e in client.events(job_id) if e["type"] == "node_retry"]
    assert len(retries) == 1 and retries[0]["nodes"] == ["answer"]
    assert result.status == "succeeded", result.error
    assert result.nodes[0].retries == 1 and result.nodes[0].attempt.completion_tokens > 0


def test_difficulty_routes_easy_and_hard_nodes_to_different_engines(client, engine):
    """Two tiers on two distinct engines: the embedded model in-process (small) and the same
    model behind plait's OpenAI-compatible server (large)."""
    from http_server import serving

    from orchestrator.client import Client
    from orchestrator.config import Config
    from workers.engines.server import create_app

    with serving(create_app(engine)) as url:
        config = Config.model_validate(
            {
                # Fractional CPUs: the session's own worker already holds one of the two.
                "tiers": {
                    "small": {"num_cpus": 0.5},
                    "large": {"kind": "openai", "base_url": f"{url}/v1", "model": "smollm2-135m", "num_cpus": 0.5},
                },
                "routing": {1: "small", 4: "large"},
            }
        )
        two_tier = Client(config=config, discover=False)
        nodes = [
            {"id": "easy", "question": "What is 3 + 4?", "difficulty": 1},
            {"id": "hard", "question": "What is 12 * 11?", "difficulty": 5},
        ]
        result = two_tier.solve({"problem": "two", "strategy": {"name": "pal"}, "graph": nodes})
        by_id = {n.id: n for n in result.nodes}
        assert (by_id["easy"].tier, by_id["hard"].tier) == ("small", "large")
        assert by_id["easy"].worker["pid"] != by_id["hard"].worker["pid"]
        # Both were decoded: the large tier's tokens came back over HTTP from the server.
        assert by_id["hard"].attempt.completion_tokens > 0 and by_id["easy"].attempt.completion_tokens > 0
        two_tier.close()
