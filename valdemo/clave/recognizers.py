"""CLAVE recognizers: the small model that maps (value, text, concepts) to a label."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inputs import InputError, check_text
from ..values import SCHWARTZ_KEYS, Value, get_value
from .inputs import LABEL_NAMES, LABELS, ProgressFn, Sample, check_value

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------
# the small recognizer
# ---------------------------------------------------------------------------------


def _definition_text(v: Value) -> str:
    ex = f" For example: {', '.join(v.examples)}." if v.examples else ""
    return f"{v.name}: {v.definition}{ex}"


_EMB_CACHE_MAX = 50_000  # texts per encoder kept in memory (about 75 MB at 384 dims)
_emb_caches: dict[str, dict[str, np.ndarray]] = {}
_emb_lock = threading.Lock()


class _Embeddings:
    """Embeds texts through the shared encoder; a text is encoded once per process
    (calibrating again, or predicting on labelled texts, re-uses the vectors)."""

    def __init__(self, encoder_spec: str = ""):
        from ..embed import get_encoder

        self.encoder = get_encoder(encoder_spec)
        with _emb_lock:
            self._cache = _emb_caches.setdefault(encoder_spec, {})

    def __call__(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        with _emb_lock:
            known = {t: self._cache[t] for t in set(texts) if t in self._cache}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            fresh = dict(zip(todo, self.encoder.encode(todo, progress=progress), strict=True))
            known.update(fresh)
            with _emb_lock:
                if len(self._cache) + len(fresh) > _EMB_CACHE_MAX:
                    self._cache.clear()
                self._cache.update(fresh)
        return np.stack([known[t] for t in texts])


N_SIM = 7  # similarity features per row


def _features(text_emb: np.ndarray, values: Sequence[str], concepts: dict[str, dict], emb: _Embeddings) -> np.ndarray:
    """[text, text * definition, value one-hot, similarities to definition and concepts]."""
    n, dim = text_emb.shape
    keys = sorted(set(values))
    emb([_definition_text(get_value(k)) for k in keys]  # one encoder call for all of them
        + [c for k in keys for kind in ("adheres", "opposes") for c in concepts.get(k, {}).get(kind, [])])
    defs = {k: emb([_definition_text(get_value(k))])[0] for k in keys}
    concept_embs = {}
    for k in set(values):
        c = concepts.get(k, {})
        concept_embs[k] = (emb(c.get("adheres", [])) if c.get("adheres") else None,
                           emb(c.get("opposes", [])) if c.get("opposes") else None)
    out = np.zeros((n, dim * 2 + len(SCHWARTZ_KEYS) + N_SIM), dtype=np.float32)
    for i, (e, k) in enumerate(zip(text_emb, values, strict=True)):
        d = defs[k]
        out[i, :dim] = e
        out[i, dim:2 * dim] = e * d * np.sqrt(dim)
        if k in SCHWARTZ_KEYS:
            out[i, 2 * dim + SCHWARTZ_KEYS.index(k)] = 1.0
        a, o = concept_embs[k]
        sims = [float(e @ d)]
        sa = a @ e if a is not None else None
        so = o @ e if o is not None else None
        sims += [float(sa.max()), float(sa.mean())] if sa is not None else [0.0, 0.0]
        sims += [float(so.max()), float(so.mean())] if so is not None else [0.0, 0.0]
        sims += [sims[1] - sims[3], 1.0 if (a is not None or o is not None) else 0.0]
        out[i, 2 * dim + len(SCHWARTZ_KEYS):] = sims
    return out


@dataclass
class Recognizer:
    """A 3-way head over embedding features; numpy-only at prediction time (no pickle)."""

    coef: np.ndarray  # (3, d)
    intercept: np.ndarray  # (3,)
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    concepts: dict[str, dict]
    encoder_spec: str = ""
    meta: dict = field(default_factory=dict)
    _emb: _Embeddings | None = field(default=None, repr=False)

    def _embeddings(self) -> _Embeddings:
        if self._emb is None:
            self._emb = _Embeddings(self.encoder_spec)
        return self._emb

    def proba_from_emb(self, text_emb: np.ndarray, values: Sequence[str]) -> np.ndarray:
        x = (_features(text_emb, values, self.concepts, self._embeddings()) - self.mean) / self.scale
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str], values: Sequence[str]) -> np.ndarray:
        """(n, 3) probabilities in :data:`LABELS` order (adheres, opposes, unrelated)."""
        if len(texts) != len(values):
            raise InputError(f"{len(texts)} texts but {len(values)} values")
        keys = [check_value(v).key for v in values]
        texts = [check_text(t) for t in texts]
        return self.proba_from_emb(self._embeddings()(texts), keys)

    def predict(self, texts: Sequence[str], values: Sequence[str]) -> list[dict]:
        """``[{"label": 1|-1|0, "label_name": ..., "probs": {"adheres": p, ...}}]`` per text."""
        return [_as_prediction(p) for p in self.predict_proba(texts, values)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "concepts": self.concepts, "encoder_spec": self.encoder_spec}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, coef=self.coef, intercept=self.intercept, mean=self.mean, scale=self.scale,
                 meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["coef"], z["intercept"], z["mean"], z["scale"], meta.pop("concepts"),
                       meta.pop("encoder_spec"), meta)


def _as_prediction(p: np.ndarray) -> dict:
    best = LABELS[int(np.argmax(p))]
    return {"label": best, "label_name": LABEL_NAMES[best],
            "probs": {LABEL_NAMES[lab]: round(float(q), 4) for lab, q in zip(LABELS, p, strict=True)}}


def _fit(x: np.ndarray, y: Sequence[int], c: float = 1.0) -> tuple[np.ndarray, ...]:
    """Standardise, then multinomial logistic regression; returns (coef, intercept, mean, scale)
    with rows in :data:`LABELS` order (classes absent from ``y`` get a very low score)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale
    coef = np.zeros((len(LABELS), x.shape[1]), dtype=np.float64)
    intercept = np.full(len(LABELS), -30.0)
    present = sorted(set(y))
    if len(present) == 1:
        intercept[LABELS.index(present[0])] = 0.0
        return coef, intercept, mean, scale
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    clf.fit(xs, list(y))
    cls = [int(k) for k in clf.classes_]
    if len(cls) == 2:  # binary: sklearn keeps one row for the positive class
        coef[LABELS.index(cls[1])] = clf.coef_[0]
        intercept[LABELS.index(cls[1])] = clf.intercept_[0]
        intercept[LABELS.index(cls[0])] = 0.0
    else:
        for row, k in enumerate(cls):
            coef[LABELS.index(k)] = clf.coef_[row]
            intercept[LABELS.index(k)] = clf.intercept_[row]
    return coef, intercept, mean, scale


def train_recognizer(samples: Sequence[Sample], concepts: dict[str, dict] | None = None,
                     encoder_spec: str = "", c: float = 1.0, _emb: _Embeddings | None = None,
                     _text_emb: np.ndarray | None = None) -> Recognizer:
    """Calibrate the recognizer on labelled samples (and the values' concepts, if any)."""
    labelled = [s for s in samples if s.label is not None]
    if len(labelled) < 2:
        raise InputError(f"need at least 2 labelled samples to calibrate, got {len(labelled)}")
    concepts = concepts or {}
    emb = _emb or _Embeddings(encoder_spec)
    text_emb = _text_emb if _text_emb is not None else emb([s.text for s in labelled])
    values = [s.value for s in labelled]
    x = _features(text_emb, values, concepts, emb)
    coef, intercept, mean, scale = _fit(x, [s.label for s in labelled], c)
    return Recognizer(coef, intercept, mean, scale, {k: concepts[k] for k in set(values) if k in concepts},
                      encoder_spec, {"n_train": len(labelled), "values": sorted(set(values)),
                                     "label_counts": {LABEL_NAMES[k]: v for k, v in
                                                      Counter(s.label for s in labelled).items()}}, emb)
