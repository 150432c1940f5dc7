"""The one place runs are saved and reopened.

Every run of every method, whether it started in the UI, the API or the CLI, is saved
here once, as its :class:`~valdemo.core.result.Result`: metrics (with definitions,
sources, n and intervals), failures with denominators, rows, the protocol (name + hash),
the models, the parameters and caveats, with the owner who ran it. It sits on
:class:`valdemo.store.Store`'s ``runs`` / ``run_rows`` tables; reads are filtered by
owner the store's way (:func:`valdemo.store.owner_filter`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .result import Failures, Metric, Result

SOURCES = ("ui", "cli", "api")
#: Marks a run saved through this module (older runs in the table have other shapes).
FORMAT = "result/1"
#: Checkpoints (resumable runs' states) share the runs table under this method prefix; never listed as runs.
CHECKPOINT_PREFIX = "checkpoint:"


def _store(store=None):
    if store is not None:
        return store
    from ..store import get_store

    return get_store()


def mark_stopped(result: Result, outcome=None) -> Result:
    """Record on ``result`` (in place) that its run was stopped: ``params["stopped"]`` holds the
    :class:`~valdemo.core.progress.Outcome`'s marks (done and planned units) and the page's line
    joins the caveats. A run that was not stopped is left as it is."""
    marks = outcome.marks() if outcome is not None else {}
    if marks and "stopped" not in result.params:
        result.params["stopped"] = marks
        result.caveats.append(outcome.message())
    return result


def save_run(result: Result, owner: str = "", source: str = "ui", store=None, outcome=None) -> str:
    """Save ``result`` with its rows in one transaction; returns the run id. ``outcome``: the
    :class:`~valdemo.core.progress.Outcome` of a run that may have been stopped (see :func:`mark_stopped`)."""
    if not isinstance(result, Result):
        raise TypeError(f"save_run takes a Result, got {type(result).__name__}")
    mark_stopped(result, outcome)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    data = result.as_dict()
    params = {"format": FORMAT, "source": source, "params": data["params"], "protocol": data["protocol"],
              "models": data["models"]}
    summary = {"format": FORMAT, "source": source, "metrics": data["metrics"], "groups": data["groups"], "failures": data["failures"],
               "caveats": data["caveats"], "extra": data["extra"]}
    if "stopped" in result.params:
        summary["stopped"] = result.params["stopped"]
    return _store(store)._save_run(result.method, params, summary, data["rows"], owner=owner or "")


def save_plain(method: str, params: dict, summary: dict, rows: list[dict], owner: str = "", store=None,
               outcome=None) -> str:
    """Save a run whose method does not build a :class:`Result` yet, in its own shape, with the
    Stop marks of ``outcome`` under ``"stopped"`` in both its params and its summary."""
    marks = outcome.marks() if outcome is not None else {}
    if marks:
        params, summary = {**params, "stopped": marks}, {**summary, "stopped": marks}
    return _store(store)._save_run(method, params, summary, rows, owner=owner or "")


def save_checkpoint(kind: str, state: dict, owner: str = "", store=None) -> str:
    """Save the state of a resumable run (e.g. a DeNEVIL attack after each round) under ``kind``;
    read back with :func:`checkpoints`. Not a run: no rows, no metrics, never listed as one."""
    return _store(store)._save_run(CHECKPOINT_PREFIX + kind, {"checkpoint": True}, state, [], owner=owner or "")


def checkpoints(kind: str, owner: str | None = "", limit: int = 200, store=None) -> list[dict]:
    """The saved states of ``kind`` that ``owner`` may read (None: all), newest first."""
    return [run["summary"] for run in _store(store).list_runs(CHECKPOINT_PREFIX + kind, limit=limit, owner=owner)]


def load_run(run_id: str, owner: str | None = "", store=None) -> dict | None:
    """The run as a dict shaped like :meth:`Result.as_dict` plus ``id``, ``created``,
    ``owner`` and ``source``; None where it does not exist or ``owner`` may not read it
    (``owner=None``: no owner check, for local tools). Runs saved before this module keep
    their own ``params`` / ``summary`` under those keys (``format`` is then None)."""
    st = _store(store)
    run = st.get_run(run_id, owner)
    if run is None:
        return None
    rows = st.run_rows(run_id, owner)
    params, summary = run["params"] or {}, run["summary"] or {}
    head = {"id": run["id"], "created": run["created"], "owner": run["owner"], "method": run["method"]}
    if params.get("format") != FORMAT:
        return {**head, "format": None, "source": None, "params": params, "summary": summary, "rows": rows}
    return {**head, "format": FORMAT, "source": params.get("source"), "params": params.get("params", {}),
            "protocol": params.get("protocol", {}), "models": params.get("models", {}),
            "metrics": summary.get("metrics", []), "groups": summary.get("groups", {}),
            "failures": summary.get("failures", []), "caveats": summary.get("caveats", []),
            "extra": summary.get("extra", {}), "rows": rows}


def result_from_dict(data: dict[str, Any]) -> Result:
    """A :class:`Result` back from :meth:`Result.as_dict` or :func:`load_run`."""
    metric = Metric.from_dict
    return Result(
        method=data["method"],
        metrics=[metric(m) for m in data.get("metrics", [])],
        rows=list(data.get("rows", [])),
        failures=[Failures(f["step"], int(f["total"]), int(f["failed"]), Counter(f.get("reasons", {})),
                           bool(f.get("kept")))
                  for f in data.get("failures", [])],
        protocol=dict(data.get("protocol", {})),
        models=dict(data.get("models", {})),
        params=dict(data.get("params", {})),
        caveats=list(data.get("caveats", [])),
        groups={g: [metric(m) for m in ms] for g, ms in data.get("groups", {}).items()},
        extra=dict(data.get("extra", {})),
    )


def list_runs(owner: str | None = "", method: str | None = None, limit: int = 50, store=None) -> list[dict]:
    """Newest first, the runs ``owner`` may read (``owner=None``: all): id, method, created,
    owner, source and the headline metrics (for runs saved here)."""
    out = []
    for run in _store(store).list_runs(method=method, limit=limit, owner=owner):
        if run["method"].startswith(CHECKPOINT_PREFIX):
            continue
        summary = run.get("summary") or {}
        ours = summary.get("format") == FORMAT
        out.append({"id": run["id"], "method": run["method"], "created": run["created"], "owner": run["owner"],
                    "format": FORMAT if ours else None, "source": summary.get("source") if ours else None,
                    "metrics": summary.get("metrics", []) if ours else [],
                    "failures": summary.get("failures", []) if ours else [],
                    "stopped": summary.get("stopped") or None})
    return out
