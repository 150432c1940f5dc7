"""Evaluation: source identification on held-out questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .sets import KS, QAPair, _normalise


def split_questions(pairs: Sequence[QAPair], test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """Boolean mask: True for pairs whose question is in the test split (split by question)."""
    qids = sorted({p.qid or p.question for p in pairs})
    rng = np.random.default_rng(seed)
    rng.shuffle(qids)
    n_test = max(1, int(round(len(qids) * test_fraction))) if len(qids) > 1 else 0
    test = set(qids[:n_test])
    return np.array([(p.qid or p.question) in test for p in pairs], dtype=bool)


def knn_accuracy(ref: np.ndarray, ref_labels: Sequence[int], query: np.ndarray, query_labels: Sequence[int],
                 ks: Sequence[int] = KS) -> dict[int, float]:
    """k-nearest-neighbour source identification (cosine; majority vote, ties -> higher summed similarity)."""
    if len(ref) == 0 or len(query) == 0:
        return {k: float("nan") for k in ks}
    ref_labels = np.asarray(ref_labels)
    query_labels = np.asarray(query_labels)
    sims = _normalise(query) @ _normalise(ref).T
    order = np.argsort(-sims, axis=1)
    n_labels = int(max(ref_labels.max(), query_labels.max())) + 1
    out = {}
    for k in ks:
        kk = min(k, len(ref))
        top = order[:, :kk]
        votes = np.zeros((len(query), n_labels))
        weight = np.zeros((len(query), n_labels))
        rows = np.arange(len(query))[:, None]
        np.add.at(votes, (rows, ref_labels[top]), 1.0)
        np.add.at(weight, (rows, ref_labels[top]), sims[rows, top])
        pred = np.argmax(votes * 1e3 + weight, axis=1)
        out[k] = float(np.mean(pred == query_labels))
    return out



def raw_knn_metrics(pairs: Sequence[QAPair], raw: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> dict:
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    test = split_questions(pairs, test_fraction, seed)
    out: dict[str, Any] = {"n_train": int((~test).sum()), "n_test": int(test.sum()), "n_sources": len(names),
                           "split": "by question", "chance": round(1.0 / max(len(names), 1), 4)}
    if len(names) >= 2 and test.any() and (~test).any():
        out["raw"] = knn_accuracy(raw[~test], labels[~test], raw[test], labels[test])
    return out



def knn_table(metrics: dict) -> list[dict]:
    """Rows ``{k, raw, head}`` for display (head None when not trained)."""
    raw, head = metrics.get("raw") or {}, metrics.get("head") or {}
    return [{"k": k, "raw": _r(raw.get(k)), "head": _r(head.get(k))} for k in KS]


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), 4)


