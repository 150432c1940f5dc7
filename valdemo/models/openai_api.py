"""Any OpenAI-compatible chat endpoint: OpenAI, vLLM, TGI, llama.cpp, Ollama, `transformers serve`.

Retries are ours, not the client's, so they are bounded and visible: 429, 5xx,
timeouts and dropped connections are retried with exponential backoff
(honouring ``Retry-After``), everything else fails at once with a readable
message. Batches run with bounded concurrency. The API key is held by the
client object only: it is never logged, cached or put in an error message.
"""

from __future__ import annotations

import contextvars
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..config import get_settings
from ..core import cancel
from .base import (
    Conversation,
    GenParams,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelResponseError,
    ModelTimeout,
    ModelUnavailable,
    ProgressFn,
    Reply,
    answer_strings,
    ends_answer,
    validate_conversation,
)
from .endpoint import DEFAULT_BASE_URL, ModelRefused, guarded_transport, normalise_base_url

log = logging.getLogger(__name__)
T = TypeVar("T")


def _wait(seconds: float) -> None:
    """Sleep before a retry; a Stop ends the wait (and the run) within 0.2 s."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        cancel.check()
        time.sleep(min(left, 0.2))
    cancel.check()


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    raw = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


class OpenAIChatModel:
    """A model behind an OpenAI-compatible ``/v1/chat/completions``."""

    backend = "openai"
    is_bundled = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        spec: str | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        concurrency: int | None = None,
        backoff_s: float | None = None,
        guard: bool = False,
        key_note: str = "",
        server_endpoint: bool = False,
    ):
        """``guard``: check every connection against the public-mode address rules (visitor URLs).
        ``key_note``: why no key is sent (shown with a 401/403). ``server_endpoint``: this is
        the server-configured endpoint, so the server's own OPENAI_* settings (organisation,
        project, custom headers) apply; elsewhere they are stripped from every request."""
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is in requirements
            raise ModelUnavailable("the openai backend needs `pip install openai`") from exc
        settings = get_settings()
        self._openai = openai
        self.model_id = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = normalise_base_url(self.base_url)  # part of every cache key
        self.key_note = key_note
        self.spec = spec or f"openai:{model}@{self.base_url}"
        self.timeout_s = timeout_s if timeout_s is not None else settings.openai_timeout_s
        self.retries = retries if retries is not None else settings.openai_retries
        self.concurrency = concurrency or settings.openai_concurrency
        self.backoff_s = backoff_s if backoff_s is not None else settings.openai_backoff_s
        # Redirects are never followed: a redirect could carry a request (and, to the same
        # origin, a key) somewhere the checks above never saw.
        http_client = openai.DefaultHttpxClient(
            timeout=self.timeout_s,
            follow_redirects=False,
            transport=guarded_transport(self.base_url) if guard else None,
            trust_env=not guard,
            event_hooks={} if server_endpoint else {"request": [_strip_server_headers(api_key)]},
        )
        # Servers without auth (local vLLM, transformers serve) still need a non-empty key.
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            timeout=self.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        self._logprobs_supported: bool | None = None
        self.calls = 0  # requests actually sent (retries included)
        self._calls_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model_id!r} @ {self.base_url})"

    # -- the retry loop ------------------------------------------------------------
    def _with_retries(self, fn: Callable[[], T]) -> T:
        openai = self._openai
        attempt = 0
        while True:
            cancel.check()  # Stop: no request (or retry) after it
            with self._calls_lock:
                self.calls += 1
            try:
                return fn()
            except openai.AuthenticationError as exc:
                if self.key_note:
                    raise ModelAuthError(f"{self.base_url} wants a key (401): {self.key_note}") from exc
                raise ModelAuthError(f"{self.base_url} refused the API key (401); check the key") from exc
            except openai.PermissionDeniedError as exc:
                raise ModelAuthError(f"{self.base_url} denied access to {self.model_id!r} (403)"
                                     + (f": {self.key_note}" if self.key_note else "")) from exc
            except openai.NotFoundError as exc:
                raise ModelUnavailable(f"{self.base_url} has no model {self.model_id!r} (404)") from exc
            except openai.BadRequestError as exc:
                raise ModelResponseError(f"{self.base_url} rejected the request (400): {_short(exc)}") from exc
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:
                refused = _refusal_in(exc)
                if refused is not None:
                    raise ModelRefused(str(refused)) from exc
                if attempt >= self.retries:
                    raise _final_error(exc, self, attempt + 1) from exc
                delay = _retry_after(exc)
                if delay is None:
                    delay = self.backoff_s * (2**attempt) * (1 + 0.1 * random.random())
                delay = min(delay, self.timeout_s)
                log.info("%s: %s, retry %d/%d in %.2fs", self.base_url, type(exc).__name__,
                            attempt + 1, self.retries, delay)
                _wait(delay)
                attempt += 1
            except openai.APIStatusError as exc:
                if 300 <= exc.status_code < 400:
                    where = exc.response.headers.get("location", "") if exc.response is not None else ""
                    raise ModelResponseError(
                        f"{self.base_url} answered with a redirect ({exc.status_code}"
                        + (f" to {where[:200]}" if where else "")
                        + "); redirects are not followed: use the final URL as the base URL") from exc
                if exc.status_code >= 500 and attempt < self.retries:
                    _wait(self.backoff_s * (2**attempt))
                    attempt += 1
                    continue
                raise ModelResponseError(f"{self.base_url} answered {exc.status_code}: {_short(exc)}") from exc
            except openai.APIResponseValidationError as exc:
                raise ModelResponseError(f"{self.base_url} sent a malformed response") from exc
            except ValueError as exc:  # malformed JSON bodies surface as ValueError in some versions
                raise ModelResponseError(f"{self.base_url} sent a malformed response: {exc}") from exc

    def _request(self, messages: Conversation, params: GenParams, **extra):
        kwargs = {
            "model": self.model_id,
            "messages": validate_conversation(messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.top_p < 1.0:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            kwargs["seed"] = params.seed
        kwargs.update(extra)
        return kwargs

    # -- ChatModel -------------------------------------------------------------------
    def chat(self, messages: Conversation, params: GenParams | None = None) -> Reply:
        params = params or GenParams()
        kwargs = self._request(messages, params)
        start = time.perf_counter()
        completion = self._with_retries(lambda: self._client.chat.completions.create(**kwargs))
        choices = getattr(completion, "choices", None)
        if not choices:
            raise ModelResponseError(f"{self.base_url} returned no choices")
        choice = choices[0]
        text = (choice.message.content if choice.message else None) or ""
        return Reply(
            text=text,
            backend=self.backend,
            model=self.model_id,
            latency_s=time.perf_counter() - start,
            finish_reason=choice.finish_reason,
        )

    def _map(self, fn: Callable[[T], object], items: Sequence[T], progress: ProgressFn | None) -> list:
        results: list = [None] * len(items)
        done = 0
        lock = threading.Lock()

        token = cancel.current()

        def one(i: int) -> None:
            nonlocal done
            if token is not None:
                token.check()  # Stop: no further request is sent (issue 12)
            results[i] = fn(items[i])
            with lock:
                done += 1
                if progress:
                    progress(done, len(items))

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(items)))) as pool:
            # each call carries the run's context (its Stop token) into the pool's thread
            for future in [pool.submit(contextvars.copy_context().run, one, i) for i in range(len(items))]:
                future.result()
        return results

    def map_calls(self, fn: Callable[[T], object], items: Sequence[T], progress: ProgressFn | None = None) -> list:
        """``fn`` over ``items`` with this endpoint's bounded concurrency: the calls are independent,
        so a caller (the response cache) can keep each result as it returns."""
        return self._map(fn, items, progress)

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        params: GenParams | None = None,
        progress: ProgressFn | None = None,
    ) -> list[Reply]:
        return self._map(lambda c: self.chat(c, params), conversations, progress)

    def stream(self, messages: Conversation, params: GenParams | None = None) -> Iterator[str]:
        params = params or GenParams()
        kwargs = self._request(messages, params, stream=True)
        stream = self._with_retries(lambda: self._client.chat.completions.create(**kwargs))
        try:
            for chunk in stream:
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content if chunk.choices[0].delta else None
                if piece:
                    yield piece
        except (self._openai.APITimeoutError, self._openai.APIConnectionError) as exc:
            raise ModelTimeout(f"{self.base_url} stopped answering mid-stream") from exc

    def answer_probs(self, messages: Conversation, options: Sequence[str],
                     answers: Mapping[str, str] | None = None) -> dict[str, float] | None:
        """Raw probability of each complete answer, from the reply's top logprobs.

        An endpoint shows only the top logprobs of the reply it actually wrote, so
        this is an approximation of complete-answer scoring: a first token whose text
        (leading spaces aside) is exactly an answer string counts with its
        probability; for the token the reply actually began with, that probability
        is multiplied by the next position's mass on tokens that end the answer
        (:func:`ends_answer`), so a reply "A fair split" puts little mass on "A".
        Answers that cannot be one token (they hold a space) are not scored: None.

        Not renormalised: where no option is among the top logprobs every value is
        0.0, and the caller counts the answer as unreadable. None where the server
        gives no logprobs (callers then generate and parse).
        """
        answer_of = answer_strings(options, answers)
        if self._logprobs_supported is False or any(any(c.isspace() for c in a) for a in answer_of.values()):
            return None
        kwargs = self._request(messages, GenParams(max_new_tokens=2), logprobs=True, top_logprobs=20)
        try:
            completion = self._with_retries(lambda: self._client.chat.completions.create(**kwargs))
        except ModelResponseError:
            self._logprobs_supported = False
            return None
        choices = getattr(completion, "choices", None) or []
        content = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
        if content == []:  # logprobs of an empty reply: no mass on any option
            return dict.fromkeys(options, 0.0)
        if not content or not content[0].top_logprobs:
            self._logprobs_supported = False
            return None
        self._logprobs_supported = True
        option_of = {a: o for o, a in answer_of.items()}
        said = content[0].token or ""
        if len(content) > 1 and content[1].top_logprobs:
            ends = sum(math.exp(t.logprob) for t in content[1].top_logprobs if ends_answer(t.token or ""))
        else:  # the reply was that one token (or the server cut it): it ended there
            ends = 1.0
        mass = dict.fromkeys(options, 0.0)
        for top in content[0].top_logprobs:
            token = (top.token or "").lstrip()
            if token in option_of:
                mass[option_of[token]] += math.exp(top.logprob) * (min(1.0, ends) if top.token == said else 1.0)
        return mass

    def answer_probs_batch(
        self,
        conversations: Sequence[Conversation],
        options: Sequence[str],
        progress: ProgressFn | None = None,
        answers: Mapping[str, str] | None = None,
    ) -> list[dict[str, float]] | None:
        if not conversations:
            return []
        first = self.answer_probs(conversations[0], options, answers)
        if first is None:
            return None
        rest = self._map(lambda c: self.answer_probs(c, options, answers), list(conversations[1:]), None)
        if any(r is None for r in rest):
            return None
        if progress:
            progress(len(conversations), len(conversations))
        return [first, *rest]


def _refusal_in(exc: BaseException) -> ModelRefused | None:
    """A public-mode refusal raised while connecting, wrapped by the client's own errors."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ModelRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


#: Headers the openai client fills from the server's environment (OPENAI_ORG_ID, OPENAI_PROJECT_ID).
_SERVER_HEADERS = ("openai-organization", "openai-project")


def _strip_server_headers(api_key: str | None):
    """A request hook for endpoints other than the configured one: only the visitor's key (or
    no Authorization header at all) may travel, and nothing the client took from the server's
    environment (organisation, project, OPENAI_CUSTOM_HEADERS) goes along."""
    import os

    custom = [line.split(":", 1)[0].strip().lower()
              for line in os.environ.get("OPENAI_CUSTOM_HEADERS", "").splitlines() if ":" in line]

    def hook(request) -> None:
        for name in (*_SERVER_HEADERS, *custom):
            if name and name in request.headers:
                del request.headers[name]
        if api_key:
            request.headers["authorization"] = f"Bearer {api_key}"
        elif "authorization" in request.headers:
            del request.headers["authorization"]

    return hook


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _final_error(exc: Exception, model: OpenAIChatModel, tries: int) -> ModelError:
    openai = model._openai
    where = model.base_url
    if isinstance(exc, openai.RateLimitError):
        return ModelRateLimited(f"{where} is rate limiting (429) after {tries} tries; wait and try again")
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(f"{where} did not answer within {model.timeout_s:g}s ({tries} tries)")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(f"cannot reach {where} ({tries} tries); check the base URL")
    return ModelResponseError(f"{where} failed with a server error after {tries} tries: {_short(exc)}")
