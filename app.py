"""Entry point: ``python app.py`` locally, or as a Hugging Face Space's app_file."""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from valdemo.config import apply_hf_home, get_settings  # noqa: E402

settings = get_settings()
apply_hf_home(settings)  # before huggingface_hub is imported: hub downloads go to /data where it exists

from valdemo.models.zerogpu import prepare  # noqa: E402

prepare()  # on a ZeroGPU Space: import spaces before torch; a no-op elsewhere

from valdemo.ui import build_app, launch_kwargs  # noqa: E402

demo = build_app(settings)

# New CLAVE labels go to VALDEMO_CLAVE_HUB_REPO every VALDEMO_LABEL_SYNC_MINUTES, append-only (issue 18).
label_sync = None
if settings.clave_hub_repo and settings.label_sync_minutes > 0:
    from valdemo.clave.sync import start_label_sync
    from valdemo.store import get_store

    label_sync = start_label_sync(get_store(settings.db_path), settings.clave_hub_repo, settings.label_sync_minutes)

if __name__ == "__main__":
    on_space = bool(os.environ.get("SPACE_ID"))
    demo.launch(
        server_name="0.0.0.0" if on_space else settings.host,
        server_port=None if on_space else settings.port,
        **launch_kwargs(settings),
    )
