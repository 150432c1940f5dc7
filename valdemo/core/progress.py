"""Stage-based progress: one bar for a run made of several steps of different cost.

A method declares its stages with relative weights (``[("answers", 1), ("critiques", 3),
("judge", 3)]``), and passes ``stages.fn("answers")`` wherever a model call takes a
:data:`~valdemo.models.base.ProgressFn` (called with ``(done, total)``). The callback sees
one overall fraction in 0..1 that never goes back, and a line of text
(``"critiques 12/40"``). No gradio here: the UI wraps ``gr.Progress`` as the callback, the
CLI prints, tests collect.

It also holds the one way a stopped run keeps what finished (:func:`run_stoppable`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..models.base import ProgressFn
from . import cancel

T = TypeVar("T")
U = TypeVar("U")

#: Receives (overall fraction 0..1, text).
Callback = Callable[[float, str], None]


class Stages:
    """Weighted stages mapped onto one monotone fraction."""

    def __init__(self, stages: Sequence[tuple[str, float]] | Sequence[str], callback: Callback | None = None):
        pairs = [(s, 1.0) if isinstance(s, str) else (str(s[0]), float(s[1])) for s in stages]
        if not pairs:
            raise ValueError("at least one stage")
        if len({name for name, _ in pairs}) != len(pairs):
            raise ValueError("stage names must differ")
        if any(w <= 0 for _, w in pairs):
            raise ValueError("stage weights must be positive")
        total = sum(w for _, w in pairs)
        self._span: dict[str, tuple[float, float]] = {}
        start = 0.0
        for name, w in pairs:
            self._span[name] = (start, start + w / total)
            start += w / total
        self.names = [name for name, _ in pairs]
        self.callback = callback
        self.fraction = 0.0
        self.text = ""
        self._lock = threading.Lock()

    def update(self, stage: str, done: float, total: float, note: str = "") -> None:
        """Report ``done`` of ``total`` within ``stage`` (clipped to 0..total)."""
        if stage not in self._span:
            raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(self.names)}")
        lo, hi = self._span[stage]
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        text = note or (f"{stage} {int(done)}/{int(total)}" if total > 0 else stage)
        with self._lock:
            self.fraction = max(self.fraction, lo + share * (hi - lo))
            self.text = text
            fraction = self.fraction
        if self.callback is not None:
            self.callback(fraction, text)

    def start(self, stage: str, note: str = "") -> None:
        self.update(stage, 0, 1, note or stage)

    def fn(self, stage: str) -> ProgressFn:
        """A ``(done, total)`` callback for one model call, reporting into ``stage``."""
        if stage not in self._span:
            raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(self.names)}")
        return lambda done, total: self.update(stage, done, total)

    def finish(self, note: str = "done") -> None:
        with self._lock:
            self.fraction = 1.0
            self.text = note
        if self.callback is not None:
            self.callback(1.0, note)


def from_progress_fn(progress: ProgressFn | None, resolution: int = 1000) -> Callback | None:
    """Adapt an older ``(done, total)`` callback to a Stages callback (fraction in thousandths)."""
    if progress is None:
        return None
    return lambda fraction, _text: progress(round(fraction * resolution), resolution)


# -- Stop keeps what finished (issue 12) ---------------------------------------------------------
# One mechanism for every long run (VUM batch, SVO trials, DeNEVIL defence, UniVaR generation): the
# run works under a cancel scope; on Stop, every answer it finished is in the response cache
# (stored one by one as they arrive, a stopped batch's finished part included). The planned units
# are then replayed one by one from the cache alone (a model that answers only what it answered
# before), and the method runs once more, from the cache, on the units that replay in full. Its
# numbers are exactly those of a run on those units: n says how many.

@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A run's output with how much of it ran: ``value`` is the method's output on every planned
    unit, or, after a Stop, on the ``done`` units that finished (None when none did)."""

    value: T | None
    done: int
    planned: int
    unit: str = "items"
    stopped: bool = False
    note: str = ""

    def marks(self) -> dict:
        """What a saved run records about its Stop (empty for a run that was not stopped)."""
        if not self.stopped:
            return {}
        return {"stopped": True, "partial": self.done < self.planned, "done": self.done, "planned": self.planned,
                "unit": self.unit}

    def message(self) -> str:
        """One line for the page (empty for a run that was not stopped)."""
        if not self.stopped:
            return ""
        line = (f"■ Stopped: {self.done} of {self.planned} {self.unit} finished before Stop and are kept; "
                f"{self.planned - self.done} not run. Every number below is over the finished {self.unit} only.")
        return f"{line} {self.note}".strip()


def run_stoppable(units: Sequence[U], fn: Callable[..., T], models: Sequence[Any], token: cancel.CancelToken | None,
                  unit: str = "items") -> Outcome[T]:
    """``fn(units, *models)`` under ``token``; after a Stop, :func:`keep_finished`."""
    units = list(units)
    with cancel.cancel_scope(token):
        try:
            return Outcome(fn(units, *models), len(units), len(units), unit)
        except cancel.Stopped:
            pass
    return keep_finished(units, fn, models, unit)


def keep_finished(units: Sequence[U], fn: Callable[..., T], models: Sequence[Any], unit: str = "items") -> Outcome[T]:
    """What a stopped ``fn(units, *models)`` finished: ``fn`` on the units whose every model call
    is in the response cache, answered from the cache alone (``models``' ``replaying()``; None
    entries stay None). ``fn`` must accept any subset of ``units``, in their order."""
    units = list(units)
    replay = [None if m is None else getattr(m, "replaying", lambda: False)() for m in models]
    if any(r is False for r in replay):
        return Outcome(None, 0, len(units), unit, stopped=True,
                       note="Nothing could be kept: the response cache is off (VALDEMO_CACHE=0).")
    with cancel.cancel_scope(cancel.CancelToken()):  # this part is quick (no model runs) and is not stopped
        done = [u for u in units if _replays(fn, u, replay)]
        value = fn(done, *replay) if done else None
    return Outcome(value, len(done), len(units), unit, stopped=True)


def _replays(fn: Callable[..., Any], unit: Any, models: Sequence[Any]) -> bool:
    from ..models.cache import NotCached

    try:
        fn([unit], *models)
    except NotCached:
        return False
    except Exception:  # noqa: BLE001 - it replays; the method's own error shows on the finished set
        return True
    return True
