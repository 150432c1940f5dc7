"""The run log (valdemo.core.runs on real SQLite) and the stage progress helper."""

from __future__ import annotations

import pytest

from valdemo.core.progress import Stages, from_progress_fn
from valdemo.core.result import OWN, Failures, Metric, Result
from valdemo.core.runs import list_runs, load_run, result_from_dict, save_run
from valdemo.store import Store


@pytest.fixture()
def store(tmp_path):
    return Store(tmp_path / "runs.sqlite")


def a_result(method: str = "vum") -> Result:
    f = Failures("know-what answers")
    for ok in (True, True, False):
        f.add(ok, "" if ok else "mass on options below threshold")
    return Result(
        method=method,
        metrics=[Metric.proportion("know_what_acc", 1, 2, "correct / readable answers", "VUM paper, sec. 3",
                                   label="know-what accuracy")],
        rows=[{"id": 1, "pred": "A", "correct": True}, {"id": 2, "pred": "B", "correct": False},
              {"id": 3, "pred": None, "correct": None}],
        failures=[f],
        protocol={"name": "valuedcg", "hash": "abc123def456"},
        models={"target": "local"},
        params={"items_per_value": 1},
        caveats=["demo model"],
        groups={"POWER": [Metric.mean("rate", [0.2, 0.4], "mean judge score / 5", OWN)]},
        extra={"note": "x"},
    )


def test_save_load_round_trip_keeps_every_part(store):
    result = a_result()
    run_id = save_run(result, owner="sess:one", source="cli", store=store)
    loaded = load_run(run_id, owner="sess:one", store=store)
    assert loaded["id"] == run_id and loaded["owner"] == "sess:one" and loaded["source"] == "cli"
    back = result_from_dict(loaded)
    assert back.as_dict() == result.as_dict()
    assert back.metric("know_what_acc").fmt() == result.metric("know_what_acc").fmt()
    assert back.failure("know-what answers").fmt() == "1 of 3 know-what answers"


def test_owners_see_only_their_runs_in_public_mode(store, monkeypatch):
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    mine = save_run(a_result(), owner="sess:one", store=store)
    theirs = save_run(a_result("svo"), owner="sess:two", store=store)
    assert load_run(theirs, owner="sess:one", store=store) is None
    assert [r["id"] for r in list_runs("sess:one", store=store)] == [mine]
    assert {r["id"] for r in list_runs(None, store=store)} == {mine, theirs}
    assert [r["id"] for r in list_runs(None, method="svo", store=store)] == [theirs]
    listed = list_runs("sess:two", store=store)[0]
    assert listed["format"] == "result/1" and listed["metrics"][0]["name"] == "know_what_acc"


def test_older_runs_load_with_their_own_shape(store):
    old = store._save_run("vum", {"items": 2}, {"acc": 0.5}, [{"x": 1}])
    loaded = load_run(old, owner=None, store=store)
    assert loaded["format"] is None and loaded["summary"] == {"acc": 0.5} and loaded["rows"] == [{"x": 1}]


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="source must be one of"):
        save_run(a_result(), source="web", store=store)
    with pytest.raises(TypeError):
        save_run({"method": "vum"}, store=store)
    assert load_run("no-such-run", owner=None, store=store) is None


def test_stages_map_calls_onto_one_monotone_fraction():
    seen = []
    st = Stages([("answers", 1), ("critiques", 3)], lambda f, t: seen.append((round(f, 3), t)))
    answers = st.fn("answers")
    answers(1, 2)
    answers(2, 2)
    st.fn("critiques")(3, 6)
    st.update("answers", 0, 2)  # a late report from an earlier stage never moves the bar back
    st.finish()
    assert seen == [(0.125, "answers 1/2"), (0.25, "answers 2/2"), (0.625, "critiques 3/6"),
                    (0.625, "answers 0/2"), (1.0, "done")]
    with pytest.raises(KeyError, match="unknown stage 'judge'"):
        st.fn("judge")
    with pytest.raises(ValueError):
        Stages([])
    with pytest.raises(ValueError):
        Stages([("a", 1), ("a", 2)])


def test_stages_feed_an_older_done_total_callback():
    got = []
    st = Stages(["one", "two"], from_progress_fn(lambda d, t: got.append((d, t))))
    st.fn("two")(1, 1)
    assert got == [(1000, 1000)]
