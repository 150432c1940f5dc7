"""The bundled, pre-computed demo set."""

from __future__ import annotations

import json

import numpy as np

from ..inputs import InputError
from .projection import ProjectionParams
from .sets import DEMO_DIR, EmbeddedSet, QAPair, QASet, _normalise, _registry_get, remember

# ----------------------------------------------------------------------------- bundled demo set
DEMO_QA = DEMO_DIR / "qa.jsonl"
DEMO_EMB = DEMO_DIR / "embeddings.npy"
DEMO_META = DEMO_DIR / "meta.json"
DEMO_PROJ = DEMO_DIR / "projection.npy"
DEMO_HEAD = DEMO_DIR / "embeddings_head.npy"
#: The demo's trained value head itself (weights), so new answers can be placed in its value space.
DEMO_HEAD_WEIGHTS = DEMO_DIR / "head.npz"
_HEAD: list = []


def demo_available() -> bool:
    return DEMO_QA.is_file() and DEMO_EMB.is_file() and DEMO_META.is_file()


def load_demo() -> EmbeddedSet:
    """The bundled, pre-computed demo set (QA pairs, raw embeddings, a UMAP projection)."""
    if not demo_available():
        raise InputError("the bundled demo set is missing; run scripts/univar_build_demo.py")
    meta = json.loads(DEMO_META.read_text())
    set_id = "emb-demo-" + meta.get("digest", "")
    existing = _registry_get(set_id)
    if existing is not None:
        return existing
    pairs = [QAPair(**json.loads(line)) for line in DEMO_QA.read_text(encoding="utf-8").splitlines() if line]
    raw = _normalise(np.load(DEMO_EMB).astype(np.float32))
    qa = remember(QASet(pairs, {**meta.get("qa_meta", {}), "bundled": True, "demo": True}), pin=True)
    metrics = meta.get("metrics") or {}
    head = _normalise(np.load(DEMO_HEAD).astype(np.float32)) if DEMO_HEAD.is_file() else None
    es = EmbeddedSet(qa, meta.get("encoder", "all-MiniLM-L6-v2 (bundled)"), raw, head, metrics, set_id)
    if DEMO_PROJ.is_file():
        space = meta.get("projection_space", "raw")
        es.projections[(space, ProjectionParams(**meta["projection"]))] = np.load(DEMO_PROJ).astype(np.float32)
    return remember(es, pin=True)


def demo_projection_space() -> str:
    """The space the bundled projection was computed in (the value head where the demo has one)."""
    if DEMO_META.is_file():
        return json.loads(DEMO_META.read_text()).get("projection_space", "raw")
    return "raw"


def demo_projection_params() -> ProjectionParams:
    if DEMO_META.is_file():
        return ProjectionParams(**json.loads(DEMO_META.read_text()).get("projection", {}))
    return ProjectionParams()




def demo_head_available() -> bool:
    return demo_available() and DEMO_HEAD_WEIGHTS.is_file()


def load_demo_head():
    """The bundled demo set's trained value head (:class:`~valdemo.univar.training.ValueHead`), or
    None when the bundle has none. It reads embeddings of the demo's encoder only (see ``meta.json``)."""
    if not demo_head_available():
        return None
    if not _HEAD:
        from .training import HeadParams, ValueHead

        meta = json.loads(DEMO_META.read_text())
        with np.load(DEMO_HEAD_WEIGHTS) as arrays:
            _HEAD.append(ValueHead.from_arrays({k: arrays[k] for k in arrays.files},
                                               HeadParams(**meta["head_params"])))
    return _HEAD[0]
