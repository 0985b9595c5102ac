"""One conformance suite, the same cases on every engine: TransformersEngine in-process,
OpenAIEngine against `plait engine serve` (a separate process), and the llama.cpp engine
(plait's supervised llama-server) on the same small model's GGUF, so it stays fast.

Where an engine does not guarantee something, the case says so and checks what it does
guarantee: llama.cpp is not batch-invariant (a batch's rows may differ from one-by-one
decoding in the last bits, so texts can drift), so its batched answers are checked instead
of compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema
import pytest

from plait.errors import EngineError
from tools.processes import free_port
from workers.engines.base import SamplingParams, chat

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@dataclass
class Subject:
    name: str
    engine: object
    batch_invariant: bool
    kill: object = None  # kills the model server mid-call; None: in-process, nothing to kill
    revive: object = None  # what brings a killed server back (None: the engine does it itself)


@pytest.fixture(scope="module")
def plait_server():
    """`plait engine serve` for the embedded model, with an API key, in its own process."""
    port = free_port()
    env = {**os.environ, "CONFORMANCE_KEY": "sekret"}
    command = [str(BIN / "plait"), "engine", "serve", "--port", str(port), "--api-key-env", "CONFORMANCE_KEY"]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "plait engine serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer sekret"}).status_code == 200:
                    return proc
            except httpx.TransportError:
                time.sleep(0.3)

    state = {"proc": start()}
    yield port, state, start
    state["proc"].kill()
    state["proc"].wait()


@pytest.fixture(scope="module", params=["transformers", "openai", "llamacpp"])
def subject(request, engine, plait_server):
    if request.param == "transformers":
        yield Subject("transformers", engine, batch_invariant=True)
    elif request.param == "openai":
        from workers.engines.openai_engine import OpenAIEngine

        port, state, start = plait_server
        remote = OpenAIEngine(f"http://127.0.0.1:{port}/v1", "smollm2-135m", api_key="sekret", max_retries=1, backoff=0.1)

        def kill() -> None:
            state["proc"].send_signal(signal.SIGKILL)
            state["proc"].wait()

        def revive() -> None:
            state["proc"] = start()

        yield Subject("openai", remote, batch_invariant=True, kill=kill, revive=revive)
        remote.close()
    else:
        from workers.engines.llamacpp import LlamaCppEngine

        local = LlamaCppEngine("smollm2-135m", parallel=4)
        yield Subject("llamacpp", local, batch_invariant=False, kill=lambda: os.kill(local.server.process.pid, signal.SIGKILL))
        local.close()


# Prompts whose greedy answer a 135M model gets right, with the check for it.
ANSWERED = [
    ("The capital of France is", lambda text: "Paris" in text),
    (chat(("user", "What is 2+3?")), lambda text: "5" in text),
    ("Monday, Tuesday, Wednesday,", lambda text: "Thursday" in text),
    (chat(("system", "Answer in one word."), ("user", "What colour is the sky on a clear day?")), lambda text: "blue" in text.lower()),
]


def test_batched_greedy_against_one_by_one(subject):
    params = SamplingParams(max_tokens=24)
    prompts = [p for p, _ in ANSWERED]
    batched = [group[0] for group in subject.engine.generate(prompts, params)]
    single = [subject.engine.generate([p], params)[0][0] for p in prompts]
    if subject.batch_invariant:
        assert [c.text for c in batched] == [c.text for c in single]
    for (_, right), together, alone in zip(ANSWERED, batched, single):
        assert right(together.text) and right(alone.text), (together.text, alone.text)
        assert together.completion_tokens == len(together.logprobs) > 0


def test_stop_string_cuts_the_text(subject):
    (free,) = subject.engine.generate(["The capital of France is"], SamplingParams(max_tokens=16))[0]
    assert "." in free.text
    (stopped,) = subject.engine.generate(["The capital of France is"], SamplingParams(max_tokens=16, stop=(".",)))[0]
    assert stopped.text == free.text.split(".")[0] and stopped.finish_reason == "stop"
    assert stopped.completion_tokens < free.completion_tokens
    assert stopped.stop_reason == "."


def test_a_stop_string_that_ends_inside_a_token_leaves_the_rest_of_it_in_stop_tail(subject):
    (free,) = subject.engine.generate(["The capital of France is"], SamplingParams(max_tokens=8))[0]
    assert free.text.startswith(" Paris")
    (stopped,) = subject.engine.generate(["The capital of France is"], SamplingParams(max_tokens=8, stop=("Par",)))[0]
    # " Paris" is one token: the text stops before "Par", and the rest of the token is the tail.
    assert (stopped.text, stopped.stop_tail, stopped.completion_tokens) == (" ", "is", 1)


def test_max_tokens_ends_with_length(subject):
    (c,) = subject.engine.generate(["Count: 1, 2, 3,"], SamplingParams(max_tokens=5))[0]
    assert (c.finish_reason, c.completion_tokens, len(c.logprobs)) == ("length", 5, 5)


def test_n_samples_and_seeds(subject):
    params = SamplingParams(max_tokens=16, temperature=1.0, n=3, seed=7)
    samples = subject.engine.generate(["Once upon a time"], params)[0]
    assert len(samples) == 3 and len({c.text for c in samples}) > 1
    assert all(c.completion_tokens == len(c.logprobs) for c in samples)
    one = SamplingParams(max_tokens=16, temperature=1.0, seed=11)
    first, again = (subject.engine.generate(["Once upon a time"], one)[0][0].text for _ in range(2))
    other = subject.engine.generate(["Once upon a time"], SamplingParams(max_tokens=16, temperature=1.0, seed=12))[0][0].text
    assert first == again and first != other
    # The same prompt twice in one seeded call: two samples, and (where batching does not
    # change the numerics) the call is reproducible.
    twice = [c.text for (c,) in subject.engine.generate(["Once upon a time"] * 2, one)]
    assert twice[0] != twice[1]
    if subject.batch_invariant:
        assert twice == [c.text for (c,) in subject.engine.generate(["Once upon a time"] * 2, one)]


def test_logprobs_agree_with_score(subject):
    """The log-probability a greedy decode reports for its tokens is what score() gives the
    same text: the two read the same model."""
    prompt = "The capital of France is"
    (c,) = subject.engine.generate([prompt], SamplingParams(max_tokens=8))[0]
    assert all(lp <= 0 for lp in c.logprobs)
    assert subject.engine.score(prompt, c.text) == pytest.approx(sum(c.logprobs), abs=0.05)


def test_score_prefers_the_plausible_continuation(subject):
    prompt = "The capital of France is"
    assert subject.engine.score(prompt, " Paris") > subject.engine.score(prompt, " Berlin")
    assert subject.engine.score(prompt, "") == 0.0


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def test_json_schema_output_is_valid(subject):
    prompt = chat(("user", "Give the largest city of France and its population as JSON."))
    (c,) = subject.engine.generate([prompt], SamplingParams(max_tokens=60, json_schema=SCHEMA))[0]
    assert c.finish_reason == "stop"
    jsonschema.validate(json.loads(c.text), SCHEMA)


def test_cached_prompt_tokens_are_reported(subject):
    prompt = chat(("system", "You are a careful assistant. " * 20), ("user", "Name one prime number."))
    params = SamplingParams(max_tokens=4)
    subject.engine.generate([prompt], params)
    (again,) = subject.engine.generate([prompt], params)[0]
    assert 0 < again.cached_tokens <= again.prompt_tokens
    assert again.computed_tokens == again.prompt_tokens - again.cached_tokens + again.completion_tokens


def test_a_server_that_dies_mid_call_is_an_error_then_recovers(subject):
    if subject.kill is None:
        pytest.skip("in-process engine: there is no server to lose")
    failure: list[BaseException] = []

    def long_call() -> None:
        try:
            subject.engine.generate(["Count to 2000: 1, 2, 3, 4,"], SamplingParams(max_tokens=2000))
        except EngineError as exc:
            failure.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(1.0)  # the request is in flight
    subject.kill()
    caller.join(120)
    assert not caller.is_alive() and failure, "the call did not fail when its server died"
    if subject.revive:
        subject.revive()
    (c,) = subject.engine.generate(["The capital of France is"], SamplingParams(max_tokens=6))[0]
    assert "Paris" in c.text
