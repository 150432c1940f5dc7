"""Issue 12 (parts 1, 2, 3, 7): keys bound to their endpoint, answers cached per endpoint,
public-mode address and model rules, and the Gradio host/port convention.

Every endpoint here is a real HTTP server on loopback (tests/fault_server.py, or a small
redirecting server below) that records what arrived."""

from __future__ import annotations

import pytest

from tests.fault_server import FaultServer
from valdemo.config import get_settings, reload_settings
from valdemo.models import (
    Credentials,
    GenParams,
    ModelAuthError,
    ModelError,
    ModelRefused,
    ModelSpecError,
    get_model,
    user,
)

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
    assert "refused" not in set_creds("http://127.0.0.1:8000/v1", "")[1]
    _set(env, VALDEMO_PUBLIC="1")
    assert "⚠️ refused 127.0.0.1:8000: it resolves to 127.0.0.1 (loopback)" in set_creds("http://127.0.0.1:8000/v1", "")[1]
    assert "checked when a model uses it" in set_creds("https://api.example.org:8443/v1", "")[1]


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


# -- 3. public mode ------------------------------------------------------------------------------
def test_public_mode_is_on_with_space_id_or_the_setting(env):
    assert not get_settings().public
    assert _set(env, VALDEMO_PUBLIC="1").public
    env.delenv("VALDEMO_PUBLIC")
    assert _set(env, SPACE_ID="someone/valdemo").public


def test_public_mode_refuses_a_loopback_visitor_url_and_the_allow_list_lets_it_through(env):
    with FaultServer(["ok"], reply="inside") as server:
        _set(env, VALDEMO_PUBLIC="1")
        for make in (lambda: get_model(f"openai:m@{server.base_url}", use_cache=False),
                     lambda: get_model("openai:m", Credentials(base_url=server.base_url), use_cache=False),
                     lambda: get_model(f"openai:m@http://localhost:{server.port}/v1", use_cache=False)):
            with pytest.raises(ModelRefused, match=r"resolves to (127\.0\.0\.1|::1) \(loopback\).*"
                                                    r"VALDEMO_ALLOWED_BASE_URLS"):
                make()
        assert server.calls == 0
        # The owner allows this origin (any path on it): it goes through.
        _set(env, VALDEMO_ALLOWED_BASE_URLS=f"http://example.invalid:1/v1, http://127.0.0.1:{server.port}/")
        assert get_model(f"openai:m@{server.base_url}", use_cache=False).chat(user("hi")).text == "inside"
        assert server.calls == 1


def test_outside_public_mode_a_loopback_url_is_fine(env):
    with FaultServer(["ok"], reply="local server") as server:
        assert get_model(f"openai:m@{server.base_url}", use_cache=False).chat(user("hi")).text == "local server"


def test_the_configured_endpoint_may_be_private_in_public_mode(env):
    with FaultServer(["ok"], reply="owner's server") as server:
        _set(env, VALDEMO_PUBLIC="1", OPENAI_BASE_URL=server.base_url)
        assert get_model("openai:m", use_cache=False).chat(user("hi")).text == "owner's server"


@pytest.mark.parametrize("url,why", [
    ("http://10.0.0.5:8000/v1", "private network"),
    ("http://192.168.1.10/v1", "private network"),
    ("http://169.254.169.254/latest", "cloud metadata service"),
    ("http://[fd00:ec2::254]/v1", "cloud metadata service"),
    ("http://[::1]:8000/v1", "loopback"),
    ("http://[::ffff:127.0.0.1]:8000/v1", "loopback"),
    ("http://0.0.0.0:8000/v1", "unspecified"),
    ("http://224.0.0.1/v1", "multicast"),
    ("http://100.64.0.1/v1", "not a public address"),
])
def test_public_mode_refuses_private_and_metadata_addresses(env, url, why):
    _set(env, VALDEMO_PUBLIC="1")
    with pytest.raises(ModelRefused, match=f"\\({why}\\)"):
        get_model(f"openai:m@{url}", use_cache=False)


def test_public_address_passes_the_check(env):
    import ipaddress

    from valdemo.models.endpoint import address_problem

    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None
    assert address_problem(ipaddress.ip_address("2606:4700:4700::1111")) is None
    assert address_problem(ipaddress.ip_address("64:ff9b::7f00:1")) == "loopback"  # NAT64 of 127.0.0.1


def test_every_connection_is_checked_not_only_the_first_resolution(env):
    """A name that passed the first check but resolves to loopback by the time the request
    connects (DNS rebinding) is refused at connect time: the guard sits in the transport."""
    from valdemo.models.openai_api import OpenAIChatModel

    with FaultServer(["ok"]) as server:
        _set(env, VALDEMO_PUBLIC="1")
        model = OpenAIChatModel("m", base_url=server.base_url, guard=True)  # as if the first check passed
        with pytest.raises(ModelRefused, match="loopback"):
            model.chat(user("hi"))
        assert server.calls == 0 and model.calls == 1  # refused at once, no retries


class _Redirector:
    """A loopback server that answers every POST with a 307 to ``target`` (a real redirect)."""

    def __init__(self, target: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(307)
                self.send_header("location", target)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("public", [True, False])
def test_redirects_are_not_followed(env, public):
    with FaultServer(["ok"]) as inner:
        hop = _Redirector(f"{inner.base_url}/chat/completions")
        try:
            _set(env, VALDEMO_PUBLIC="1" if public else "0", VALDEMO_ALLOWED_BASE_URLS=hop.base_url,
                 OPENAI_API_KEY=SERVER_KEY)
            with pytest.raises(ModelError, match=r"redirect \(307 to http://127\.0\.0\.1:\d+/v1/chat"):
                get_model(f"openai:m@{hop.base_url}", use_cache=False).chat(user("hi"))
            assert inner.calls == 0
        finally:
            hop.close()


def test_local_models_are_allow_listed_in_public_mode(env, tmp_path):
    _set(env, VALDEMO_PUBLIC="1")
    get_model("local")  # the server's own model: always (nothing loads here)
    get_model(f"local:{get_settings().hub_fallback_model}")  # the Space fallback: allowed by default
    with pytest.raises(ModelRefused, match=r"local:someone/huge-model is not available on this public instance"
                                           r".*VALDEMO_ALLOWED_LOCAL_MODELS") as err:
        get_model("local:someone/huge-model")
    assert str(get_settings().cache_dir) not in str(err.value)  # no server paths in the message
    with pytest.raises(ModelRefused):
        get_model(f"local:{tmp_path}")
    _set(env, VALDEMO_ALLOWED_LOCAL_MODELS=f"someone/huge-model,{tmp_path}")
    get_model("local:someone/huge-model")
    get_model(f"local:{tmp_path}/")  # the same folder, written differently
    env.delenv("VALDEMO_PUBLIC")
    _set(env, VALDEMO_ALLOWED_LOCAL_MODELS="")
    get_model("local:someone/huge-model")  # outside public mode anything goes


@pytest.mark.slow
def test_least_recently_used_local_model_is_unloaded(env, bundled_dir, tmp_path):
    """Four loads of the bundled model under two folder names (about a minute on 2 busy cores)."""
    import gc
    import weakref

    from valdemo.models import local as local_backend

    copy = _hardlinked_copy(bundled_dir, tmp_path / "second")
    _set(env, VALDEMO_MAX_LOCAL_MODELS="1", VALDEMO_PUBLIC="1", VALDEMO_ALLOWED_LOCAL_MODELS=str(copy))
    for path in local_backend.loaded_models():
        local_backend.unload(path)
    params = GenParams(max_new_tokens=2)
    get_model("local", use_cache=False).chat(user("Hi"), params)
    assert local_backend.loaded_models() == [str(bundled_dir)]
    first = weakref.ref(local_backend._loaded[str(bundled_dir)].model)
    get_model(f"local:{copy}", use_cache=False).chat(user("Hi"), params)
    assert local_backend.loaded_models() == [str(copy)]
    gc.collect()
    assert first() is None, "the unloaded model is still in memory"
    get_model("local", use_cache=False).chat(user("Hi"), params)  # loads again when asked
    assert local_backend.loaded_models() == [str(bundled_dir)]
    _set(env, VALDEMO_MAX_LOCAL_MODELS="2")
    get_model(f"local:{copy}", use_cache=False).chat(user("Hi"), params)
    get_model("local", use_cache=False).chat(user("Hi"), params)  # a hit moves it to the back
    assert local_backend.loaded_models() == [str(copy), str(bundled_dir)]
    local_backend.unload(str(copy))


@pytest.mark.slow
def test_the_app_api_reports_refusals_clearly(env, client):
    with FaultServer(["ok"]) as server:
        _set(env, VALDEMO_PUBLIC="1")
        with pytest.raises(Exception, match=r"refused 127\.0\.0\.1:\d+: it resolves to 127\.0\.0\.1 \(loopback\)"):
            client.predict(f"openai:m@{server.base_url}", "hi", api_name="/test_model")
        with pytest.raises(Exception, match="local:someone/huge-model is not available on this public instance"):
            client.predict("local:someone/huge-model", "hi", api_name="/test_model")
        assert server.calls == 0


# -- 7. Gradio's host/port convention ----------------------------------------------------------------
def test_gradio_server_name_and_port_apply_when_valdemo_settings_are_unset(env):
    for var in ("VALDEMO_HOST", "VALDEMO_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        env.delenv(var, raising=False)
    assert (reload_settings().host, reload_settings().port) == ("127.0.0.1", 7860)
    s = _set(env, GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT="7861")
    assert (s.host, s.port) == ("0.0.0.0", 7861)
    s = _set(env, VALDEMO_HOST="127.0.0.2", VALDEMO_PORT="9000")
    assert (s.host, s.port) == ("127.0.0.2", 9000)
    env.delenv("VALDEMO_PORT")
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT must be an integer"):
        _set(env, GRADIO_SERVER_PORT="http")


def test_readme_reliability_states_the_public_mode_rules():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    for needle in ("SPACE_ID", "VALDEMO_PUBLIC", "VALDEMO_ALLOWED_BASE_URLS", "VALDEMO_ALLOWED_LOCAL_MODELS",
                   "VALDEMO_MAX_LOCAL_MODELS", "169.254.169.254", "fd00:ec2::254", "OPENAI_BASE_URL",
                   "GRADIO_SERVER_NAME", "normalised base URL", "Stopped: k of n", "marked `stopped`",
                   "request_owner"):
        assert needle in section, needle
