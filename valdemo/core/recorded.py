"""Recorded runs: score outputs generated elsewhere (a team's own cluster, vLLM, TGI) without calling a model.

Every method reads a JSONL file of recorded rows (shapes in ``docs/recorded_runs.md``) and scores
it with the same code its live runs use. This module holds what they share:

* :func:`read_jsonl_rows`: the file's rows with their line numbers; a line that is not a JSON
  object is a counted failure with its line number (:class:`RowFailures`), never dropped silently;
* :class:`RowFailures`: malformed rows, counted with the denominator, by reason and by line;
* :func:`mark_replayed` and :func:`save`: every import is saved as a run through
  :mod:`valdemo.core.runs`, labelled :data:`LABEL`.

Nothing here calls a model. Where a method needs a judge and the file carries no judge scores,
the method says so (or takes an explicit judge spec: then that judge is named on the run).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..inputs import InputError, read_upload_text
from .result import Failures, Result

#: How every imported run is labelled, on screen and in the store.
LABEL = "replayed recorded outputs"
#: Line numbers kept per failure reason (the count is always complete).
MAX_LINES_KEPT = 50
DOC = "docs/recorded_runs.md"


def caveat(method: str, judge: str = "") -> str:
    """The plain sentence shown beside an import's numbers."""
    who = f" Judge: {judge}." if judge else ""
    return (f"{LABEL.capitalize()} ({method}), not run here: the outputs come from the file; valdemo only "
            f"read and scored them with the same code as its live runs.{who}")


@dataclass
class RowFailures:
    """Malformed rows of a recorded file: ``failed`` of ``total`` lines, by reason, with line numbers."""

    step: str = "recorded rows (malformed)"
    total: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def ok(self) -> None:
        self.total += 1

    def bad(self, line: int, reason: str) -> None:
        self.total += 1
        self.failed += 1
        self.reasons[reason] += 1
        kept = self.lines.setdefault(reason, [])
        if len(kept) < MAX_LINES_KEPT:
            kept.append(line)

    def as_failures(self) -> Failures:
        return Failures(self.step, self.total, self.failed, Counter(self.reasons))

    def as_dict(self) -> dict:
        return {"step": self.step, "failed": self.failed, "total": self.total, "reasons": dict(self.reasons),
                "lines": {r: list(ls) for r, ls in self.lines.items()}}

    def fmt(self) -> str:
        where = "; ".join(f"{r}: line{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))}"
                          for r, ls in self.lines.items())
        return f"{self.failed} of {self.total} rows malformed" + (f" ({where})" if where else "")


def read_jsonl_rows(path: str | Path, what: str = "recorded rows") -> tuple[list[tuple[int, dict]], RowFailures]:
    """``([(line number, object), ...], failures)``: blank lines are skipped; a line that is not a
    JSON object is a counted failure. The file itself must be readable UTF-8 text
    (:func:`valdemo.inputs.read_upload_text`), else :class:`InputError`."""
    p = Path(path)
    text = read_upload_text(p, what)
    fails = RowFailures()
    rows: list[tuple[int, dict]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            fails.bad(n, "not valid JSON")
            continue
        if not isinstance(obj, dict):
            fails.bad(n, "not a JSON object")
            continue
        rows.append((n, obj))
    if not rows and not fails.failed:
        raise InputError(f"{p.name}: no rows")
    return rows, fails


def text_field(row: dict, *keys: str) -> str | None:
    """The first of ``keys`` that holds a non-empty string (numbers are turned into text)."""
    for k in keys:
        v = row.get(k)
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def int_field(row: dict, key: str, default: int | None = None) -> int | None:
    """An integer field (``3``, ``3.0`` or ``"3"``); None where it is missing (and no default) or not an integer."""
    v = row.get(key)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def mark_replayed(result: Result, origin: str, judge: str = "") -> Result:
    """Label a Result as an import: params ``replay``/``origin``, the label and the caveat first."""
    result.params = {**result.params, "replay": True, "origin": origin, "label": LABEL}
    result.protocol = {"name": "recorded", "origin": origin, **{k: v for k, v in result.protocol.items()
                                                                 if k not in {"name", "origin"}}}
    result.extra = {**result.extra, "replay": True, "label": LABEL}
    line = caveat(result.method, judge)
    result.caveats = [line, *[c for c in result.caveats if c != line]]
    return result


def save(result: Result, owner: str = "", source: str = "cli", store=None) -> str:
    """Save an import as a run (:func:`valdemo.core.runs.save_run`); it must be marked first."""
    from .runs import save_run

    if not result.params.get("replay"):
        raise ValueError("an imported run must be marked with mark_replayed() before it is saved")
    return save_run(result, owner=owner, source=source, store=store)
