"""Encoders: the bundled sentence encoder, local sentence-transformers folders, published UniVaR encoders."""

from __future__ import annotations

from pathlib import Path

from ..inputs import check_text
from ..models import ModelUnavailable


# ----------------------------------------------------------------------------- encoders
def resolve_encoder(spec: str = ""):
    """The shared encoder for ``spec`` ("" or "bundled" = bundled MiniLM).

    The published UniVaR encoders (``CAiRE/UniVaR-lambda-*``) run custom code
    from the model hub: they load only when the hub (or a local copy) is there.
    """
    from ..embed import get_encoder

    spec = (spec or "").strip()
    if spec in ("", "bundled"):
        return get_encoder("")
    check_text(spec, "encoder", 500)
    is_univar = spec.startswith("CAiRE/UniVaR")
    if is_univar and not Path(spec).exists() and not _hub_or_cached(spec):
        raise ModelUnavailable(
            f"the published UniVaR encoder {spec!r} downloads from the model hub, which this machine cannot "
            f"reach, and it is not in the local cache. Use the bundled MiniLM (leave the encoder empty), a "
            f"local sentence-transformers folder, or run where the hub is reachable.")
    enc = get_encoder(spec, trust_remote_code=is_univar)
    try:
        _ = enc.dim  # loads now, so a missing model fails with a clear message
    except (ModelUnavailable, OSError, ValueError) as exc:
        if is_univar:
            raise ModelUnavailable(
                f"the published UniVaR encoder {spec!r} downloads from the model hub, which this machine "
                f"cannot reach (or it is not in the local cache). Use the bundled MiniLM (leave the encoder "
                f"empty), a local sentence-transformers folder, or run where the hub is reachable. "
                f"Detail: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        if isinstance(exc, ModelUnavailable):
            raise
        raise ModelUnavailable(f"cannot load encoder {spec!r}: {exc}") from exc
    return enc


def _hub_or_cached(repo_id: str) -> bool:
    """True when ``repo_id`` is in the local hub cache, or the hub answers."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return True
    except Exception:  # noqa: BLE001 - a broken cache is just "not cached"
        pass
    from ..models.local import hub_reachable

    return hub_reachable()


