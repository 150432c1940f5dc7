"""Sign in with Hugging Face, then hosted open models through the inference router (issue 18).

The router is an external service; here a scripted OpenAI-compatible server on loopback
(``tests.fault_server``, a test double) stands in for it through the ``VALDEMO_HF_ROUTER_URL``
setting, and records the headers it receives. Sign-in is Gradio's own local OAuth mock; its
sign-in token is Gradio's fixed mock token.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import files_containing
from tests.fault_server import FaultServer
from valdemo.models import Credentials, ModelSpecError, get_model, parse_spec
from valdemo.models.endpoint import ModelRefused

MOCK_TOKEN = "mock-oauth-token-for-local-dev"  # what Gradio's local OAuth mock puts in the session


def test_hf_specs_parse_and_name_no_url():
    assert parse_spec("hf:meta-llama/Llama-3.1-8B-Instruct").backend == "hf"
    assert parse_spec("hf:openai/gpt-oss-20b:cerebras").name == "openai/gpt-oss-20b:cerebras"
    for bad in ("hf:", "hf:m@http://127.0.0.1:9/v1", "hf:http://x/v1"):
        with pytest.raises(ModelSpecError):
            parse_spec(bad)


def test_without_a_session_token_an_hf_spec_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_server_token_must_not_be_used")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-must-not-be-used")
    with pytest.raises(ModelRefused, match="sign in with Hugging Face"):
        get_model("hf:meta-llama/Llama-3.1-8B-Instruct", Credentials(api_key="sk-visitor"))


def test_the_token_is_not_in_the_credentials_repr():
    assert "secret-token" not in repr(Credentials(hf_token="secret-token", api_key="k"))


def test_an_hf_model_sends_only_the_session_token_to_the_router(monkeypatch):
    from valdemo.config import reload_settings
    from valdemo.models import GenParams, user

    with FaultServer(reply="router says hi") as router:
        monkeypatch.setenv("VALDEMO_HF_ROUTER_URL", router.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-server-must-not-be-used")
        monkeypatch.setenv("HF_TOKEN", "hf_server_token_must_not_be_used")
        reload_settings()
        try:
            model = get_model("hf:org/model", Credentials(hf_token="hf_session_token"), use_cache=False)
            reply = model.chat(user("hello"), GenParams(max_new_tokens=4))
        finally:
            monkeypatch.undo()
            reload_settings()
    assert reply.text == "router says hi"
    (req,) = router.requests
    assert req["headers"]["authorization"] == "Bearer hf_session_token"
    assert req["body"]["model"] == "org/model"
    assert "must-not-be-used" not in str(req)


# -- the launched app with sign-in (Gradio's local OAuth mock) -------------------------------------

@pytest.fixture(scope="module")
def router_app(settings):
    """The app with sign-in on and the router setting pointed at a loopback stand-in (recording)."""
    import gradio.oauth as gradio_oauth

    from tests.conftest import free_port
    from valdemo.config import reload_settings
    from valdemo.ui import build_app, launch_kwargs

    mp = pytest.MonkeyPatch()
    router = FaultServer(reply="hosted model says hi").__enter__()
    other = FaultServer(reply="other endpoint says hi").__enter__()
    mp.setenv("VALDEMO_OAUTH", "1")
    mp.setenv("VALDEMO_HF_ROUTER_URL", router.base_url)
    mp.setenv("VALDEMO_HF_MODELS", "org/ready-one,org/ready-two")
    mp.delenv("VALDEMO_PUBLIC", raising=False)
    mp.delenv("SPACE_ID", raising=False)
    # The mock asks the Hub who owns this machine's token; the Hub is unreachable offline, so these
    # two answer instead (only they are replaced; the session token is Gradio's own mock token).
    mp.setattr(gradio_oauth, "get_token", lambda: "hf_machine_token_stand_in")
    mp.setattr(gradio_oauth, "whoami", lambda *a, **k: {"type": "user", "name": "mock-bob",
                                                       "fullname": "Mock Bob", "avatarUrl": ""})
    s = reload_settings()
    demo = build_app(s)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **launch_kwargs(s))
    try:
        yield demo, router, other, s
    finally:
        demo.close()
        router.__exit__(None, None, None)
        other.__exit__(None, None, None)
        mp.undo()
        reload_settings()


def _sign_in(url: str) -> str:
    """Follow the app's mocked sign-in like a browser; returns the session cookie it sets."""
    import httpx

    login = httpx.get(f"{url.rstrip('/')}/login/huggingface", follow_redirects=False)
    back = httpx.get(httpx.URL(url).join(login.headers["location"]), follow_redirects=False)
    cookie = back.headers.get("set-cookie", "").split(";", 1)[0]
    assert cookie.startswith("session="), back.headers
    return cookie


def _files_under(*roots: Path) -> list[Path]:
    out = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(p for p in root.rglob("*") if p.is_file())
    return out


def test_signed_in_visitor_uses_an_hf_model_with_their_own_token_and_nowhere_else(router_app, caplog):
    from gradio_client import Client

    demo, router, other, s = router_app
    url = demo.local_url
    caplog.set_level(logging.DEBUG)
    me = Client(url, verbose=False, headers={"Cookie": _sign_in(url)})
    answer = me.predict("hf:org/ready-one", "hello there", api_name="/test_model")
    assert "hosted model says hi" in answer and MOCK_TOKEN not in answer
    assert [r["headers"]["authorization"] for r in router.requests] == [f"Bearer {MOCK_TOKEN}"]
    # The same signed-in session with another endpoint: the token does not go there.
    answer = me.predict(f"openai:m@{other.base_url}", "hello there", api_name="/test_model")
    assert "other endpoint says hi" in answer
    assert other.requests and MOCK_TOKEN not in str(other.requests)
    # A visitor who is not signed in is told to sign in; the router sees nothing new.
    stranger = Client(url, verbose=False)
    with pytest.raises(Exception, match="sign in with Hugging Face"):
        stranger.predict("hf:org/ready-one", "hello again", api_name="/test_model")
    assert len(router.requests) == 1
    # Never logged, never on disk (database, response cache, caches).
    assert MOCK_TOKEN not in caplog.text
    written = _files_under(s.data_dir, s.db_path, s.cache_path, Path(str(s.cache_path) + "-wal"))
    assert s.cache_path in written  # the hosted model's answer was cached (by router URL and model id)
    # Read by a child process (conftest.files_containing): never the live database in this one.
    assert files_containing(MOCK_TOKEN, *written) == []


def test_signed_in_visitors_are_offered_the_ready_list(router_app):
    import httpx

    demo, *_ = router_app
    config = httpx.get(f"{demo.local_url.rstrip('/')}/config").json()
    choices = [c for comp in config["components"] if comp.get("props", {}).get("elem_id") == "target-spec"
               for c in comp["props"]["choices"]]
    assert "hf:org/ready-one" in str(choices) and "hf:org/ready-two" in str(choices)
    assert any(comp.get("props", {}).get("elem_id") == "login" for comp in config["components"])
