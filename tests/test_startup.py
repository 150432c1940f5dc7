"""Start-up stays light (issue 19): building the app imports no model stack and draws no figure;
the figures a tab shows from the start arrive on the page's load event, privately.

Not timed (times on a shared machine prove nothing): benchmarks/startup.py measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ["torch", "transformers", "umap", "sklearn", "sentence_transformers"]

PROBE = f"""
HEAVY = {HEAVY!r}
import json, sys
from valdemo.ui import build_app
demo = build_app()
print(json.dumps({{"heavy": [m for m in HEAVY if m in sys.modules],
                  "figures": "plotly.graph_objs._figure" in sys.modules}}))
"""


def test_building_the_app_imports_no_model_stack_and_draws_no_figure():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == [], f"build_app imported {seen['heavy']}: import them inside the functions that use them"
    assert seen["figures"] is False, "build_app built a plotly figure: draw it on load (valdemo.ui.lazy)"


def _load_deps(config: dict) -> list[dict]:
    return [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])]


def test_first_figures_come_on_page_load_privately(served_app):
    demo, _ = served_app
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    loaded = {o for d in _load_deps(config) for o in d["outputs"]}
    assert ids["svo-circle"] in loaded and ids["univar-plot"] in loaded
    for dep in _load_deps(config):
        if ids["svo-circle"] in dep["outputs"] or ids["univar-plot"] in dep["outputs"]:
            assert dep["api_visibility"] == "private" and dep["queue"] is False
    assert "/svo_circle_figure" not in demo.get_api_info()["named_endpoints"]


def test_queue_limits_hold_when_set_before_the_build(served_app, settings):
    demo, _ = served_app
    assert demo._queue.max_size == settings.queue_max_size
    assert demo._queue.default_concurrency_limit == 4


@pytest.mark.slow
def test_svo_circle_is_drawn_on_first_load_in_a_browser(served_app, browser):
    """What a person sees: the empty SVO circle without touching anything."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    try:
        page.goto(served_app[1], timeout=120_000)
        page.get_by_role("tab", name="SVO game").click()
        page.wait_for_selector("#svo-circle .main-svg", timeout=60_000)
        assert page.locator("#svo-circle .js-plotly-plot").count() == 1
    finally:
        page.close()


@pytest.mark.parametrize(("given", "expected"), [(None, "ACTIVE 10000"), ("PASSIVE", "PASSIVE -"),
                                                 ("ACTIVE", "ACTIVE -")])
def test_openmp_threads_spin_briefly_while_waiting_unless_told_otherwise(given, expected):
    """A brief spin by default (ACTIVE, GOMP_SPINCOUNT=10000), set before torch loads OpenMP (a fresh
    process); an explicit policy wins and keeps OpenMP's own spin count."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= {"OMP_WAIT_POLICY": given} if given else {}
    code = "import valdemo, os, torch; print(os.environ['OMP_WAIT_POLICY'], os.environ.get('GOMP_SPINCOUNT', '-'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == expected
