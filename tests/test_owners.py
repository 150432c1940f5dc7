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
