"""What every tab shares: the context (models panel, store, settings) and error handling.

Tabs stay thin: they read inputs, call a method module, and render. Scoring
logic lives in the method modules, never here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..config import Settings
from ..core import cancel
from ..core.cancel import Stopped
from ..core.owner import Owner, derive_owner, is_public, resolve_annotator
from ..core.progress import Outcome
from ..core.progress import run_stoppable as core_run_stoppable
from ..inputs import InputError
from ..models import BUNDLED_CAVEAT, ChatModel, Credentials, ModelError, get_model, unwrap
from ..store import Store
from .hf_signin import session_hf_token, session_hf_username

log = logging.getLogger(__name__)

#: Events that use a model share this concurrency group (``VALDEMO_MODEL_EVENTS`` at once). Local
#: generation itself waits for its own slots in the models layer (``VALDEMO_LOCAL_CONCURRENCY``,
#: ``valdemo.models.local.generation_slot``), so an event that calls a remote endpoint is not
#: queued behind a local generation on the CPU (issue 12).
MODEL_CONCURRENCY_ID = "model"


@dataclass
class Context:
    """Handed to every tab's ``build(ctx)``.

    ``target`` and ``judge`` are the Models panel's spec boxes; ``creds`` is the
    per-session :class:`gr.State` holding the optional base URL and API key.
    Pass ``ctx.target``/``ctx.judge``/``ctx.creds`` as event inputs and turn
    them into models with :func:`resolve_model`.
    """

    settings: Settings
    store: Store
    target: gr.components.Component
    judge: gr.components.Component
    creds: gr.State

    def model_event(self) -> dict:
        """kwargs for an event that uses a model (a concurrency group shared by all such events)."""
        return {"concurrency_id": MODEL_CONCURRENCY_ID, "concurrency_limit": self.settings.model_events}


def oauth_enabled() -> bool:
    """Hugging Face sign-in: on a Space with OAuth (``hf_oauth: true`` sets ``OAUTH_CLIENT_ID``),
    or locally with ``VALDEMO_OAUTH=1`` (Gradio then mocks the sign-in with the machine's
    Hugging Face login). Needs the session-cookie library (``gradio[oauth]``)."""
    import importlib.util
    import os

    on_space = bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))
    forced = os.environ.get("VALDEMO_OAUTH", "").strip().lower() in {"1", "true", "yes", "on"}
    needs = ["itsdangerous", "authlib"] if os.environ.get("SPACE_ID") else ["itsdangerous"]  # real vs mocked
    return bool((on_space or forced) and all(importlib.util.find_spec(m) for m in needs))


def request_owner(request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> Owner:
    """Who is asking, for every tab (the one place an owner is derived, issue 12): the signed-in
    Hugging Face user (verified) where the Space has OAuth, else in public mode the browser
    session (``request.session_hash``: new on every page load, so a cookie-less Space cannot
    recognise a visitor after a reload), else the local owner.

    A handler declares ``request: gr.Request`` (Gradio injects it). The sign-in is read from the
    request's session, so a handler that does not also declare ``profile: gr.OAuthProfile | None``
    still gets the signed-in user; a ``profile`` given is used as it is."""
    username = getattr(profile, "username", None) if profile is not None else None
    if not username and request is not None:
        username = session_hf_username(request) or None
    session_hash = getattr(request, "session_hash", None) if request is not None else None
    return derive_owner(username, session_hash, is_public())


def label_identity(name: str | None, request: gr.Request | None,
                   profile: gr.OAuthProfile | None = None) -> tuple[str, bool, Owner]:
    """(annotator name, verified, owner) for a CLAVE label or undo: with sign-in on, only the
    signed-in user's own name (anything else raises OwnerError, a ValueError); without it the
    typed name, unverified."""
    owner = request_owner(request, profile)
    annotator, verified = resolve_annotator(owner, name, oauth_enabled())
    return annotator, verified, owner


def session_credentials(creds: Any) -> Credentials:
    """The per-session credentials held in the Models panel's state, plus (inside a handler) the
    signed-in visitor's Hugging Face token, which only `hf:` specs use (it goes to the router only)."""
    if isinstance(creds, Credentials):
        out = creds
    elif isinstance(creds, dict):
        out = Credentials(base_url=creds.get("base_url", "") or "", api_key=creds.get("api_key", "") or "")
    else:
        out = Credentials()
    token = session_hf_token()
    return dataclasses.replace(out, hf_token=token) if token and not out.hf_token else out


def resolve_model(spec: str, creds: Any = None, use_cache: bool | None = None) -> ChatModel:
    """A ChatModel for the spec typed in the Models panel, with the session's credentials."""
    return get_model(spec, session_credentials(creds), use_cache=use_cache)


def caveat_markdown(models: Iterable[ChatModel | None]) -> str:
    """The bundled-model caveat, if any of ``models`` is the bundled demo model."""
    if any(m is not None and unwrap(m).is_bundled for m in models):
        return f"> ⚠️ **{BUNDLED_CAVEAT}**"
    return ""


def same_model_warning(target: ChatModel, judge: ChatModel) -> str:
    if unwrap(target).spec == unwrap(judge).spec:
        return "> ⚠️ Target and judge are the same model: it grades its own answers."
    return ""


def ui_errors(fn: Callable) -> Callable:
    """Turn the errors a person can cause into ``gr.Error`` messages (no traceback).

    Works for plain functions and generators (streaming handlers).
    """
    import inspect

    def convert(exc: Exception) -> gr.Error:
        if isinstance(exc, KeyError) and exc.args:
            return gr.Error(str(exc.args[0]))
        return gr.Error(str(exc) or type(exc).__name__)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except (InputError, ModelError, ValueError, KeyError, FileNotFoundError, UnicodeDecodeError) as exc:
                raise convert(exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (InputError, ModelError, ValueError, KeyError, FileNotFoundError, UnicodeDecodeError) as exc:
            raise convert(exc) from exc

    return wrapper


def progress_callback(progress: gr.Progress, label: str) -> Callable[[int, int], None]:
    """Adapt a ``gr.Progress`` to the methods' ``(done, total)`` callbacks. Create it inside the
    handler: it also ends the run (raises :class:`Stopped`) at the next step after the visitor
    presses Stop (see :func:`stop_button`): the run's cancel scope decides where there is one
    (:func:`run_stoppable`), else this session's Stop."""
    flag = StopFlag()

    def report(done: int, total: int) -> None:
        token = cancel.current()
        if token is not None:
            token.check()
        else:
            flag.check()
        progress((done, max(total, 1)), desc=label)

    return report


def run_stoppable(units, fn, models, unit: str = "items") -> Outcome:
    """Run ``fn(units, *models)`` so that this session's Stop ends it within a decoding step or a
    request, and keep what finished (:func:`valdemo.core.progress.run_stoppable`). Call it
    inside the handler, whose Stop button is made with ``cancel=False`` so the page gets the
    handler's answer (the finished part, marked as stopped)."""
    return core_run_stoppable(units, fn, models, stop_token(), unit)


def stop_token() -> cancel.CancelToken:
    """A cancel token set once the visitor presses this session's Stop (made inside the handler)."""
    return cancel.CancelToken(StopFlag().requested)


# -- Stop (issue 12 part 6) ---------------------------------------------------------------
# Python cannot kill the thread a long handler runs in, and Gradio's ``cancels=`` only drops
# the event. So Stop also records the session's request here; the run's progress callback sees
# it at its next step and ends the run (``Stopped``), which frees the CPU and the model's lock.

_stops: dict[str, float] = {}
_stops_lock = threading.Lock()


def _current_session() -> str | None:
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None)


class StopFlag:
    """Made at the start of a run (inside its handler): is a Stop for this session newer than the run?"""

    def __init__(self) -> None:
        self.session = _current_session()
        self.started = time.time()

    def requested(self) -> bool:
        with _stops_lock:
            pressed = _stops.get(self.session or "")
        return pressed is not None and pressed >= self.started

    def check(self) -> None:
        if self.requested():
            raise Stopped()


def request_stop(request: gr.Request) -> None:
    """Record a Stop for the caller's session (the running event sees it at its next step)."""
    session = getattr(request, "session_hash", None)
    if session:
        with _stops_lock:
            _stops[session] = time.time()
            if len(_stops) > 10_000:  # forget the oldest; a Stop matters only while its run is on
                for key in sorted(_stops, key=_stops.get)[:5_000]:
                    del _stops[key]


def stop_button(event, elem_id: str, cancel: bool = True, api_name: str | None = None) -> gr.Button:
    """A Stop button for a long run, placed where it is called. ``cancel``: also cancel the event
    (Gradio ``cancels=``: the page is freed at once and keeps what the run streamed so far); pass
    False where the handler itself returns what finished when it sees the Stop (the profile, and
    every handler that uses :func:`run_stoppable`)."""
    btn = gr.Button("■ Stop", variant="stop", size="sm", elem_id=elem_id)
    named = {"api_name": api_name} if api_name else {"api_visibility": "private"}
    btn.click(request_stop, None, None, cancels=[event] if cancel else None, concurrency_limit=None, **named)
    return btn
