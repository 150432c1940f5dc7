"""Hosted open models through the Hugging Face inference router, with the visitor's own token.

A spec ``hf:<hub model id>`` (for example ``hf:meta-llama/Llama-3.1-8B-Instruct``) is a chat
model served by the router, which speaks the OpenAI chat API at ``VALDEMO_HF_ROUTER_URL``
(default ``https://router.huggingface.co/v1``). The request carries the token of the
visitor who signed in with Hugging Face (the Space's ``hf_oauth`` with the ``inference-api``
scope), and nothing else: never the server's ``HF_TOKEN`` or ``OPENAI_API_KEY``.

The token follows the rules for keys (:mod:`.endpoint`): it lives in the visitor's session,
goes only to the router URL, and is never logged, stored, cached or returned. Answers are
cached like any endpoint's, keyed by the router URL and the model id (not by the token).
"""

from __future__ import annotations

from ..config import get_settings
from .base import ChatModel, ModelSpecError
from .endpoint import ModelRefused

#: Offered in the Models panel to signed-in visitors when ``VALDEMO_HF_MODELS`` is unset: open
#: instruct models of several sizes and makers (what the router serves changes; any id may be typed).
READY_MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "openai/gpt-oss-20b",
)

SIGN_IN_NEEDED = ("`hf:` models run on the Hugging Face inference router with your own Hugging Face "
                  "token: sign in with Hugging Face (the button above the Models panel) and try again")


def ready_models() -> list[str]:
    """The ``hf:<id>`` specs offered to signed-in visitors."""
    ids = get_settings().hf_models or READY_MODELS
    return [f"hf:{i}" for i in ids]


def check_model_id(name: str) -> str:
    """A hub model id, optionally with the router's ``:<provider>`` suffix; no URL."""
    name = name.strip()
    if not name:
        raise ModelSpecError("`hf:` names no model: use `hf:<hub model id>`, e.g. hf:" + READY_MODELS[0])
    if "@" in name or "://" in name or any(c.isspace() for c in name):
        raise ModelSpecError(f"hf:{name}: `hf:` models always go to the Hugging Face router; "
                             "give a hub model id, no URL (use `openai:<model>@<base_url>` for other endpoints)")
    return name


def router_model(name: str, token: str, spec: str) -> ChatModel:
    """The router's chat model ``name``, called with the visitor's ``token`` (refused without one)."""
    from .openai_api import OpenAIChatModel

    name = check_model_id(name)
    if not token:
        raise ModelRefused(SIGN_IN_NEEDED)
    return OpenAIChatModel(
        name, base_url=get_settings().hf_router_url, api_key=token, spec=spec,
        guard=False,  # the router URL is the server's setting, not a visitor's URL
        server_endpoint=False,  # strip the server's own OPENAI_* headers: only the visitor's token goes
        key_note="the router refused your Hugging Face sign-in token: sign in again (the Space asks "
                 "for the inference-api scope) or check the model id",
    )
