"""The SQLite response cache, on the real bundled model."""

import pytest

from valdemo.models import GenParams, ResponseCache, get_model, user
from valdemo.models.cache import CachedModel, cache_key


def test_cache_key_depends_on_everything_but_nothing_secret():
    base = cache_key("chat", "openai", "m", {"messages": [{"role": "user", "content": "x"}], "params": {"t": 0}})
    assert base != cache_key("chat", "openai", "m2", {"messages": [{"role": "user", "content": "x"}], "params": {"t": 0}})
    assert base != cache_key("chat", "local", "m", {"messages": [{"role": "user", "content": "x"}], "params": {"t": 0}})
    assert base != cache_key("chat", "openai", "m", {"messages": [{"role": "user", "content": "y"}], "params": {"t": 0}})
    assert base != cache_key("chat", "openai", "m", {"messages": [{"role": "user", "content": "x"}], "params": {"t": 1}})


def test_cache_persists_across_instances(tmp_path):
    path = tmp_path / "c.sqlite"
    first = ResponseCache(path)
    first.put("k", {"text": "hello"})
    second = ResponseCache(path)
    assert second.get("k") == {"text": "hello"}
    assert second.get("missing") is None
    assert second.stats() == {"hits": 1, "misses": 1, "entries": 1}


@pytest.mark.slow
def test_cached_model_serves_rerun_from_cache(tmp_path, local_model_nocache):
    cache = ResponseCache(tmp_path / "c.sqlite")
    model = CachedModel(local_model_nocache, cache)
    convs = [user("Name an animal."), user("Name a tree.")]
    params = GenParams(max_new_tokens=8)
    cold = model.chat_batch(convs, params)
    assert not any(r.cached for r in cold) and cache.misses == 2
    seen = []
    warm = model.chat_batch(convs, params, progress=lambda d, t: seen.append((d, t)))
    assert all(r.cached for r in warm) and cache.hits == 2
    assert [r.text for r in warm] == [r.text for r in cold]
    assert seen[-1] == (2, 2)
    # A different parameter is a different key.
    assert not model.chat(convs[0], GenParams(max_new_tokens=9)).cached
    # Answer probabilities (what choose() reads) are cached too.
    from valdemo.core.choose import choose

    hits = cache.hits
    p1 = model.answer_probs(convs[0], ["A", "B"])
    (c,) = choose(model, [convs[0]], ["A", "B"])
    assert c.via == "probs" and cache.hits == hits + 1  # the same question, answered from the cache
    assert c.mass == pytest.approx(sum(p1.values()), abs=1e-6)
    # Streaming from the cache yields the whole stored text.
    assert "".join(model.stream(convs[0], params)) == cold[0].text


def test_bypass_switch_returns_bare_model(settings):
    bare = get_model("local", use_cache=False)
    assert not isinstance(bare, CachedModel)
    assert isinstance(get_model("local"), CachedModel)
