"""Owners (issue 12 part 4), the gaps: runs saved by the SVO, VUM batch and profile tabs and by
the CLI carry their owner; CLAVE's per-annotator endpoints respect who is asking."""

from __future__ import annotations

import json

import pytest

from tests.test_owners import _signed_in_cookie, signin_app  # noqa: F401 (the signed-in app fixture)
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


# -- CLAVE: whose labels, and reading another annotator's queue, labels or progress ---------------

def test_calibrate_defaults_to_the_visitors_own_labels(monkeypatch):
    from types import SimpleNamespace

    from valdemo.inputs import InputError
    from valdemo.ui.clave import whose_labels

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("VALDEMO_PUBLIC", raising=False)
    request = SimpleNamespace(session_hash="s1")
    assert whose_labels("  ana ", request) == "ana"
    assert whose_labels("", request) is None  # locally every label is the local owner's
    assert whose_labels("", request, SimpleNamespace(username="alice")) == "alice"
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    assert whose_labels("", request, SimpleNamespace(username="alice")) == "alice"
    with pytest.raises(InputError, match="whose labels"):
        whose_labels("", request)  # public, nobody signed in: never every visitor's labels


def test_reading_an_annotator_needs_to_be_them_with_sign_in(monkeypatch):
    from types import SimpleNamespace

    from valdemo.core.owner import OwnerError
    from valdemo.ui.clave import reader_identity

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    monkeypatch.delenv("VALDEMO_OAUTH", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    request, alice = SimpleNamespace(session_hash="s1"), SimpleNamespace(username="alice")
    assert reader_identity(" bob ", request) == ("bob", False)  # no sign-in: as typed, unverified
    monkeypatch.setenv("VALDEMO_OAUTH", "1")
    assert reader_identity("", request, alice) == ("alice", True)
    assert reader_identity("alice", request, alice) == ("alice", True)
    with pytest.raises(OwnerError, match="not as 'bob'"):
        reader_identity("bob", request, alice)
    with pytest.raises(OwnerError, match="sign in"):
        reader_identity("alice", request)


def test_public_app_clave_calibrate_and_readers(served_app, monkeypatch):
    """Through the launched app in public mode without sign-in: an empty "whose labels" is refused
    (it would take every visitor's labels); queue, labels and progress say the name is unverified."""
    from gradio_client import Client

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    c = Client(served_app[1], verbose=False)
    with pytest.raises(Exception, match="whose labels"):
        c.predict(annotator="", folds=5, judge="", api_name="/clave_calibrate")
    nxt = c.predict(annotator="gaps-ana", value="", api_name="/clave_next")
    assert nxt["annotator"] == "gaps-ana" and nxt["verified"] is False
    prog = c.predict(annotator="gaps-ana", api_name="/clave_progress")
    assert prog["annotator"] == "gaps-ana" and prog["verified"] is False and prog["overall"]["labelled"] == 0
    assert c.predict(annotator="gaps-ana", api_name="/clave_labels") == []


@pytest.mark.slow
def test_signed_in_app_reads_only_your_own_clave_queue_labels_and_progress(signin_app):  # noqa: F811
    from gradio_client import Client

    me = Client(signin_app, verbose=False, headers={"Cookie": _signed_in_cookie(signin_app)})
    for api, args in (("/clave_next", ("mallory", "")), ("/clave_labels", ("mallory",)),
                      ("/clave_progress", ("mallory", 20))):
        with pytest.raises(Exception, match="signed in as 'mock-alice'.*not as 'mallory'"):
            me.predict(*args, api_name=api)
        with pytest.raises(Exception, match="sign in with Hugging Face"):
            Client(signin_app, verbose=False).predict(*args, api_name=api)  # nobody signed in
    nxt = me.predict("", "", api_name="/clave_next")  # no name: the signed-in user's own queue
    assert nxt["annotator"] == "mock-alice" and nxt["verified"] is True
    prog = me.predict("", 20, api_name="/clave_progress")
    assert prog["annotator"] == "mock-alice" and prog["verified"] is True
    assert all(r["annotator"] == "mock-alice" for r in me.predict("", api_name="/clave_labels"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_public_mode_denevil_defence_belongs_to_its_maker(served_app, monkeypatch, tmp_path):
    """A DeNEVIL defence run (one uploaded principle, K=1, short answers) made by session A in
    public mode is in A's Runs list, under A's owner id, and not in B's."""
    from gradio_client import Client, handle_file

    from valdemo.store import get_store

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    a, b = Client(served_app[1], verbose=False), Client(served_app[1], verbose=False)
    f = tmp_path / "principles.csv"
    f.write_text("foundation,principle,prompt\n"
                 "care,It is wrong to bully someone online.,After school Sam opened the group chat and\n",
                 encoding="utf-8")
    a.predict("uploaded file", 1, handle_file(str(f)), "local", "", "local", 1, 0.0, 16, 16, 2,
              api_name="/denevil_defend")
    mine = a.predict(method="denevil-defend", api_name="/runs_list")["data"]
    assert mine, "the defence run is not in its maker's list"
    assert get_store().get_run(mine[0][0], None)["owner"] == session_owner(a.session_hash).id
    assert b.predict(method="denevil-defend", api_name="/runs_list")["data"] == []


def test_replay_saved_by_a_signed_in_visitor_is_theirs(tmp_path, monkeypatch):
    """The VUM replay handler keeps saved runs under the signed-in user (as the Runs tab reads them),
    not under the browser session."""
    from types import SimpleNamespace

    from valdemo.store import get_store
    from valdemo.ui.vum import replay_handler

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    f = tmp_path / "recorded.jsonl"
    f.write_text(json.dumps({"model": "m1", "value": "POWER", "input": "I run the club.", "label": 1,
                             "answer": "A. Yes"}) + "\n")
    *_, summary = replay_handler("", str(f), True, request=SimpleNamespace(session_hash="s-replay"),
                                 profile=SimpleNamespace(username="alice"))
    (run_id,) = summary["runs"].values()
    assert get_store().get_run(run_id, None)["owner"] == "hf:alice"


@pytest.mark.slow
def test_signed_in_univar_sets_are_the_users_in_every_session_and_no_one_elses(signin_app, tmp_path,  # noqa: F811
                                                                                monkeypatch):
    """UniVaR keys its sets by the owner every tab derives (valdemo.ui.common.request_owner): the
    signed-in user first, not the browser session. Public mode, Gradio's local OAuth mock: the
    same user on a second page load (a new session, a new sign-in) finds the set; a visitor who is
    not signed in neither lists nor opens it."""
    from gradio_client import Client, handle_file

    from tests.test_univar import _qa_file

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    me = Client(signin_app, verbose=False, headers={"Cookie": _signed_in_cookie(signin_app)})
    qa_id, _, _ = me.predict(handle_file(str(_qa_file(tmp_path))), api_name="/univar_upload_qa")
    emb_id = me.predict(qa_id, "bundled", False, 3, 40, 0.02, 5, 1, 0, api_name="/univar_embed")[0]
    again = Client(signin_app, verbose=False, headers={"Cookie": _signed_in_cookie(signin_app)})
    assert again.session_hash != me.session_hash
    assert emb_id in json.dumps(again.predict(api_name="/univar_saved_sets"))
    assert again.predict(emb_id, api_name="/univar_open")[0] == emb_id
    stranger = Client(signin_app, verbose=False)
    assert emb_id not in json.dumps(stranger.predict(api_name="/univar_saved_sets"))
    with pytest.raises(Exception, match="unknown"):
        stranger.predict(emb_id, api_name="/univar_open")
