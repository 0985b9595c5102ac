"""TransformersEngine: a causal LM run in-process with plait's own decode loop.

The loop is ours rather than `model.generate` so that every acceleration (prefix KV loads,
speculative drafts, attention sinks, cautious decoding, JSON-schema masks) is a stage of one
loop (`workers.engines.decoding`), chosen per call in one place (`workers.engines.stages`),
and so per-token logprobs cost nothing extra. Each completion reports what those stages did
for it in `Completion.decode`.

With `SamplingParams.json_schema`, each row's logits are masked to the tokens its own
schema state allows before a token is picked (greedy or sampled); the logprobs reported
stay the model's unmasked ones, so they mean the same with and without a schema.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from plait.errors import ConfigError, EngineError, MissingDependency
from workers.engines import stages
from workers.engines.attention_sinks import inverse_frequencies
from workers.engines.base import Completion, EngineInfo, KVLayout, Prompt, SamplingParams, cut_at_stop
from workers.engines.cautious import boundary_tokens
from workers.engines.decoding import DecodeState, Row, Stops, run
from workers.engines.embedded import EMBEDDED_MODEL, embedded_model_dir, weights_fingerprint
from workers.engines.options import CacheSpec, CautiousSpec, SinkSpec, SpeculativeSpec
from workers.kvcache import open_prefix_cache


class TransformersEngine:
    def __init__(
        self,
        model: str = EMBEDDED_MODEL,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch: int = 16,
        context_length: int = 0,
        kv_cache: CacheSpec | None = None,
        speculative: SpeculativeSpec | None = None,
        draft: TransformersEngine | None = None,
        sinks: SinkSpec | None = None,
        cautious: CautiousSpec | None = None,
        progress=None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        if model == EMBEDDED_MODEL:
            path = embedded_model_dir(progress)
        else:
            path = Path(model).expanduser()
            if not (path / "config.json").exists():
                raise MissingDependency(
                    f"model {model!r} is neither {EMBEDDED_MODEL!r} nor a local transformers model directory "
                    "(plait never downloads weights at run time; point at a directory with config.json)"
                )
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.model_id = model
        self.max_batch = max_batch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
        self._eos = self._eos_ids()
        self._info = self._make_info(path, dtype, context_length)
        self.prefix_cache = open_prefix_cache(kv_cache or CacheSpec(), self._info.fingerprint, self._info.kv_layout)
        # The decoding options are plain attributes, read by each call, so a benchmark can
        # switch one between runs. The draft model is built by make_engine and passed in.
        self.speculative = speculative or SpeculativeSpec()
        self.draft = draft
        if draft is not None and draft.tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise ConfigError(
                f"draft model {draft.model_id!r} does not share the tokenizer of {model!r}: "
                "speculative drafts must be in the target's tokens; pick a draft model of the same family"
            )
        self.sinks = sinks or SinkSpec()
        if self.sinks.on:
            inverse_frequencies(self.model)  # fail now, not at the first eviction, on a model without rotary embeddings
        self.cautious = cautious or CautiousSpec()
        self._boundaries: torch.Tensor | None = None

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def _make_info(self, path: Path, dtype: str, context_length: int) -> EngineInfo:
        cfg = self.model.config
        layout = KVLayout(
            layers=cfg.num_hidden_layers,
            kv_heads=getattr(cfg, "num_key_value_heads", cfg.num_attention_heads),
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
            dtype=dtype,
        )
        rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
        fingerprint = hashlib.sha256(f"{weights_fingerprint(path)}|{layout}|{rope}".encode()).hexdigest()[:16]
        return EngineInfo(
            model_id=self.model_id,
            parameters=sum(p.numel() for p in self.model.parameters()),
            # A configured context_length caps the model's (like a server's max_model_len).
            context_length=min(cfg.max_position_embeddings, context_length or cfg.max_position_embeddings),
            kv_layout=layout,
            fingerprint=fingerprint,
        )

    def info(self) -> EngineInfo:
        return self._info

    def close(self) -> None:
        """Nothing to release: the model and its KV live in this process."""

    def render(self, prompt: Prompt) -> str:
        """Text the model sees; a chat ending in an assistant turn is continued, not closed."""
        if isinstance(prompt, str):
            return prompt
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        continuing = bool(prompt) and prompt[-1].role == "assistant"
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not continuing, continue_final_message=continuing
        )

    def encode(self, prompt: Prompt) -> list[int]:
        # A rendered chat already carries its special tokens.
        return self.tokenizer(self.render(prompt), add_special_tokens=isinstance(prompt, str))["input_ids"]

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        encoded = [self.encode(p) for p in prompts]
        for ids in encoded:
            if len(ids) >= self._info.context_length:
                raise EngineError(
                    f"prompt has {len(ids)} tokens but {self.model_id} holds {self._info.context_length}: shorten it"
                )
        copies = 1 if params.greedy else params.n  # greedy samples are identical: decode once
        flat = self.generate_ids([ids for ids in encoded for _ in range(copies)], params)
        grouped = [flat[i * copies : (i + 1) * copies] for i in range(len(prompts))]
        if copies == 1 and params.n > 1:
            grouped = [[group[0]] + [_copy(group[0]) for _ in range(params.n - 1)] for group in grouped]
        return grouped

    def generate_ids(self, rows: list[list[int]], params: SamplingParams) -> list[Completion]:
        """One completion per row of prompt token ids (`params.n` is not applied), decoded in
        batches of at most `max_batch` rows."""
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        flat: list[Completion] = []
        for start in range(0, len(rows), self.max_batch):
            flat.extend(self._decode(rows[start : start + self.max_batch], params, generator))
        return flat

    @torch.inference_mode()
    def _decode(self, rows: list[list[int]], params: SamplingParams, generator) -> list[Completion]:
        plan = stages.build(self, params, rows=len(rows), generator=generator)
        budget = plan.kv.budget(params.max_tokens, self._info.context_length - max(len(r) for r in rows))
        stops = Stops(frozenset(self._eos), budget, params.stop, lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))
        state = DecodeState.start(
            self.model,
            rows,
            stops=stops,
            pad_id=self.tokenizer.pad_token_id,
            prefix_cache=self.prefix_cache,
            publish_output=params.cache_output,
            counters=plan.counters,
        )
        return [self._completion(row, params.stop) for row in run(state, plan)]

    def schema_constraint(self, schema: dict):
        from workers.engines.constrained import JsonSchemaConstraint

        return JsonSchemaConstraint(self.tokenizer, schema, self._eos)

    def trial_ends(self) -> torch.Tensor:
        if self._boundaries is None:
            self._boundaries = boundary_tokens(self.tokenizer, self._eos, self.model.config.vocab_size)
        return self._boundaries

    def _completion(self, row: Row, stop: tuple[str, ...]) -> Completion:
        visible = [t for t in row.ids if t not in self._eos]
        # Decoding stops at the token that completes a stop string: what follows it is that token's.
        text, matched, tail = cut_at_stop(self.tokenizer.decode(visible, skip_special_tokens=True), stop)
        return Completion(
            text=text,
            token_ids=row.ids,
            logprobs=row.logprobs,
            finish_reason=row.finish,
            stop_reason=matched,
            stop_tail=tail,
            prompt_tokens=len(row.prompt),
            completion_tokens=len(row.ids),
            cached_tokens=row.cached,
            trial_tokens=row.stats.get("cautious_trial_tokens", 0),
            decode=row.stats,
        )

    def score(self, prompt: Prompt, continuation: str) -> float:
        context = self.encode(prompt)
        target = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        return sum(self.sequence_logprobs(context + target)[len(context):])

    @torch.inference_mode()
    def sequence_logprobs(self, ids: list[int]) -> list[float]:
        """Log-probability of each token given the ones before it (0.0 for the first)."""
        if len(ids) < 2:
            return [0.0] * len(ids)
        logprobs = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), dim=-1)
        return [0.0] + logprobs.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).tolist()


def _copy(c: Completion) -> Completion:
    return Completion(**{**c.to_dict(), "token_ids": list(c.token_ids), "logprobs": list(c.logprobs)})

