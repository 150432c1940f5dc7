"""Model specs a person can type, turned into ChatModels.

Specs:
    ``local``                      the bundled SmolLM2-135M-Instruct (or VALDEMO_LOCAL_MODEL)
    ``local:<hub id or path>``     any transformers causal LM with a chat template
    ``openai:<model>``             an OpenAI-compatible endpoint; base URL and key from the
                                   session's settings panel, else OPENAI_BASE_URL / OPENAI_API_KEY
    ``openai:<model>@<base_url>``  the same with the base URL in the spec
    ``hf:<hub model id>``          a hosted open model on the Hugging Face inference router, called
                                   with the signed-in visitor's own token (see :mod:`.hf_router`)

The server's OPENAI_API_KEY only ever goes to the server-configured base URL; any
other URL gets the session's own key or none (see :mod:`.endpoint`). In public mode
visitor URLs and ``local:<id>`` are checked there too.

Local models are shared per process (one load); the response cache wraps every
model unless bypassed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from ..config import get_settings
from .base import ChatModel, ModelSpecError
from .cache import CachedModel, get_cache
from .endpoint import (
    check_local,
    check_visitor_url,
    configured_base_url,
    is_configured,
    key_for,
    needs_guard,
    normalise_base_url,
)

BACKENDS = ("local", "openai", "hf")
SPEC_HELP = ("use `local`, `local:<hub id or path>`, `openai:<model>`, `openai:<model>@<base_url>` "
             "or `hf:<hub model id>` (signed in with Hugging Face)")


@dataclass(frozen=True)
class Credentials:
    """Per-session endpoint settings. ``repr`` hides the key so it never lands in a log."""

    base_url: str = ""
    api_key: str = field(default="", repr=False)
    #: the signed-in visitor's Hugging Face token, for `hf:` specs only (goes to the router only)
    hf_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.base_url or self.api_key)


@dataclass(frozen=True)
class ParsedSpec:
    backend: str
    name: str
    base_url: str = ""


def parse_spec(spec: str) -> ParsedSpec:
    """Split a spec string; raise :class:`ModelSpecError` with the accepted forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"empty model spec: {SPEC_HELP}")
    spec = spec.strip()
    if len(spec) > 500 or any(c in spec for c in "\n\r\t\0"):
        raise ModelSpecError(f"malformed model spec: {SPEC_HELP}")
    backend, _, rest = spec.partition(":")
    backend = backend.lower()
    if backend not in BACKENDS:
        raise ModelSpecError(f"unknown backend {backend!r} in {spec!r}: {SPEC_HELP}")
    rest = rest.strip()
    if backend == "local":
        return ParsedSpec("local", rest)
    if backend == "hf":
        from .hf_router import check_model_id

        return ParsedSpec("hf", check_model_id(rest))
    if not rest:
        raise ModelSpecError(f"{spec!r} names no model: {SPEC_HELP}")
    name, at, base_url = rest.partition("@")
    name, base_url = name.strip(), base_url.strip()
    if not name:
        raise ModelSpecError(f"{spec!r} names no model: {SPEC_HELP}")
    if at and not re.match(r"^https?://[^\s/]+", base_url, re.IGNORECASE):
        raise ModelSpecError(f"{spec!r}: the base URL must start with http:// or https://")
    return ParsedSpec("openai", name, base_url)


_local_models: dict[str, ChatModel] = {}
_local_lock = threading.Lock()


def _local(name: str, spec: str) -> ChatModel:
    from .local import LocalChatModel
    from .zerogpu import on_zero_gpu

    key = name or "<default>"
    with _local_lock:
        if key not in _local_models:
            _local_models[key] = on_zero_gpu(LocalChatModel(name, spec=spec))  # a no-op off ZeroGPU
        return _local_models[key]


def get_model(spec: str, creds: Credentials | None = None, use_cache: bool | None = None) -> ChatModel:
    """The ChatModel for ``spec``. Nothing loads or connects until the first call."""
    parsed = parse_spec(spec)
    settings = get_settings()
    if parsed.backend == "local":
        check_local(parsed.name)
        model: ChatModel = _local(parsed.name, spec.strip())
    elif parsed.backend == "hf":
        from .hf_router import router_model

        model = router_model(parsed.name, creds.hf_token if creds is not None else "", spec.strip())
    else:
        from .openai_api import OpenAIChatModel

        creds = creds or Credentials()
        base_url = parsed.base_url or creds.base_url or configured_base_url()
        normalise_base_url(base_url)  # a clear error for a URL that cannot be a base URL
        check_visitor_url(base_url)  # public mode: public addresses or the allow-list only
        key = key_for(base_url, creds.api_key)
        model = OpenAIChatModel(parsed.name, base_url=base_url, api_key=key.api_key, spec=spec.strip(),
                                guard=needs_guard(base_url), key_note=key.note,
                                server_endpoint=is_configured(base_url))
    if use_cache is None:
        use_cache = settings.cache_enabled
    return CachedModel(model, get_cache(settings.cache_path)) if use_cache else model


def unwrap(model: ChatModel) -> ChatModel:
    """The backend model under any cache wrapper."""
    return getattr(model, "inner", model)
