"""Stop (issue 12): a run's cancel token, seen wherever the run spends its time.

Python cannot kill the thread a long run works in. So a run opens a :func:`cancel_scope`
with a :class:`CancelToken`, and the code that takes the time looks at the scope's token:

* local generation between decoding steps (:func:`stopping_check`, used by
  :mod:`valdemo.models.local` as a transformers stopping criterion) and before each batch;
* remote calls before each request and retry;
* progress callbacks at each step.

Each raises :class:`Stopped`, so the CPU and the model's generation slot are freed within a
decoding step, and what already finished stays in the response cache (a batch that stops
half way hands its finished answers over in ``Stopped.partial``). Nothing here imports a
model backend or gradio: the UI makes the token (its Stop button sets it), methods never see it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

STOPPED_MESSAGE = "stopped: you pressed Stop"


class Stopped(Exception):
    """The run was stopped. ``partial``: for a batch call that stopped half way, its answers in
    order, None where an answer was not finished (a cache keeps the finished ones)."""

    def __init__(self, message: str = STOPPED_MESSAGE, partial: list[Any] | None = None):
        super().__init__(message)
        self.partial = partial


class CancelToken:
    """Set once (by :meth:`cancel`, or when ``requested`` first answers True); never unset."""

    def __init__(self, requested: Callable[[], bool] | None = None):
        self._event = threading.Event()
        self._requested = requested

    def cancel(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        if self._event.is_set():
            return True
        if self._requested is not None and self._requested():
            self._event.set()
            return True
        return False

    def check(self) -> None:
        if self.is_set():
            raise Stopped()


_current: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("valdemo_cancel", default=None)


@contextlib.contextmanager
def cancel_scope(token: CancelToken | None) -> Iterator[CancelToken | None]:
    """Run the block under ``token`` (None: a block that cannot be stopped, e.g. keeping what
    finished after a Stop)."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def current() -> CancelToken | None:
    """The token of the run this thread works for (threads a run starts carry it along when they
    are started with :func:`contextvars.copy_context`)."""
    return _current.get()


def requested() -> bool:
    token = _current.get()
    return token is not None and token.is_set()


def check() -> None:
    """Raise :class:`Stopped` if the current run was stopped."""
    token = _current.get()
    if token is not None:
        token.check()
