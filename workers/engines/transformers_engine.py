"""TransformersEngine: a causal LM run in-process with a plain decode loop.

The loop is ours rather than `model.generate` so that every later acceleration (prefix KV
loads, speculative drafts, attention sinks, cautious decoding) has one obvious place to
hook in, and so per-token logprobs cost nothing extra. Batches are left-padded; finished
rows are dropped from the batch (and its KV cache) as soon as they stop.

With `SamplingParams.json_schema`, each row's logits are masked to the tokens its own
schema state allows before a token is picked (greedy or sampled); the logprobs reported
stay the model's unmasked ones, so they mean the same with and without a schema.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from plait.errors import EngineError, MissingDependency
from workers.engines.attention_sinks import SinkSpec, StreamingStats, compact, inverse_frequencies
from workers.engines.base import Completion, EngineInfo, KVLayout, Prompt, SamplingParams, cut_at_stop
from workers.engines.cautious import CautionStats, CautiousSpec, boundary_tokens, entropies, explore
from workers.engines.embedded import EMBEDDED_MODEL, embedded_model_dir, weights_fingerprint
from workers.engines.speculative import SpeculationStats, SpeculativeSpec, accept, make_drafter
from workers.kvcache import CacheSpec, open_prefix_cache


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
        # The decoding options are plain attributes, so a benchmark can switch one between runs.
        self.speculative = speculative or SpeculativeSpec()
        self.speculation = SpeculationStats()
        self._drafter = (self.speculative, make_drafter(self.speculative, self) if self.speculative.on else None)
        self.sinks = sinks or SinkSpec()
        if self.sinks.on:
            inverse_frequencies(self.model)  # fail now, not at the first eviction, on a model without rotary embeddings
        self.streaming = StreamingStats()
        self.cautious = cautious or CautiousSpec()
        self.caution = CautionStats()
        self._trial_ends: torch.Tensor | None = None

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

    def drafter(self):
        """The draft source of the current `speculative` spec (built again when it changes)."""
        if self._drafter[0] != self.speculative:
            self._drafter = (self.speculative, make_drafter(self.speculative, self))
        return self._drafter[1]

    @torch.inference_mode()
    def _decode(self, rows: list[list[int]], params: SamplingParams, generator) -> list[Completion]:
        cache, mask, logits, cached = self._prefill(rows)
        next_pos = mask.sum(-1, keepdim=True)  # each row's next position: its token count so far
        # Attention sinks keep the cache (and every position) within the context, however long the output.
        budget = params.max_tokens if self.sinks.on else min(params.max_tokens, self._info.context_length - max(len(r) for r in rows))
        stop_window = max((len(s) for s in params.stop), default=0) + 8  # tokens enough to span any stop string

        constraints = None
        if params.json_schema is not None:
            from workers.engines.constrained import JsonSchemaConstraint

            constraints = [JsonSchemaConstraint(self.tokenizer, params.json_schema, self._eos) for _ in rows]
        # Drafts are off under a schema: a copied token may be one the schema forbids.
        speculate = self.speculative.on and constraints is None
        caution = self.cautious if params.cautious_entropy is None else replace(self.cautious, entropy=params.cautious_entropy)
        cautious = caution.on and constraints is None
        inv_freq = inverse_frequencies(self.model) if self.sinks.on else None

        out_ids: list[list[int]] = [[] for _ in rows]
        out_lp: list[list[float]] = [[] for _ in rows]
        finish = ["length"] * len(rows)
        forbid: dict[int, int] = {}  # row -> token a rejected draft rules out of its next pick
        forced: dict[int, list[int]] = {}  # row -> the rest of the trial CNTP kept, fed as an accepted draft
        trial_tokens = [0] * len(rows)  # tokens CNTP computed in trials
        publish = params.cache_output  # until an eviction: the cache then no longer holds the whole row

        def take(row: int, token: int, logprob: float) -> bool:
            """Append a token to a row; False once the row is finished."""
            out_ids[row].append(token)
            out_lp[row].append(logprob)
            if token in self._eos or (params.stop and _ends_with_stop(self.tokenizer, out_ids[row], params.stop, stop_window)):
                finish[row] = "stop"
                return False
            return len(out_ids[row]) < budget

        active = list(range(len(rows)))  # batch position -> row index
        while True:
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            if constraints is not None:
                logits = _mask(logits, [constraints[row].allowed(out_ids[row]) for row in active])
            for b, row in enumerate(active):
                if row in forbid:
                    logits[b, forbid.pop(row)] = float("-inf")
            chosen = _pick(logits, params, generator)
            if cautious:
                chosen = self._caution(caution, cache, mask, next_pos, logits, logprobs, active, chosen, forced, trial_tokens, params, generator)
            keep = [b for b, row in enumerate(active) if take(row, int(chosen[b]), float(logprobs[b, chosen[b]]))]
            if len(keep) < len(active):
                cut = self._finish_rows(rows, out_ids, active, keep, cache, mask, publish, next_pos, chosen)
                if cut is None:
                    break
                mask, next_pos, chosen = cut
                active = [active[b] for b in keep]
            sure = {b for b, row in enumerate(active) if row in forced}
            drafts = [forced.pop(row, []) for row in active]
            guess = [b for b in range(len(active)) if speculate and b not in sure]
            if guess:
                k = self.speculative.draft_tokens
                proposed = self.drafter().propose(
                    [rows[active[b]] + out_ids[active[b]] for b in guess], [min(k, budget - len(out_ids[active[b]])) for b in guess]
                )
                for b, draft in zip(guess, proposed):
                    drafts[b] = draft
            width = 1 + max(len(d) for d in drafts)
            if inv_freq is not None:
                fitted = compact(cache, mask, self.sinks, inv_freq, width)
                if fitted is not None:
                    mask, dropped = fitted
                    next_pos = mask.sum(-1, keepdim=True)
                    publish = False
                    self.streaming.compactions += 1
                    self.streaming.evicted_tokens += dropped
            block = torch.tensor([[int(chosen[b])] + d + [0] * (width - 1 - len(d)) for b, d in enumerate(drafts)])
            block_mask = torch.tensor([[1] * (1 + len(d)) + [0] * (width - 1 - len(d)) for d in drafts])
            mask = torch.cat([mask, block_mask.to(mask.dtype)], dim=1)
            self.streaming.seen(mask.shape[1])
            out = self.model(
                input_ids=block, attention_mask=mask, position_ids=next_pos + torch.arange(width), past_key_values=cache
            ).logits
            if width == 1:
                logits, next_pos = out[:, -1, :], next_pos + 1
                continue
            logits, next_pos, keep = self._verify(out, drafts, sure, active, mask, next_pos, take, forbid, params, generator)
            if len(keep) < len(active):  # rows that finished inside their draft
                cut = self._finish_rows(rows, out_ids, active, keep, cache, mask, publish, next_pos, logits)
                if cut is None:
                    break
                mask, next_pos, logits = cut
                active = [active[b] for b in keep]

        return [
            self._completion(rows[i], out_ids[i], out_lp[i], finish[i], params.stop, cached[i], trial_tokens[i]) for i in range(len(rows))
        ]

    def _caution(self, spec, cache, mask, next_pos, logits, logprobs, active, chosen, forced, trial_tokens, params, generator):
        """CNTP (workers.engines.cautious): each row at an uncertain step takes the first token
        of its best trial instead of `chosen`, and the rest of that trial is queued in `forced`."""
        self.caution.steps += len(active)
        branches = {b: n for b, h in enumerate(entropies(logprobs).tolist()) if (n := spec.trials(h))}
        if not branches:
            return chosen
        if self._trial_ends is None:
            self._trial_ends = boundary_tokens(self.tokenizer, self._eos, self.model.config.vocab_size)
        temperature = spec.temperature if params.greedy else params.temperature
        best, spent = explore(self.model, cache, mask, next_pos, logits, branches, temperature, spec.span_tokens, self._trial_ends, generator)
        self.caution.branched += len(branches)
        self.caution.trial_tokens += sum(spent.values())
        chosen = chosen.clone()
        for b, trial in best.items():
            chosen[b] = trial[0]
            if trial[1:]:
                forced[active[b]] = trial[1:]
            trial_tokens[active[b]] += spent[b]
        return chosen

    def _verify(self, out, drafts, sure, active, mask, next_pos, take, forbid, params, generator):
        """Keep each row's acceptable draft prefix (see workers.engines.speculative), and the
        whole of the `sure` batch positions' drafts (CNTP's kept trials); the rejected slots
        stay in the KV cache but are masked out for good. Returns the logits to pick each
        row's next token from, and the rows' next positions."""
        width = out.shape[1]
        probs_of = (lambda _: None) if params.greedy else (lambda row_logits: _probs(row_logits, params))
        picked, positions, keep = [], [], []
        for b, (row, draft) in enumerate(zip(active, drafts)):
            kept, rejected = (len(draft), None) if b in sure else accept(out[b], draft, probs_of, generator)
            logprobs = torch.log_softmax(out[b, :kept].float(), dim=-1)
            used, going = 0, True
            while going and used < kept:
                going = take(row, draft[used], float(logprobs[used, draft[used]]))
                used += 1
            if going:
                keep.append(b)
                if rejected is not None and used == kept:
                    forbid[row] = rejected
            mask[b, mask.shape[1] - width + 1 + used :] = 0
            if b not in sure:
                self.speculation.add(len(draft), used)
            picked.append(out[b, used])
            positions.append(next_pos[b] + 1 + used)
        return torch.stack(picked), torch.stack(positions), keep

    def _finish_rows(self, rows, out_ids, active, keep, cache, mask, publish: bool, *aligned):
        """Drop the finished rows (batch positions not in `keep`) from the batch, publishing
        their KV first when asked to; returns the mask and `aligned` tensors cut to `keep`."""
        if publish:
            for b in sorted(set(range(len(active))) - set(keep)):
                # The cache holds the prompt and every output token but the last (never fed).
                self._publish(rows[active[b]] + out_ids[active[b]][:-1], cache, mask, b, known=len(rows[active[b]]))
        if not keep:
            return None
        index = torch.tensor(keep)
        cache.batch_select_indices(index)
        return [mask[index], *(t[index] for t in aligned)]

    def _prefill(self, rows: list[list[int]]):
        """(cache, attention mask, last logits, tokens loaded from the prefix cache per row).
        Identical prompts (the n samples of one question) are prefilled once and copied."""
        unique = list(dict.fromkeys(tuple(r) for r in rows))
        if len(unique) == len(rows):
            return self._prefill_distinct(rows)
        cache, mask, logits, cached = self._prefill_distinct([list(u) for u in unique])
        order = [unique.index(tuple(r)) for r in rows]
        index = torch.tensor(order)
        cache.batch_select_indices(index)
        return cache, mask[index], logits[index], [cached[i] for i in order]

    def _prefill_distinct(self, rows: list[list[int]]):
        """The prompts put into a fresh KV cache. Each row's longest cached prefix is loaded rather than computed. The batch is laid out
        as [cached region | computed region], each row right-aligned in both, padding masked:
        positions count a row's own tokens only, so a token's KV is the same at any offset.
        The chunks computed here are published for the next prompt that shares them."""
        from transformers import DynamicCache

        pad = self.tokenizer.pad_token_id
        hits = [self.prefix_cache.lookup(r, len(r) - 1) if self.prefix_cache else (0, None, None) for r in rows]
        width_cached = max(n for n, _, _ in hits)
        rest = [r[n:] for r, (n, _, _) in zip(rows, hits)]
        width = max(len(r) for r in rest)
        cache = DynamicCache()
        cached_mask = torch.zeros(len(rows), width_cached, dtype=torch.long)
        if width_cached:
            sample = next(k for n, k, _ in hits if n)
            layers, heads, _, dim = sample.shape
            keys = torch.zeros(layers, len(rows), heads, width_cached, dim, dtype=sample.dtype)
            values = torch.zeros_like(keys)
            for i, (n, k, v) in enumerate(hits):
                if n:
                    keys[:, i, :, width_cached - n :] = k
                    values[:, i, :, width_cached - n :] = v
                    cached_mask[i, width_cached - n :] = 1
            for layer in range(layers):
                cache.update(keys[layer], values[layer], layer)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rest])
        rest_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rest])
        mask = torch.cat([cached_mask, rest_mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_cached:]
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache).logits[:, -1, :]
        if self.prefix_cache:
            for b, (ids, (n, _, _)) in enumerate(zip(rows, hits)):
                self._publish(ids, cache, mask, b, known=n)
        return cache, mask, logits, [n for n, _, _ in hits]

    def _publish(self, ids: list[int], cache, mask: torch.Tensor, b: int, known: int) -> None:
        """Publish the chunks of `ids` past `known` tokens from batch row `b` of `cache`."""
        c = self.prefix_cache.chunk_tokens if self.prefix_cache else 0
        if not c or len(ids) // c * c <= known:
            return
        full = len(ids) // c * c
        # Only the KV past the known chunks is copied out of the batch.
        where = mask[b].nonzero().squeeze(-1)[self.prefix_cache.skipped_tokens(known) : full]
        keys = torch.stack([layer.keys[b][:, where] for layer in cache.layers])
        values = torch.stack([layer.values[b][:, where] for layer in cache.layers])
        self.prefix_cache.publish(ids[:full], keys, values, known_tokens=known)

    def _completion(self, prompt_ids, ids, logprobs, finish, stop, cached: int, trials: int) -> Completion:
        visible = [t for t in ids if t not in self._eos]
        text, matched = cut_at_stop(self.tokenizer.decode(visible, skip_special_tokens=True), stop)
        return Completion(
            text=text,
            token_ids=ids,
            logprobs=logprobs,
            finish_reason=finish,
            stop_reason=matched,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(ids),
            cached_tokens=cached,
            trial_tokens=trials,
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


def _mask(logits: torch.Tensor, allowed: list[np.ndarray]) -> torch.Tensor:
    """Logits with every token outside its row's allowed ids set to -inf."""
    # Built in numpy: for vocabulary-sized work this small, torch's thread pool costs more than it saves.
    blocked = np.ones(tuple(logits.shape), dtype=bool)
    for b, ids in enumerate(allowed):
        blocked[b, ids] = False
    return logits.masked_fill(torch.from_numpy(blocked), float("-inf"))


def _pick(logits: torch.Tensor, params: SamplingParams, generator) -> torch.Tensor:
    if params.greedy:
        return logits.argmax(dim=-1)
    return torch.multinomial(_probs(logits, params), 1, generator=generator).squeeze(-1)


def _probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The sampling distribution over the last dimension: temperature, then top-p ."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > params.top_p  # keep the first token past top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def _ends_with_stop(tokenizer, ids: list[int], stop: tuple[str, ...], window: int) -> bool:
    tail = tokenizer.decode(ids[-window:], skip_special_tokens=True)
    return any(s in tail for s in stop)


def _copy(c: Completion) -> Completion:
    return Completion(**{**c.to_dict(), "token_ids": list(c.token_ids), "logprobs": list(c.logprobs)})

