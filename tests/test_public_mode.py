"""Issue 12 (parts 1, 2, 3, 7): keys bound to their endpoint, answers cached per endpoint,
public-mode address and model rules, and the Gradio host/port convention.

Every endpoint here is a real HTTP server on loopback (tests/fault_server.py, or a small
redirecting server below) that records what arrived."""

from __future__ import annotations

import pytest

from tests.fault_server import FaultServer
from valdemo.config import reload_settings
from valdemo.models import Credentials, ModelAuthError, ModelSpecError, get_model, user

SERVER_KEY = "sk-server-OWNER-7781-never-to-visitors"
HF = "hf_OWNER_token_5512"


@pytest.fixture()
def env(monkeypatch):
    """A clean public-mode-off environment; settings re-read after each test."""
    for var in ("SPACE_ID", "VALDEMO_PUBLIC", "VALDEMO_ALLOWED_BASE_URLS", "VALDEMO_ALLOWED_LOCAL_MODELS",
                "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "HF_TOKEN",
                "OPENAI_CUSTOM_HEADERS", "VALDEMO_MAX_LOCAL_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VALDEMO_OPENAI_RETRIES", "0")
    reload_settings()
    yield monkeypatch
    monkeypatch.undo()
    reload_settings()


def _set(env, **values):
    for k, v in values.items():
        env.setenv(k, v)
    return reload_settings()


def _headers_text(server: FaultServer) -> str:
    return "\n".join(f"{k}: {v}" for r in server.requests for k, v in r["headers"].items())


# -- 1. keys bound to their endpoint ---------------------------------------------------------------
def test_server_key_only_reaches_the_configured_endpoint(env):
    with FaultServer(["ok"], reply="configured") as conf, FaultServer(["ok"], reply="visitor") as visitor:
        _set(env, OPENAI_API_KEY=SERVER_KEY, HF_TOKEN=HF, OPENAI_BASE_URL=conf.base_url,
             OPENAI_ORG_ID="org-OWNER", OPENAI_PROJECT_ID="proj-OWNER",
             OPENAI_CUSTOM_HEADERS="X-Owner-Secret: owner-header-value")
        # A URL in the spec, and a URL typed in the panel: neither gets the server's key.
        assert get_model(f"openai:m@{visitor.base_url}", use_cache=False).chat(user("hi")).text == "visitor"
        get_model("openai:m", Credentials(base_url=visitor.base_url), use_cache=False).chat(user("hi"))
        assert visitor.calls == 2
        seen = _headers_text(visitor)
        for secret in (SERVER_KEY, HF, "org-OWNER", "proj-OWNER", "owner-header-value"):
            assert secret not in seen
        assert all("authorization" not in r["headers"] for r in visitor.requests)
        # The configured endpoint, named or written out (normalised: trailing slash, host case), gets it.
        assert get_model("openai:m", use_cache=False).chat(user("hi")).text == "configured"
        upper = conf.base_url.replace("http://", "HTTP://") + "/"
        get_model(f"openai:m@{upper}", use_cache=False).chat(user("hi"))
        assert [r["headers"]["authorization"] for r in conf.requests] == [f"Bearer {SERVER_KEY}"] * 2
        assert conf.requests[0]["headers"].get("openai-organization") == "org-OWNER"
        # A visitor's own key goes where the visitor sends it.
        get_model(f"openai:m@{visitor.base_url}", Credentials(api_key="sk-visitor-own"), use_cache=False).chat(user("x"))
        assert visitor.requests[-1]["headers"]["authorization"] == "Bearer sk-visitor-own"


def test_provider_default_is_the_configured_endpoint_when_unset(env):
    """With OPENAI_BASE_URL unset the key belongs to the provider's default URL, not a loopback one."""
    with FaultServer(["ok"]) as visitor:
        _set(env, OPENAI_API_KEY=SERVER_KEY)
        get_model(f"openai:m@{visitor.base_url}", use_cache=False).chat(user("hi"))
        assert SERVER_KEY not in _headers_text(visitor)
        from valdemo.models.endpoint import is_configured

        assert is_configured("https://API.openai.com:443/v1/") and not is_configured(visitor.base_url)


def test_a_withheld_key_is_named_in_the_401(env):
    with FaultServer(["401"]) as visitor:
        _set(env, OPENAI_API_KEY=SERVER_KEY, OPENAI_BASE_URL="https://api.example.org/v1")
        with pytest.raises(ModelAuthError, match=r"no key will be sent to 127\.0\.0\.1:\d+: the server's key "
                                                  r"only goes to api\.example\.org") as err:
            get_model(f"openai:m@{visitor.base_url}", use_cache=False).chat(user("hi"))
        assert SERVER_KEY not in str(err.value)


def test_panel_note_says_no_key_goes_to_a_visitor_url(env):
    from valdemo.ui.models_panel import set_creds

    _set(env, OPENAI_API_KEY=SERVER_KEY, OPENAI_BASE_URL="https://api.example.org/v1")
    state, note = set_creds("http://10.1.2.3:8000/v1", "")
    assert state == {"base_url": "http://10.1.2.3:8000/v1", "api_key": ""}
    assert "no key will be sent to 10.1.2.3:8000: the server's key only goes to api.example.org" in note
    assert SERVER_KEY not in note
    assert "with the server's key" in set_creds("https://api.example.org/v1/", "")[1]
    assert "your key" in set_creds("http://10.1.2.3:8000/v1", "sk-mine")[1]
    _, bad = set_creds("http://user:pw@host/v1", "")
    assert "must not carry a user name or password" in bad


@pytest.mark.parametrize("url", ["ftp://x/v1", "http://", "http://h:99999/v1", "http://u:p@h/v1", "http://h/v1?x=1"])
def test_urls_that_cannot_be_base_urls_are_spec_errors(env, url):
    with pytest.raises(ModelSpecError):
        get_model("openai:m", Credentials(base_url=url))


def test_normalised_base_url():
    from valdemo.models.endpoint import normalise_base_url, origin

    assert normalise_base_url("HTTP://Example.COM/v1/") == "http://example.com:80/v1"
    assert normalise_base_url("https://example.com:443/v1") == normalise_base_url("https://example.com/v1")
    assert normalise_base_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert normalise_base_url("http://h:8000/a") != normalise_base_url("http://h:8001/a")
    assert normalise_base_url("http://h:8000/a") != normalise_base_url("http://h:8000/b")
    assert origin("http://H:8000/v1/") == "http://h:8000"


# -- 2. answers cached per endpoint --------------------------------------------------------------
def test_two_endpoints_with_one_model_name_each_answer_for_themselves(env, tmp_path):
    _set(env, VALDEMO_CACHE="1", VALDEMO_CACHE_DB=str(tmp_path / "responses.sqlite"))
    with FaultServer(["ok"], reply="answer of A") as a, FaultServer(["ok"], reply="answer of B") as b:
        question = user("Which endpoint are you?")
        first = get_model(f"openai:m@{a.base_url}").chat(question)
        second = get_model(f"openai:m@{b.base_url}").chat(question)
        typed = get_model("openai:m", Credentials(base_url=b.base_url + "/")).chat(question)
        again = get_model(f"openai:m@{a.base_url}").chat(question)
        assert (first.text, first.cached) == ("answer of A", False)
        assert (second.text, second.cached) == ("answer of B", False)
        assert (typed.text, typed.cached) == ("answer of B", True)  # same endpoint, normalised
        assert (again.text, again.cached) == ("answer of A", True)
        assert (a.calls, b.calls) == (1, 1)


def test_entries_under_the_old_key_format_are_not_served(env, tmp_path):
    from valdemo.models import GenParams
    from valdemo.models.cache import ResponseCache, cache_key

    _set(env, VALDEMO_CACHE="1", VALDEMO_CACHE_DB=str(tmp_path / "responses.sqlite"))
    question = user("planted?")
    old = cache_key("chat", "openai", "m", {"messages": question, "params": GenParams().as_dict()})
    ResponseCache(tmp_path / "responses.sqlite").put(old, {"text": "PLANTED", "finish_reason": "stop"})
    with FaultServer(["ok"], reply="real answer") as a:
        reply = get_model(f"openai:m@{a.base_url}").chat(question)
    assert (reply.text, reply.cached) == ("real answer", False)


def test_local_cache_scope_is_the_resolved_folder(env, bundled_dir, tmp_path):
    from valdemo.models import unwrap
    from valdemo.models.cache import model_scope

    copy = _hardlinked_copy(bundled_dir, tmp_path / "copy")
    bundled = model_scope(unwrap(get_model("local")))
    assert bundled.startswith(f"local|dir:{bundled_dir.resolve()}|")
    assert model_scope(unwrap(get_model(f"local:{copy}"))).startswith(f"local|dir:{copy.resolve()}|")
    assert model_scope(unwrap(get_model(f"local:{bundled_dir}"))) == bundled  # same folder, same answers


def _hardlinked_copy(src, dst):
    """A second folder holding the same files (hard links: no extra disk)."""
    import os
    import shutil

    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy2(f, dst / f.name)
    return dst
