"""Issue 13: every run is saved once, through valdemo.core.runs, whichever door it came in by.

- No module below core/runs.py writes a run itself (the store's insert is private to it).
- Checkpoints of resumable runs share the table but are never listed as runs.
- A run made from the tab's handler (UI), through the launched app's named endpoint (API) and
  from the command line (CLI) is listed by ``python -m valdemo runs list``, in its own process.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from valdemo.core.runs import CHECKPOINT_PREFIX, checkpoints, list_runs, save_checkpoint
from valdemo.store import Store

ROOT = Path(__file__).resolve().parents[1]
SVO_ROWS = [{"model": "m", "orientation": "prosocial", "trial": 0, "choices": ["A", "A", "A", "A", "A", "A"]},
            {"model": "m", "orientation": "competitive", "trial": 0, "choices": ["B", "C", "A", "I", "E", "F"]}]


def test_only_core_runs_writes_runs():
    """A call of ``<anything>.save_run(...)`` or ``._save_run(...)`` (the store's insert) outside
    valdemo/core/runs.py is a second path; ``save_run(result, ...)`` imported from core.runs is the one."""
    offenders = []
    for path in sorted((ROOT / "valdemo").rglob("*.py")):
        if path == ROOT / "valdemo" / "core" / "runs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"save_run", "_save_run"}):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_checkpoints_are_kept_but_never_listed_as_runs(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    save_checkpoint("denevil-attack-round", {"key": "k1", "round": 1}, owner="local", store=store)
    save_checkpoint("denevil-attack-round", {"key": "k1", "round": 2}, owner="local", store=store)
    assert [c["round"] for c in checkpoints("denevil-attack-round", "local", store=store)] == [2, 1]
    assert checkpoints("denevil-attack-round", "someone-else", store=store) == []
    assert list_runs(None, store=store) == []
    assert all(r["method"].startswith(CHECKPOINT_PREFIX) for r in store.list_runs())


def _cli(*args: str, timeout: int = 300) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "valdemo", *args, "--json"], capture_output=True, text=True,
                         env=env, timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.slow
def test_runs_from_ui_api_and_cli_are_listed_by_the_cli(client, tmp_path):
    from gradio_client import handle_file

    from valdemo.ui.recorded import replay_recorded

    f = tmp_path / "svo.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in SVO_ROWS) + "\n", encoding="utf-8")
    *_, ui_summary = replay_recorded("svo", str(f), True, owner="local")  # the tab's handler, as the UI calls it
    *_, api_summary = client.predict("svo", handle_file(str(f)), True, api_name="/replay_recorded")
    cli_run = _cli("svo", "replay", "--jsonl", str(f))["run_id"]
    made = {"ui": ui_summary["runs"][0], "api": api_summary["runs"][0], "cli": cli_run}
    assert len(set(made.values())) == 3
    listed = {r["run"]: r for r in _cli("runs", "list", "--limit", "500")["runs"]}
    for door, run_id in made.items():
        assert run_id in listed, (door, run_id)
        assert listed[run_id]["method"] == "svo"
    for door, run_id in made.items():  # saved once, in the one shape, saying which door it came by
        shown = _cli("runs", "show", run_id)
        assert shown["format"] and shown["source"] == ("cli" if door == "cli" else "ui"), (door, shown["source"])
