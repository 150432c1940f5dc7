"""Issue 8 hardening through the launched app: endpoint faults, secrets, a cheap endpoint
under load. The faults come from tests/fault_server.py (a test double, for faults a real
server cannot be made to show)."""

import os
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import files_containing
from tests.fault_server import FaultServer
from valdemo.config import get_settings, reload_settings

pytestmark = pytest.mark.slow


@pytest.fixture()
def short_timeouts(monkeypatch):
    """Endpoint settings for fault tests: 1.5 s timeout, 2 retries, tiny backoff."""
    monkeypatch.setenv("VALDEMO_OPENAI_TIMEOUT", "1.5")
    monkeypatch.setenv("VALDEMO_OPENAI_RETRIES", "2")
    monkeypatch.setenv("VALDEMO_OPENAI_BACKOFF", "0.05")
    monkeypatch.setenv("VALDEMO_CACHE", "0")
    reload_settings()
    yield get_settings()
    monkeypatch.undo()
    reload_settings()


FAULTS = [
    ("429", "rate limiting (429) after 3 tries"),
    ("500", "server error after 3 tries"),
    ("hang", "did not answer within 1.5s"),
    ("drop", "cannot reach"),
    ("badjson", "malformed"),
    ("nochoices", "returned no choices"),
]


@pytest.mark.parametrize("action,message", FAULTS)
def test_endpoint_fault_is_a_clear_error_in_the_tab_then_the_next_request_works(client, short_timeouts,
                                                                                  action, message):
    with FaultServer([action], reply="fine, thanks") as server:
        spec = f"openai:fault-model@{server.base_url}"
        start = time.perf_counter()
        with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
            client.predict(spec, "hello", api_name="/test_model")
        elapsed = time.perf_counter() - start
        # bounded: 3 tries x 1.5 s timeout + backoff, far below any hang
        assert elapsed < 15, f"{action} took {elapsed:.1f}s"
        assert 1 <= server.calls <= 3
        server.script = ["ok"]
        out = client.predict(spec, "hello", api_name="/test_model")
        assert "fine, thanks" in out


def _files_containing(root: Path, needle: bytes) -> list[str]:
    # Read by a child process: reading the live SQLite files here would break the app's locks.
    return files_containing(needle.decode(), root)


def test_server_side_key_is_used_but_never_sent_or_stored(client, served_app, monkeypatch, capfd):
    """OPENAI_API_KEY from the server's environment reaches the configured endpoint (OPENAI_BASE_URL)
    and nothing else: not a URL a visitor writes in the spec or types in the panel (issue 12)."""
    import urllib.request

    secret = "sk-valdemo-ENVKEY-0451-do-not-leak"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with FaultServer(["ok"], reply="hello back") as server, FaultServer(["ok"], reply="visitor here") as visitor:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = client.predict("openai:fault-model", "hi", api_name="/test_model")
        assert "hello back" in out
        assert server.requests[-1]["headers"]["authorization"] == f"Bearer {secret}"
        visitor_out = client.predict(f"openai:fault-model@{visitor.base_url}", "hi", api_name="/test_model")
        assert "visitor here" in visitor_out
        assert visitor.calls == 1
        assert all(secret not in v for r in visitor.requests for v in r["headers"].values())
        assert "authorization" not in visitor.requests[-1]["headers"]
    assert secret not in out and secret not in visitor_out
    base = served_app[1].rstrip("/")
    for path in ["/", "/config", "/gradio_api/info"]:
        body = urllib.request.urlopen(base + path, timeout=10).read().decode("utf-8", "replace")
        assert secret not in body, path
    settings = get_settings()
    for root in {settings.data_dir, settings.cache_dir, settings.cache_path.parent, settings.db_path.parent}:
        if Path(root).exists():
            assert _files_containing(Path(root), secret.encode()) == [], root
    captured = capfd.readouterr()
    assert secret not in captured.out and secret not in captured.err


def test_cheap_endpoint_answers_fast_while_a_generation_runs(client):
    """SVO scoring stays under 1 s while the local model is busy with queued generations."""
    jobs = [client.submit("local", f"Write a long story about a lighthouse, part {i}.", api_name="/test_model")
            for i in range(3)]
    time.sleep(1.0)  # let the first generation start
    assert any(not j.done() for j in jobs), "the generations finished too fast to test anything"
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        result = client.predict(5, 5, 5, 5, 5, 5, api_name="/svo_score")
        timings.append(time.perf_counter() - start)
        assert "Angle" in result[0]
    busy = any(not j.done() for j in jobs)
    for j in jobs:
        j.result(timeout=600)
    assert busy, "generation ended before the cheap calls: inconclusive"
    assert max(timings) < 1.0, timings


def test_twenty_annotators_at_once_lose_nothing_and_stay_apart(served_app):
    """20 concurrent gradio_client sessions, each an annotator submitting 10 labels: 200 rows,
    each under the right annotator, none lost or duplicated."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    url = served_app[1]
    labels = ["1", "-1", "0"]

    # Sessions are opened one by one (each fetches the app config), then used all at once.
    clients = [Client(url, verbose=False, httpx_kwargs={"timeout": 120}) for _ in range(20)]

    def annotate(i: int) -> list[int]:
        c = clients[i]
        name = f"load-annotator-{i:02d}"
        done = []
        for k in range(10):
            sample = c.predict(name, "", api_name="/clave_next")
            assert not sample.get("done")
            ack = c.predict(name, sample["sample_id"], labels[(i + k) % 3], "", api_name="/clave_label")
            assert ack["annotator"] == name
            done.append(sample["sample_id"])
        return done

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(annotate, range(20)))
    c = Client(url, verbose=False)
    total = 0
    for i, sample_ids in enumerate(results):
        assert len(set(sample_ids)) == 10, "an annotator was shown the same sample twice"
        rows = c.predict(f"load-annotator-{i:02d}", api_name="/clave_labels")
        assert len(rows) == 10 and {r["annotator"] for r in rows} == {f"load-annotator-{i:02d}"}
        assert [r["label"] for r in sorted(rows, key=lambda r: r["created"])] == \
            [int(labels[(i + k) % 3]) for k in range(10)]
        total += len(rows)
    assert total == 200


def test_kill_9_while_labels_are_being_submitted_loses_no_acknowledged_label(tmp_path):
    """SIGKILL the app in the middle of a stream of label submissions; after a restart every
    label the API acknowledged is in the database."""
    import signal
    import sqlite3

    from gradio_client import Client

    from tests.conftest import free_port, start_app_process

    port = free_port()
    db = tmp_path / "durable.sqlite"
    env = {**os.environ, "VALDEMO_DB": str(db), "VALDEMO_PORT": str(port), "VALDEMO_DATA_DIR": str(tmp_path)}
    proc = start_app_process(env, port)
    acked: list[tuple[str, int]] = []
    stop = threading.Event()
    errors: list[str] = []

    def submit(who: str) -> None:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        while not stop.is_set():
            try:
                s = c.predict(who, "", api_name="/clave_next")
                ack = c.predict(who, s["sample_id"], "1", "", api_name="/clave_label")
            except Exception as exc:  # the kill lands mid-request: expected
                errors.append(type(exc).__name__)
                return
            assert ack["durable"]
            acked.append((who, s["sample_id"]))

    threads = [threading.Thread(target=submit, args=(f"kill-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while len(acked) < 12 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # while the three are still submitting
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 12, "too few labels acknowledged before the kill to test anything"
    proc = start_app_process(env, port)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        kept = set()
        for i in range(3):
            kept |= {(r["annotator"], r["text"]) for r in c.predict(f"kill-{i}", api_name="/clave_labels")}
        con = sqlite3.connect(str(db))
        texts = dict(con.execute("SELECT id, text FROM clave_samples").fetchall())
        con.close()
        missing = [(who, sid) for who, sid in acked if (who, texts[sid]) not in kept]
        assert missing == [], f"{len(missing)} acknowledged labels lost"
    finally:
        proc.kill()
        proc.wait(10)
