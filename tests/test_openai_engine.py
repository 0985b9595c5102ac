"""OpenAIEngine against real HTTP servers on loopback: plait's own OpenAI-compatible endpoint
backed by the embedded model, and (for retry behaviour) a tiny flaky server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from http_server import serving
from tools.processes import free_port

from plait.errors import EngineError
from workers.engines.base import Message, SamplingParams, chat
from workers.engines.openai_engine import OpenAIEngine


@pytest.fixture(scope="module")
def served(engine):
    """plait's OpenAI-compatible server for the embedded model, with an API key."""
    from workers.engines.server import create_app

    with serving(create_app(engine, api_key="sekret")) as url:
        yield f"{url}/v1"


@pytest.fixture
def remote(served):
    client = OpenAIEngine(served, "smollm2-135m", api_key="sekret", timeout=60, parameters=134_515_008)
    yield client
    client.close()


@pytest.mark.slow
def test_text_and_chat_prompts_match_the_local_engine(remote, engine):
    prompts = ["The capital of France is", chat(("user", "What is 2+3?"))]
    params = SamplingParams(max_tokens=20)
    local = [g[0] for g in engine.generate(prompts, params)]
    over_http = [g[0] for g in remote.generate(prompts, params)]
    assert [c.text for c in over_http] == [c.text for c in local]
    assert [c.completion_tokens for c in over_http] == [c.completion_tokens for c in local]
    assert [c.prompt_tokens for c in over_http] == [c.prompt_tokens for c in local]
    assert over_http[0].logprobs == pytest.approx(local[0].logprobs, abs=1e-4)


@pytest.mark.slow
def test_partial_assistant_turn_is_continued(remote, engine):
    prompt = (Message("user", "Write Python that prints 6*7."), Message("assistant", "```python\n"))
    params = SamplingParams(max_tokens=20, stop=("\n```",))
    (over_http,) = remote.generate([prompt], params)[0]
    (local,) = engine.generate([prompt], params)[0]
    assert over_http.text == local.text and "```python" not in over_http.text


@pytest.mark.slow
def test_stop_n_and_seed_pass_through(remote):
    (stopped,) = remote.generate(["The capital of France is"], SamplingParams(max_tokens=12, stop=(".",)))[0]
    assert "." not in stopped.text and stopped.stop_reason == "." and stopped.finish_reason == "stop"
    params = SamplingParams(max_tokens=8, temperature=1.0, n=3, seed=11)
    samples = [c.text for c in remote.generate(["Once upon a time"], params)[0]]
    assert len(samples) == 3 and samples == [c.text for c in remote.generate(["Once upon a time"], params)[0]]


@pytest.mark.slow
def test_score_over_http_matches_local_score(remote, engine):
    remote_score = remote.score("The capital of France is", " Paris")
    assert remote_score == pytest.approx(engine.score("The capital of France is", " Paris"), abs=1e-3)
    with pytest.raises(EngineError, match="text prompt"):
        remote.score(chat(("user", "hi")), "there")


@pytest.mark.slow
def test_info_reads_context_length_from_the_server(remote):
    info = remote.info()
    assert (info.model_id, info.context_length, info.parameters) == ("smollm2-135m", 8192, 134_515_008)
    assert info.kv_layout is None


@pytest.mark.slow
def test_wrong_key_is_refused_without_retrying(served):
    bad = OpenAIEngine(served, "smollm2-135m", api_key="wrong", max_retries=3)
    with pytest.raises(EngineError, match="HTTP 401"):
        bad.generate(["hi"], SamplingParams(max_tokens=2))
    assert httpx.get(f"{served}/models").status_code == 401


@pytest.mark.slow
def test_server_rejects_malformed_requests_with_4xx(served):
    headers = {"Authorization": "Bearer sekret"}
    bad_n = httpx.post(f"{served}/completions", json={"prompt": "x", "n": 0}, headers=headers)
    assert bad_n.status_code == 422
    bad_continue = httpx.post(
        f"{served}/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "continue_final_message": True},
        headers=headers,
    )
    assert bad_continue.status_code == 400 and "assistant" in bad_continue.json()["error"]["message"]


class _Flaky(BaseHTTPRequestHandler):
    """Fails the first `failures` requests with 503, then answers like a completions server."""

    failures = 2
    seen = 0

    def do_POST(self):
        type(self).seen += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.seen <= self.failures:
            self.send_response(503)
            self.end_headers()
            return
        reply = {
            "choices": [{"index": 0, "text": "ok " + body["prompt"], "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    _Flaky.seen = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_retries_with_backoff_then_succeeds(flaky):
    client = OpenAIEngine(flaky, "m", max_retries=3, backoff=0.01)
    (c,) = client.generate(["ping"], SamplingParams(max_tokens=2))[0]
    assert c.text == "ok ping" and (c.prompt_tokens, c.completion_tokens) == (3, 2)
    assert _Flaky.seen == 3


def test_gives_up_after_max_retries_with_a_clear_error(flaky):
    client = OpenAIEngine(flaky, "m", max_retries=1, backoff=0.01)
    with pytest.raises(EngineError, match="did not answer after retries"):
        client.generate(["ping"], SamplingParams(max_tokens=2))
    assert _Flaky.seen == 2


def test_unreachable_server_is_an_engine_error():
    client = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(EngineError, match="is the server up"):
        client.generate(["ping"], SamplingParams(max_tokens=2))
