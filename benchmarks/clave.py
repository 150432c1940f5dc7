"""CLAVE goal benchmark (issue 15) and calibration speed.

Run by hand; never run by CI:

    .venv/bin/python benchmarks/clave.py                      # goal table, no judge (fast)
    nice -n 10 .venv/bin/python benchmarks/clave.py --judge local --rows-per-value 30 --variants head-all
    .venv/bin/python benchmarks/clave.py --speed               # time to calibrate on 100 labels per value

Data: the real ValueNet files in ../shared/data/valuenet (five Schwartz values, 500 human
labels each, three classes), 5-fold cross-validation. Each variant's default recognizer is
compared with the best baseline that reads no label (embedding similarity, the judge zero-shot,
or the per-value majority), macro-F1 per value over the classes that value has. The goal
(issue 15): mean margin >= 0.05 and no value lost. All numbers in one run come from one
machine (a shared 2-core CPU here), the project's own measurements.

With ``--judge``, every method runs on the same folds and the same rows: the judge zero-shot,
the judge reading value concepts written from the fold's training rows, the recognizer reading
the judge's per-response concepts, and the same recognizer without concepts (the ablation).
The judge's generations are slow on a CPU, so such a run caps the rows per value
(``--rows-per-value``, printed with the rows held out per fold) and its answers go to the
response cache (a second run is served from it).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VALDEMO_DATA_DIR", tempfile.mkdtemp(prefix="valdemo-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from valdemo import clave  # noqa: E402
from valdemo.models import BUNDLED_CAVEAT  # noqa: E402

VALUENET = ROOT.parent / "shared" / "data" / "valuenet"

#: name -> calibrate() options
VARIANTS = {
    "head-all": {"kind": "head"},
    "head-100-random": {"kind": "head", "per_value": 100, "selection": "random"},
    "head-100-kmeans": {"kind": "head", "per_value": 100, "selection": "kmeans"},
    "finetune-100-kmeans": {"kind": "finetune", "per_value": 100, "selection": "kmeans"},
    "finetune-all": {"kind": "finetune"},
    "lora-all": {"kind": "lora"},
}


def load(rows_per_value: int | None, seed: int = 0) -> list[clave.Sample]:
    if not VALUENET.is_dir():
        sys.exit(f"ValueNet not found at {VALUENET}: this benchmark needs it")
    out = []
    for f in sorted(VALUENET.glob("*.csv")):
        rows = clave.read_samples(f)
        random.Random(seed).shuffle(rows)
        out += rows[:rows_per_value] if rows_per_value else rows
    return out


def fmt(m: dict) -> str:
    if m["value"] is None:
        return f"n/a (n={m['n']})"
    iv = m["interval"]
    return f"{m['value']:.3f} [{iv[0]:.3f}, {iv[1]:.3f}] (n={m['n']})"


def method_table(report: dict) -> list[str]:
    """Every method's macro-F1 per value (n), and the mean over values, on the same folds and rows."""
    methods = report["methods"]
    short = {"recognizer": "recognizer", "no_concepts": "no concepts (ablation)", "embed_zero_shot": "embed zero-shot",
             "llm_zero_shot": "judge zero-shot", "llm_concepts": "judge + concepts", "majority": "majority"}
    bundled = bool(report.get("llm") and report["llm"]["is_bundled"])
    heads = [short[m] + (" *" if bundled and m.startswith("llm_") else "") for m in methods]
    lines = [f"{'value':<13}" + "".join(f"{h:>24}" for h in heads)]
    for v, block in report["per_value"].items():
        cells = []
        for m in methods:
            f1 = block[m]["macro_f1"]
            bad = f" {block[m]['failed']}?" if block[m]["failed"] else ""
            cells.append("n/a" if f1["value"] is None else f"{f1['value']:.3f} (n={f1['n']}){bad}")
        lines.append(f"{v:<13}" + "".join(f"{c:>24}" for c in cells))
    means = []
    for m in methods:
        f1 = report["overall"][m]["macro_f1"]
        means.append(f"{f1['value']:.3f} [{f1['interval'][0]:.2f},{f1['interval'][1]:.2f}]")
    lines.append(f"{'mean':<13}" + "".join(f"{c:>24}" for c in means))
    n_train = {m: sorted({report["per_value"][v][m]["n_train"] for v in report["per_value"]}) for m in methods}
    lines.append("n_train per value (labels each method read, mean over folds): " + "; ".join(
        f"{short[m]} {'/'.join(f'{x:g}' for x in n_train[m])}" for m in methods))
    lines.append("'k?' after a cell: k unreadable judge answers among its n, scored wrong")
    if bundled:
        lines.append(f"* judged by the bundled model ({report['llm']['model']}, read by {report['llm']['how']}): "
                     f"{BUNDLED_CAVEAT}")
    return lines


def goal_table(name: str, report: dict) -> list[str]:
    goal = report["goal"]
    base = goal["best_baseline"]
    lines = [f"\n## {name}: {report['small_model']['title']}"
             + (f", <= {report['small_model']['per_value']} labels per value ({report['small_model']['selection']})"
                if report["small_model"]["per_value"] else ", all training labels")
             + (", per-response concepts" if report["concepts"]["per_response"] else "")
             + f" · {report['protocol']} · {report['seconds']:.0f} s",
             f"{'value':<13}{'n_train':>8}  {'recognizer macro-F1 [95%] (n)':<34}"
             f"{'best uncalibrated: ' + base:<40}{'margin':>8}"]
    for v, block in report["per_value"].items():
        r, b = block["recognizer"], block[base]
        lines.append(f"{v:<13}{r['n_train']:>8g}  {fmt(r['macro_f1']):<34}{fmt(b['macro_f1']):<40}"
                     f"{goal['margins'][v]:>+8.3f}")
    mm = goal["mean_margin"]
    lines.append(f"mean margin {mm['value']:+.3f} [{mm['interval'][0]:+.3f}, {mm['interval'][1]:+.3f}] "
                 f"(n={mm['n']} values); values lost: {', '.join(goal['values_lost']) or 'none'}; "
                 f"goal {'MET' if goal['met'] else 'not met'}")
    others = [m for m in report["methods"] if m != "recognizer"]
    lines.append("all methods, mean macro-F1 over values: " + "; ".join(
        f"{m} {report['overall'][m]['macro_f1']['value']:.3f}" for m in ["recognizer", *others]))
    for f in report["failures"]:
        if f["total"]:
            lines.append(f"failures: {f['step']}: {f['failed']} of {f['total']}")
    cal = report["calibration"]
    lines.append("ECE raw -> temperature-scaled (other folds): " + "; ".join(
        f"{v} {c['ece_raw']['value']:.3f}->{c['ece_scaled']['value']:.3f}" for v, c in cal.items()))
    if report.get("learning_curve"):
        lines.append("learning curve (labels per value: mean macro-F1 ± sd over folds x orders): " + "; ".join(
            f"{c['n_per_value']}: {c['macro_f1']:.3f}±{c['sd']:.3f} ({c['runs']} runs)" for c in report["learning_curve"]))
    if report.get("concepts", {}).get("examples"):
        ex = report["concepts"]["examples"][0]
        lines.append(f"example per-response concepts ({ex['value']}): {'; '.join(ex['concepts']) or '(none)'}")
    lines.append("every method, same folds and rows:")
    lines += method_table(report)
    return lines


def speed(judge_spec: str | None, per_value: int = 100, kinds: tuple[str, ...] = ("head", "finetune", "lora"),
          lora_steps: int = 4) -> list[str]:
    """Wall and CPU seconds to calibrate on ``per_value`` labels per value (5 values), per small model."""
    samples = load(per_value, seed=1)
    texts, values = [s.text for s in samples], [s.value for s in samples]
    lines = [f"\n## time to calibrate on {per_value} labels per value (5 values, {len(samples)} labels), this CPU, "
             f"load average {os.getloadavg()[0]:.1f} at the start",
             f"{'step':<62}{'wall s':>9}{'CPU s':>9}"]

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def row(name: str, t0: tuple[float, float]) -> str:
        w, c = clock()
        line = f"{name:<62}{w - t0[0]:>9.2f}{c - t0[1]:>9.2f}"
        print(line, flush=True)
        return line

    emb = clave._Embeddings("")
    t0 = clock()
    emb(texts)
    lines.append(row(f"embed {len(texts)} texts with the bundled MiniLM (first time)", t0))
    for kind in kinds:
        if kind == "lora":  # a full run is long on a CPU: time a few steps and say how many a full run takes
            model = clave.LoraCausalLM(max_steps=lora_steps)
            full = model.epochs * -(-len(samples) // model.batch_size)
            t0 = clock()
            model.fit(samples, None, clave.value_classes(samples))
            lines.append(row(f"LoRA SmolLM2-135M: load + {model.steps_done} of {full} steps (batch {model.batch_size})",
                             t0))
            continue
        t0 = clock()
        clave.train_recognizer(samples, kind=kind, _emb=emb)
        lines.append(row(f"fit small model: {clave.SMALL_MODELS[kind].title}", t0))
    if judge_spec:
        from valdemo.models import get_model

        judge = get_model(judge_spec, use_cache=False)
        t0 = clock()
        _, fails = clave.response_concepts(judge, texts[:50], values[:50])
        lines.append(row(f"per-response concepts, 50 texts ({judge_spec}, uncached)", t0)
                     + f"  ({fails.failed} of {fails.total} unreadable)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-value", type=int, default=None, help="subsample each value's file (default all 500)")
    ap.add_argument("--variants", default="head-all,head-100-random,head-100-kmeans",
                    help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--judge", default=None, help="judge model spec (e.g. local): concepts and judge baselines")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--concept-tokens", type=int, default=32, help="judge tokens per per-response concept answer")
    ap.add_argument("--guideline-tokens", type=int, default=96, help="judge tokens per fold's value concepts")
    ap.add_argument("--no-learning-curve", action="store_true")
    ap.add_argument("--speed", action="store_true", help="only the calibration-time table")
    ap.add_argument("--speed-per-value", type=int, default=100, help="labels per value for --speed (default 100)")
    ap.add_argument("--speed-kinds", default="head,finetune,lora", help="small models for --speed")
    ap.add_argument("--lora-steps", type=int, default=4, help="LoRA optimiser steps timed by --speed")
    args = ap.parse_args()
    print(f"CLAVE benchmark · ValueNet ({VALUENET}) · cpu count {os.cpu_count()} · "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    if args.speed:
        print("\n".join(speed(args.judge, args.speed_per_value, tuple(args.speed_kinds.split(",")), args.lora_steps)))
        return
    samples = load(args.rows_per_value)
    judge = None
    if args.judge:
        from valdemo.models import get_model

        judge = get_model(args.judge)
    counts = defaultdict(int)
    for s in samples:
        counts[s.value] += 1
    print(f"{len(samples)} labelled rows: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
          + (f" (limited to {args.rows_per_value} per value, seeded; about {args.rows_per_value // args.folds} "
             f"held out per value in each of {args.folds} folds)" if args.rows_per_value else ""))
    if judge is not None:
        print(f"judge: {args.judge}; per-response concepts {args.concept_tokens} tokens, value concepts "
              f"{args.guideline_tokens} tokens per fold; load average {os.getloadavg()[0]:.1f} at the start")
    reports = {}
    for n, name in enumerate(args.variants.split(",")):
        opts = VARIANTS[name.strip()]
        curve = not args.no_learning_curve and n == 0 and opts["kind"] == "head"  # the first variant's only
        report, _ = clave.calibrate(samples, folds=args.folds, judge=judge, learning_curve=curve,
                                    concept_tokens=args.concept_tokens, guideline_tokens=args.guideline_tokens,
                                    fit_final=False, **opts)
        reports[name.strip()] = report
        print("\n".join(goal_table(name, report)), flush=True)
    if len(reports) > 1:
        print("\n".join(compare_variants(reports)), flush=True)


def compare_variants(reports: dict[str, dict]) -> list[str]:
    """The recognizers of several variants on the same folds and rows: macro-F1 per value, the mean,
    the paired difference to the first variant (bootstrap over values), and seconds per run."""
    from valdemo.core.metrics import bootstrap

    names = list(reports)
    first = reports[names[0]]
    lines = [f"\n## small models compared (same folds, same held-out rows; load average {os.getloadavg()[0]:.1f} now)",
             f"{'value':<13}" + "".join(f"{n:>24}" for n in names)]
    for v in first["per_value"]:
        lines.append(f"{v:<13}" + "".join(f"{reports[n]['per_value'][v]['recognizer']['macro_f1']['value']:>24.3f}"
                                          for n in names))
    lines.append(f"{'mean':<13}" + "".join(f"{reports[n]['overall']['recognizer']['macro_f1']['value']:>24.3f}"
                                           for n in names))
    lines.append(f"{'seconds':<13}" + "".join(f"{reports[n]['seconds']:>24.0f}" for n in names))
    for n in names[1:]:
        diffs = [reports[n]["per_value"][v]["recognizer"]["macro_f1"]["value"]
                 - first["per_value"][v]["recognizer"]["macro_f1"]["value"] for v in first["per_value"]]
        iv = bootstrap(diffs)
        mean = sum(diffs) / len(diffs)
        won = sum(d > 0 for d in diffs)
        lines.append(f"{n} - {names[0]}: mean {mean:+.3f} [{iv[0]:+.3f}, {iv[1]:+.3f}] over {len(diffs)} values; "
                     f"higher on {won} of {len(diffs)}: {'wins' if mean > 0 and iv[0] > 0 else 'does not win'}")
    return lines


if __name__ == "__main__":
    main()
