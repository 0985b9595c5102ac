"""The whole stack: Client → Ray actor → embedded model → ToRA → sandbox → verifier."""

import pytest

from orchestrator.job import Result
from verifiers import math as math_verifier

pytestmark = pytest.mark.slow


def test_tora_solves_through_ray_with_the_sandbox(client):
    events = []
    result = client.solve({"problem": "What is 17 * 23 + 4?", "reference": "395"}, on_event=events.append)

    assert result.status == "succeeded", result.error
    (node,) = result.nodes
    attempt = node.attempt
    # Code was written, ran in the sandbox, and its output was appended to the transcript.
    assert attempt.tool_calls and attempt.tool_calls[0].result.ok
    first = attempt.tool_calls[0]
    assert "17" in first.code and first.result.isolation in ("bwrap", "unshare", "none")
    assert f"```output\n{first.result.stdout.strip()}\n```" in attempt.text
    # The answer is what the transcript says, read by the documented rule.
    outputs = [call.result.stdout for call in attempt.tool_calls if call.result.ok]
    expected = math_verifier.read_answer(attempt.text, question=attempt.question, outputs=outputs).text
    assert result.answer == expected == node.answer
    # The verdict is the verifier's, against the reference.
    assert result.verified == math_verifier.equivalent(result.answer, "395")
    assert result.verdict.status == ("verified" if result.verified else "refuted")
    assert result.verified  # the system, with its tool, solves this one
    # Accounting adds up and the work ran in a Ray worker process.
    assert result.tokens == attempt.prompt_tokens + attempt.completion_tokens > 0
    # The second round continued from the first round's KV: those prompt tokens cost no FLOPs.
    assert attempt.cached_tokens > 0
    assert result.flops == 2 * 134_515_008 * (result.tokens - attempt.cached_tokens)
    assert node.worker["node_id"] and node.worker["tier"] == "small"
    kinds = [e["type"] for e in events]
    for kind in ("submitted", "planned", "node_started", "generated", "tool_call", "node_done", "verified", "done"):
        assert kind in kinds, kinds
    assert kinds[-1] == "done" and [e["seq"] for e in events] == list(range(len(events)))
    assert Result.from_dict(result.to_dict()) == result


def test_batched_strategies_and_job_listing(client):
    pal = client.solve({"problem": "What is 12 * 12?", "strategy": {"name": "pal"}})
    cot = client.solve({"problem": "What is 12 * 12?", "strategy": {"name": "cot"}})
    assert pal.nodes[0].attempt.strategy == "pal" and pal.nodes[0].attempt.tool_calls
    assert pal.answer == pal.nodes[0].attempt.tool_calls[0].result.stdout.strip().splitlines()[-1].strip()
    assert cot.nodes[0].attempt.strategy == "cot" and not cot.nodes[0].attempt.tool_calls
    listed = {j.id: j.status for j in client.jobs()}
    assert listed[pal.job_id] == "succeeded" or pal.status == "failed"
    assert cot.job_id in listed


def test_a_spent_budget_is_recorded_not_crashed(client):
    result = client.solve({"problem": "Count to one hundred in words.", "strategy": {"name": "cot"}, "budget": {"max_tokens": 3}})
    attempt = result.nodes[0].attempt
    assert attempt.completion_tokens == 3
    assert client.status(result.job_id).status == result.status


def test_submit_then_query_status_events_and_result(client):
    job_id = client.submit({"problem": "What is 2 + 2?", "strategy": {"name": "pal"}})
    result = client.result(job_id, wait=True)
    assert result is not None and client.status(job_id).status == result.status
    events = client.events(job_id)
    assert events[0]["type"] == "submitted" and events[-1]["type"] == "done"
    assert client.events(job_id, offset=len(events) - 1) == events[-1:]
    assert client.cancel(job_id).status == result.status  # finished jobs stay as they are


def test_sgd_planner_writes_a_skeleton_that_the_scheduler_runs(client):
    problem = "A baker makes 24 muffins and 36 cookies. He sells half of the muffins and a third of the cookies. How many items does he have left?"
    events = []
    result = client.solve({"problem": problem, "planner": "sgd", "strategy": {"name": "pal"}}, on_event=events.append)
    kinds = [e["type"] for e in events]
    assert kinds.index("planning") < kinds.index("planned")
    # Constrained decoding: the planner's JSON parsed as written, no fallback.
    assert result.plan.startswith("planner 'sgd'") and "no skeleton JSON object" not in result.plan, result.plan
    planned = next(e for e in events if e["type"] == "planned")["nodes"]
    assert {n["id"] for n in planned} == {n.id for n in result.nodes}
    sinks = [n for n in planned if not any(n["id"] in m["depends_on"] for m in planned)]
    assert len(sinks) == 1 and problem in sinks[0]["question"]
    assert all(n.tier == "small" and 1 <= next(p["difficulty"] for p in planned if p["id"] == n.id) <= 5 for n in result.nodes)
    assert all(n.worker.get("node_id") for n in result.nodes if n.attempt)
    # The planner's call is billed: its tokens are in the job's total on top of the nodes'.
    assert result.planner_tokens > len(problem) // 8
    assert result.tokens == result.planner_tokens + sum(n.attempt.tokens for n in result.nodes if n.attempt)


def test_jobs_share_the_few_shot_prompt_through_the_workers_kv_cache(client):
    """Two jobs with one strategy share its few-shot prompt: the second loads it from the
    worker's prefix cache, and the job's result reports the cache's counters."""
    first = client.solve({"problem": "What is 3 + 4?", "strategy": {"name": "cot"}, "budget": {"max_tokens": 16}})
    second = client.solve({"problem": "What is 5 + 6?", "strategy": {"name": "cot"}, "budget": {"max_tokens": 16}})
    assert first.kv_cache["lookups"] >= 1 and second.kv_cache["lookups"] >= 1
    (node,) = second.nodes
    assert second.kv_cache["hit_tokens"] >= 64 and node.attempt.cached_tokens == second.kv_cache["hit_tokens"]
    # FLOPs count computed tokens only: 2 * parameters per token not loaded from the cache.
    (before,) = first.nodes
    per_token = [a.flops / (a.tokens - a.cached_tokens) for a in (before.attempt, node.attempt)]
    assert per_token[0] == pytest.approx(per_token[1]) and per_token[0] > 2e8


@pytest.mark.needs_coq
def test_a_program_job_searches_with_the_real_model_and_the_real_checker(client):
    from pathlib import Path

    from verifiers.programs import verify_program

    spec = (Path(__file__).parents[1] / "benchmarks/data/coq/add_zero.v").read_text()
    events = []
    job = {
        "kind": "program",
        "language": "coq",
        "problem": spec,
        "strategy": {"name": "vmcts", "params": {"seed": 0, "program_tokens": 48, "parallel": 2}},
        "budget": {"max_samples": 4, "max_tokens": 400},
    }
    result = client.solve(job, on_event=events.append)
    attempt = result.nodes[0].attempt
    search = attempt.search
    assert attempt.strategy == "vmcts" and attempt.completion_tokens <= 400
    assert "check" in [e["type"] for e in events]
    tree = search["tree"]
    assert tree[0]["visits"] == 1 + search["expansions"] and search["expansions"] <= 4
    # What the tree calls refuted, Coq refutes: rebuild each such node's program from its path.
    steps = {n["id"]: n for n in tree}

    def body(node):
        return "Proof.\n" if node["parent"] is None else body(steps[node["parent"]]) + node["step"]

    for node in tree:
        if node["status"] == "refuted" and not node["complete"]:
            assert verify_program("coq", spec.rstrip() + "\n" + body(node), spec, partial=True).status == "refuted"
    if result.verified:  # the answer stands on its own before the real checker
        assert result.status == "succeeded" and verify_program("coq", result.answer, spec).verified
        assert result.verdict.checker.name == "coq" and result.verdict.checker.version
    else:
        assert result.status == "failed" and "no program verified within the budget" in result.error


def test_the_large_tier_solves_a_word_problem_with_tools_through_ray(client, config):
    """The capable tier as `plait solve` runs it: Qwen2.5-Coder-1.5B on plait's llama-server,
    in its Ray worker actor, ToRA rounds through the sandbox."""
    from orchestrator.client import Client
    from orchestrator.config import default_tiers

    large = Client(config=config.model_copy(update={"tiers": default_tiers(), "routing": {1: "large"}}), discover=False)
    problem = (
        "A school orders 14 boxes of markers with 24 markers in each box. It gives 9 markers to each "
        "of 32 classrooms and keeps the rest. How many markers does it keep?"
    )
    try:
        events = []
        result = large.solve({"problem": problem, "reference": "48"}, on_event=events.append)
    finally:
        large.close()
    assert result.status == "succeeded", result.error
    (node,) = result.nodes
    attempt = node.attempt
    assert node.worker["tier"] == "large" and attempt.model_id == "qwen2.5-coder-1.5b"
    # The model wrote code, it ran in the sandbox, and its output went back into the transcript.
    ran = [call for call in attempt.tool_calls if call.result.ok]
    assert ran and all(f"```output\n{call.result.stdout.strip()}\n```" in attempt.text for call in ran)
    # The answer comes from the transcript's \boxed{}, and the verdict is the verifier's.
    assert attempt.answer_source == "boxed" and result.answer == math_verifier.boxed_answer(attempt.text, attempt.question)
    assert result.verified == math_verifier.equivalent(result.answer, "48") and result.verified
    assert any(e["type"] == "engine" and "llama-server ready" in e["message"] for e in events)
    assert result.flops == 2 * 1_543_714_304 * (result.tokens - attempt.cached_tokens)
