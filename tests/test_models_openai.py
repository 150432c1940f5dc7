"""The OpenAI-compatible backend: against a real `transformers serve`, and, for the faults
a real server cannot be made to show (429, 500, hangs), against tests/fault_server.py."""

import time

import pytest

from tests.fault_server import FaultServer
from valdemo.models import (
    Credentials,
    GenParams,
    ModelAuthError,
    ModelRateLimited,
    ModelResponseError,
    ModelSpecError,
    ModelTimeout,
    ModelUnavailable,
    ResponseCache,
    get_model,
    unwrap,
    user,
)
from valdemo.models.cache import CachedModel
from valdemo.models.openai_api import OpenAIChatModel


def fault_model(server: FaultServer, **kw) -> OpenAIChatModel:
    kw.setdefault("retries", 3)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 5)
    return OpenAIChatModel("fault-model", base_url=server.base_url, api_key="sk-test", **kw)


# --- a real server ---------------------------------------------------------------------

@pytest.mark.slow
def test_real_server_chat_batch_and_cache(openai_server, tmp_path):
    base_url, name = openai_server
    inner = OpenAIChatModel(name, base_url=base_url, concurrency=4)
    model = CachedModel(inner, ResponseCache(tmp_path / "c.sqlite"))
    reply = model.chat(user("Say hello."), GenParams(max_new_tokens=8))
    assert reply.text.strip() and reply.backend == "openai" and not reply.cached
    convs = [user(f"Name a number bigger than {i}.") for i in range(4)]
    params = GenParams(max_new_tokens=6)
    first = model.chat_batch(convs, params)
    assert len(first) == 4 and all(r.text for r in first)
    calls = inner.calls
    again = model.chat_batch(convs, params)
    assert inner.calls == calls, "a rerun must make 0 server calls"
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in first]


@pytest.mark.slow
def test_real_server_streams(openai_server):
    base_url, name = openai_server
    model = OpenAIChatModel(name, base_url=base_url)
    pieces = list(model.stream(user("Count to three."), GenParams(max_new_tokens=12)))
    assert "".join(pieces).strip()


@pytest.mark.slow
def test_real_server_without_logprobs_gives_none(openai_server):
    """transformers serve ignores logprobs: answer scoring must say so (None), not invent numbers, and
    choose() then generates and parses (never a uniform guess)."""
    from valdemo.core.choose import choose

    base_url, name = openai_server
    model = OpenAIChatModel(name, base_url=base_url)
    assert model.answer_probs(user("A or B?"), ["A", "B"]) is None
    assert model.answer_probs_batch([user("A or B?")], ["A", "B"]) is None
    (c,) = choose(model, [user("Answer with one letter, A or B. A or B?")], ["A", "B"],
                  params=GenParams(max_new_tokens=4))
    assert c.via == "parse" and c.probs is None and c.text is not None
    assert c.ok == (c.option in {"A", "B"})


@pytest.mark.slow
def test_spec_with_base_url_reaches_real_server(openai_server):
    base_url, name = openai_server
    model = get_model(f"openai:{name}@{base_url}", use_cache=False)
    assert model.chat(user("Hi"), GenParams(max_new_tokens=4)).text


# --- faults (test double) -------------------------------------------------------------------

def test_429_then_200_is_retried_with_retry_after():
    with FaultServer(["429", "ok"], reply="B") as server:
        model = fault_model(server)
        reply = model.chat(user("x"))
        assert reply.text == "B"
        assert server.calls == 2 and model.calls == 2


def test_429_forever_gives_clear_error_after_bounded_tries():
    with FaultServer(["429"]) as server:
        model = fault_model(server, retries=2)
        with pytest.raises(ModelRateLimited, match="429"):
            model.chat(user("x"))
        assert server.calls == 3


def test_500_forever_is_a_clear_error_after_n_tries_and_no_hang():
    with FaultServer(["500"]) as server:
        model = fault_model(server, retries=3)
        start = time.perf_counter()
        with pytest.raises(ModelResponseError, match="server error after 4 tries"):
            model.chat(user("x"))
        assert server.calls == 4
        assert time.perf_counter() - start < 5


def test_hang_times_out_within_the_configured_timeout():
    with FaultServer(["hang"]) as server:
        model = fault_model(server, retries=1, timeout_s=0.5)
        start = time.perf_counter()
        with pytest.raises(ModelTimeout, match="did not answer within 0.5s"):
            model.chat(user("x"))
        assert time.perf_counter() - start < 4


@pytest.mark.parametrize("action,error", [
    ("badjson", ModelResponseError),
    ("nochoices", ModelResponseError),
    ("drop", ModelUnavailable),
])
def test_broken_answers_are_clear_errors(action, error):
    with FaultServer([action]) as server:
        with pytest.raises(error):
            fault_model(server, retries=1).chat(user("x"))
        # ... and the next request works.
        server.script = ["ok"]
        assert fault_model(server).chat(user("x")).text == "A"


def test_unreachable_base_url_is_a_clear_error():
    model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", retries=0, timeout_s=2)
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        model.chat(user("x"))


def test_batch_runs_concurrently():
    with FaultServer(["delay:0.3"]) as server:
        model = fault_model(server, concurrency=8)
        start = time.perf_counter()
        replies = model.chat_batch([user(str(i)) for i in range(8)])
        elapsed = time.perf_counter() - start
        assert len(replies) == 8 and server.calls == 8
        assert elapsed < 8 * 0.3 / 2, f"8 requests of 0.3 s took {elapsed:.2f}s: not concurrent"


def test_session_key_reaches_the_server_and_is_not_in_repr():
    with FaultServer(["ok"]) as server:
        secret = "sk-valdemo-SECRET-4242"
        model = get_model(f"openai:fault-model@{server.base_url}", Credentials(api_key=secret), use_cache=False)
        model.chat(user("x"))
        assert server.requests[-1]["headers"]["authorization"] == f"Bearer {secret}"
        assert secret not in repr(model) and secret not in repr(Credentials(api_key=secret))
        assert unwrap(model).spec == f"openai:fault-model@{server.base_url}"


def test_wrong_key_401_is_an_auth_error():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Deny(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            data = json.dumps({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}).encode()
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel("m", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key="bad")
        with pytest.raises(ModelAuthError, match="refused the API key"):
            model.chat(user("x"))
        assert model.calls == 1  # no retry on a wrong key
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("spec", ["", "   ", "gpt4", "foo:bar", "openai:", "openai:@http://x", "openai:m@ftp://x",
                                  "local\nx"])
def test_malformed_specs_are_clear_errors(spec):
    with pytest.raises(ModelSpecError):
        get_model(spec)
