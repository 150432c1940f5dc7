"""``valdemo clave``: calibrate the CLAVE recognizer, import/export labels, predict, agreement."""

from __future__ import annotations

import argparse

from . import CLIError, add_common, add_model_arg, emit, progress_printer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clave", help="CLAVE: calibrate a small value recognizer on human labels")
    cmds = p.add_subparsers(dest="clave_command", metavar="ACTION", required=True)

    cal = cmds.add_parser("calibrate", help="calibrate on labelled samples and score it beside baselines")
    cal.add_argument("--labels", required=True, action="append", metavar="PATH",
                     help="CSV/JSONL with text,value,label, or a ValueNet per-value CSV (input,label), "
                          "or a folder of them; repeatable")
    cal.add_argument("--concepts", metavar="PATH", help="value concepts a person wrote, for the judge-with-concepts "
                     "baseline: CSV/JSONL with value,kind,concept (kind adheres|opposes)")
    cal.add_argument("--small-model", choices=["head", "finetune", "lora"], default="head",
                     help="head: logistic head on frozen MiniLM (default); finetune: fine-tuned MiniLM (slow on CPU); "
                          "lora: LoRA fine-tune of the bundled SmolLM2-135M (for a GPU)")
    cal.add_argument("--per-value", type=int, default=None, metavar="N",
                     help="calibrate on at most N labels per value (CLAVE: under 100); default all")
    cal.add_argument("--selection", choices=["random", "kmeans"], default="random",
                     help="which labels when capped: random, or nearest to k-means centroids (CLAVE, Sec. 3)")
    cal.add_argument("--no-response-concepts", action="store_true",
                     help="with a judge: do not write per-response concepts (the recognizer reads text only)")
    split = cal.add_mutually_exclusive_group()
    split.add_argument("--eval", metavar="PATH", help="held-out labelled file to score on (else k-fold)")
    split.add_argument("--folds", type=int, default=5, help="k for k-fold cross-validation (default 5)")
    add_model_arg(cal, "--judge", default="none",
                  help="judge model: writes per-response concepts and is scored as baselines; none to leave out")
    cal.add_argument("--no-learning-curve", action="store_true", help="skip the learning curve")
    cal.add_argument("--save", action="store_true", help="store the calibrated recognizer (the app then uses it)")
    cal.add_argument("--name", default="", help="with --save: the recognizer's name (predict --recognizer NAME, "
                                                "profile --clave-recognizer NAME)")
    cal.add_argument("--no-run", action="store_true", help="do not save the evaluation as a run (valdemo runs)")
    cal.add_argument("--seed", type=int, default=0)
    add_common(cal)
    cal.set_defaults(func=run_calibrate)

    exp = cmds.add_parser("export", help="export the stored labels")
    exp.add_argument("--format", choices=["jsonl", "csv"], required=True)
    exp.add_argument("--out", required=True, metavar="PATH")
    exp.add_argument("--annotator", default=None, help="only this annotator's labels")
    add_common(exp)
    exp.set_defaults(func=run_export)

    imp = cmds.add_parser("import", help="import samples and labels into the store")
    imp.add_argument("path", help="CSV/JSONL (text,value[,label]) or ValueNet per-value CSV")
    imp.add_argument("--annotator", default="gold", help="who the file's labels belong to (default gold)")
    add_common(imp)
    imp.set_defaults(func=run_import)

    pred = cmds.add_parser("predict", help="label a text with the latest calibrated recognizer")
    pred.add_argument("--value", required=True)
    pred.add_argument("--recognizer", default="", metavar="NAME", help="name or id (default: the newest)")
    pred.add_argument("text")
    add_common(pred)
    pred.set_defaults(func=run_predict)

    lst = cmds.add_parser("recognizers", help="list the saved recognizers: name, id, values, held-out macro-F1")
    add_common(lst)
    lst.set_defaults(func=run_recognizers)

    agr = cmds.add_parser("agreement", help="agreement between annotators on shared samples")
    add_common(agr)
    agr.set_defaults(func=run_agreement)


def _read_all(paths: list[str]):
    from ..clave import read_samples
    from ..inputs import data_files

    out = []
    for f in data_files(paths):
        out += read_samples(f)
    return out


def _table(report: dict) -> str:
    from ..clave import SUMMARY_HEADERS, summary_table

    lines = [f"{report['protocol']}: {report['n_labels']} labels, {report['n_eval']} scored held out; "
             f"small model: {report['small_model']['title']}"
             + (" + per-response concepts" if report["concepts"]["per_response"] else ""),
             f"{SUMMARY_HEADERS[0]:<18}{SUMMARY_HEADERS[1]:<54}{'macroF1':>8} {'95% interval':<17}{'acc':>7}"
             f"{'n_train':>9}{'n_eval':>8}{'unread':>8}"]
    for scope, method, f1, iv, acc, n_train, n_eval, failed in summary_table(report):
        cells = ["-" if x is None else f"{x:.3f}" for x in (f1, acc)]
        n_tr = n_train if isinstance(n_train, str) else f"{n_train:g}"
        lines.append(f"{scope:<18}{method:<54}{cells[0]:>8} {iv:<17}{cells[1]:>7}{n_tr:>9}{n_eval:>8}{failed:>8}")
    goal = report.get("goal") or {}
    if goal:
        mm = goal["mean_margin"]
        lines.append(f"recognizer - {goal['best_baseline']}: mean margin {mm['value']:+.3f} "
                     f"[{mm['interval'][0]:+.3f}, {mm['interval'][1]:+.3f}] (n={mm['n']} values); "
                     f"values lost: {', '.join(goal['values_lost']) or 'none'}")
    for f in report.get("failures", []):
        if f["total"]:
            lines.append(f"{f['step']}: {f['failed']} of {f['total']} failed")
    if report.get("run_id"):
        lines.append(f"run {report['run_id']}" + (f"; recognizer {report.get('recognizer_name') or ''} "
                                                   f"{report['recognizer_id']}" if report.get("recognizer_id") else ""))
    if report.get("llm") and report["llm"].get("is_bundled"):
        from ..models import BUNDLED_CAVEAT

        lines.append(f"note: {BUNDLED_CAVEAT}")
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    from .. import clave
    from ..models import get_model
    from ..store import get_store

    if args.name and not args.save:
        raise CLIError("--name names a saved recognizer: add --save")
    if args.save and args.small_model != "head":
        raise CLIError(f"--save keeps only the 'head' small model for now, not {args.small_model!r}")
    name = clave.check_recognizer_name(args.name)
    samples = [s for s in _read_all(args.labels) if s.label is not None]
    if not samples:
        raise CLIError("the labels files hold no labelled rows")
    concepts = clave.read_concepts(args.concepts) if args.concepts else {}
    eval_samples = None
    if args.eval:
        eval_samples = [s for s in _read_all([args.eval]) if s.label is not None]
    judge = None if args.judge.strip().lower() in {"", "none"} else get_model(args.judge, use_cache=not args.no_cache)
    report, rec = clave.calibrate(samples, concepts, folds=args.folds, eval_samples=eval_samples, judge=judge,
                                  learning_curve=not args.no_learning_curve, seed=args.seed,
                                  progress=progress_printer("embedding"), kind=args.small_model,
                                  use_concepts=(judge is not None and not args.no_response_concepts),
                                  per_value=args.per_value, selection=args.selection)
    from ..core.owner import LOCAL_ID

    if args.save or not args.no_run:  # the local tools' owner (core/owner.py), as the local app
        clave.save_calibration(get_store(), report, rec if args.save else None, LOCAL_ID, name, source="cli")
    emit(report, args.json, human=_table)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .. import clave
    from ..store import get_store

    result = clave.export_labels(get_store(), args.format, args.out, args.annotator)
    emit(result, args.json, human=lambda o: f"wrote {o['labels']} labels to {o['path']}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from .. import clave
    from ..store import get_store

    result = clave.import_file(get_store(), args.path, args.annotator)
    emit(result, args.json, human=lambda o: f"{o['samples']} samples, {o['labels_added']} new labels")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .. import clave
    from ..store import get_store

    result = clave.predict_text(get_store(), args.text, args.value, recognizer=args.recognizer)
    emit(result, args.json, human=lambda o: f"{o['label_name']}  " + "  ".join(
        f"{k} {v:.2f}" for k, v in o["probs"].items()) + f"  (recognizer {o['recognizer_name'] or o['recognizer']})")
    return 0


def run_recognizers(args: argparse.Namespace) -> int:
    from .. import clave
    from ..store import get_store

    def human(out: dict) -> str:
        rows = out["recognizers"]
        if not rows:
            return "no saved recognizers (valdemo clave calibrate --save --name NAME)"
        return "\n".join(f"{r['name'] or '-':<24}{r['id']:<32}{r['kind'] or '':<9}"
                         + ", ".join(f"{v} {'n/a' if f is None else f'{f:.3f}'}"
                                     for v, f in r["held_out_macro_f1"].items()) for r in rows)

    emit({"recognizers": clave.list_recognizers(get_store())}, args.json, human=human)
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from .. import clave
    from ..store import get_store

    emit(clave.agreement(get_store()), args.json)
    return 0
