"""The ``replay`` subcommand every method shares: ``valdemo <method> replay --jsonl FILE [--json]``.

Scores a file of recorded outputs (shapes: ``docs/recorded_runs.md``) with the method's live
scoring code, without calling a model, and saves it as a run labelled "replayed recorded outputs"
(``--no-save`` to skip). Malformed rows are counted with their line numbers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..core.owner import LOCAL_ID
from . import CLIError, emit


def add_replay_args(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--jsonl", metavar="FILE", required=True,
                        help=f"recorded {what}, one JSON object a line (see docs/recorded_runs.md)")
    parser.add_argument("--no-save", action="store_true", help="do not save the import as a run")
    parser.add_argument("--owner", default=LOCAL_ID, help="owner id recorded with the saved run (default: local, "
                                                         "the local app's owner)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def replay_output(result, run_id: str | None, **extra) -> dict:
    """The JSON of every ``replay`` subcommand: the Result without its rows, the run id, the label."""
    from ..core.recorded import LABEL

    data = result.as_dict()
    rows = data.pop("rows")
    return {"label": LABEL, "method": result.method, "file": result.params.get("origin"), "n_rows": len(rows),
            "run_id": run_id, "malformed_rows": result.extra.get("malformed_rows"), **data, **extra}


def human(out: dict) -> str:
    """Caveats, malformed rows, failures, then every group's metrics with n and interval."""
    from ..core.recorded import RowFailures
    from ..core.result import metrics_table
    from ..core.runs import result_from_dict

    res = result_from_dict({**out, "rows": []})
    lines = [*out["caveats"]]
    bad = out.get("malformed_rows") or {}
    if bad:
        rf = RowFailures(total=bad["total"], failed=bad["failed"], lines=bad.get("lines", {}))
        lines.append(rf.fmt())
    lines += [f.fmt() for f in res.failures[1:]]
    blocks = ([("", res.metrics)] if res.metrics else []) + list(res.groups.items())
    for name, ms in blocks:
        if name:
            lines.append(f"[{name}]")
        for title, value, iv, n, _src in metrics_table(ms):
            lines.append(f"  {title}: {'n/a' if value is None else value} {iv} (n={n})")
    if out.get("run_id"):
        lines.append(f"saved as run {out['run_id']}")
    return "\n".join(lines)


def run_replay(args: argparse.Namespace, score: Callable[[], object], **extra) -> int:
    """Score (``score()`` returns the marked Result), save unless ``--no-save``, print."""
    from ..core.recorded import save
    from ..inputs import InputError

    try:
        result = score()
    except InputError as exc:
        raise CLIError(str(exc)) from exc
    run_id = None if args.no_save else save(result, owner=args.owner, source="cli")
    emit(replay_output(result, run_id, **extra), args.json, human)
    return 0
