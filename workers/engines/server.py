"""An OpenAI-compatible HTTP endpoint in front of a TransformersEngine (`plait engine serve`).

It lets any OpenAI client (and plait's own OpenAIEngine on other machines) use a model
that plait loads, and it is what the OpenAIEngine tests talk to. Supported: GET /v1/models,
POST /v1/completions (prompt string or list, n, stop, seed, logprobs, echo) and
POST /v1/chat/completions (logprobs, and vLLM's `continue_final_message` to extend a
partial assistant turn), both with `response_format` ("text"; "json_object"; "json_schema",
enforced by constrained decoding). Requests are served one engine call at a time.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from workers.engines.base import Message, SamplingParams
from workers.engines.transformers_engine import TransformersEngine


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = None
    # Checked by hand, not by pydantic, so an unsupported type gets a 400 with the error body.
    response_format: dict | None = None

    def params(self, default_max: int) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return SamplingParams(
            max_tokens=self.max_tokens or default_max,
            temperature=self.temperature,
            top_p=self.top_p,
            n=self.n,
            stop=tuple(stop),
            seed=self.seed,
            json_schema=_json_schema(self.response_format),
        )


def _json_schema(response_format: dict | None) -> dict | None:
    """The schema an OpenAI `response_format` asks for; None means free text."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}  # any JSON object
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ValueError('response_format "json_schema" needs {"json_schema": {"name": ..., "schema": {...}}}')
        return spec["schema"]
    raise ValueError(f"response_format type {kind!r} is not supported: use 'text', 'json_object' or 'json_schema'")


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    continue_final_message: bool = False
    add_generation_prompt: bool = True


def create_app(engine: TransformersEngine, *, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="plait engine", description=__doc__)
    lock = threading.Lock()  # the engine decodes one batch at a time
    model_id = engine.info().model_id

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return _error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "authentication_error")
        return await call_next(request)

    @app.exception_handler(ValueError)
    async def bad_value(_request: Request, exc: ValueError):
        return _error(400, str(exc))

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_id, "object": "model", "owned_by": "plait", "max_model_len": engine.info().context_length}],
        }

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        params = req.params(default_max=16)
        with lock:
            results = engine.generate(prompts, params)
            choices, prompt_tokens, completion_tokens, cached_tokens = [], 0, 0, 0
            for i, (prompt, group) in enumerate(zip(prompts, results)):
                echoed = _token_logprobs(engine, engine.encode(prompt)) if req.echo else None
                for j, c in enumerate(group):
                    logprobs = None
                    if req.logprobs is not None:
                        logprobs = _merge(echoed, _generated_logprobs(engine, c, len(prompt) if req.echo else 0))
                    choices.append(
                        {
                            "index": i * params.n + j,
                            "text": (prompt if req.echo else "") + c.text,
                            "logprobs": logprobs,
                            "finish_reason": c.finish_reason,
                            "stop_reason": c.stop_reason,
                            "stop_tail": c.stop_tail,  # not OpenAI's: plait's engines read it (Completion.stop_tail)
                        }
                    )
                    completion_tokens += c.completion_tokens
                prompt_tokens += group[0].prompt_tokens
                cached_tokens += group[0].cached_tokens
        return _envelope("text_completion", choices, prompt_tokens, completion_tokens, cached_tokens, model_id)

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest) -> dict:
        messages = tuple(Message(m.role, m.content) for m in req.messages)
        continuing = req.continue_final_message or not req.add_generation_prompt
        if continuing and messages[-1].role != "assistant":
            raise ValueError("continue_final_message needs the last message to be an assistant turn")
        if not continuing and messages[-1].role == "assistant":
            messages = messages + (Message("user", ""),)  # a closed assistant turn: the model answers next
        params = req.model_copy(update={"max_tokens": req.max_completion_tokens or req.max_tokens}).params(default_max=256)
        with lock:
            group = engine.generate([messages], params)[0]
            choices = [
                {
                    "index": j,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": {"content": _generated_logprobs(engine, c, 0)["content"]} if req.logprobs else None,
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_reason,
                    "stop_tail": c.stop_tail,
                }
                for j, c in enumerate(group)
            ]
        completion_tokens = sum(c.completion_tokens for c in group)
        return _envelope("chat.completion", choices, group[0].prompt_tokens, completion_tokens, group[0].cached_tokens, model_id)

    return app


def _token_logprobs(engine: TransformersEngine, ids: list[int]) -> dict:
    values = engine.sequence_logprobs(ids)
    values[0] = None  # the first token has no context (OpenAI reports null)
    return _block(engine, ids, values, 0)


def _generated_logprobs(engine: TransformersEngine, completion, offset: int) -> dict:
    return _block(engine, completion.token_ids, completion.logprobs, offset)


def _block(engine: TransformersEngine, ids: list[int], values: list, offset: int) -> dict:
    tokens = [engine.tokenizer.decode([t]) for t in ids]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "text_offset": offsets,
        "content": [{"token": t, "logprob": v} for t, v in zip(tokens, values)],
    }


def _merge(first: dict | None, second: dict) -> dict:
    if first is None:
        return second
    return {key: first[key] + second[key] for key in second}


def _envelope(kind: str, choices: list, prompt_tokens: int, completion_tokens: int, cached_tokens: int, model_id: str) -> dict:
    return {
        "id": f"plait-{uuid.uuid4().hex[:12]}",
        "object": kind,
        "created": int(time.time()),
        "model": model_id,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},  # prompt tokens the prefix KV cache served
        },
    }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})
