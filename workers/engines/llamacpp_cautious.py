"""Cautious next-token prediction (Wang et al., ACL Findings 2025) on a llama.cpp server.

The transformers engine branches inside its decode loop (`cautious.py`); a server decodes on
its own, so here the same rule runs from the outside, in rounds:

1. decode greedily (or as asked) with each token's top-K log-probabilities, at most
   `ROUND_TOKENS` at a time (what follows a branch point is decoded for nothing, so a round
   is kept short; the next round reuses the prompt's KV from the server's cache);
2. find the first token whose next-token entropy, over those top K, is above the threshold
   (the tail beyond K is left out, so the entropy is a lower bound and the rule branches a
   little less often than with the full distribution);
3. keep the output before it and sample `trials` continuations from there in one request
   (`n_cmpl`, sharing the prompt's KV), each up to a punctuation mark or `span_tokens`;
4. keep the trial the model finds most likely (highest mean log-probability, unsampled), and
   go back to 1 after it.

Everything decoded and then dropped (the greedy tail after a branch point, every trial) is
extra compute, reported as `trial_tokens`, as the transformers engine reports its trials.
"""

from __future__ import annotations

import math
from typing import Callable

from workers.engines.base import Completion, SamplingParams
from workers.engines.options import CautiousSpec

TOP_K = 20  # log-probabilities per token the entropy is computed from
TRIAL_ENDS = (".", ",", ";", ":", "!", "?", "\n")
ROUND_TOKENS = 32  # tokens decoded per round before looking for a branch point


def entropy(top: list[dict]) -> float:
    return -sum(math.exp(t["logprob"]) * t["logprob"] for t in top)


def _text(steps: list[dict]) -> str:
    return b"".join(bytes(step["bytes"]) for step in steps).decode("utf-8", errors="ignore")


def cautious_completion(post: Callable[[dict], dict], prompt: str, params: SamplingParams, spec: CautiousSpec, base: dict) -> Completion:
    """One completion of `prompt` under CNTP; `post` sends a /completion body, `base` holds the
    request's sampling fields (temperature, top-p, the other samplers switched off)."""
    out = Completion(text="", finish_reason="length")
    trial_temperature = params.temperature or spec.temperature
    first = True
    while out.completion_tokens < params.max_tokens:
        left = params.max_tokens - out.completion_tokens
        reply = post({**base, "prompt": prompt + out.text, "n_predict": min(left, ROUND_TOKENS), "stop": list(params.stop), "n_probs": TOP_K})
        if first:
            out.prompt_tokens = int(reply.get("tokens_evaluated", 0))
            out.cached_tokens = int((reply.get("timings") or {}).get("cache_n", 0))
            first = False
        steps = reply.get("completion_probabilities") or []
        branch = next((i for i, step in enumerate(steps) if spec.trials(entropy(step.get("top_logprobs") or []))), None)
        _count(out, "cautious_steps", len(steps) if branch is None else branch + 1)
        if branch is None:
            if not steps:  # nothing more came, and no stop said why: what there is, is the output
                return out
            out.text += reply.get("content", "")
            out.logprobs += [float(s["logprob"]) for s in steps]
            out.token_ids += list(reply.get("tokens") or [])
            out.completion_tokens += int(reply.get("tokens_predicted", 0))
            if reply.get("stop_type") in ("eos", "word"):
                out.finish_reason, out.stop_reason = "stop", reply.get("stopping_word") or None
                return out
            continue
        kept = steps[:branch]
        out.text += _text(kept)
        out.logprobs += [float(s["logprob"]) for s in kept]
        out.token_ids += [int(s["id"]) for s in kept]
        out.completion_tokens += branch
        out.trial_tokens += int(reply.get("tokens_predicted", 0)) - branch
        trials = spec.trials(entropy(steps[branch].get("top_logprobs") or []))
        _count(out, "cautious_branched", 1)
        body = {
            **base,
            "prompt": prompt + out.text,
            "n_predict": min(spec.span_tokens, params.max_tokens - out.completion_tokens),
            "n_cmpl": trials,
            "temperature": trial_temperature,
            "stop": [*TRIAL_ENDS, *params.stop],
            "n_probs": 1,
        }
        found = post(body)
        candidates = found if isinstance(found, list) else [found]
        out.trial_tokens += sum(int(c.get("tokens_predicted", 0)) for c in candidates)
        best = max(candidates, key=_mean_logprob)
        ending = best.get("stopping_word") or ""
        user_stop = best.get("stop_type") == "word" and ending in params.stop
        probs = best.get("completion_probabilities") or []
        out.text += best.get("content", "") + ("" if user_stop else ending)
        out.logprobs += [float(p["logprob"]) for p in probs]
        out.token_ids += list(best.get("tokens") or [])
        out.completion_tokens += int(best.get("tokens_predicted", 0))
        if best.get("stop_type") == "eos" or user_stop:
            out.finish_reason, out.stop_reason = "stop", ending if user_stop else None
            return out
    return out


def _count(out: Completion, counter: str, n: int) -> None:
    # The transformers engine's counters (workers.engines.cautious), so a benchmark reads both alike.
    out.decode[counter] = out.decode.get(counter, 0) + n


def _mean_logprob(candidate: dict) -> float:
    probs = candidate.get("completion_probabilities") or []
    return sum(p["logprob"] for p in probs) / len(probs) if probs else -math.inf
