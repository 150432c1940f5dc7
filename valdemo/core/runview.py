"""Reopening saved runs: the tables the Runs tab and ``valdemo runs`` show (no UI code here).

A run saved through :mod:`valdemo.core.runs` comes back as its metrics (value, 95 % interval,
n, source), its failures with their denominators, the protocol (name + hash), the models and
its caveats; the bundled-model caveat is added where a model was the bundled one and the run
did not carry it already. Runs saved before that module kept their own shape: they are listed
and their rows can be exported, and their summary is shown as it was saved.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from .result import METRICS_HEADERS, Metric, metrics_table
from .runs import FORMAT, list_runs, load_run, result_from_dict

LIST_HEADERS = ["run", "method", "when (UTC)", "models", "protocol", "headline (n)"]
FAILURE_HEADERS = ["step", "failed", "of (total)", "rate", "reasons"]
COMPARE_HEADERS = ["metric", "A value", "A 95% interval", "A n", "B value", "B 95% interval", "B n", "source"]
OLD_NOTE = "saved before runs had one shape: its summary is shown as it was saved, without intervals"


class RunNotFound(ValueError):
    """No such run, or not the asker's to read (the two are not told apart)."""


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else ""


def _strings(obj: Any) -> list[str]:
    """Every string inside ``obj`` (models are saved as nested dicts and lists of specs)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list | tuple):
        return [s for v in obj for s in _strings(v)]
    return []


def models_of(run: dict) -> dict:
    if run.get("format") == FORMAT:
        return run.get("models") or {}
    params = run.get("params") or {}
    return {k: params[k] for k in ("models", "model", "target", "judge") if k in params}


def models_text(models: dict) -> str:
    parts = []
    for key, value in (models or {}).items():
        vals = _strings(value)
        if vals:
            parts.append(f"{key}: {', '.join(dict.fromkeys(vals))}")
    return "; ".join(parts)


def protocol_text(protocol: dict | None) -> str:
    p = protocol or {}
    name, digest = p.get("name") or "", p.get("hash") or ""
    if not name and not digest:
        return ""
    return f"{name} ({digest[:12]})" if digest else name


def is_bundled_spec(spec: str) -> bool:
    """``local`` with no model named is the bundled 135M model."""
    s = spec.strip().lower()
    return s == "local" or "smollm2-135m" in s


def caveats_of(run: dict) -> list[str]:
    from ..models import BUNDLED_CAVEAT

    out = list(run.get("caveats") or [])
    if run.get("format") != FORMAT:
        out.append(OLD_NOTE)
    if BUNDLED_CAVEAT not in out and any(is_bundled_spec(s) for s in _strings(models_of(run))):
        out.insert(0, BUNDLED_CAVEAT)
    return out


def _metric(d: dict) -> Metric:
    return result_from_dict({"method": "", "metrics": [d]}).metrics[0]


def headline(metrics: list[dict]) -> str:
    """The first metric as ``title value [low, high] (n=..)``."""
    if not metrics:
        return ""
    m = _metric(metrics[0])
    return f"{m.title} {m.fmt()}"


def stopped_text(run: dict) -> str:
    """For a run that was stopped, what the Runs list adds to its headline (its numbers are over the
    finished units only): ``" · ■ stopped: 3 of 10 items"``; else ``""``."""
    marks = run.get("stopped") or {}
    return f" · ■ stopped: {marks['done']} of {marks['planned']} {marks['unit']}" if marks.get("stopped") else ""


def list_table(owner: str | None, method: str | None = None, limit: int = 50, store=None) -> list[list[str]]:
    """One row per run ``owner`` may read (None: all), newest first: :data:`LIST_HEADERS`."""
    from ..store import get_store

    st = store if store is not None else get_store()
    out = []
    for r in list_runs(owner, method=method or None, limit=limit, store=st):
        stored = st.get_run(r["id"], owner) or {}
        params = stored.get("params") or {}
        ours = params.get("format") == FORMAT
        run = {"format": r["format"], "models": params.get("models", {}) if ours else {},
               "params": params if not ours else params.get("params", {})}
        out.append([r["id"], r["method"], when(r["created"]), models_text(models_of(run)),
                    protocol_text(params.get("protocol") if ours else None),
                    (headline(r["metrics"]) if ours else "(older run: no headline saved)") + stopped_text(r)])
    return out


def open_run(run_id: str, owner: str | None, store=None) -> dict:
    """The run as :func:`valdemo.core.runs.load_run` gives it; :class:`RunNotFound` otherwise."""
    run_id = (run_id or "").strip()
    if not run_id:
        raise RunNotFound("choose a run (its id is in the first column of the runs table)")
    run = load_run(run_id, owner, store=store)
    if run is None:
        raise RunNotFound(f"no run {run_id!r} that you can open")
    return run


def metric_rows(run: dict, digits: int = 3) -> list[list[Any]]:
    """:data:`METRICS_HEADERS` rows: the headline metrics, then each group's as ``group: metric``."""
    if run.get("format") != FORMAT:
        return []
    res = result_from_dict(run)
    rows = metrics_table(res.metrics, digits)
    for group, ms in res.groups.items():
        rows += [[f"{group}: {r[0]}", *r[1:]] for r in metrics_table(ms, digits)]
    return rows


def failure_rows(run: dict) -> list[list[Any]]:
    out = []
    for f in run.get("failures") or []:
        total, failed = int(f.get("total", 0)), int(f.get("failed", 0))
        reasons = "; ".join(f"{k}: {v}" for k, v in (f.get("reasons") or {}).items())
        out.append([f.get("step", ""), failed, total, round(failed / total, 3) if total else None, reasons])
    return out


def summary(run: dict) -> dict:
    """Everything ``runs show`` prints, JSON-ready."""
    return {
        "id": run["id"], "method": run["method"], "when": when(run.get("created")), "owner": run.get("owner", ""),
        "source": run.get("source"), "format": run.get("format"),
        "protocol": run.get("protocol") or {}, "models": models_of(run), "params": run.get("params") or {},
        "metrics": [dict(zip(METRICS_HEADERS, r, strict=True)) for r in metric_rows(run)],
        "failures": [dict(zip(FAILURE_HEADERS, r, strict=True)) for r in failure_rows(run)],
        "caveats": caveats_of(run), "rows": len(run.get("rows") or []),
        **({"saved_summary": run.get("summary")} if run.get("format") != FORMAT else {}),
    }


def _keyed(run: dict) -> dict[str, Metric]:
    if run.get("format") != FORMAT:
        return {}
    res = result_from_dict(run)
    out = {m.name: m for m in res.metrics}
    for group, ms in res.groups.items():
        out.update({f"{group}: {m.name}": m for m in ms})
    return out


def compare_rows(a: dict, b: dict, digits: int = 3) -> tuple[list[list[Any]], list[str], list[str]]:
    """Metrics present in both runs side by side (:data:`COMPARE_HEADERS`), and the names only
    in A and only in B. Intervals are each run's own; they are not a test of the difference
    (the runs need not share items)."""
    ka, kb = _keyed(a), _keyed(b)

    def cell(m: Metric) -> list[Any]:
        iv = "" if m.interval is None else f"[{m.interval[0]:.{digits}f}, {m.interval[1]:.{digits}f}]"
        return [None if m.value is None else round(m.value, digits), iv, m.n]

    rows = []
    for key, ma in ka.items():
        if key in kb:
            mb = kb[key]
            title = key if ":" in key else ma.title
            source = ma.source if ma.source == mb.source else f"A: {ma.source}; B: {mb.source}"
            rows.append([title, *cell(ma), *cell(mb), source])
    return rows, [k for k in ka if k not in kb], [k for k in kb if k not in ka]


def _flat(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, dict | list) else value


def row_headers(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r)) if rows else []


def row_table(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Rows as (headers, values); nested values as JSON text."""
    headers = row_headers(rows)
    return headers, [[_flat(r.get(h)) for h in headers] for r in rows]


def export_rows(run: dict, path: str | Path) -> Path:
    """Write the run's rows to ``path``: ``.csv`` (nested values as JSON text) or ``.jsonl``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl"}:
        raise ValueError(f"export writes .csv or .jsonl, not {path.name!r}")
    rows = run.get("rows") or []
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    else:
        headers, values = row_table(rows)
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(headers)
            w.writerows(values)
    return path
