"""Owners (issue 12 part 4), the gaps: runs saved by the SVO, VUM batch and profile tabs and by
the CLI carry their owner; CLAVE's per-annotator endpoints respect who is asking."""

from __future__ import annotations

import json

import pytest

from valdemo.core.owner import LOCAL_ID, session_owner


def test_cli_saves_runs_under_the_local_owner(tmp_path, capsys):
    """`valdemo vum replay --save` (no model needed): the run is the local owner's, as in the local app."""
    from valdemo.cli import main
    from valdemo.store import get_store

    f = tmp_path / "recorded.jsonl"
    f.write_text(json.dumps({"model": "m1", "value": "POWER", "input": "I run the club.", "label": 1,
                             "answer": "A. Yes"}) + "\n")
    assert main(["vum", "replay", "--jsonl", str(f), "--json", "--save"]) == 0
    (run_id,) = json.loads(capsys.readouterr().out)["runs"].values()
    store = get_store()
    assert store.get_run(run_id, None)["owner"] == LOCAL_ID
    assert store.get_run(run_id, "session:someone-else") is None


def test_profile_run_is_saved_under_its_owner(local_model):
    """run_profile(owner=...) keeps the saved run under that owner (stopped at once: nothing runs,
    what is there is still saved, the tab's Stop path)."""
    from valdemo.profile import ProfileConfig, run_profile
    from valdemo.store import get_store

    me = session_owner("profile-owner-test").id
    profile = run_profile("local", "local", ProfileConfig(size="quick"), should_stop=lambda: True, owner=me)
    store = get_store()
    assert store.get_run(profile["run_id"], None)["owner"] == me
    assert store.get_run(profile["run_id"], session_owner("another").id) is None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_public_mode_tab_runs_belong_to_their_maker(served_app, monkeypatch, tmp_path):
    """Two sessions in public mode: runs made by A on the SVO and VUM batch tabs are in A's Runs
    list and not in B's."""
    from gradio_client import Client, handle_file

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    a, b = Client(served_app[1], verbose=False), Client(served_app[1], verbose=False)
    *_, svo_summary = a.predict("", ["altruistic"], 1, 0.0, 3, 8, "local", api_name="/svo_trials")
    data = tmp_path / "owner_CONFORMITY.csv"
    data.write_text("input,label\nI wait my turn.,1\n", encoding="utf-8")
    *_, vum_summary = a.predict(["CONFORMITY"], 1, [handle_file(str(data))], 1, 16, False, "local", "local",
                                api_name="/vum_batch")
    made = {svo_summary["run_id"], vum_summary["run_id"]}
    assert made <= {r[0] for r in a.predict(method="", api_name="/runs_list")["data"]}
    assert not made & {r[0] for r in b.predict(method="", api_name="/runs_list")["data"]}
    from valdemo.store import get_store

    assert {get_store().get_run(r, None)["owner"] for r in made} == {session_owner(a.session_hash).id}
