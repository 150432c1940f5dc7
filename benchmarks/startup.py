"""Start-up speed: import gradio, build the app (its tabs apart), launch, first page (issue 19).

Run: `.venv/bin/python benchmarks/startup.py [--baseline DIR] [--repeats N]`.

Every stage runs in a fresh interpreter, so imports are really cold (the OS file cache is warm
after the first repeat). With ``--baseline DIR`` (a copy of an older tree, e.g.
``git archive <commit> | tar -x -C DIR``) the two trees run interleaved, A then B, in the same
run, so the ratios hold even on a loaded machine; the absolute seconds do not. Targets (issue 19):
first page <= 4 s, tabs built <= 0.5 s. Prints tables; never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import ROOT, free_port, print_table

HEAVY = ["torch", "transformers", "umap", "sklearn", "sentence_transformers", "scipy", "numba"]

# Runs inside the tree under test (cwd = that tree): one JSON line of stage timings.
STAGES = r"""
import importlib, json, os, sys, time, urllib.request
sys.path.insert(0, os.getcwd())
t0 = time.perf_counter()
import gradio as gr
t1 = time.perf_counter()
from valdemo.config import get_settings
import valdemo.ui as ui
from valdemo.ui import build_app, launch_kwargs, models_panel
mods = [importlib.import_module("valdemo.ui." + t[1]) for t in ui.TABS]
t2 = time.perf_counter()
tabs = {}
def timed(name, fn):
    def wrapper(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            tabs[name] = tabs.get(name, 0.0) + time.perf_counter() - s
    return wrapper
models_panel.build = timed("models panel", models_panel.build)
for t, m in zip(ui.TABS, mods):
    m.build = timed(t[1], m.build)
settings = get_settings()
demo = build_app(settings)
t3 = time.perf_counter()
heavy = [h for h in HEAVY if h in sys.modules]
port = int(os.environ["BENCH_PORT"])
demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
            **launch_kwargs(settings))
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        break
    except OSError:
        time.sleep(0.02)
t4 = time.perf_counter()
print(json.dumps({"import gradio": t1 - t0, "import valdemo.ui": t2 - t1, "build_app": t3 - t2,
                  "tabs (panel + tab builds)": sum(tabs.values()), "launch to first 200": t4 - t3,
                  "per_tab": tabs, "heavy": heavy}))
demo.close()
"""


def stages(tree: Path) -> dict:
    env = {**os.environ, "BENCH_PORT": str(free_port()), "GRADIO_ANALYTICS_ENABLED": "False"}
    code = f"HEAVY = {HEAVY!r}\n" + STAGES
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=300)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[-1])


def first_page(tree: Path) -> float:
    """`python app.py` from process start to the first 200 on /."""
    port = free_port()
    env = {**os.environ, "VALDEMO_PORT": str(port), "VALDEMO_HOST": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 180:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                return time.perf_counter() - start
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("app.py exited before serving") from None
                time.sleep(0.02)
        raise RuntimeError("no first page in 180 s")
    finally:
        proc.kill()
        proc.wait(20)


def load_note() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    cores = os.cpu_count() or 1
    busy = one > 0.5 * cores
    return (f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {cores} cores"
            + (": measured under load, absolute seconds are inflated; compare ratios" if busy else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="an older tree to run interleaved with this one")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    pages: dict[str, list[float]] = {k: [] for k in trees}
    print(load_note())
    for i in range(args.repeats):
        for name, tree in trees.items():  # interleaved: A, B, A, B, ...
            runs[name].append(stages(tree))
            pages[name].append(first_page(tree))
            print(f"repeat {i + 1}: {name} first page {pages[name][-1]:.2f} s", flush=True)
    keys = ["import gradio", "import valdemo.ui", "tabs (panel + tab builds)", "build_app", "launch to first 200"]
    targets = {"tabs (panel + tab builds)": 0.5, "first page (python app.py)": 4.0}

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    rows = []
    for key in keys + ["first page (python app.py)"]:
        cur = statistics.median(pages["this tree"]) if key.startswith("first page") else med("this tree", key)
        row = [key, cur]
        if args.baseline:
            base = statistics.median(pages["baseline"]) if key.startswith("first page") else med("baseline", key)
            row += [base, base / cur if cur else float("nan")]
        row.append(f"<= {targets[key]} s" if key in targets else "")
        rows.append(row)
    header = [f"stage (median of {args.repeats}, s)", "this tree"] + (["baseline", "baseline / this"]
                                                                         if args.baseline else []) + ["target"]
    print_table("valdemo start-up (" + load_note() + ")", header, rows)
    tab_rows = []
    for tab in runs["this tree"][0]["per_tab"]:
        row = [tab, statistics.median(r["per_tab"][tab] for r in runs["this tree"])]
        if args.baseline:
            row.append(statistics.median(r["per_tab"].get(tab, float("nan")) for r in runs["baseline"]))
        tab_rows.append(row)
    print_table("per tab build (s, median)", ["tab", "this tree"] + (["baseline"] if args.baseline else []),
                tab_rows)
    for name in trees:
        print(f"{name}: heavy modules imported by build_app: {runs[name][0]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
