"""``valdemo profile``: the five methods on one or more models; writes report.html and profile.json."""

from __future__ import annotations

import argparse
import sys

from . import add_common, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="value profile: all five methods on one or more models, one report")
    p.add_argument("--models", default="local", help="model specs, comma separated (e.g. local,openai:gpt-4o-mini)")
    p.add_argument("--judge", default="local", help="judge / large model spec (scores, instructs); default local")
    p.add_argument("--size", choices=["quick", "full"], default="quick",
                   help="quick: a few items per method; full: the bundled sets")
    p.add_argument("--out", required=True, help="directory for report.html, profile.json and rows.jsonl")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on generations in the methods that take one (default: each method's own)")
    p.add_argument("--values", default="", help="restrict the value-dialogue part to these Schwartz values "
                                                  "(comma separated; default all)")
    p.add_argument("--clave-recognizer", default="", metavar="NAME",
                   help="the CLAVE recognizer to read answers with (its name or id; default: the newest)")
    add_common(p)
    p.set_defaults(func=run)


def _progress(fraction: float, label: str) -> None:
    sys.stderr.write(f"\rprofile: {fraction * 100:5.1f}% {label[:60]:<60}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from ..profile import ProfileConfig, run_profile, summary_json, write_report

    values = tuple(v.strip() for v in args.values.split(",") if v.strip())
    config = ProfileConfig(size=args.size, max_new_tokens=args.max_new_tokens, values=values,
                           clave_recognizer=args.clave_recognizer.strip())
    from ..core.owner import LOCAL_ID

    profile = run_profile(args.models, args.judge, config, progress=_progress, use_cache=not args.no_cache,
                          owner=LOCAL_ID, source="cli")  # the local tools' owner (core/owner.py), as the local app
    paths = write_report(profile, args.out)
    out = {**summary_json(profile), "files": {k: str(v) for k, v in paths.items()}}
    emit(out, args.json, human=_human)
    return 0


def _human(o: dict) -> str:
    lines = [f"value profile ({o['size']}, judge {o['judge']}), run {o['run_id']}: "
             f"cache hits {o['cache']['hits']}, misses {o['cache']['misses']}, {o['seconds']:.1f} s"]
    for spec, m in o["models"].items():
        lines.append(f"\n{spec}")
        for metric, value in m["headline"].items():
            lines.append(f"  {metric:<48} {'n/a' if value is None else value}")
        for method, s in m["methods"].items():
            if s["status"] != "ok":
                lines.append(f"  [{method}] {s['status']}: {s['error']}")
    if o["caveat"]:
        lines.append("\n" + o["caveat"])
    lines.append("\n" + "\n".join(f"wrote {p}" for p in o["files"].values()))
    return "\n".join(lines)
