"""SQLite response cache, and a ChatModel wrapper that uses it.

Keys hash the backend, the model id, the messages, the generation parameters
and the kind of call, scoped by what the model really is: the normalised base
URL of an endpoint (two servers that both call their model "m" never share an
answer), or the resolved folder or hub revision of a local model. Never the API
key: a cached answer is an answer of the model, whoever asked. Keys are
versioned (:data:`KEY_VERSION`); entries written under an older format are
never served. Greedy and seeded calls are deterministic, so caching is
sound for them; sampled calls without a seed are cached too, so callers that
want n distinct samples pass n distinct seeds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ..core.cancel import Stopped
from .base import ChatModel, Conversation, GenParams, ProgressFn, Reply, answer_strings


def cache_key(kind: str, backend: str, model: str, payload: dict) -> str:
    blob = json.dumps(
        {"kind": kind, "backend": backend, "model": model, **payload},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


#: Bumped whenever what a key means changes; entries under older keys are never looked up.
KEY_VERSION = 2


class ScopedCache:
    """A view of a :class:`ResponseCache` whose keys are scoped to one model identity.

    ``scope`` is called once, on first use (so a local model's folder is resolved
    only when the model is used). Counters, ``stats`` and ``clear`` are the shared
    cache's.
    """

    def __init__(self, cache: ResponseCache, scope: Callable[[], str]):
        self._cache = cache
        self._scope_fn = scope
        self._scope: str | None = None

    def _key(self, key: str) -> str:
        if self._scope is None:
            self._scope = self._scope_fn()
        blob = json.dumps({"v": KEY_VERSION, "scope": self._scope, "key": key}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._cache.get(self._key(key))

    def put(self, key: str, value: dict) -> None:
        self._cache.put(self._key(key), value)

    def __len__(self) -> int:
        return len(self._cache)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._cache, name)


def model_scope(model: ChatModel) -> str:
    """What a model is, for cache keys: ``backend|endpoint`` (see ``endpoint`` on each backend)."""
    endpoint = getattr(model, "endpoint", None)
    return f"{model.backend}|{endpoint if endpoint is not None else model.spec}"


class ResponseCache:
    """A thread-safe key -> JSON store in one SQLite file, with hit/miss counters."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._conn.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return json.loads(row[0])

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, json.dumps(value, ensure_ascii=False), time.time()),
            )
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM responses")
            self._conn.commit()

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self)}


_caches: dict[Path, ResponseCache] = {}
_caches_lock = threading.Lock()


def get_cache(path: Path | str) -> ResponseCache:
    """One ResponseCache per file per process."""
    resolved = Path(path).resolve()
    with _caches_lock:
        if resolved not in _caches:
            _caches[resolved] = ResponseCache(resolved)
        return _caches[resolved]


def _length(conversation: Conversation) -> int:
    return sum(len(m["content"]) for m in conversation)


class NotCached(Exception):
    """A replaying model was asked something it never answered (see :meth:`CachedModel.replaying`)."""


class _NoCalls:
    """Stands in for the backend of a replaying model: every call that would reach it is refused;
    everything else (spec, flags, endpoint) is the backend's."""

    _CALLS = frozenset({"map_calls", "warm"})

    def __init__(self, inner: ChatModel):
        self._inner = inner

    def __getattr__(self, name: str):
        if name in self._CALLS:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def chat(self, *args, **kwargs):
        raise NotCached("not answered before the run stopped")

    def chat_batch(self, *args, **kwargs):
        raise NotCached("not answered before the run stopped")

    def stream(self, *args, **kwargs):
        raise NotCached("not answered before the run stopped")

    def answer_probs(self, *args, **kwargs):
        return None  # choose() then reads the generated answer, which must be in the cache too

    def answer_probs_batch(self, *args, **kwargs):
        return None


class CachedModel:
    """Wraps any ChatModel; answers from the cache where it can, stores what it gets.

    Every answer is stored as soon as it exists, not when the whole batch ends, so a run that is
    killed midway and started again repeats no completed call (issue 19): an endpoint's calls
    (inner models with ``map_calls``) are stored one by one as they return; a local model's
    padded batches run in chunks of :attr:`CHUNK` conversations (shortest first, so each chunk
    pads little), each chunk stored before the next starts.
    """

    #: Conversations per inner batch call for models that batch by padding (local).
    CHUNK = 64

    def __init__(self, inner: ChatModel, cache: ResponseCache):
        self.inner = inner
        self.cache = ScopedCache(cache, lambda: model_scope(inner))
        self.spec = inner.spec
        self.backend = inner.backend
        self.model_id = inner.model_id
        self.is_bundled = inner.is_bundled

    def __repr__(self) -> str:
        return f"CachedModel({self.inner!r})"

    def replaying(self) -> CachedModel:
        """This model answering from the cache only: a call it never answered raises
        :class:`NotCached` (how a stopped run finds what finished, :mod:`valdemo.core.progress`)."""
        clone = copy.copy(self)
        clone.inner = _NoCalls(self.inner)
        return clone

    def _chat_key(self, messages: Conversation, params: GenParams) -> str:
        return cache_key("chat", self.backend, self.model_id, {"messages": messages, "params": params.as_dict()})

    def _from_cache(self, value: dict) -> Reply:
        return Reply(
            text=value["text"],
            backend=self.backend,
            model=self.model_id,
            latency_s=0.0,
            cached=True,
            finish_reason=value.get("finish_reason"),
        )

    def _store(self, key: str, reply: Reply) -> None:
        self.cache.put(key, {"text": reply.text, "finish_reason": reply.finish_reason})

    def chat(self, messages: Conversation, params: GenParams | None = None) -> Reply:
        params = params or GenParams()
        key = self._chat_key(messages, params)
        hit = self.cache.get(key)
        if hit is not None:
            return self._from_cache(hit)
        reply = self.inner.chat(messages, params)
        self._store(key, reply)
        return reply

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        params: GenParams | None = None,
        progress: ProgressFn | None = None,
    ) -> list[Reply]:
        params = params or GenParams()
        keys = [self._chat_key(c, params) for c in conversations]
        out: list[Reply | None] = []
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            out.append(self._from_cache(hit) if hit is not None else None)
            if hit is None:
                todo.append(i)
        total, done_before = len(conversations), len(conversations) - len(todo)
        if progress:
            progress(done_before, total)

        def put(i: int, reply: Reply) -> None:
            self._store(keys[i], reply)
            out[i] = reply

        self._compute(conversations, todo, lambda c: self.inner.chat(c, params),
                      lambda cs, p: self.inner.chat_batch(cs, params, p), put, progress, done_before)
        return out  # type: ignore[return-value]

    def _compute(self, conversations, todo, one, batch, put, progress, done_before, first_alone=False) -> bool:
        """Answer ``conversations[i]`` for i in ``todo``, calling ``put(i, value)`` for each answer as
        soon as it exists. ``one(c)`` answers one conversation; ``batch(cs, progress)`` several (None:
        the backend cannot). With ``first_alone`` an endpoint answers the first conversation by itself
        and stops if it cannot (None). False where a call answered None."""
        if not todo:
            return True
        total = len(conversations)
        mapper = getattr(self.inner, "map_calls", None)
        if mapper is not None:  # independent calls (an endpoint): each stored as it returns
            if first_alone:
                value = one(conversations[todo[0]])
                if value is None:
                    return False
                put(todo[0], value)
                done_before, todo = done_before + 1, todo[1:]

            def call(i: int):
                value = one(conversations[i])
                if value is not None:
                    put(i, value)
                return value

            inner_progress = (lambda d, _t: progress(done_before + d, total)) if progress else None
            return all(v is not None for v in mapper(call, todo, inner_progress))
        order = sorted(todo, key=lambda i: _length(conversations[i]))  # padded batches: chunked, shortest first
        for start in range(0, len(order), self.CHUNK):
            part = order[start : start + self.CHUNK]
            base = done_before + start
            try:
                values = batch([conversations[i] for i in part],
                               (lambda d, _t, base=base: progress(base + d, total)) if progress else None)
            except Stopped as exc:  # Stop: keep the answers that were finished (issue 12)
                for i, value in zip(part, exc.partial or [], strict=False):
                    if value is not None:
                        put(i, value)
                raise
            if values is None:
                return False
            for i, value in zip(part, values, strict=True):
                put(i, value)
        return True

    def stream(self, messages: Conversation, params: GenParams | None = None) -> Iterator[str]:
        params = params or GenParams()
        key = self._chat_key(messages, params)
        hit = self.cache.get(key)
        if hit is not None:
            yield hit["text"]
            return
        pieces: list[str] = []
        for piece in self.inner.stream(messages, params):
            pieces.append(piece)
            yield piece
        self.cache.put(key, {"text": "".join(pieces), "finish_reason": None})

    def _probs_key(self, messages: Conversation, options: Sequence[str], answers: Mapping[str, str] | None) -> str:
        # "answer_probs": raw probabilities of complete answers (older "probs" entries held
        # first-token probabilities renormalised over options, and are not reused).
        return cache_key("answer_probs", self.backend, self.model_id,
                         {"messages": messages, "answers": answer_strings(options, answers)})

    def answer_probs(self, messages: Conversation, options: Sequence[str],
                     answers: Mapping[str, str] | None = None) -> dict[str, float] | None:
        key = self._probs_key(messages, options, answers)
        hit = self.cache.get(key)
        if hit is not None:
            return hit["probs"]
        probs = self.inner.answer_probs(messages, options, answers)
        if probs is not None:
            self.cache.put(key, {"probs": probs})
        return probs

    def answer_probs_batch(
        self,
        conversations: Sequence[Conversation],
        options: Sequence[str],
        progress: ProgressFn | None = None,
        answers: Mapping[str, str] | None = None,
    ) -> list[dict[str, float]] | None:
        keys = [self._probs_key(c, options, answers) for c in conversations]
        out: list[dict[str, float] | None] = []
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            out.append(hit["probs"] if hit is not None else None)
            if hit is None:
                todo.append(i)
        total, done_before = len(conversations), len(conversations) - len(todo)

        def put(i: int, probs: dict[str, float]) -> None:
            self.cache.put(keys[i], {"probs": probs})
            out[i] = probs

        if not self._compute(conversations, todo, lambda c: self.inner.answer_probs(c, options, answers),
                             lambda cs, p: self.inner.answer_probs_batch(cs, options, p, answers), put,
                             progress, done_before, first_alone=True):
            return None
        if progress:
            progress(total, total)
        return out  # type: ignore[return-value]
