"""Shared fixtures: an isolated data dir, the bundled model, a launched app, a real
OpenAI-compatible server (`transformers serve`), and the shared real data.

Converted model folders live in the repo's .cache/ (ignored by git) so the
one-time GGUF conversion is paid once per machine, not once per test run. The
response cache and the database are fresh for every test session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "tests" / "artifacts"

# This file also runs a second time when a test does `from tests.conftest import ...` (pytest
# loads it as `conftest`): reuse the first run's directory, or the session's data dir and
# response cache would switch under the running app mid-session (issue 12).
_marker = os.environ.get("_VALDEMO_TESTS_TMP", "")
if _marker.startswith(f"{os.getpid()}:"):
    _session_tmp = Path(_marker.split(":", 1)[1])
else:
    _session_tmp = Path(tempfile.mkdtemp(prefix="valdemo-tests-"))
    os.environ["_VALDEMO_TESTS_TMP"] = f"{os.getpid()}:{_session_tmp}"
os.environ["VALDEMO_DATA_DIR"] = str(_session_tmp / "data")
os.environ.setdefault("VALDEMO_CACHE_DIR", str(ROOT / ".cache" / "valdemo"))
os.environ["VALDEMO_CACHE_DB"] = str(_session_tmp / "responses.sqlite")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(var, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def settings():
    from valdemo.config import reload_settings

    return reload_settings()


@pytest.fixture(scope="session")
def local_model(settings):
    """The bundled model (real), cached through the session's response cache."""
    from valdemo.models import get_model

    model = get_model("local")
    model.inner.warm()
    return model


@pytest.fixture(scope="session")
def local_model_nocache(settings):
    from valdemo.models import get_model

    model = get_model("local", use_cache=False)
    model.warm()
    return model


@pytest.fixture(scope="session")
def bundled_dir(settings) -> Path:
    from valdemo.models.local import converted_bundled_dir

    return converted_bundled_dir()


@pytest.fixture(scope="session")
def served_app(settings):
    """The whole app, launched in this process on a free port: (demo, url)."""
    from valdemo.ui import build_app, launch_kwargs

    demo = build_app(settings)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **launch_kwargs(settings))
    yield demo, demo.local_url
    demo.close()


@pytest.fixture(scope="session")
def client(served_app):
    from gradio_client import Client

    return Client(served_app[1], verbose=False)


@pytest.fixture(scope="session")
def openai_server(bundled_dir):
    """A real OpenAI-compatible server: `transformers serve` on loopback with the bundled model.

    Yields (base_url, model_name). Skips with the reason if the server cannot start.
    """
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.skip("`transformers` CLI not installed (pip install 'transformers[serving]')")
    port = free_port()
    log = open(_session_tmp / "transformers-serve.log", "w")
    proc = subprocess.Popen(
        [str(exe), "serve", str(bundled_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"transformers serve exited with {proc.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.skip("transformers serve did not become healthy within 120 s")
    yield f"http://127.0.0.1:{port}/v1", str(bundled_dir)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def valuenet_dir() -> Path:
    path = SHARED_DATA / "valuenet"
    if not path.is_dir():
        pytest.skip(f"real ValueNet data not found at {path} (it sits beside the project in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def valuedcg_dir() -> Path:
    """The ValueDCG release's recorded outputs (issue 20), in the release's own layout."""
    path = SHARED_DATA / "valuedcg"
    if not (path / "response").is_dir():
        pytest.skip(f"the ValueDCG release's recorded outputs are not at {path} (they sit beside the project "
                    "in ../shared/data; a fresh clone has none)")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium driven by Playwright; skips with a reason where unavailable."""
    exe = chromium_path()
    if not exe:
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def start_app_process(env: dict, port: int, timeout: float = 120) -> subprocess.Popen:
    """Start `python app.py` as its own process (for kill -9 and restart tests); wait for the page."""
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"app did not start within {timeout:.0f} s")


_SCAN = ("import sys, pathlib\n"
         "needle = sys.argv[1].encode()\n"
         "hits = []\n"
         "for r in sys.argv[2:]:\n"
         "    p = pathlib.Path(r)\n"
         "    for f in ([p] if p.is_file() else p.rglob('*') if p.is_dir() else []):\n"
         "        try:\n"
         "            if f.is_file() and not f.is_symlink() and needle in f.read_bytes():\n"
         "                hits.append(str(f))\n"
         "        except OSError:\n"
         "            pass\n"
         "print('\\n'.join(hits))\n")


def files_containing(needle: str, *roots) -> list[str]:
    """Files under ``roots`` whose bytes contain ``needle``, read by a CHILD process.

    Never read the live SQLite files in this process: it holds the app's connections, and
    opening and closing those files here drops its POSIX locks, so the next process to close
    the database deletes the write-ahead log under the app (issue 12's 'disk I/O error').
    """
    out = subprocess.run([sys.executable, "-c", _SCAN, needle, *map(str, roots)], capture_output=True,
                         text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]
