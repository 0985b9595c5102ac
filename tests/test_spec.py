import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.spec import MAX_JSON_DEPTH, MAX_PARAMS_DEPTH, JobSpec, nesting_depth, parse_json
from plait.errors import InvalidInput
from workers.strategies import make_strategy

ROOT = Path(__file__).resolve().parents[1]


def nested(depth: int) -> list:
    """A list `depth` levels deep, built without recursion."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_defaults_fill_a_minimal_job():
    spec = JobSpec.parse({"problem": "  What is 2+2?  "})
    assert spec.problem == "What is 2+2?"
    assert (spec.kind, spec.strategy.name, spec.planner) == ("math", "tora", "none")
    assert spec.budget.max_tokens == 2048


def test_a_program_job_runs_vmcts_unless_told_otherwise():
    spec = JobSpec.parse({"problem": "Theorem t : 1 = 1.", "kind": "program", "language": "coq"})
    assert spec.strategy.name == "vmcts"
    spec = JobSpec.parse({"problem": "Theorem t : 1 = 1.", "kind": "program", "language": "coq", "strategy": {"name": "resample"}})
    assert spec.strategy.name == "resample" and JobSpec.parse(spec.model_dump_json()) == spec


def test_json_round_trip():
    spec = JobSpec.parse({"problem": "x", "strategy": {"name": "pal", "params": {"seed": 3}}, "reference": "4"})
    assert JobSpec.parse(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    "data, field, words",
    [
        ({"problem": ""}, "problem", "must not be empty"),
        ({"problem": "   \n"}, "problem", "must not be empty"),
        ({}, "problem", "required"),
        ({"problem": "x", "colour": "red"}, "colour", "unknown field"),
        ({"problem": "x", "strategy": {"name": "magic"}}, "strategy.name", "tora"),
        ({"problem": "x", "strategy": {"name": "tora", "extra": 1}}, "strategy.extra", "unknown field"),
        ({"problem": "x", "budget": {"max_tokens": 0}}, "budget.max_tokens", "greater than or equal to 1"),
        ({"problem": "x", "budget": {"max_seconds": -5}}, "budget.max_seconds", "greater than 0"),
        ({"problem": "x", "budget": {"max_tokens": "lots"}}, "budget.max_tokens", "integer"),
        ({"problem": "x", "kind": "poem"}, "kind", "math"),
        ({"problem": "x", "kind": "program"}, "language", "needs language"),
        ({"problem": "x", "language": "coq"}, "language", "only program jobs"),
        ({"problem": "x", "kind": "program", "language": "python"}, "language", "dafny"),
        ({"problem": "x", "kind": "program", "language": "coq", "strategy": {"name": "tora"}}, "job", "resample or vmcts"),
        ({"problem": "x", "strategy": {"name": "vmcts"}}, "job", "kind 'program'"),
        ({"problem": "x", "kind": "program", "language": "coq", "reference": "y"}, "job", "the checker is the reference"),
        ({"problem": "x", "kind": "program", "language": "coq", "planner": "sgd"}, "job", "not planned"),
        (
            {"problem": "x", "kind": "program", "language": "coq", "strategy": {"name": "vmcts", "params": {"language": "dafny"}}},
            "job",
            "contradicts",
        ),
        ({"problem": "x", "tiers": {9: "small"}}, "tiers", "1-5"),
        ({"problem": "x" * 20_001}, "problem", "at most 20000"),
        ({"problem": "x", "strategy": {"params": {"x": nested(MAX_PARAMS_DEPTH)}}}, "strategy.params", "levels deep"),
        ({"problem": "x", "strategy": {"params": {"x": nested(100_000)}}}, "strategy.params", "levels deep"),
        ({"problem": "x", "strategy": {"params": {"x": "a" * 16_001}}}, "strategy.params", "at most 16000"),
        ({"problem": "x", "strategy": {"params": {"temperature": float("nan")}}}, "strategy.params", "finite"),
        ({"problem": "x", "strategy": {"params": {"seed": object()}}}, "strategy.params", "plain JSON"),
        ({"problem": "x", "budget": {"max_flops": float("inf")}}, "budget.max_flops", "finite number"),
        ({"problem": "x", "budget": {"max_flops": float("nan")}}, "budget.max_flops", "finite number"),
        ({"problem": "x", "budget": {"max_seconds": float("inf")}}, "budget.max_seconds", "finite number"),
        ({"problem": "x", "timeout": float("inf")}, "timeout", "finite number"),
    ],
)
def test_bad_input_names_the_field(data, field, words):
    with pytest.raises(InvalidInput) as err:
        JobSpec.parse(data)
    message = str(err.value)
    assert field in message and words in message, message


def test_bad_json_text_is_reported_as_such():
    with pytest.raises(InvalidInput, match="not valid JSON"):
        JobSpec.parse('{"problem": ')


def test_bad_json_text_is_refused_too():
    with pytest.raises(InvalidInput, match="budget.max_flops"):
        JobSpec.parse('{"problem": "x", "budget": {"max_flops": Infinity}}')


def test_params_as_deep_as_allowed_are_kept():
    params = {"x": nested(MAX_PARAMS_DEPTH - 1)}
    assert JobSpec.parse({"problem": "x", "strategy": {"params": params}}).strategy.params == params


def test_nesting_depth_counts_lists_and_objects_and_stops_past_the_limit():
    assert [nesting_depth(v, 10) for v in (1, "s", [], {}, [1, {"a": [2]}], {"a": {"b": []}})] == [0, 0, 1, 1, 3, 3]
    assert nesting_depth(nested(1_000_000), 10) == 11


def test_parse_json_refuses_deep_documents_with_a_message():
    assert parse_json(b'{"a": [1, 2]}', "body") == {"a": [1, 2]}
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert nesting_depth(parse_json(deepest, "body"), MAX_JSON_DEPTH) == MAX_JSON_DEPTH
    for text in ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "[" * 100_000):
        with pytest.raises(InvalidInput, match=f"body nests lists or objects more than {MAX_JSON_DEPTH} levels deep"):
            parse_json(text, "body")
    with pytest.raises(ValueError):
        parse_json("{", "body")


@pytest.mark.parametrize(
    "name, params, words",
    [
        ("tora", {"temperature": "hot"}, "parameter temperature must be a number, not 'hot'"),
        ("tora", {"max_tool_calls": True}, "parameter max_tool_calls must be an integer, not True"),
        ("tora", {"max_tool_calls": 2.5}, "parameter max_tool_calls must be an integer"),
        ("tora", {"top_p": float("inf")}, "parameter top_p must be a number"),
        ("majority", {"samples": "3"}, "parameter samples must be an integer or null, not '3'"),
        ("majority", {"judge": [1]}, "parameter judge must be an object or null"),
        ("vmcts", {"rollout": "yes"}, "parameter rollout must be true or false"),
        ("tora", {"max_tool_calls": -3}, "max_tool_calls must be between 0 and 16"),
        ("tora", {"colour": 1}, "has no parameter colour"),
    ],
)
def test_strategy_parameters_are_type_checked(name, params, words):
    with pytest.raises(InvalidInput) as err:
        make_strategy(name, params)
    assert f"strategy {name!r}" in str(err.value) and words in str(err.value), str(err.value)


def test_strategy_parameters_of_the_right_type_are_taken():
    strategy = make_strategy("majority", {"temperature": 1, "samples": None, "seed": 3, "method_params": {"max_tool_calls": 2}})
    assert (strategy.temperature, strategy.samples, strategy.seed, strategy.method_params) == (1.0, None, 3, {"max_tool_calls": 2})


def test_client_submit_refuses_bad_parameters_before_storing_or_starting_ray():
    code = (
        "import ray\n"
        "from orchestrator.client import Client\n"
        "from orchestrator.config import Config\n"
        "from plait.errors import InvalidInput\n"
        "client = Client(config=Config(), discover=False)\n"
        "try:\n"
        "    client.submit({'problem': '2+3', 'strategy': {'params': {'temperature': 'hot'}}})\n"
        "except InvalidInput as exc:\n"
        "    print(exc)\n"
        "assert client.store.jobs() == [] and not ray.is_initialized()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "parameter temperature must be a number" in done.stdout
