"""Encoders: the bundled sentence encoder, local sentence-transformers folders, published UniVaR encoders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..inputs import InputError, check_text
from ..models import ModelUnavailable
from .sets import ProgressFn, QAPair


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




# ----------------------------------------------------------------------------- views
#: The largest view UniVaR trains with (its published encoders go up to lambda = 80).
MAX_LAMBDA = 80
#: How the QA pairs of one view are joined before the encoder reads them (one pair a line).
VIEW_SEPARATOR = "\n"


def view_text(pairs: Sequence[QAPair]) -> str:
    """One view: its QA pairs (``Q: ... A: ...``) joined into one text, encoded together as in
    UniVaR's multi-view training, not encoded one by one and averaged."""
    if not pairs:
        raise InputError("a view needs at least one QA pair")
    if len(pairs) > MAX_LAMBDA:
        raise InputError(f"a view holds at most {MAX_LAMBDA} QA pairs, got {len(pairs)}")
    return VIEW_SEPARATOR.join(p.text() for p in pairs)


def token_limit(enc) -> int | None:
    """The encoder's input limit in tokens (longer views are cut by the encoder), if it says."""
    try:
        limit = getattr(enc._get(), "max_seq_length", None)
    except Exception:  # noqa: BLE001 - an encoder that cannot say has no known limit
        return None
    return int(limit) if limit else None


def count_over_limit(enc, texts: Sequence[str]) -> int:
    """How many texts the encoder will cut at its input limit (they are encoded, cut: counted and shown)."""
    limit = token_limit(enc)
    if not limit or not texts:
        return 0
    tok = getattr(enc._get(), "tokenizer", None)
    if tok is None:
        return 0
    lengths = [len(ids) for ids in tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]
    return sum(n > limit for n in lengths)


def encode_views(enc, views: Sequence[Sequence[QAPair]], progress: ProgressFn | None = None) -> tuple[np.ndarray, int]:
    """Each view's joined text encoded once; returns the embeddings and how many views the encoder cut."""
    texts = [view_text(v) for v in views]
    return enc.encode(texts, progress=progress), count_over_limit(enc, texts)
