"""``valdemo runs``: list, reopen and export saved runs of any method.

The CLI runs on the machine that holds the database, so by default it sees every run there;
``--owner ID`` narrows it to what that owner may read (the app's rule).
"""

from __future__ import annotations

import argparse

from . import CLIError, emit


def register(sub: argparse._SubParsersAction) -> None:
    from . import OneLineParser

    p = sub.add_parser("runs", help="list, reopen and export saved runs")
    rsub = p.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    p.set_defaults(func=lambda args: p.error("choose a subcommand: list, show or export"))

    ls = rsub.add_parser("list", help="saved runs, newest first")
    ls.add_argument("--method", default="", help="only this method's runs (vum, svo, clave, univar, ...)")
    ls.add_argument("--limit", type=int, default=50)
    _owner_arg(ls)
    ls.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ls.set_defaults(func=run_list)

    show = rsub.add_parser("show", help="one run: metrics with n and intervals, failures, protocol, models, caveats")
    show.add_argument("run_id")
    _owner_arg(show)
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    show.set_defaults(func=run_show)

    exp = rsub.add_parser("export", help="write a run's rows to a .csv or .jsonl file")
    exp.add_argument("run_id")
    exp.add_argument("--out", required=True, help="file to write; its suffix (.csv or .jsonl) picks the format")
    _owner_arg(exp)
    exp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    exp.set_defaults(func=run_export)


def _owner_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", default=None, help="only runs this owner id may read (default: all runs here)")


def _open(args: argparse.Namespace) -> dict:
    from ..core.runview import RunNotFound, open_run

    try:
        return open_run(args.run_id, args.owner)
    except RunNotFound as exc:
        raise CLIError(str(exc)) from exc


def run_list(args: argparse.Namespace) -> int:
    from ..core.runview import LIST_HEADERS, list_table

    if args.limit < 1:
        raise CLIError("--limit must be at least 1")
    rows = list_table(args.owner, args.method or None, args.limit)
    out = {"runs": [dict(zip(LIST_HEADERS, r, strict=True)) for r in rows]}

    def human(o: dict) -> str:
        if not o["runs"]:
            return "no saved runs"
        return "\n".join("  ".join(str(v) for v in r.values() if v != "") for r in o["runs"])

    emit(out, args.json, human=human)
    return 0


def _human_show(o: dict) -> str:
    lines = [f"run {o['id']} · {o['method']} · {o['when']} UTC · source {o['source'] or 'unknown'}"]
    from ..core.runview import models_text

    p = o["protocol"]
    if p:
        lines.append(f"protocol: {p.get('name', '')}" + (f" (hash {p['hash']})" if p.get("hash") else " (no hash saved)"))

    if o["models"]:
        lines.append(f"models: {models_text(o['models'])}")
    if o["metrics"]:
        lines.append("metrics (value [95% interval] (n), source):")
        for m in o["metrics"]:
            value = "n/a" if m["value"] is None else m["value"]
            lines.append(f"  {m['metric']}: {value} {m['95% interval']} (n={m['n']}) · {m['source']}")
    if o["failures"]:
        lines.append("failures:")
        for f in o["failures"]:
            why = f" ({f['reasons']})" if f["reasons"] else ""
            lines.append(f"  {f['failed']} of {f['of (total)']} {f['step']}{why}")
    if "saved_summary" in o:
        import json

        lines.append(f"saved summary: {json.dumps(o['saved_summary'], ensure_ascii=False, default=str)}")
    lines.append(f"rows: {o['rows']}")
    lines += [f"caveat: {c}" for c in o["caveats"]]
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    from ..core.runview import summary

    emit(summary(_open(args)), args.json, human=_human_show)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..core.runview import export_rows

    run = _open(args)
    path = export_rows(run, args.out)
    out = {"run": run["id"], "path": str(path), "rows": len(run.get("rows") or [])}
    emit(out, args.json, human=lambda o: f"wrote {o['rows']} rows of {o['run']} to {o['path']}")
    return 0
