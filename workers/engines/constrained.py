"""JSON-schema constrained decoding over lm-format-enforcer.

lm-format-enforcer walks a character-level JSON-schema parser alongside a prefix tree of the
tokenizer's vocabulary and answers, for a sequence of generated tokens, which tokens may come
next. This module adds what plait's decode loop needs on top:

- the tokenizer data (vocabulary prefix tree, a few seconds to build) is built once per
  tokenizer and shared by every row and every call;
- one `JsonSchemaConstraint` per generated row, fed that row's generated ids each step, and
  `SchemaMask`, the decode stage that masks each row's logits to what its constraint allows;
- end of sequence is allowed exactly when the JSON value is complete, and then it is the
  only choice, so a row stops right after its closing brace instead of padding whitespace;
- integer `minimum`/`maximum` (which lm-format-enforcer does not check) are enforced by
  spelling small ranges as an `enum`. Wider numeric bounds, `multipleOf`, `uniqueItems` and
  other keywords the library skips stay unenforced: validate when they matter.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from typing import Any

import numpy as np
import torch
from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData
from transformers import PreTrainedTokenizerBase

from workers.engines.decoding import DecodeState

# Handed to lm-format-enforcer as "the" EOS id: it is offered exactly when the parser can end,
# so its presence marks a complete JSON value whatever EOS ids the engine itself uses.
_COMPLETE = -1

# Integer ranges up to this many values become an enum.
_MAX_ENUM = 1024
# Keywords whose values are JSON data, not subschemas.
_LITERAL_KEYWORDS = frozenset({"enum", "const", "default", "examples"})

_DATA: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, TokenEnforcerTokenizerData] = weakref.WeakKeyDictionary()
_DATA_LOCK = threading.Lock()


def tokenizer_data(tokenizer: PreTrainedTokenizerBase) -> TokenEnforcerTokenizerData:
    """lm-format-enforcer's view of `tokenizer`, built on first use and cached while it lives."""
    with _DATA_LOCK:
        data = _DATA.get(tokenizer)
        if data is None:
            data = TokenEnforcerTokenizerData(
                _regular_tokens(tokenizer),
                functools.partial(_decode, tokenizer),
                [_COMPLETE],
                use_bitmask=False,  # id lists beat its bitmasks here: the parser walk dominates either way
                vocab_size=len(tokenizer),
            )
            _DATA[tokenizer] = data
        return data


def _regular_tokens(tokenizer: PreTrainedTokenizerBase) -> list[tuple[int, str, bool]]:
    """(id, text, starts a word) for every non-special token."""
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    # Decoding after "0" keeps a leading space that a lone decode drops (SentencePiece);
    # a token whose text grows that way starts a new word.
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    alone = tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
    after_zero = [t[1:] for t in tokenizer.batch_decode([[zero, i] for i in ids], clean_up_tokenization_spaces=False)]
    return [(i, text, len(text) > len(bare)) for i, bare, text in zip(ids, alone, after_zero)]


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    # A trailing replacement character is half a UTF-8 sequence that the next token completes.
    return tokenizer.decode(ids, clean_up_tokenization_spaces=False).rstrip("\ufffd")


class JsonSchemaConstraint:
    """One generated row held to a JSON schema.

    `allowed(generated)` must be called with the row's generated ids after every step (each
    call extending the previous one by one token): the enforcer advances its parser from the
    previous call's state.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, schema: dict, eos_ids: set[int]):
        self._enforcer = TokenEnforcer(tokenizer_data(tokenizer), JsonSchemaParser(enforceable(schema)))
        self._eos = np.array(sorted(eos_ids), dtype=np.int64)

    def allowed(self, generated: list[int]) -> np.ndarray:
        """Token ids that may follow `generated`: EOS alone once the JSON is complete, else no EOS."""
        tokens = self._enforcer.get_allowed_tokens(generated).allowed_tokens
        if generated:
            # The enforcer keeps every state it visited, each with a vocabulary-sized list;
            # a row only moves forward, so its previous state is never asked for again.
            self._enforcer.prefix_states.pop(tuple(generated[:-1]), None)
        ids = np.fromiter(tokens, dtype=np.int64, count=len(tokens))
        if (ids == _COMPLETE).any():
            return self._eos
        return ids[~np.isin(ids, self._eos)]


class SchemaMask:
    """The logits mask of a JSON schema: each row's logits keep only what its constraint allows.
    The logprobs reported stay the model's unmasked ones."""

    def __init__(self, constraints: list):
        self.constraints = constraints  # one per row, each with allowed(generated ids) -> token ids

    def apply(self, state: DecodeState, logits: torch.Tensor) -> torch.Tensor:
        # Built in numpy: for vocabulary-sized work this small, torch's thread pool costs more than it saves.
        blocked = np.ones(tuple(logits.shape), dtype=bool)
        for b, row in enumerate(state.active):
            blocked[b, self.constraints[row].allowed(state.rows[row].ids)] = False
        return logits.masked_fill(torch.from_numpy(blocked), float("-inf"))


def enforceable(schema: Any) -> Any:
    """`schema` with each small integer range spelt as an enum, the form lm-format-enforcer checks."""
    if isinstance(schema, list):
        return [enforceable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v if k in _LITERAL_KEYWORDS else enforceable(v) for k, v in schema.items()}
    if out.get("type") == "integer" and "enum" not in out and "const" not in out:
        low, high = _integer_bounds(out)
        if low is not None and high is not None and 0 <= high - low < _MAX_ENUM:
            out["enum"] = list(range(low, high + 1))
    return out


def _integer_bounds(schema: dict) -> tuple[int | None, int | None]:
    """Smallest and largest integer the schema's minimum/maximum keywords admit (draft 4 and later)."""
    lows, highs = [], []
    minimum, maximum = _number(schema.get("minimum")), _number(schema.get("maximum"))
    if minimum is not None:  # draft 4 spells exclusivity as a boolean beside the bound
        lows.append(math.floor(minimum) + 1 if schema.get("exclusiveMinimum") is True else math.ceil(minimum))
    if maximum is not None:
        highs.append(math.ceil(maximum) - 1 if schema.get("exclusiveMaximum") is True else math.floor(maximum))
    if (bound := _number(schema.get("exclusiveMinimum"))) is not None:
        lows.append(math.floor(bound) + 1)
    if (bound := _number(schema.get("exclusiveMaximum"))) is not None:
        highs.append(math.ceil(bound) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
