"""Running as a Hugging Face Space (issue 18): persistent storage, ...

A temporary folder stands in for the Space's ``/data`` through the ``VALDEMO_PERSISTENT_DIR``
setting (the default is ``/data``; this machine has none).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from valdemo.config import PERSISTENT_DIR, Settings, apply_hf_home

_STORAGE_VARS = ("VALDEMO_DATA_DIR", "VALDEMO_CACHE_DIR", "VALDEMO_DB", "VALDEMO_CACHE_DB", "HF_HOME")


@pytest.fixture
def bare_env(monkeypatch):
    """No explicit storage settings, as on a fresh Space."""
    for var in _STORAGE_VARS:  # set first, so that the undo removes what a test sets (apply_hf_home)
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    return monkeypatch


def test_persistent_dir_defaults_to_data():
    assert PERSISTENT_DIR == "/data"


def test_database_and_caches_default_to_persistent_storage(bare_env, tmp_path):
    bare_env.setenv("VALDEMO_PERSISTENT_DIR", str(tmp_path))
    s = Settings.from_env()
    assert s.persistent_dir == tmp_path
    assert s.data_dir == tmp_path / "valdemo"
    assert s.db_path == tmp_path / "valdemo" / "valdemo.sqlite"
    assert s.cache_dir == tmp_path / "valdemo" / "cache"
    assert s.cache_path == tmp_path / "valdemo" / "cache" / "responses.sqlite"
    assert apply_hf_home(s) == str(tmp_path / ".huggingface")
    assert os.environ["HF_HOME"] == str(tmp_path / ".huggingface")


def test_explicit_settings_win_over_persistent_storage(bare_env, tmp_path):
    bare_env.setenv("VALDEMO_PERSISTENT_DIR", str(tmp_path))
    bare_env.setenv("VALDEMO_DATA_DIR", str(tmp_path / "mine"))
    bare_env.setenv("VALDEMO_CACHE_DB", str(tmp_path / "c.sqlite"))
    bare_env.setenv("HF_HOME", str(tmp_path / "hf"))
    s = Settings.from_env()
    assert s.db_path == tmp_path / "mine" / "valdemo.sqlite"
    assert s.cache_path == tmp_path / "c.sqlite"
    assert s.cache_dir == tmp_path / "valdemo" / "cache"
    assert apply_hf_home(s) is None and os.environ["HF_HOME"] == str(tmp_path / "hf")


@pytest.mark.parametrize("value", ["missing", "off", "a-file"])
def test_no_persistent_storage_keeps_the_old_defaults(bare_env, tmp_path, value):
    (tmp_path / "a-file").write_text("not a folder")
    bare_env.setenv("VALDEMO_PERSISTENT_DIR", value if value == "off" else str(tmp_path / value))
    s = Settings.from_env()
    assert s.persistent_dir is None
    assert s.data_dir == Path("data")
    assert s.cache_dir == Path.home() / ".cache" / "valdemo"
    assert apply_hf_home(s) is None and "HF_HOME" not in os.environ


def test_the_app_puts_its_database_and_hub_downloads_on_persistent_storage(tmp_path):
    """``app.py`` as the Space runs it: the store opens under /data's stand-in, and huggingface_hub
    (imported after app.py starts) reads HF_HOME there."""
    env = {k: v for k, v in os.environ.items() if k not in _STORAGE_VARS}
    env["VALDEMO_PERSISTENT_DIR"] = str(tmp_path)
    code = "import app, huggingface_hub.constants as c; print(c.HF_HOME); print(app.settings.db_path)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    hf_home, db = out.stdout.strip().splitlines()[-2:]
    assert hf_home == str(tmp_path / ".huggingface")
    assert db == str(tmp_path / "valdemo" / "valdemo.sqlite")
    assert Path(db).is_file()  # the store was opened (and its schema written) there
