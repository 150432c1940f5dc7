"""The one small interface every method talks to, and the errors it raises.

A conversation is a list of ``{"role": ..., "content": ...}`` dicts (roles
``system``, ``user``, ``assistant``), as in the OpenAI chat format. Every
backend implements :class:`ChatModel`; methods never import a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Conversation = list[dict[str, str]]
#: Called with (done, total) while a batch runs.
ProgressFn = Callable[[int, int], None]

BUNDLED_CAVEAT = (
    "Demo model: the bundled SmolLM2-135M writes fluently but judges poorly. "
    "Its numbers show how the method works, not findings about values."
)


@dataclass(frozen=True)
class GenParams:
    """Generation settings. Part of the cache key, so keep them hashable."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 32_768:
            raise ValueError(f"max_new_tokens must be in 1..32768, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in 0..2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Reply:
    text: str
    backend: str
    model: str
    latency_s: float
    cached: bool = False
    finish_reason: str | None = None


class ModelError(Exception):
    """Base of every model failure; ``str(err)`` is a message for a person."""


class ModelSpecError(ModelError, ValueError):
    """A model spec that cannot be understood."""


class ModelUnavailable(ModelError):
    """The model cannot be loaded or reached (missing package, no network, bad URL)."""


class ModelAuthError(ModelError):
    """The endpoint refused the credentials."""


class ModelRateLimited(ModelError):
    """Still rate limited after every retry."""


class ModelTimeout(ModelError):
    """No answer within the configured timeout, after every retry."""


class ModelResponseError(ModelError):
    """The endpoint answered, but not with something usable."""


@runtime_checkable
class ChatModel(Protocol):
    """What a method needs from a model.

    Attributes:
        spec: the spec string the model was made from (``local``, ``openai:gpt-4o@URL``...).
        backend: ``local`` or ``openai``.
        model_id: the model's own name or path.
        is_bundled: True for the bundled 135M demo model (callers show the caveat).
    """

    spec: str
    backend: str
    model_id: str
    is_bundled: bool

    def chat(self, messages: Conversation, params: GenParams | None = None) -> Reply: ...

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        params: GenParams | None = None,
        progress: ProgressFn | None = None,
    ) -> list[Reply]: ...

    def stream(self, messages: Conversation, params: GenParams | None = None) -> Iterator[str]:
        """Yield pieces of the reply; joined they equal ``chat(...).text``."""
        ...

    def answer_probs(self, messages: Conversation, options: Sequence[str],
                     answers: Mapping[str, str] | None = None) -> dict[str, float] | None:
        """Probability that the reply is exactly each option's complete answer.

        ``answers`` maps each option to the answer string the prompt asks for
        (default: the option itself, e.g. "A"). A reply counts as that answer when
        it is the answer string followed by the end of the turn or by a boundary
        (see :func:`ends_answer`), so "A fair split" is not answer "A".

        The values are RAW probabilities, not renormalised: their sum is the
        probability mass that fell on the options, which
        :func:`valdemo.core.choose.choose` compares with its threshold. ``None``
        where the backend cannot score answers (callers then generate and parse).
        """
        ...

    def answer_probs_batch(
        self,
        conversations: Sequence[Conversation],
        options: Sequence[str],
        progress: ProgressFn | None = None,
        answers: Mapping[str, str] | None = None,
    ) -> list[dict[str, float]] | None: ...


def answer_strings(options: Sequence[str], answers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Option -> the exact answer string (default: the option itself); checks it is complete."""
    if not options:
        raise ModelError("scoring options needs at least one option")
    out = {o: (answers or {}).get(o, o) for o in options}
    extra = set(answers or {}) - set(options)
    if extra:
        raise ModelError(f"answers given for options not offered: {sorted(extra)}")
    if any(not isinstance(a, str) or not a.strip() for a in out.values()):
        raise ModelError("every option needs a non-empty answer string")
    if len(set(out.values())) != len(out):
        raise ModelError("two options share one answer string")
    return out


def ends_answer(following: str) -> bool:
    """Whether the text that follows an answer leaves it complete.

    True for the end of the turn (a special token decodes to ""), a newline or
    space followed by nothing or by punctuation, and punctuation ("C.", "C)",
    "C:"). False where the answer runs on into a word: "A fair", "Cat", "C3", "I'm".
    """
    if not following:
        return True
    head = following.lstrip(" \t")
    if not head:
        return True
    if head[0] in "\r\n":
        return True
    if following[0] in " \t":  # "A fair": a space then a word is a word, not an answer letter
        return not head[0].isalnum()
    if following[0] in "'\u2019-" and following[1:2].isalpha():  # "I'm", "A-grade": one word
        return False
    return not following[0].isalnum()


def validate_conversation(messages: Conversation) -> Conversation:
    """Check a conversation's shape; raise :class:`ModelError` with a readable message."""
    if not isinstance(messages, list) or not messages:
        raise ModelError("a conversation must be a non-empty list of messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or set(msg) - {"role", "content"} or "role" not in msg:
            raise ModelError(f"message {i} must be a dict with 'role' and 'content'")
        if msg["role"] not in {"system", "user", "assistant"}:
            raise ModelError(f"message {i} has unknown role {msg['role']!r}")
        if not isinstance(msg.get("content"), str):
            raise ModelError(f"message {i} content must be text")
    return messages


def user(text: str, system: str | None = None) -> Conversation:
    """A one-turn conversation, with an optional system prompt."""
    conv: Conversation = []
    if system:
        conv.append({"role": "system", "content": system})
    conv.append({"role": "user", "content": text})
    return conv
