"""``valdemo vum``: the Value dialogue tab's batch run, headless (VUM / ValueDCG)."""

from __future__ import annotations

import argparse

from . import CLIError, add_common, add_model_arg, emit, progress_printer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vum", help="know what vs know why per Schwartz value (VUM / ValueDCG)",
                       description="Discriminator accuracy (know what), judged critique (know why) and "
                                   "their gap DCG = know_why_rate - know_what_acc, per value and overall.")
    p.add_argument("--data", action="append", default=None, metavar="PATH",
                   help="ValueDCG CSV (input,label; value from ..._<VALUE>.csv or a value column), JSONL, "
                        "or a folder of them; repeatable; default: the bundled 120 items")
    add_model_arg(p, "--model", help="target model spec")
    add_model_arg(p, "--judge", help="judge model spec")
    p.add_argument("--values", default="", help="comma-separated values (default: all in the data)")
    p.add_argument("--limit", type=int, default=None, help="items per value; default all")
    p.add_argument("--sampling", choices=["proportional", "balanced"], default="proportional",
                   help="with --limit: keep the file's label shares (as ValueDCG) or interleave labels")
    p.add_argument("--protocol", default="valuedcg",
                   help="prompt protocol: valuedcg (default: ValueDCG's structure), valdemo (this project's), "
                        "or a .toml file")
    p.add_argument("--shots", type=int, default=4, help="few-shot examples in the discriminator prompt")
    p.add_argument("--critique-tokens", type=int, default=None, help="max new tokens per critique part")
    p.add_argument("--no-why", action="store_true", help="know what only (no critique, no judge)")
    p.add_argument("--out", default=None, help="write every row here (.jsonl, or .csv)")
    add_common(p)
    p.set_defaults(func=run)
    sub_vum = p.add_subparsers(dest="vum_command", metavar="replay", required=False)
    r = sub_vum.add_parser("replay", help="score recorded outputs (the ValueDCG release, or a JSONL file) "
                                          "without calling a model",
                           description="Replays recorded know-what answers and judge scores: the option an answer "
                                       "starts with (else a counted failure), the recorded judge's mean part score / 5, "
                                       "the gap, Wilson and bootstrap intervals, per value and per model.")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--valuedcg", metavar="DIR", help="a folder in the ValueDCG release's layout "
                                                       "(response/ and/or know_why_save/)")
    src.add_argument("--jsonl", metavar="FILE", help="recorded rows: value, input, label, answer, optional scores "
                                                     "(see docs/recorded_runs.md)")
    r.add_argument("--save", action="store_true", help="(the default) save one run per model, labelled "
                                                     "'replayed recorded outputs'")
    r.add_argument("--no-save", action="store_true", help="do not save the runs")
    r.add_argument("--owner", default="local", help="owner id recorded with saved runs (default: local, "
                                                    "the local app's owner)")
    r.add_argument("--report", metavar="DIR", default=None,
                   help="write DIR/report.html: the saved replayed models side by side (know what by size, know why)")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    r.set_defaults(func=run_replay)


def _human(result: dict) -> str:
    from ..vum import summary_table

    cols = ["value", "n", "know_what_acc", "know_what_macro_f1", "parse_failures", "know_why_rate", "dcg"]
    lines = ["  ".join(f"{c:>18}" for c in cols)]
    for row in summary_table(result):
        lines.append("  ".join(f"{'-' if row[c] is None else row[c]!s:>18}" for c in cols))
    if result.get("caveat"):
        lines.append(result["caveat"])
    if result.get("run_id"):
        lines.append(f"run {result['run_id']}")
    return "\n".join(lines)


def _replay_human(result: dict) -> str:
    from ..vum import replay as R

    lines = [result["caveat"], *result.get("notes", []), "", "  |  ".join(R.OVERALL_HEADERS)]
    lines += ["  |  ".join(str(c) for c in row) for row in R.overall_table(result)]
    if result.get("consistency"):
        lines += ["", "judge vs people: " + "  |  ".join(R.CONSISTENCY_HEADERS)]
        lines += ["  |  ".join(str(c) for c in row) for row in R.consistency_table(result["consistency"])]
    lines += ["", result["gap_note"]]
    return "\n".join(lines)


def run_replay(args: argparse.Namespace) -> int:
    from ..inputs import InputError
    from ..vum import replay as R

    try:
        result = R.replay(folder=args.valuedcg, jsonl=args.jsonl)
    except InputError as exc:
        raise CLIError(str(exc)) from exc
    if not args.no_save:
        result["runs"] = R.save_runs(result, origin=args.valuedcg or args.jsonl, owner=args.owner, source="cli")
    if args.report:
        from pathlib import Path

        if args.no_save:
            raise CLIError("--report shows the saved replayed runs: leave out --no-save")
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").write_text(R.replayed_report_html(R.replayed_models(args.owner)), encoding="utf-8")
        result["report"] = str(out / "report.html")
    emit(R.public(result), args.json, _replay_human)
    return 0


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import vum
    from ..inputs import check_int
    from ..models import BUNDLED_CAVEAT, get_model, unwrap

    items = vum.load_many(args.data) if args.data else vum.bundled_items()
    present = vum.values_present(items)
    keys = vum.parse_values(args.values, known=present) if args.values.strip() else present
    limit = None if args.limit is None else check_int(args.limit, "--limit", 1, 100_000)
    selected = vum.select_items(items, keys, limit, sampling=args.sampling)
    if not selected:
        raise CLIError(f"the data has no items for {', '.join(keys)}")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in {".jsonl", ".csv"}:
        raise CLIError(f"--out must end in .jsonl or .csv, got {out.name!r}")
    use_cache = not args.no_cache
    target = get_model(args.model, use_cache=use_cache)
    judge = None if args.no_why else get_model(args.judge, use_cache=use_cache)
    config = vum.RunConfig(shots=args.shots, know_why=not args.no_why, protocol=args.protocol,
                           critique_tokens=args.critique_tokens or vum.DEFAULT_CRITIQUE_TOKENS).checked()
    result, rows = vum.run(selected, target, judge, config, pool=items, progress=progress_printer("vum"))
    result["sampling"] = args.sampling
    if out is not None:
        (vum.write_csv if out.suffix.lower() == ".csv" else vum.write_jsonl)(rows, out)
        result["out"] = str(out)
    if any(m is not None and unwrap(m).is_bundled for m in (target, judge)):
        result["caveat"] = BUNDLED_CAVEAT
    if judge is not None and unwrap(target).spec == unwrap(judge).spec:
        result["warning"] = "target and judge are the same model: it grades its own answers"
    from ..core.owner import LOCAL_ID
    from ..core.runs import save_run

    res = vum.to_result(rows, result, [result["caveat"]] if result.get("caveat") else [])
    res.params.update(values=keys, limit=limit, sampling=args.sampling, data=[str(d) for d in args.data or []] or ["bundled"])
    result["run_id"] = save_run(res, owner=LOCAL_ID, source="cli")  # the local tools' owner, as the local app
    emit(result, args.json, _human)
    return 0
