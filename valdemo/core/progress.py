"""Stage-based progress: one bar for a run made of several steps of different cost.

A method declares its stages with relative weights (``[("answers", 1), ("critiques", 3),
("judge", 3)]``), and passes ``stages.fn("answers")`` wherever a model call takes a
:data:`~valdemo.models.base.ProgressFn` (called with ``(done, total)``). The callback sees
one overall fraction in 0..1 that never goes back, and a line of text
(``"critiques 12/40"``). No gradio here: the UI wraps ``gr.Progress`` as the callback, the
CLI prints, tests collect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..models.base import ProgressFn

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
