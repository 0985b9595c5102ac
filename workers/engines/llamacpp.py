"""GGUF models on CPU: llama.cpp's own server, supervised by plait.

A `llamacpp` tier's worker actor starts one `llama-server` (see `llamacpp_build`) on a free
loopback port with a fresh API key, `parallel` slots with continuous batching over one
unified KV buffer, and its log under the cache directory. It waits for /health before the
first call, restarts the server (with backoff, without a cap) whenever it has died, and the
server dies with the actor.

Requests go to llama.cpp's own /completion API, not its OpenAI-compatible routes, because
only the former says which stop string ended a generation (ToRA's tool rounds and REBASE's
steps depend on it) and returns token ids. A chat is rendered by the server's
/apply-template with the model's own chat template, so a partial assistant turn is simply
continued. The n samples of a prompt are one request (`n_cmpl`: the samples after the first
copy its prompt KV), and so is a prompt listed several times in one call unless its
completions will be continued. Those (a search's first step: N paths from one question) are
requests of their own, but the prompt is computed once: one slot prefills it, its KV is saved
and restored into the slots the other copies are pinned to. The prompts of a wave are
concurrent requests that the slots decode together, and the slots' prompt cache reports its
hits as `cached_tokens`. Sampling is temperature and top-p only (llama.cpp's top-k, min-p and
repetition penalties are switched off), and each token comes with its unsampled
log-probability.

`score()`: the server gives no prompt logprobs, so the continuation is decoded greedily
under a grammar of its own token ids, one decode step per token, each step reporting the
model's log-probability of the forced token.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

import httpx

from plait.errors import EngineError, MissingDependency
from tools.processes import Supervised, free_port
from workers.engines.base import Completion, EngineInfo, Prompt, SamplingParams, cut_at_stop, per_prompt
from workers.engines.http import JsonAPI
from workers.engines.llamacpp_build import LLAMA_CPP_PYTHON, server_binary
from workers.engines.llamacpp_cautious import cautious_completion
from workers.engines.options import CautiousSpec, SpeculativeSpec
from workers.engines.packaged import MODELS, cache_dir, gguf_path, packaged

T = TypeVar("T")

DEFAULT_CONTEXT = 16384  # tokens of KV shared by all slots; a slot may use the whole of it
STARTUP_SECONDS = 300.0


def resolve_gguf(model: str, progress=None) -> tuple[Path, str, int]:
    """(file, content id, parameters) for a packaged model name or a path to a .gguf file."""
    known = packaged(model)
    if known is not None:
        report = None
        if progress:
            report = lambda done, total: progress(f"assembling {known.title}: {done * 100 // total}%")  # noqa: E731
        return gguf_path(known, report), known.sha256, known.parameters
    path = Path(model).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise MissingDependency(f"llamacpp model {model!r} is neither a packaged model ({', '.join(MODELS)}) nor a .gguf file")
    stat = path.stat()
    return path, f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", 0


def speculative_args(spec: SpeculativeSpec, progress=None) -> tuple[str, ...]:
    """llama-server's own speculative decoding for a tier's `speculative` option: prompt lookup
    is its n-gram drafter; a draft model is a second GGUF with the same vocabulary."""
    if spec.method == "prompt_lookup":
        return ("--spec-type", "ngram-simple", "--spec-draft-n-max", str(spec.draft_tokens))
    if spec.method == "draft_model":
        draft, _, _ = resolve_gguf(spec.draft_model, progress)
        return ("--spec-type", "draft-simple", "--model-draft", str(draft), "--spec-draft-n-max", str(spec.draft_tokens))
    return ()


def default_threads() -> int:
    """All cores but one: llama.cpp's threads wait for each other at every layer, so one core
    taken by anything else (the sandbox, a checker, the orchestrator) stalls all of them; on
    two loaded cores 2 threads decoded at 1 token/s where 1 thread kept 15 (README "Engines")."""
    return max(1, (os.cpu_count() or 2) - 1)


class LlamaServer:
    """One supervised llama-server for one GGUF file."""

    def __init__(self, gguf: Path, *, name: str, parallel: int, context_length: int, threads: int, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.api_key = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        threads = threads or default_threads()
        # One directory for every server: a saved prompt is deleted once restored, so a server
        # whose process was killed with its worker (a Ray actor) leaves nothing behind.
        self.slot_dir = cache_dir() / "llama-slots"
        self.slot_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(server_binary()), "-m", str(gguf), "--alias", name,
            "--host", "127.0.0.1", "--port", str(self.port), "--api-key", self.api_key,
            "--parallel", str(parallel), "--kv-unified", "--ctx-size", str(context_length or DEFAULT_CONTEXT),
            "--threads", str(threads), "--threads-batch", str(threads),
            # Idle slots keep their KV: by default a new task saves every idle slot to the RAM
            # cache and clears it, so the next requests of a wave (a search's other paths) find
            # no slot holding their prefix and most of them compute it again.
            "--no-cache-idle-slots",
            # Where a prompt's KV is saved to be restored into other slots (`_copy_prefix`).
            "--slot-save-path", str(self.slot_dir),
            "--no-webui", "--metrics", *extra_args,
        ]  # fmt: skip
        log = cache_dir() / "logs" / f"llama-server-{name}-{os.getpid()}.log"
        # A clean environment: llama.cpp reads LLAMA_ARG_* variables as options.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
        self.process = Supervised(argv, log, env)
        self.crashes = 0  # deaths since the server last answered a call: each waits longer to restart

    @property
    def log(self) -> Path:
        return self.process.log

    def alive(self) -> bool:
        return self.process.alive()

    def ensure(self, progress=None) -> None:
        """Start the server, or restart it if it has died, and wait until it is healthy."""
        if self.alive():
            return
        if self.process.starts:
            self.crashes += 1
            time.sleep(min(30.0, 0.5 * 2 ** (self.crashes - 1)))
        if progress:
            progress(f"starting llama-server on port {self.port} (log {self.log})")
        started = time.monotonic()
        self.process.restart()
        self._wait_healthy()
        if progress:
            progress(f"llama-server ready in {time.monotonic() - started:.1f} s")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while True:
                if not self.alive():
                    raise EngineError(f"llama-server exited ({self.process.exit_code()}) while starting; its log {self.log} ends:\n{self.process.log_tail()}")
                try:
                    if http.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.process.stop()
                    raise EngineError(f"llama-server did not become healthy in {STARTUP_SECONDS:g} s; see {self.log}")
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.stop()


class LlamaCppEngine:
    """A GGUF model on llama.cpp: a server plait supervises, or (`base_url`) one already running."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "",
        api_key: str | None = None,
        parallel: int = 8,
        context_length: int = 0,
        threads: int = 0,
        extra_args: tuple[str, ...] = (),
        cautious: CautiousSpec | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        parameters: int = 0,
        progress=None,
    ):
        self.model = model
        self.cautious = cautious or CautiousSpec()
        self.server: LlamaServer | None = None
        content_id, known_parameters = base_url, 0
        if not base_url:
            path, content_id, known_parameters = resolve_gguf(model, progress)
            self.server = LlamaServer(path, name=model.replace("/", "_"), parallel=parallel, context_length=context_length, threads=threads, extra_args=extra_args)
            self.server.ensure(progress)
            base_url, api_key = self.server.url, self.server.api_key
        # A dead supervised server is restarted by `_supervised`, so retrying into it is pointless.
        self.api = JsonAPI(base_url.removesuffix("/v1"), api_key=api_key, timeout=timeout, max_retries=max_retries, backoff=0.25, concurrency=parallel)
        # A request of n_cmpl samples waits until that many slots are free at once.
        self.slots = parallel if self.server else int(self.api.get("/props").get("total_slots") or 1)
        meta = (self.api.get("/v1/models").get("data") or [{}])[0].get("meta") or {}
        self._info = EngineInfo(
            model_id=model,
            parameters=parameters or known_parameters or int(meta.get("n_params", 0)),
            context_length=context_length or int(meta.get("n_ctx", 0)),
            kv_layout=None,  # the KV lives in the server
            fingerprint=hashlib.sha256(f"llama.cpp {LLAMA_CPP_PYTHON}|{content_id}".encode()).hexdigest()[:16],
        )

    def close(self) -> None:
        self.api.close()
        if self.server is not None:
            self.server.stop()

    def info(self) -> EngineInfo:
        return self._info

    def _supervised(self, call: Callable[[], T]) -> T:
        """Run a call against the server; if the server died during it, restart it and say so."""
        if self.server is None:
            return call()
        self.server.ensure()
        try:
            result = call()
        except EngineError as exc:
            if self.server.alive():
                raise
            code = self.server.process.exit_code()
            self.server.ensure()
            raise EngineError(f"llama-server died during the call (exit {code}) and was restarted; see {self.server.log}: {exc}") from exc
        self.server.crashes = 0
        return result

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        cautious = self.cautious if params.cautious_entropy is None else replace(self.cautious, entropy=params.cautious_entropy)
        if cautious.on and params.json_schema is None:  # as in the transformers engine, a schema switches CNTP off
            each = list(zip(prompts, per_prompt(params, len(prompts))))
            return self._supervised(lambda: self.api.map(lambda pp: self._cautious(*pp, cautious), each))
        requests = same_prompt_requests(prompts, params, self.slots)
        # Only a supervised server: the saved files are plait's to delete.
        pinned = params.cache_output and self.server is not None and shared_prefix_slots(requests, self.slots)
        replies = self._supervised(lambda: self._pinned(requests) if pinned else self.api.map(lambda r: self._generate_one(r[0], r[1]), requests))
        out: list[list[Completion]] = [[] for _ in prompts]
        for (_, _, rows), completions in zip(requests, replies):
            for k, row in enumerate(rows):
                out[row] += completions[k * params.n : (k + 1) * params.n]
        return out

    def _pinned(self, requests: list[tuple[Prompt, SamplingParams, list[int]]]) -> list[list[Completion]]:
        """Request i on slot i, each prompt computed once: the first slot of its copies prefills
        it and the others get that KV restored. The prefill is charged to the first copy."""
        rendered = {prompt: self.render(prompt) for prompt, _, _ in requests}
        texts = [rendered[prompt] for prompt, _, _ in requests]
        starts = [i for i in range(len(texts)) if i == 0 or texts[i] != texts[i - 1]]
        runs = [range(a, b) for a, b in zip(starts, [*starts[1:], len(texts)])]
        prefills = self.api.map(lambda run: self._copy_prefix(texts[run[0]], run), runs)
        replies = self.api.map(lambda i: self._generate_one(texts[i], requests[i][1], slot=i), range(len(requests)))
        for run, computed in zip(runs, prefills):
            first = replies[run[0]][0]
            first.cached_tokens = max(0, first.cached_tokens - computed)
        return replies

    def _copy_prefix(self, text: str, slots: range) -> int:
        """Prefill `text` on the first of `slots` and restore its KV into the others; the
        tokens the prefill computed."""
        reply = self.api.post("/completion", {"prompt": text, "n_predict": 0, "id_slot": slots[0], "cache_prompt": True})
        name = f"prefix-{secrets.token_hex(8)}.bin"
        try:
            self.api.post(f"/slots/{slots[0]}?action=save", {"filename": name})
            for slot in slots[1:]:
                self.api.post(f"/slots/{slot}?action=restore", {"filename": name})
        finally:
            (self.server.slot_dir / name).unlink(missing_ok=True)
        return _completion(reply, first=True).computed_tokens

    @staticmethod
    def _sampling(params: SamplingParams) -> dict:
        return {
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Sampling is exactly temperature + top-p: the server's other samplers are off.
            "top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0,
            "seed": -1 if params.seed is None else params.seed,
            "return_tokens": True,
            "cache_prompt": True,
        }  # fmt: skip

    def _cautious(self, prompt: Prompt, params: SamplingParams, spec: CautiousSpec) -> list[Completion]:
        text = self.render(prompt)
        post = lambda body: self.api.post("/completion", body)  # noqa: E731
        return [cautious_completion(post, text, params, spec, self._sampling(params)) for _ in range(params.n)]

    def _generate_one(self, prompt: Prompt, params: SamplingParams, slot: int = -1) -> list[Completion]:
        body = {
            **self._sampling(params),
            "prompt": self.render(prompt),
            "id_slot": slot,
            "n_predict": params.max_tokens,
            "n_cmpl": params.n,
            "stop": list(params.stop),
            "n_probs": 1,  # the chosen token's own (pre-sampling) log-probability comes with it
        }
        if params.json_schema is not None:
            body["json_schema"] = params.json_schema
        reply = self.api.post("/completion", body)
        results = sorted(reply if isinstance(reply, list) else [reply], key=lambda r: r.get("index", 0))
        if len(results) != params.n:
            raise EngineError(f"{self.api.base_url} returned {len(results)} completions for n={params.n}")
        completions = [_completion(r, first=i == 0) for i, r in enumerate(results)]
        for completion in completions:
            if completion.stop_reason and completion.token_ids:
                completion.stop_tail = self._stop_tail(completion)
        return completions

    def _stop_tail(self, completion: Completion) -> str:
        """What the token that completed the stop string wrote past it: the server's text
        stops before the stop string, its tokens do not."""
        written = self.api.post("/detokenize", {"tokens": completion.token_ids})["content"]
        before, _, after = cut_at_stop(written, (completion.stop_reason,))
        return after if before == completion.text else ""

    def render(self, prompt: Prompt) -> str:
        """The prompt as the model reads it: a chat through the model's own chat template."""
        if isinstance(prompt, str):
            return prompt
        body: dict = {"messages": [{"role": m.role, "content": m.content} for m in prompt]}
        if prompt and prompt[-1].role == "assistant":
            body.update(continue_final_message=True, add_generation_prompt=False)
        else:
            body["add_generation_prompt"] = True
        return self.api.post("/apply-template", body)["prompt"]

    def _tokenize(self, text: str, special: bool) -> list[int]:
        return self.api.post("/tokenize", {"content": text, "add_special": special, "parse_special": special})["tokens"]

    def encode(self, prompt: Prompt) -> list[int]:
        return self._supervised(lambda: self._tokenize(self.render(prompt), True))

    def score(self, prompt: Prompt, continuation: str) -> float:
        return self._supervised(lambda: self._score(prompt, continuation))

    def _score(self, prompt: Prompt, continuation: str) -> float:
        if not continuation:
            return 0.0
        target = self._tokenize(continuation, False)
        body = {
            "prompt": self._tokenize(self.render(prompt), True),
            "grammar": "root ::= " + " ".join(f"<[{t}]>" for t in target),
            "n_predict": len(target) + 1,  # then the grammar allows only the end of generation
            "temperature": 0,
            "n_probs": 1,
            "cache_prompt": True,
        }
        steps = self.api.post("/completion", body).get("completion_probabilities") or []
        forced = [step["id"] for step in steps[: len(target)]]
        if forced != target:
            raise EngineError(f"{self.api.base_url} did not follow the scoring grammar (got tokens {forced[:8]}, wanted {target[:8]})")
        return float(sum(step["logprob"] for step in steps[: len(target)]))


def same_prompt_requests(prompts: list[Prompt], params: SamplingParams, slots: int) -> list[tuple[Prompt, SamplingParams, list[int]]]:
    """The requests for one call: (prompt, its params, the rows of `prompts` it serves). A
    prompt listed several times (the samples of one question) is one request of n_cmpl = all
    its samples, up to the server's slots, so that the samples after the first copy its prompt
    KV instead of each computing it in a slot of its own. A merged request is sampled from the
    seed of its first row. Not when the caller will send the completions back extended
    (`cache_output`: a search's paths): llama-server drops the KV of a request's extra samples
    when they finish, so each of their next steps would compute its whole path again, where
    requests of their own keep theirs."""
    if params.n > slots:
        raise EngineError(f"n={params.n} samples in one request, but llama-server has {slots} slots and starts a request's samples together: raise the tier's parallel or ask for fewer")
    rows: dict[Prompt, list[int]] = {}
    for i, prompt in enumerate(prompts):
        rows.setdefault(prompt, []).append(i)
    seeded = per_prompt(params, len(prompts))
    per_request = 1 if params.cache_output else slots // params.n
    return [
        (prompt, replace(seeded[group[0]], n=params.n * len(group)), group)
        for prompt, ix in rows.items()
        for group in (ix[k : k + per_request] for k in range(0, len(ix), per_request))
    ]


def shared_prefix_slots(requests: list[tuple[Prompt, SamplingParams, list[int]]], slots: int) -> bool:
    """Whether a call of continued prompts should run request i on slot i with each prompt's
    KV computed once and copied: every prompt is listed more than once (its copies are adjacent,
    as `same_prompt_requests` makes them), each request is one sample and all of them fit the
    slots at once. A call that mixes in prompts listed once is left to the server, whose slots
    hold those paths' prefixes."""
    counts = Counter(prompt for prompt, _, _ in requests)
    return 0 < len(requests) <= slots and min(counts.values()) > 1 and all(p.n == 1 for _, p, _ in requests)


def _completion(reply: dict, first: bool) -> Completion:
    stopped = reply.get("stop_type")
    prompt_tokens = int(reply.get("tokens_evaluated", 0))
    timings = reply.get("timings") or {}
    # The server's own drafting, under the transformers engine's counter names.
    drafted = {"speculative_drafted": int(timings["draft_n"]), "speculative_accepted": int(timings.get("draft_n_accepted", 0))} if "draft_n" in timings else {}
    return Completion(
        text=reply.get("content", ""),
        token_ids=list(reply.get("tokens") or []),
        # Tokens of a matched stop string are not among them: the text stops before it.
        logprobs=[float(p["logprob"]) for p in reply.get("completion_probabilities") or []],
        finish_reason="stop" if stopped in ("eos", "word") else "length",
        stop_reason=reply.get("stopping_word") or None if stopped == "word" else None,
        prompt_tokens=prompt_tokens,
        # The samples after the first start from a copy of the first one's prompt KV.
        cached_tokens=int(timings.get("cache_n", 0)) if first else prompt_tokens,
        completion_tokens=int(reply.get("tokens_predicted", 0)),
        decode=drafted,
    )
