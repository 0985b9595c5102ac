"""OpenAIEngine: any OpenAI-compatible server (vLLM, SGLang, `plait engine serve`).

Each prompt is one request (with `n` samples) and the requests of a batch go out
concurrently: servers with continuous batching decode them together, and per-request usage
keeps token accounting exact. Text prompts use /v1/completions; chat prompts use
/v1/chat/completions, and a chat ending in a partial assistant turn is continued with the
`continue_final_message` extension (vLLM, SGLang and plait's own server honour it).
`SamplingParams.json_schema` goes out as a strict `json_schema` response_format, which
vLLM, SGLang and plait's server enforce on both endpoints.
"""

from __future__ import annotations

import hashlib

from plait.errors import EngineError
from workers.engines.base import Completion, EngineInfo, Prompt, SamplingParams, cut_at_stop, per_prompt
from workers.engines.http import JsonAPI


class OpenAIEngine:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        parameters: int = 0,
        context_length: int = 0,
        concurrency: int = 8,
    ):
        self.model = model
        self._parameters = parameters
        self._context_length = context_length
        self.api = JsonAPI(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, backoff=backoff, concurrency=concurrency)
        self.base_url = self.api.base_url

    def close(self) -> None:
        self.api.close()

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        return self.api.map(lambda pp: self._generate_one(*pp), list(zip(prompts, per_prompt(params, len(prompts)))))

    def _generate_one(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        if params.cautious_entropy:
            raise EngineError(f"cautious decoding runs in transformers engines only; {self.base_url} cannot: drop cautious_entropy for this tier")
        body = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": params.json_schema, "strict": True},
            }
        if isinstance(prompt, str):
            reply = self.api.post("/completions", {**body, "prompt": prompt, "logprobs": 1})
        else:
            body.update(messages=[{"role": m.role, "content": m.content} for m in prompt], logprobs=True, top_logprobs=1)
            if prompt and prompt[-1].role == "assistant":
                body.update(continue_final_message=True, add_generation_prompt=False)
            reply = self.api.post("/chat/completions", body)
        choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise EngineError(f"{self.base_url} returned {len(choices)} choices for n={params.n}")
        usage = reply.get("usage") or {}
        return [self._completion(c, params, usage, len(choices)) for c in choices]

    @staticmethod
    def _completion(choice: dict, params: SamplingParams, usage: dict, n: int) -> Completion:
        text = (choice["message"]["content"] if "message" in choice else choice.get("text", "")) or ""
        logprobs = _logprobs(choice.get("logprobs"))
        # Servers already cut at the stop string; cut again for servers that leave it in.
        text, matched, _ = cut_at_stop(text, params.stop)
        stop_reason = choice.get("stop_reason")
        return Completion(
            text=text,
            token_ids=[],
            logprobs=logprobs,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            stop_reason=stop_reason if isinstance(stop_reason, str) else matched,
            stop_tail=str(choice.get("stop_tail") or ""),  # plait's own server says it; vLLM and SGLang do not
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            # vLLM and SGLang report their own prefix-cache hits here (when enabled).
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            completion_tokens=len(logprobs) or int(usage.get("completion_tokens", 0)) // max(n, 1),
        )

    def score(self, prompt: Prompt, continuation: str) -> float:
        if not isinstance(prompt, str):
            raise EngineError("OpenAIEngine.score needs a text prompt: the server's chat template is not visible to the client")
        reply = self.api.post(
            "/completions",
            {"model": self.model, "prompt": prompt + continuation, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0},
        )
        lp = reply["choices"][0].get("logprobs") or {}
        offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
        if not offsets or not values:
            raise EngineError(f"{self.base_url} does not return prompt logprobs with echo=true; score() needs them")
        # The echoed prompt is followed by one generated token; count only continuation tokens.
        tokens = lp.get("tokens") or []
        end = len(prompt + continuation)
        total = 0.0
        for offset, value, token in zip(offsets, values, tokens):
            if len(prompt) <= offset < end and value is not None:
                total += value
            if offset + len(token) >= end:
                break
        return total

    def info(self) -> EngineInfo:
        context = self._context_length
        if not context:
            try:
                listing = self.api.get("/models").get("data", [])
                context = next((int(m.get("max_model_len", 0)) for m in listing if m.get("id") == self.model), 0)
            except EngineError:
                context = 0
        return EngineInfo(
            model_id=self.model,
            parameters=self._parameters,
            context_length=context,
            kv_layout=None,
            fingerprint=hashlib.sha256(f"{self.base_url}|{self.model}".encode()).hexdigest()[:16],
        )


def _logprobs(block: dict | None) -> list[float]:
    if not block:
        return []
    if "content" in block:  # chat format
        return [float(t["logprob"]) for t in block["content"] or []]
    return [float(v) for v in block.get("token_logprobs") or [] if v is not None]
