import pytest

from orchestrator.spec import JobSpec
from plait.errors import InvalidInput


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
