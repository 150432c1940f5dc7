"""Reopening saved runs (issue 18): the Runs tab's handlers, `valdemo runs`, and the launched
app's /runs_* endpoints, on real SQLite files, including after a restart (a new process)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid

import pytest

from valdemo.core.result import OWN, Failures, Metric, Result
from valdemo.core.runs import save_run
from valdemo.core.runview import RunNotFound
from valdemo.models import BUNDLED_CAVEAT
from valdemo.store import Store
from valdemo.ui import runs as RV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def a_result(k: int = 3, n: int = 4, target: str = "local", method: str = "vum") -> Result:
    f = Failures("know-what answers")
    for ok in [True] * n + [False]:
        f.add(ok, "" if ok else "mass on options below threshold")
    return Result(
        method=method,
        metrics=[Metric.proportion("know_what_acc", k, n, "correct / readable answers", "VUM paper, sec. 3",
                                   label="know-what accuracy"),
                 Metric.mean("gap", [0.1, 0.3, 0.2], "mean know-what minus know-why", OWN)],
        rows=[{"id": i, "pred": "A" if i < k else "B", "detail": {"p": 0.5}} for i in range(n)],
        failures=[f],
        protocol={"name": "valuedcg", "hash": "0123456789abcdef0123"},
        models={"target": target, "judge": "openai:some-judge"},
    )


def owner() -> str:
    return f"session:{uuid.uuid4().hex[:16]}"


def cli(*args: str, db: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"VALDEMO_DB": db} if db else {})}
    return subprocess.run([sys.executable, "-m", "valdemo", "runs", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_show_gives_metrics_failures_caveat_rows_and_a_download():
    me = owner()
    run_id = save_run(a_result(), owner=me)
    listed = RV.runs_list(me)
    assert listed["run"].tolist() == [run_id]
    assert listed["headline (n)"][0] == "know-what accuracy 0.750 [0.301, 0.954] (n=4)"
    assert listed["protocol"][0] == "valuedcg (0123456789ab)"
    header, metrics, failures, caveats, rows, path = RV.runs_show(run_id, me)
    assert "valuedcg (0123456789ab)" in header and "target: local" in header
    acc = metrics[metrics["metric"] == "know-what accuracy"].iloc[0]
    assert (acc["value"], acc["95% interval"], acc["n"], acc["source"]) == (0.75, "[0.301, 0.954]", 4,
                                                                            "VUM paper, sec. 3")
    assert metrics[metrics["metric"] == "gap"].iloc[0]["source"] == OWN
    f = failures.iloc[0]
    assert (f["step"], f["failed"], f["of (total)"]) == ("know-what answers", 1, 5)
    assert "mass on options below threshold: 1" in f["reasons"]
    assert BUNDLED_CAVEAT in caveats  # the target was the bundled model
    assert rows["pred"].tolist() == ["A", "A", "A", "B"]
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [r["pred"] for r in got] == ["A", "A", "A", "B"] and json.loads(got[0]["detail"]) == {"p": 0.5}


def test_no_bundled_caveat_for_other_models_and_method_filter():
    me = owner()
    svo = save_run(a_result(target="openai:gpt-x", method="svo"), owner=me)
    save_run(a_result(target="openai:gpt-x"), owner=me)
    assert RV.runs_list(me, "svo")["run"].tolist() == [svo]
    assert BUNDLED_CAVEAT not in RV.runs_show(svo, me)[3]


def test_plot_draws_each_group_with_its_interval_else_the_headline():
    me = owner()
    res = a_result()
    res.groups = {"POWER": [Metric.proportion("know_what_acc", 1, 5, "d", "s", label="know-what accuracy")],
                  "HEDONISM": [Metric.proportion("know_what_acc", 4, 5, "d", "s", label="know-what accuracy")]}
    fig = RV.metric_figure(RV.V.open_run(save_run(res, owner=me), me))
    trace = fig.data[0]
    assert list(trace.y) == ["POWER (n=5)", "HEDONISM (n=5)"] and list(trace.x) == [0.2, 0.8]
    iv = res.groups["POWER"][0].interval
    assert trace.error_x.array[0] == pytest.approx(iv[1] - 0.2) and trace.error_x.arrayminus[0] == pytest.approx(0.2 - iv[0])
    plain = RV.metric_figure(RV.V.open_run(save_run(a_result(), owner=me), me))
    assert list(plain.data[0].y) == ["know-what accuracy (n=4)", "gap (n=3)"]


def test_another_owner_sees_nothing_in_public_mode(monkeypatch):
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    me, other = owner(), owner()
    run_id = save_run(a_result(), owner=me)
    assert RV.runs_list(other).empty
    with pytest.raises(RunNotFound, match="no run"):
        RV.runs_show(run_id, other)
    with pytest.raises(RunNotFound):
        RV.runs_compare(run_id, run_id, other)
    assert RV.runs_list(me)["run"].tolist() == [run_id]


def test_compare_shows_both_runs_intervals():
    me = owner()
    a = save_run(a_result(k=1, n=4), owner=me)
    b = save_run(a_result(k=9, n=10), owner=me)
    frame, note = RV.runs_compare(a, b, me)
    acc = frame[frame["metric"] == "know-what accuracy"].iloc[0]
    ma, mb = a_result(k=1, n=4).metrics[0], a_result(k=9, n=10).metrics[0]
    assert (acc["A value"], acc["A n"], acc["B value"], acc["B n"]) == (0.25, 4, 0.9, 10)
    assert acc["A 95% interval"] == f"[{ma.interval[0]:.3f}, {ma.interval[1]:.3f}]"
    assert acc["B 95% interval"] == f"[{mb.interval[0]:.3f}, {mb.interval[1]:.3f}]"
    assert acc["A 95% interval"] != acc["B 95% interval"]
    assert set(frame["metric"]) == {"know-what accuracy", "gap"}
    assert a in note and b in note


def test_cli_bad_id_and_bad_suffix_exit_2_with_one_line(tmp_path):
    db = str(tmp_path / "runs.sqlite")
    run_id = save_run(a_result(), store=Store(db))
    bad = cli("show", "no-such-run", db=db)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "no-such-run" in bad.stderr
    suffix = cli("export", run_id, "--out", str(tmp_path / "rows.txt"), db=db)
    assert suffix.returncode == 2 and ".csv or .jsonl" in suffix.stderr and "Traceback" not in suffix.stderr


@pytest.mark.slow
def test_run_reopens_after_restart_through_cli_and_the_launched_app(tmp_path):
    """Saved by this process on a fresh SQLite file; reopened by new processes: the CLI, then the app
    (public mode) through gradio_client, where another session sees nothing."""
    from gradio_client import Client

    from tests.conftest import free_port, start_app_process
    from valdemo.core.owner import session_owner

    db = str(tmp_path / "restart.sqlite")
    port = free_port()
    env = {**os.environ, "VALDEMO_DB": db, "VALDEMO_DATA_DIR": str(tmp_path), "VALDEMO_PORT": str(port),
           "VALDEMO_PUBLIC": "1"}
    proc = start_app_process(env, port)
    try:
        mine = Client(f"http://127.0.0.1:{port}/", verbose=False)
        me = session_owner(mine.session_hash).id
        store = Store(db)
        first = save_run(a_result(k=1, n=4), owner=me, source="api", store=store)
        second = save_run(a_result(k=9, n=10), owner=me, source="api", store=store)

        shown = cli("show", first, "--json", db=db)
        assert shown.returncode == 0, shown.stderr
        got = json.loads(shown.stdout)
        assert got["protocol"]["hash"] == "0123456789abcdef0123" and got["models"]["target"] == "local"
        acc = got["metrics"][0]
        assert (acc["value"], acc["n"], acc["95% interval"]) == (0.25, 4, "[0.046, 0.699]")
        assert got["failures"][0]["failed"] == 1 and got["failures"][0]["of (total)"] == 5
        assert BUNDLED_CAVEAT in got["caveats"]
        listed = json.loads(cli("list", "--json", "--method", "vum", db=db).stdout)["runs"]
        assert {r["run"] for r in listed} == {first, second}
        out = tmp_path / "rows.jsonl"
        assert cli("export", first, "--out", str(out), db=db).returncode == 0
        assert [json.loads(line)["pred"] for line in out.read_text().splitlines()] == ["A", "B", "B", "B"]

        table = mine.predict(method="", api_name="/runs_list")
        assert {r[0] for r in table["data"]} == {first, second}
        header, metrics, failures, caveats, rows, path = mine.predict(run_id=first, api_name="/runs_show")
        assert first in header
        assert ["know-what accuracy", 0.25, "[0.046, 0.699]", 4, "VUM paper, sec. 3"] in metrics["data"]
        assert failures["data"][0][:3] == ["know-what answers", 1, 5]
        assert BUNDLED_CAVEAT in caveats and len(rows["data"]) == 4 and os.path.getsize(path) > 0
        cmp_table, note = mine.predict(run_a=first, run_b=second, api_name="/runs_compare")
        acc_row = next(r for r in cmp_table["data"] if r[0] == "know-what accuracy")
        assert acc_row[1:7] == [0.25, "[0.046, 0.699]", 4, 0.9, "[0.596, 0.982]", 10]

        other = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert other.predict(method="", api_name="/runs_list")["data"] == []
        with pytest.raises(Exception, match="no run"):
            other.predict(run_id=first, api_name="/runs_show")
    finally:
        proc.kill()
        proc.wait(10)
