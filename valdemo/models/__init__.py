"""Who answers: one small interface (:class:`ChatModel`), several backends, a cache."""

from .base import (
    BUNDLED_CAVEAT,
    ChatModel,
    Conversation,
    GenParams,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelResponseError,
    ModelSpecError,
    ModelTimeout,
    ModelUnavailable,
    ProgressFn,
    Reply,
    user,
)
from .cache import CachedModel, ResponseCache, get_cache
from .endpoint import ModelRefused
from .registry import Credentials, get_model, parse_spec, unwrap

__all__ = [
    "BUNDLED_CAVEAT",
    "CachedModel",
    "ChatModel",
    "Conversation",
    "Credentials",
    "GenParams",
    "ModelAuthError",
    "ModelError",
    "ModelRateLimited",
    "ModelRefused",
    "ModelResponseError",
    "ModelSpecError",
    "ModelTimeout",
    "ModelUnavailable",
    "ProgressFn",
    "Reply",
    "ResponseCache",
    "get_cache",
    "get_model",
    "parse_spec",
    "unwrap",
    "user",
]
