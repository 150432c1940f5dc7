"""The prompt-prefix KV store's bookkeeping (valdemo/models/prefix.py), on small real tensors."""

import torch

from valdemo.models.prefix import PrefixStore, common_prefix


def _kv(tokens: int, layers: int = 2):
    return [(torch.zeros(1, 1, tokens, 4), torch.zeros(1, 1, tokens, 4)) for _ in range(layers)]


def _bytes(tokens: int, layers: int = 2) -> int:
    return layers * 2 * tokens * 4 * 4  # float32


def test_common_prefix():
    import numpy as np

    assert common_prefix(np.array([1, 2, 3]), np.array([1, 2, 4])) == 2
    assert common_prefix(np.array([1, 2]), np.array([1, 2, 3])) == 2
    assert common_prefix(np.array([], dtype=int), np.array([1])) == 0
    assert common_prefix(np.array([5]), np.array([1])) == 0


def test_match_finds_the_longest_prefix_and_leaves_a_token_to_read():
    store = PrefixStore(10**6)
    a, b = list(range(20)), list(range(10)) + [99] * 10
    store.put(a, _kv(20))
    store.put(b, _kv(20))
    n, kv, key = store.match(list(range(30)))
    assert n == 20 and key == tuple(a) and kv is not None
    n, _, key = store.match(list(range(10)) + [99] * 3)
    assert n == 12 and key == tuple(b)  # the whole query matches: all but its last token
    n, _, _ = store.match(a)  # the same prompt again: all but its last token
    assert n == 19
    assert store.match([7] * 30) == (0, None, None)
    assert store.match(list(range(PrefixStore.MIN_TOKENS - 1)) + [500]) == (0, None, None)  # too short to pay


def test_an_extension_replaces_its_prefix_and_the_budget_evicts_least_recently_used():
    store = PrefixStore(_bytes(30))
    store.put(list(range(10)), _kv(10))
    store.put(list(range(15)), _kv(15), supersedes=tuple(range(10)))
    assert len(store) == 1 and store.bytes == _bytes(15)
    store.put([100 + i for i in range(10)], _kv(10))
    assert len(store) == 2 and store.bytes == _bytes(25)
    store.match(list(range(15)) + [1])  # touch the first: the other is now least recently used
    store.put([200 + i for i in range(10)], _kv(10))
    assert store.bytes <= _bytes(30)
    assert store.match([100 + i for i in range(10)] + [1]) == (0, None, None)
    assert store.match(list(range(15)) + [1])[0] == 15
    store.put(list(range(100)), _kv(100))  # bigger than the whole budget: not kept
    assert store.match(list(range(100)) + [1])[0] == 15
    # supersedes only applies to a true prefix of the new prompt
    store.put([300 + i for i in range(10)], _kv(10), supersedes=tuple(range(15)))
    assert store.match(list(range(15)) + [1])[0] == 15


def test_extends_asks_for_a_whole_stored_prompt():
    store = PrefixStore(10**6)
    store.put(list(range(20)), _kv(20))
    assert store.extends(list(range(25)))
    assert not store.extends(list(range(20)))  # the same prompt, not an extension
    assert not store.extends(list(range(15)) + [99] * 10)  # shares only a prefix (a common system prompt)
