"""Every setting of valdemo in one place, read from ``VALDEMO_*`` environment variables.

Settings are read when :func:`get_settings` is first called (and again after
:func:`reload_settings`), so tests can point a process at a temporary data dir.
The README's Configuration section lists the same variables; keep them in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in os.environ.get(name, "").split(",") if x.strip())


#: A Hugging Face Space's persistent storage is mounted here (issue 18).
PERSISTENT_DIR = "/data"


def persistent_root() -> Path | None:
    """The persistent-storage folder (``VALDEMO_PERSISTENT_DIR``, default ``/data``) where it exists
    and this process may write there; None elsewhere (``VALDEMO_PERSISTENT_DIR=off`` turns it off)."""
    raw = _env("VALDEMO_PERSISTENT_DIR", PERSISTENT_DIR)
    if raw.lower() in {"off", "none", "0", "no", "false"}:
        return None
    path = Path(raw).expanduser()
    return path if path.is_dir() and os.access(path, os.W_OK | os.X_OK) else None


def apply_hf_home(settings: Settings | None = None) -> str | None:
    """Point ``HF_HOME`` (hub downloads, preloaded models) at persistent storage where there is
    some and ``HF_HOME`` is unset. Call before anything imports huggingface_hub; returns the
    folder used, or None."""
    root = (settings or get_settings()).persistent_dir
    if root is None or os.environ.get("HF_HOME", "").strip():
        return None
    os.environ["HF_HOME"] = str(root / ".huggingface")
    return os.environ["HF_HOME"]


@dataclass(frozen=True)
class Settings:
    """All runtime settings; see README 'Configuration'."""

    data_dir: Path = field(metadata={"env": "VALDEMO_DATA_DIR", "doc": "where the SQLite database lives (default: `data`, or `/data/valdemo` where persistent storage is mounted)"})
    cache_dir: Path = field(metadata={"env": "VALDEMO_CACHE_DIR", "doc": "converted model folders and the response cache (default: `~/.cache/valdemo`, or `/data/valdemo/cache` where persistent storage is mounted)"})
    db_path: Path = field(metadata={"env": "VALDEMO_DB", "doc": "SQLite file for labels, runs and results"})
    cache_path: Path = field(metadata={"env": "VALDEMO_CACHE_DB", "doc": "SQLite file of the response cache"})
    cache_enabled: bool = field(metadata={"env": "VALDEMO_CACHE", "doc": "1 to cache model responses, 0 to bypass"})
    local_model: str = field(metadata={"env": "VALDEMO_LOCAL_MODEL", "doc": "what `local` means: hub id or path; empty = bundled SmolLM2-135M"})
    hub_fallback_model: str = field(metadata={"env": "VALDEMO_HUB_FALLBACK", "doc": "hub model used for `local` when no bundle is installed and the hub is reachable"})
    embed_model: str = field(metadata={"env": "VALDEMO_EMBED_MODEL", "doc": "sentence-embedding model id or path; empty = bundled all-MiniLM-L6-v2"})
    default_target: str = field(metadata={"env": "VALDEMO_TARGET", "doc": "model spec preselected as target"})
    default_judge: str = field(metadata={"env": "VALDEMO_JUDGE", "doc": "model spec preselected as judge"})
    device: str = field(metadata={"env": "VALDEMO_DEVICE", "doc": "auto, cpu or cuda for the local backend"})
    local_batch_size: int = field(metadata={"env": "VALDEMO_LOCAL_BATCH", "doc": "padded batch size of the local backend"})
    prefix_cache_mb: float = field(metadata={"env": "VALDEMO_PREFIX_CACHE_MB", "doc": "memory for the local backend's prompt-prefix KV store (a prompt that extends one read before reads only its new tokens); 0 = off"})
    openai_concurrency: int = field(metadata={"env": "VALDEMO_OPENAI_CONCURRENCY", "doc": "parallel requests per batch to an OpenAI-compatible endpoint"})
    openai_timeout_s: float = field(metadata={"env": "VALDEMO_OPENAI_TIMEOUT", "doc": "seconds before one request times out"})
    openai_retries: int = field(metadata={"env": "VALDEMO_OPENAI_RETRIES", "doc": "retries on 429/5xx/timeouts (exponential backoff)"})
    openai_backoff_s: float = field(metadata={"env": "VALDEMO_OPENAI_BACKOFF", "doc": "first backoff delay in seconds, doubled per retry"})
    max_text_chars: int = field(metadata={"env": "VALDEMO_MAX_TEXT_CHARS", "doc": "longest text accepted from a user"})
    max_upload_mb: float = field(metadata={"env": "VALDEMO_MAX_UPLOAD_MB", "doc": "largest upload accepted, in MB"})
    local_concurrency: int = field(metadata={"env": "VALDEMO_LOCAL_CONCURRENCY", "doc": "queue slots for events that run the local model"})
    host: str = field(metadata={"env": "VALDEMO_HOST", "doc": "address `make run` binds (unset: GRADIO_SERVER_NAME, else 127.0.0.1)"})
    port: int = field(metadata={"env": "VALDEMO_PORT", "doc": "port `make run` binds (unset: GRADIO_SERVER_PORT, else 7860)"})
    clave_hub_repo: str = field(metadata={"env": "VALDEMO_CLAVE_HUB_REPO", "doc": "Hugging Face dataset repo (or a local folder) the CLAVE tab pushes labels to and pulls them from; empty = none"})
    public: bool = field(metadata={"env": "VALDEMO_PUBLIC", "doc": "1 for public mode (always on when SPACE_ID is set, i.e. on a Hugging Face Space): visitor endpoints must be public addresses, local models are allow-listed"})
    allowed_base_urls: tuple[str, ...] = field(metadata={"env": "VALDEMO_ALLOWED_BASE_URLS", "doc": "comma-separated base URLs whose origins visitors may use in public mode even if they are loopback or private"})
    allowed_local_models: tuple[str, ...] = field(metadata={"env": "VALDEMO_ALLOWED_LOCAL_MODELS", "doc": "comma-separated ids or paths allowed as `local:<id>` in public mode; empty = the bundled model and VALDEMO_HUB_FALLBACK"})
    max_local_models: int = field(metadata={"env": "VALDEMO_MAX_LOCAL_MODELS", "doc": "most local models kept loaded at once; the least recently used is unloaded"})
    model_events: int = field(metadata={"env": "VALDEMO_MODEL_EVENTS", "doc": "events that use a model and may run at once (remote calls proceed while local generation waits for its own slots)"})
    queue_max_size: int = field(metadata={"env": "VALDEMO_QUEUE_MAX", "doc": "most requests waiting in the queue; beyond it a visitor is told the app is busy and to try again"})
    hf_router_url: str = field(default="https://router.huggingface.co/v1", metadata={"env": "VALDEMO_HF_ROUTER_URL", "doc": "the Hugging Face inference router (OpenAI chat API) that `hf:<model id>` specs call with the signed-in visitor's own token"})
    hf_models: tuple[str, ...] = field(default=(), metadata={"env": "VALDEMO_HF_MODELS", "doc": "comma-separated hub ids offered as `hf:<id>` in the Models panel to signed-in visitors; empty = a short built-in list"})
    mcp: bool = field(default=False, metadata={"env": "VALDEMO_MCP", "doc": "1 to also serve the app's named API endpoints as MCP tools (Gradio's MCP server; needs the `mcp` package); the same public-mode rules apply to them"})
    label_sync_minutes: float = field(default=10.0, metadata={"env": "VALDEMO_LABEL_SYNC_MINUTES", "doc": "where VALDEMO_CLAVE_HUB_REPO is set, `app.py` appends new CLAVE labels (never full snapshots) to it every this many minutes, with the token from HF_TOKEN (a Space secret, never logged); 0 = no scheduled sync"})
    persistent_dir: Path | None = field(default=None, metadata={"env": "VALDEMO_PERSISTENT_DIR", "doc": "persistent storage (a Space's `/data`): where it exists and is writable, the database, the caches and HF_HOME default under it; `off` to ignore it"})

    @classmethod
    def from_env(cls) -> Settings:
        persistent = persistent_root()
        data_default = str(persistent / "valdemo") if persistent else "data"
        cache_default = str(persistent / "valdemo" / "cache") if persistent else str(Path.home() / ".cache" / "valdemo")
        data_dir = Path(_env("VALDEMO_DATA_DIR", data_default)).expanduser()
        cache_dir = Path(_env("VALDEMO_CACHE_DIR", cache_default)).expanduser()
        return cls(
            data_dir=data_dir,
            cache_dir=cache_dir,
            db_path=Path(_env("VALDEMO_DB", str(data_dir / "valdemo.sqlite"))).expanduser(),
            cache_path=Path(_env("VALDEMO_CACHE_DB", str(cache_dir / "responses.sqlite"))).expanduser(),
            cache_enabled=_env_bool("VALDEMO_CACHE", True),
            local_model=os.environ.get("VALDEMO_LOCAL_MODEL", "").strip(),
            hub_fallback_model=_env("VALDEMO_HUB_FALLBACK", "HuggingFaceTB/SmolLM2-360M-Instruct"),
            embed_model=os.environ.get("VALDEMO_EMBED_MODEL", "").strip(),
            default_target=_env("VALDEMO_TARGET", "local"),
            default_judge=_env("VALDEMO_JUDGE", "local"),
            device=_env("VALDEMO_DEVICE", "auto"),
            local_batch_size=_env_int("VALDEMO_LOCAL_BATCH", 16, minimum=1),
            prefix_cache_mb=_env_float("VALDEMO_PREFIX_CACHE_MB", 1536.0, minimum=0.0),
            openai_concurrency=_env_int("VALDEMO_OPENAI_CONCURRENCY", 8, minimum=1),
            openai_timeout_s=_env_float("VALDEMO_OPENAI_TIMEOUT", 60.0, minimum=0.1),
            openai_retries=_env_int("VALDEMO_OPENAI_RETRIES", 3, minimum=0),
            openai_backoff_s=_env_float("VALDEMO_OPENAI_BACKOFF", 0.5, minimum=0.0),
            max_text_chars=_env_int("VALDEMO_MAX_TEXT_CHARS", 20_000, minimum=100),
            max_upload_mb=_env_float("VALDEMO_MAX_UPLOAD_MB", 20.0, minimum=0.01),
            local_concurrency=_env_int("VALDEMO_LOCAL_CONCURRENCY", 1, minimum=1),
            host=_env("VALDEMO_HOST", _env("GRADIO_SERVER_NAME", "127.0.0.1")),
            port=_env_int("VALDEMO_PORT", _env_int("GRADIO_SERVER_PORT", 7860, minimum=1), minimum=1),
            clave_hub_repo=os.environ.get("VALDEMO_CLAVE_HUB_REPO", "").strip(),
            public=_env_bool("VALDEMO_PUBLIC", False) or bool(os.environ.get("SPACE_ID", "").strip()),
            allowed_base_urls=_env_list("VALDEMO_ALLOWED_BASE_URLS"),
            allowed_local_models=_env_list("VALDEMO_ALLOWED_LOCAL_MODELS"),
            max_local_models=_env_int("VALDEMO_MAX_LOCAL_MODELS", 2, minimum=1),
            model_events=_env_int("VALDEMO_MODEL_EVENTS", 4, minimum=1),
            queue_max_size=_env_int("VALDEMO_QUEUE_MAX", 64, minimum=1),
            persistent_dir=persistent,
            hf_router_url=_env("VALDEMO_HF_ROUTER_URL", "https://router.huggingface.co/v1"),
            hf_models=_env_list("VALDEMO_HF_MODELS"),
            mcp=_env_bool("VALDEMO_MCP", False),
            label_sync_minutes=_env_float("VALDEMO_LABEL_SYNC_MINUTES", 10.0, minimum=0.0),
        )


def documented_settings() -> list[tuple[str, str]]:
    """(env var, description) for every setting, in declaration order."""
    return [(f.metadata["env"], f.metadata["doc"]) for f in fields(Settings)]


_settings: Settings | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reload_settings() -> Settings:
    """Re-read the environment (tests use this after changing VALDEMO_* variables)."""
    global _settings
    _settings = Settings.from_env()
    return _settings
