"""One result type for every method.

A number on screen is one :class:`Metric`: its value travels with its definition (the
formula in words), its source (a paper with section / equation / table, or this project's
own), its n and its interval. Failures (unreadable answers, judge refusals, errors) are a
:class:`Failures` with their denominator, never scored and never dropped. A
:class:`Result` bundles metrics, typed rows, failures, the protocol that ran, the models,
and caveats; tabs, CLI, profile and report all render it the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import metrics as M

#: Use as ``source`` for a quantity this project defined itself (say so on screen).
OWN = "this project's own"


@dataclass(frozen=True)
class Metric:
    """One headline number.

    Attributes:
        name: short machine name (``know_what_acc``).
        value: the number, or None where undefined (n = 0); never NaN.
        n: how many items / samples it is computed over (after failures are left out, if the
            definition says so: the definition says which).
        interval: (low, high), a 95 % interval, or None where there is none (n = 0).
        interval_kind: ``wilson``, ``bootstrap``, ``paired bootstrap``, ``none``.
        definition: the formula in words.
        source: paper + section / equation / table, or :data:`OWN`.
        label: human title for tables; defaults to ``name``.
    """

    name: str
    value: float | None
    n: int
    interval: tuple[float, float] | None
    definition: str
    source: str
    interval_kind: str = "none"
    label: str = ""

    def __post_init__(self) -> None:
        if self.value is not None and isinstance(self.value, float) and math.isnan(self.value):
            object.__setattr__(self, "value", None)
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def is_own(self) -> bool:
        return self.source == OWN

    @classmethod
    def proportion(cls, name: str, k: int, n: int, definition: str, source: str, label: str = "") -> Metric:
        """k of n, with a Wilson interval."""
        return cls(name, (k / n) if n else None, n, M.wilson(k, n), definition, source, "wilson", label)

    @classmethod
    def mean(cls, name: str, values: Sequence[float], definition: str, source: str, label: str = "",
             seed: int = M.DEFAULT_SEED) -> Metric:
        """Mean of values, with a percentile bootstrap interval."""
        vals = [float(v) for v in values]
        return cls(name, (sum(vals) / len(vals)) if vals else None, len(vals), M.bootstrap(vals, seed=seed),
                   definition, source, "bootstrap", label)

    @classmethod
    def over_rows(cls, name: str, rows: Sequence, stat, definition: str, source: str, label: str = "",
                  seed: int = M.DEFAULT_SEED) -> Metric:
        """Any statistic of whole rows (F1, a gap, a paired difference), with a bootstrap
        interval over rows."""
        rows = list(rows)
        value = stat(rows) if rows else None
        return cls(name, value, len(rows), M.bootstrap_paired(rows, stat, seed=seed) if rows else None,
                   definition, source, "bootstrap", label)

    def fmt(self, digits: int = 3) -> str:
        """``0.412 [0.301, 0.520] (n=48)``; ``n/a (n=0)`` where undefined; no interval where n < 2."""
        if self.value is None:
            return f"n/a (n={self.n})"
        s = f"{self.value:.{digits}f}"
        if self.interval is not None and self.n >= 2:  # one value: no interval worth showing
            s += f" [{self.interval[0]:.{digits}f}, {self.interval[1]:.{digits}f}]"
        return s + f" (n={self.n})"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["interval"] = list(self.interval) if self.interval is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Metric:
        """Back from :meth:`as_dict`."""
        iv = d.get("interval")
        return cls(d["name"], d.get("value"), int(d.get("n", 0)), tuple(iv) if iv else None,
                   d.get("definition", ""), d.get("source", ""), d.get("interval_kind", "none"), d.get("label", ""))


@dataclass
class Failures:
    """Counted failures of one step (e.g. know-what answers): ``failed`` of ``total``, by reason."""

    step: str
    total: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    # True for a step whose flagged answers were kept and scored as written (e.g. stopped at a
    # token cap): counted and shown, but not lost answers
    kept: bool = False

    def add(self, ok: bool, reason: str = "") -> None:
        self.total += 1
        if not ok:
            self.failed += 1
            self.reasons[reason or "unreadable"] += 1

    def extend(self, other: Failures) -> None:
        self.total += other.total
        self.failed += other.failed
        self.reasons.update(other.reasons)

    @property
    def rate(self) -> float | None:
        return self.failed / self.total if self.total else None

    def fmt(self) -> str:
        return f"{self.failed} of {self.total} {self.step}"

    def as_dict(self) -> dict:
        d = {"step": self.step, "failed": self.failed, "total": self.total, "reasons": dict(self.reasons)}
        if self.kept:
            d["kept"] = True
        return d


class NotMeasured(Exception):
    """A method cannot measure something for a reason that is not a failure (e.g. nothing has
    been calibrated yet); the message says what to do. The profile shows it as "not measured"."""


@dataclass
class Result:
    """What a method returns: headline metrics, typed rows, failures per step, the protocol
    (name + hash of its text), the models, parameters and caveats."""

    method: str
    metrics: list[Metric] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    failures: list[Failures] = field(default_factory=list)
    protocol: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    groups: dict[str, list[Metric]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, group: str | None = None) -> Metric | None:
        pool = self.groups.get(group, []) if group is not None else self.metrics
        return next((m for m in pool if m.name == name), None)

    def failure(self, step: str) -> Failures | None:
        return next((f for f in self.failures if f.step == step), None)

    def without_rows(self) -> dict:
        """:meth:`as_dict` less the rows (what a summary shows; the rows travel apart)."""
        d = self.as_dict()
        d.pop("rows")
        return d

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "metrics": [m.as_dict() for m in self.metrics],
            "groups": {g: [m.as_dict() for m in ms] for g, ms in self.groups.items()},
            "failures": [f.as_dict() for f in self.failures],
            "protocol": self.protocol,
            "models": self.models,
            "params": self.params,
            "caveats": list(self.caveats),
            "rows": self.rows,
            "extra": self.extra,
        }


def metrics_table(metrics: Iterable[Metric], digits: int = 3) -> list[list[Any]]:
    """Rows ``[metric, value, 95% interval, n, source]`` for a table on screen."""
    out = []
    for m in metrics:
        iv = "" if m.interval is None else f"[{m.interval[0]:.{digits}f}, {m.interval[1]:.{digits}f}]"
        out.append([m.title, None if m.value is None else round(m.value, digits), iv, m.n, m.source])
    return out


METRICS_HEADERS = ["metric", "value", "95% interval", "n", "source"]
