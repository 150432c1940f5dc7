"""Owners (issue 12 part 4): who owns a run, a set, an override, a label."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from valdemo.core.owner import (
    LEGACY,
    LOCAL,
    Owner,
    annotator_label,
    can_read,
    derive_owner,
    hf_owner,
    is_public,
    readable_owners,
    session_owner,
)


def test_owner_is_frozen_and_needs_an_id():
    o = Owner("hf:alice", "alice", True)
    with pytest.raises(AttributeError):
        o.name = "bob"  # type: ignore[misc]
    with pytest.raises(ValueError, match="non-empty id"):
        Owner("", "x", False)


def test_derive_owner_prefers_the_signed_in_user():
    assert derive_owner("alice", "abc123", public=True) == Owner("hf:alice", "alice", True)
    assert derive_owner("alice", None, public=False).verified
    anon = derive_owner(None, "abc123", public=True)
    assert anon.id.startswith("session:") and not anon.verified
    assert "abc123" not in anon.id  # the session hash itself is never stored
    assert derive_owner(None, "abc123", public=True) == anon  # stable within a session
    assert derive_owner(None, "zzz999", public=True) != anon
    assert derive_owner(None, "abc123", public=False) == LOCAL


def test_bad_identities_are_refused():
    with pytest.raises(ValueError):
        hf_owner("not a name")
    with pytest.raises(ValueError, match="no session"):
        session_owner("")
    with pytest.raises(ValueError, match="no session"):
        derive_owner(None, None, public=True)


def test_visibility_rules():
    a, b = session_owner("one").id, session_owner("two").id
    assert can_read(a, a, public=True)
    assert not can_read(b, a, public=True)
    assert not can_read(LEGACY, a, public=True)  # old rows: nobody's in public mode
    assert can_read(LEGACY, LOCAL.id, public=False)  # locally they are the local owner's
    assert readable_owners(LEGACY, public=True) == ()


def test_public_mode_from_env():
    assert is_public({"SPACE_ID": "user/space"})
    assert is_public({"VALDEMO_PUBLIC": "1"})
    assert not is_public({"VALDEMO_PUBLIC": "0"})
    assert not is_public({})


def test_annotator_label_marks_unverified_names():
    assert annotator_label("alice", True) == "alice"
    assert annotator_label("alice", False) == "alice (unverified)"


def test_request_owner_from_gradio_request(monkeypatch):
    from valdemo.ui.common import request_owner

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    monkeypatch.delenv("SPACE_ID", raising=False)
    req = SimpleNamespace(session_hash="s-1")
    assert request_owner(req, None) == session_owner("s-1")
    assert request_owner(req, SimpleNamespace(username="alice")) == hf_owner("alice")
    monkeypatch.setenv("VALDEMO_PUBLIC", "0")
    assert request_owner(req, None) == LOCAL


def test_resolve_annotator_with_and_without_sign_in():
    from valdemo.core.owner import OwnerError, resolve_annotator

    alice = hf_owner("alice")
    assert resolve_annotator(alice, "", signin=True) == ("alice", True)
    assert resolve_annotator(alice, "alice", signin=True) == ("alice", True)
    with pytest.raises(OwnerError, match="signed in as 'alice'.*not as 'bob'"):
        resolve_annotator(alice, "bob", signin=True)
    with pytest.raises(OwnerError, match="sign in with Hugging Face"):
        resolve_annotator(session_owner("s"), "bob", signin=True)
    assert resolve_annotator(session_owner("s"), " bob ", signin=False) == ("bob", False)
    assert issubclass(OwnerError, ValueError)  # ui_errors shows it as a plain message


# -- the launched app: sign-in (Gradio's local OAuth mock), Stop, a full queue -------------------

@pytest.fixture(scope="module")
def signin_app(settings):
    """The whole app with Hugging Face sign-in on, 2 model events at once and a queue of 1.

    Sign-in is Gradio's own local mock (its /login routes put a mocked profile in the session).
    The mock asks the Hub who owns the machine's token; the Hub is unreachable offline, so
    ``whoami``/``get_token`` are answered by a stand-in here, and that is the only thing replaced."""
    import gradio.oauth as gradio_oauth

    from tests.conftest import free_port
    from valdemo.config import reload_settings
    from valdemo.ui import build_app, launch_kwargs

    mp = pytest.MonkeyPatch()
    for key, value in {"VALDEMO_OAUTH": "1", "VALDEMO_MODEL_EVENTS": "2", "VALDEMO_QUEUE_MAX": "1"}.items():
        mp.setenv(key, value)
    mp.delenv("VALDEMO_PUBLIC", raising=False)
    mp.delenv("SPACE_ID", raising=False)
    mp.setattr(gradio_oauth, "get_token", lambda: "hf_offline_stand_in")
    mp.setattr(gradio_oauth, "whoami", lambda *a, **k: {"type": "user", "name": "mock-alice",
                                                       "fullname": "Mock Alice", "avatarUrl": ""})
    s = reload_settings()
    demo = build_app(s)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **launch_kwargs(s))
    try:
        yield demo.local_url
    finally:
        demo.close()
        mp.undo()
        reload_settings()


def _signed_in_cookie(url: str) -> str:
    """Go through the app's sign-in routes like a browser; the session cookie they set."""
    import httpx

    first = httpx.get(httpx.URL(url).join("/login/huggingface"), follow_redirects=False)
    assert first.status_code in (302, 307), first.text
    callback = httpx.get(httpx.URL(url).join(first.headers["location"]), follow_redirects=False)
    cookie = callback.headers.get("set-cookie", "")
    assert cookie.startswith("session="), cookie
    return cookie.split(";", 1)[0]


def _wait_running(job, timeout: float = 300) -> None:
    import time

    from gradio_client.utils import Status

    deadline = time.time() + timeout
    while time.time() < deadline:
        if job.status().code in (Status.PROCESSING, Status.PROGRESS, Status.ITERATING):
            return
        assert not job.done(), "the run ended before it could be stopped"
        time.sleep(0.2)
    raise AssertionError("the run never started")


@pytest.mark.slow
def test_signed_in_labels_only_as_yourself_and_exports_say_verified(signin_app):
    from gradio_client import Client

    me = Client(signin_app, verbose=False, headers={"Cookie": _signed_in_cookie(signin_app)})
    sample = me.predict("mock-alice", "", api_name="/clave_next")
    with pytest.raises(Exception, match="signed in as 'mock-alice'.*not as 'mallory'"):
        me.predict("mallory", sample["sample_id"], "1", "", api_name="/clave_label")
    with pytest.raises(Exception, match="signed in as 'mock-alice'"):
        me.predict("mallory", api_name="/clave_undo")
    ack = me.predict("mock-alice", sample["sample_id"], "1", "", api_name="/clave_label")
    assert ack["annotator"] == "mock-alice" and ack["verified"] is True and ack["durable"]
    ack2 = me.predict("", me.predict("mock-alice", "", api_name="/clave_next")["sample_id"], "-1", "",
                      api_name="/clave_label")  # no name given: the signed-in user's
    assert ack2["annotator"] == "mock-alice" and ack2["verified"] is True
    rows = me.predict("mock-alice", api_name="/clave_labels")
    assert len(rows) == 2 and all(r["verified"] is True for r in rows)

    stranger = Client(signin_app, verbose=False)  # same app, nobody signed in
    with pytest.raises(Exception, match="sign in with Hugging Face"):
        stranger.predict("mock-alice", sample["sample_id"], "0", "", api_name="/clave_label")
    with pytest.raises(Exception, match="sign in with Hugging Face"):
        stranger.predict("mock-alice", api_name="/clave_undo")
    assert len(me.predict("mock-alice", api_name="/clave_labels")) == 2  # nothing changed under her name


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_stop_ends_a_running_profile_keeps_what_finished_and_the_app_keeps_serving(signin_app):
    import time

    from gradio_client import Client

    from tests.fault_server import FaultServer

    c = Client(signin_app, verbose=False)
    # A token cap no other test uses, so no answer comes from the response cache.
    job = c.submit("local", "quick", 23, ["HEDONISM"], "local", "local", api_name="/profile_run")
    _wait_running(job)
    # An event that calls a remote endpoint answers while the local generation runs (fairness).
    with FaultServer(["ok"], reply="pong") as server:
        t = time.time()
        reply = c.predict(f"openai:fault-model@{server.base_url}", "ping", api_name="/test_model")
        remote_s = time.time() - t
    assert "pong" in str(reply)
    running_during_remote = not job.done()
    time.sleep(1.0)
    assert not job.done(), "the profile finished before Stop: inconclusive"
    c.predict(api_name="/profile_stop")
    t = time.time()
    out = job.result(timeout=900)
    stop_s = time.time() - t
    methods = out[3]["models"]["local"]["methods"]
    errors = [m["error"] or "" for m in methods.values()]
    assert any("not run: you pressed Stop" in e for e in errors), errors
    assert all(m["status"] == "ok" or "pressed Stop" in (m["error"] or "") for m in methods.values()), methods
    assert out[3]["run_id"]  # what finished is saved as a run
    t = time.time()
    c.predict(api_name="/vum_agreement")  # the app keeps serving
    assert time.time() - t < 10
    assert running_during_remote and remote_s < 30, (running_during_remote, remote_s)
    assert stop_s < 600


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_full_queue_says_busy_try_again(signin_app):
    import time

    from gradio_client import Client
    from gradio_client.utils import QueueError, Status

    runners = [Client(signin_app, verbose=False) for _ in range(3)]
    # Different token caps, so neither run can be answered from the other's freshly cached calls
    # (the cache stores every answer as it arrives).
    jobs = [c.submit("local", "quick", tokens, ["HEDONISM"], "local", "local", api_name="/profile_run")
            for c, tokens in zip(runners[:2], (22, 25), strict=True)]  # the two model slots
    for job in jobs:
        _wait_running(job)
    waiting = runners[2].submit("local", "quick", 21, ["HEDONISM"], "local", "local", api_name="/profile_run")
    deadline = time.time() + 60
    while waiting.status().code != Status.IN_QUEUE and time.time() < deadline:
        time.sleep(0.2)
    assert waiting.status().code == Status.IN_QUEUE  # the queue (size 1) is now full
    try:
        with pytest.raises(QueueError, match="Queue is full! Please try again"):
            Client(signin_app, verbose=False).predict(api_name="/vum_agreement")
    finally:
        waiting.cancel()
        for c in runners[:2]:
            c.predict(api_name="/profile_stop")
        for job in jobs:
            job.result(timeout=900)


@pytest.mark.slow
def test_public_mode_overrides_are_per_visitor_and_record_who(served_app, monkeypatch):
    """Two browser sessions in public mode: each sees only its own VUM overrides; each stored
    override says who made it. (The row is what /vum_live returns; any client may send one.)"""
    from gradio_client import Client

    from valdemo.store import get_store, vum_overrides

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    row = {"phase": "done", "id": "owner-test", "text": "I made everyone call me sir.", "value": "POWER",
           "label": None, "parts": {"attribution": "a", "counterfactual": "c", "rebuttal": "r"},
           "scores": {"attribution": 3, "counterfactual": 4, "rebuttal": 2}, "target": "local", "judge": "local"}
    a, b = Client(served_app[1], verbose=False), Client(served_app[1], verbose=False)
    md_a, _ = a.predict(row, "5", "", "1", api_name="/vum_override")
    assert "over 2 scored parts" in md_a  # only a's own two, not anything stored before
    md_b, _ = b.predict(api_name="/vum_agreement")
    assert "No overrides yet" in md_b
    md_b, _ = b.predict(row, "1", "1", "", api_name="/vum_override")
    assert "over 2 scored parts" in md_b
    mine = [o for o in vum_overrides(get_store(), session_owner(a.session_hash).id)]
    assert [(o["part"], o["human_score"]) for o in mine] == [("attribution", 5), ("rebuttal", 1)]
    assert {(o["owner_name"], o["verified"]) for o in mine} == {(session_owner(a.session_hash).name, 0)}
