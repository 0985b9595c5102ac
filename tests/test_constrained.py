"""JSON-schema constrained decoding: SamplingParams.json_schema, the TransformersEngine's
per-row masks on the real embedded model, and response_format through plait's server."""

import json

import httpx
import jsonschema
import pytest
from http_server import serving

from workers.engines.base import SamplingParams, chat

# A planner's skeleton graph; strings and lists are bounded so 200 tokens always suffice.
SKELETON = {
    "type": "object",
    "properties": {
        "nodes": {
            "type": "array",
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "maxLength": 4},
                    "question": {"type": "string", "maxLength": 40},
                    "depends_on": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}},
                    "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["id", "question", "depends_on", "difficulty"],
            },
        }
    },
    "required": ["nodes"],
}

# Left alone, the model answers these in prose, markdown lists or fenced code.
PROMPTS = [
    chat(("system", "You are a planner. Answer with JSON."), ("user", "Plan how to find the largest prime factor of 1001.")),
    chat(("user", "Give a JSON plan with nodes for: how many days are there in 3 weeks?")),
    chat(("user", "Write a JSON object describing the steps to boil an egg.")),
]


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _assert_valid(completions) -> None:
    for c in completions:
        assert c.finish_reason == "stop", c.text
        jsonschema.validate(json.loads(c.text), SKELETON)


def test_json_schema_is_validated_copied_and_hashable():
    with pytest.raises(ValueError, match="object schema"):
        SamplingParams(json_schema={"type": "array"})
    with pytest.raises(ValueError, match="object schema"):
        SamplingParams(json_schema='{"type": "object"}')
    with pytest.raises(ValueError, match="stop strings"):
        SamplingParams(json_schema={"type": "object"}, stop=("}",))
    with pytest.raises(ValueError, match="plain JSON"):
        SamplingParams(json_schema={"type": "object", "enum": {1, 2}})
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    params = SamplingParams(json_schema=schema)
    schema["properties"]["a"]["type"] = "string"
    assert params.json_schema == {"type": "object", "properties": {"a": {"type": "integer"}}}
    same = SamplingParams(json_schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    assert params == same and hash(params) == hash(same) and len({params, same}) == 1
    assert params != SamplingParams() and params != SamplingParams(json_schema={"type": "object"})


def test_small_integer_ranges_become_enums():
    from workers.engines.constrained import enforceable

    schema = {
        "type": "object",
        "properties": {
            "closed": {"type": "integer", "minimum": 1, "maximum": 5},
            "open": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3.5},
            "draft4": {"type": "integer", "minimum": 2, "exclusiveMinimum": True, "maximum": 4},
            "wide": {"type": "integer", "minimum": 0},
            "data": {"type": "string", "default": {"type": "integer", "minimum": 1, "maximum": 2}},
        },
    }
    props = enforceable(schema)["properties"]
    assert props["closed"]["enum"] == [1, 2, 3, 4, 5]
    assert props["open"]["enum"] == [1, 2, 3]
    assert props["draft4"]["enum"] == [3, 4]
    assert "enum" not in props["wide"] and props["data"] == schema["properties"]["data"]
    assert "enum" not in schema["properties"]["closed"]  # the caller's schema is left alone


@pytest.mark.slow
def test_eos_is_allowed_exactly_when_the_json_is_complete(engine):
    from workers.engines.constrained import JsonSchemaConstraint

    text = '{"nodes": [{"id": "a", "question": "Why?", "depends_on": [], "difficulty": 3}]}'
    pieces = engine.tokenizer.batch_decode([[i] for i in range(len(engine.tokenizer))])
    eos = {engine.tokenizer.eos_token_id}
    constraint = JsonSchemaConstraint(engine.tokenizer, SKELETON, eos)
    ids: list[int] = []
    while (done := engine.tokenizer.decode(ids)) != text:
        allowed = set(constraint.allowed(ids).tolist())
        assert not allowed & eos, done
        # Spell the text with the longest allowed tokens (the enforcer refuses some merges, e.g. '?",').
        ids.append(max((i for i in allowed if pieces[i] and text[len(done):].startswith(pieces[i])), key=lambda i: len(pieces[i])))
    assert set(constraint.allowed(ids).tolist()) == eos  # complete: nothing but EOS


@pytest.mark.slow
def test_greedy_output_is_valid_json_batched_as_one_by_one_and_leaves_free_text_alone(engine):
    free = SamplingParams(max_tokens=120)
    before = [g[0] for g in engine.generate(PROMPTS, free)]
    params = SamplingParams(max_tokens=200, json_schema=SKELETON)
    batched = [g[0] for g in engine.generate(PROMPTS, params)]
    _assert_valid(batched)
    single = [engine.generate([p], params)[0][0] for p in PROMPTS]
    assert [c.token_ids for c in single] == [c.token_ids for c in batched]
    assert [c.text for c in single] == [c.text for c in batched]

    # The constraint did something: some free answers end on their own and are not JSON.
    assert any(c.finish_reason == "stop" and not _parses(c.text) for c in before)
    after = [g[0] for g in engine.generate(PROMPTS, free)]
    assert [c.token_ids for c in after] == [c.token_ids for c in before]

    # Reported logprobs are the model's own, not those of the masked distribution.
    prompt_ids = engine.encode(PROMPTS[0])
    reference = engine.sequence_logprobs(prompt_ids + batched[0].token_ids)[len(prompt_ids):]
    assert batched[0].logprobs == pytest.approx(reference, abs=1e-3)


@pytest.mark.slow
def test_sampled_output_is_valid_json(engine):
    groups = engine.generate(PROMPTS, SamplingParams(max_tokens=200, temperature=0.7, seed=2, n=2, json_schema=SKELETON))
    assert [len(g) for g in groups] == [2, 2, 2]
    _assert_valid([c for g in groups for c in g])


@pytest.mark.slow
def test_budget_running_out_mid_json_is_reported_as_length(engine):
    (c,) = engine.generate(PROMPTS[:1], SamplingParams(max_tokens=12, json_schema=SKELETON))[0]
    assert (c.finish_reason, c.completion_tokens) == ("length", 12)
    assert c.text.lstrip().startswith("{") and not _parses(c.text)


@pytest.fixture(scope="module")
def served(engine):
    """plait's OpenAI-compatible server for the embedded model."""
    from workers.engines.server import create_app

    with serving(create_app(engine)) as url:
        yield f"{url}/v1"


@pytest.mark.slow
def test_openai_engine_json_schema_through_plaits_server(served):
    from workers.engines.openai_engine import OpenAIEngine

    remote = OpenAIEngine(served, "smollm2-135m", timeout=120)
    try:
        prompts = [PROMPTS[0], "Plan as JSON for computing 17 * 23:"]  # chat and completions endpoints
        _assert_valid([g[0] for g in remote.generate(prompts, SamplingParams(max_tokens=200, json_schema=SKELETON))])
    finally:
        remote.close()


@pytest.mark.slow
def test_server_response_format_types(served):
    chat_body = {"messages": [{"role": "user", "content": "Describe a cat as a JSON object."}], "max_tokens": 24, "temperature": 0}
    reply = httpx.post(f"{served}/chat/completions", json={**chat_body, "response_format": {"type": "json_object"}}, timeout=60)
    choice = reply.json()["choices"][0]
    text = choice["message"]["content"]
    # Either complete JSON or, when the budget ran out, a JSON prefix reported as "length".
    assert (choice["finish_reason"] == "stop" and isinstance(json.loads(text), dict)) or (
        choice["finish_reason"] == "length" and text.lstrip().startswith("{")
    )

    text_body = {"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}
    plain = httpx.post(f"{served}/completions", json=text_body, timeout=60).json()
    typed = httpx.post(f"{served}/completions", json={**text_body, "response_format": {"type": "text"}}, timeout=60).json()
    assert typed["choices"][0]["text"] == plain["choices"][0]["text"]

    for path, body in (("/completions", text_body), ("/chat/completions", chat_body)):
        for bad in ({"type": "grammar"}, {"type": "json_schema", "json_schema": {"name": "x"}}, {}):
            refused = httpx.post(f"{served}{path}", json={**body, "response_format": bad}, timeout=60)
            assert refused.status_code == 400 and "response_format" in refused.json()["error"]["message"]
    not_object = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}
    refused = httpx.post(f"{served}/completions", json={**text_body, "response_format": not_object}, timeout=60)
    assert refused.status_code == 400 and "object schema" in refused.json()["error"]["message"]
