"""Prompt-prefix KV store of the local backend (issue 19).

A conversation asked one question after another (SVO's six sliders in the sequential protocol,
each prompt carrying the earlier ones and the model's answers) is read again from its first token
on every call: by the sixth slider about 1,150 tokens, of which all but the last ~200 were read
on the call before. This store keeps the key/value tensors of recently read prompts, one row each,
so a prompt that extends one of them reads only its new tokens.

It holds tensors only (no text), matches only an identical token prefix, lives in the process
beside the loaded model and goes with it; memory is bounded (``VALDEMO_PREFIX_CACHE_MB``, least
recently used out first). A stored prompt that a newer one extends is dropped: the newer one
serves every prompt the old one could.

Only plain full-attention caches qualify (every layer a ``DynamicLayer``); a model with sliding-
window or other cache layers is read whole, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

#: A stored prefix's (key, value) per layer, each (1, heads, tokens, head_dim).
KV = list[tuple["object", "object"]]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    m = min(len(a), len(b))
    if m == 0:
        return 0
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def plain_layers(cache) -> bool:
    """True where every layer of a transformers cache is a plain, full-attention DynamicLayer."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # pragma: no cover - transformers is a requirement
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class PrefixStore:
    """Recently read prompts' KV tensors, keyed by their token ids; at most ``budget_bytes`` in all."""

    #: Shorter matches are not worth the padding they add to a batch.
    MIN_TOKENS = 8

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._entries: OrderedDict[tuple[int, ...], tuple[np.ndarray, KV, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, ids: Sequence[int]) -> tuple[int, KV | None, tuple[int, ...] | None]:
        """The longest stored prefix of ``ids`` that leaves at least one token to read:
        (its length, its KV, its key), or (0, None, None)."""
        if not self._entries:
            return 0, None, None
        arr = np.asarray(ids, dtype=np.int64)
        best, best_key = 0, None
        for key, (tokens, _kv, _size) in self._entries.items():
            n = min(common_prefix(tokens, arr), len(arr) - 1)
            if n > best:
                best, best_key = n, key
        if best < self.MIN_TOKENS or best_key is None:
            return 0, None, None
        self._entries.move_to_end(best_key)
        return best, self._entries[best_key][1], best_key

    def extends(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` extends a stored prompt whole (its own conversation asked before), without
        touching the order."""
        arr = np.asarray(ids, dtype=np.int64)
        return any(len(tokens) < len(arr) and common_prefix(tokens, arr) == len(tokens)
                   for tokens, _kv, _size in self._entries.values())

    def put(self, ids: Sequence[int], kv: KV, supersedes: tuple[int, ...] | None = None) -> None:
        """Keep ``kv`` (the whole prompt ``ids``); drop ``supersedes`` when ``ids`` extends it."""
        key = tuple(int(t) for t in ids)
        size = sum(k.element_size() * k.nelement() + v.element_size() * v.nelement() for k, v in kv)
        if size > self.budget:
            return
        if supersedes is not None and supersedes != key and key[: len(supersedes)] == supersedes:
            self._drop(supersedes)
        self._drop(key)
        self._entries[key] = (np.asarray(key, dtype=np.int64), kv, size)
        self.bytes += size
        while self.bytes > self.budget and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[int, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
