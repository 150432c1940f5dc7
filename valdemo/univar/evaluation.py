"""Evaluation as UniVaR does it: which source gave a view, read from its embedding.

A *source* is a model (or a model under a persona, or a model in a language). Items are views
(1..lambda QA pairs joined and encoded together) built from **held-out questions**: questions
split into train and test, so no test question was seen by the head or by the classifiers.
Two classifiers are fitted on the train-question views and scored on the test-question views:

* **k-NN** (cosine, k up to 50; the public evaluation code's default is k = 5);
* a **linear probe** (multinomial logistic regression on the frozen embeddings).

Each reports acc@1/3/5/10 (the true source among the r top-ranked sources), as UniVaR's
evaluation does, with a Wilson 95 % interval over the n test views and the chance level r/S
(S sources). acc@r is left out where r >= S (trivially 1). For k-NN, sources are ranked by
their votes among the k neighbours (ties: summed similarity); acc@1 is plain k-NN accuracy,
acc@r > 1 is this project's ranking of the votes (the paper's code scores k-NN by accuracy only).

Groups are evaluated separately, never mixed: *seen sources* (those the value head was trained
on), *unseen sources* (held out of training), and the *control* questions (non-value questions,
never used for training): a value representation should tell sources apart on value questions,
and the control set shows how much of that comes from style rather than values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.result import OWN, Metric
from .sets import QAPair, _normalise

#: acc@r as in UniVaR's evaluation code (top-1/3/5/10 sources).
EVAL_AT = (1, 3, 5, 10)
DEFAULT_K = 5
MAX_K = 50
PAPER = ("UniVaR (Cahyawijaya et al., 2024, arXiv 2404.07900): evaluation by k-NN and linear probing, "
         "acc@1/3/5/10 on held-out QA (its public evaluation code)")
KS = (1, 3, 5)  # kept for older callers: the k-NN neighbour counts the tab offered before


def split_questions(pairs: Sequence[QAPair], test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """Boolean mask: True for pairs whose question is in the test split (split by question)."""
    qids = sorted({p.qid or p.question for p in pairs})
    rng = np.random.default_rng(seed)
    rng.shuffle(qids)
    n_test = max(1, int(round(len(qids) * test_fraction))) if len(qids) > 1 else 0
    test = set(qids[:n_test])
    return np.array([(p.qid or p.question) in test for p in pairs], dtype=bool)


# ----------------------------------------------------------------------------- classifiers
def knn_scores(ref: np.ndarray, ref_labels: Sequence[int], query: np.ndarray, n_classes: int,
               k: int = DEFAULT_K) -> np.ndarray:
    """Per query, a score per source: votes among the k nearest references (cosine), ties broken by
    the summed similarity of the voters."""
    ref_labels = np.asarray(ref_labels)
    sims = _normalise(query) @ _normalise(ref).T
    kk = max(1, min(int(k), len(ref)))
    top = np.argsort(-sims, axis=1)[:, :kk]
    rows = np.arange(len(query))[:, None]
    votes = np.zeros((len(query), n_classes))
    weight = np.zeros((len(query), n_classes))
    np.add.at(votes, (rows, ref_labels[top]), 1.0)
    np.add.at(weight, (rows, ref_labels[top]), sims[rows, top])
    return votes * 1e3 + weight


def probe_scores(ref: np.ndarray, ref_labels: Sequence[int], query: np.ndarray, n_classes: int, seed: int = 0,
                 steps: int = 300, lr: float = 0.05, weight_decay: float = 1e-3) -> np.ndarray:
    """A linear probe: multinomial logistic regression on the frozen embeddings (full batch, Adam),
    fitted on the references; returns the queries' logits."""
    import torch

    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(ref, dtype=np.float32))
    y = torch.from_numpy(np.asarray(ref_labels, dtype=np.int64))
    layer = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(layer(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return layer(torch.from_numpy(np.asarray(query, dtype=np.float32))).numpy()
    finally:
        torch.set_num_threads(threads)


def hits_at(scores: np.ndarray, labels: Sequence[int], r: int) -> int:
    """How many queries have their true source among the r highest-scored sources."""
    labels = np.asarray(labels)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :r]
    return int((top == labels[:, None]).any(axis=1).sum())


@dataclass
class Identification:
    """One classifier on one space and one group of sources: acc@r metrics with n and chance."""

    space: str
    space_label: str
    evaluator: str
    group: str
    sources: list[str]
    n_train: int
    metrics: list[Metric] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.metrics[0].n if self.metrics else 0

    def chance(self, r: int) -> float:
        return min(r, len(self.sources)) / len(self.sources)

    def metric(self, r: int) -> Metric | None:
        return next((m for m in self.metrics if m.name.endswith(f"acc@{r}")), None)

    def as_dict(self) -> dict:
        return {"space": self.space, "space_label": self.space_label, "evaluator": self.evaluator,
                "group": self.group, "sources": list(self.sources), "n_train": self.n_train,
                "metrics": [m.as_dict() for m in self.metrics]}

    @classmethod
    def from_dict(cls, d: dict) -> Identification:
        ms = [Metric(**{**m, "interval": tuple(m["interval"]) if m.get("interval") else None})
              for m in d.get("metrics", [])]
        return cls(d["space"], d["space_label"], d["evaluator"], d["group"], list(d["sources"]),
                   int(d.get("n_train", 0)), ms)


def identify(ref: np.ndarray, ref_labels: Sequence[int], query: np.ndarray, query_labels: Sequence[int],
             sources: Sequence[str], k: int = DEFAULT_K, seed: int = 0, space: str = "raw", space_label: str = "",
             group: str = "all sources") -> list[Identification]:
    """k-NN and linear-probe source identification: acc@r (r < number of sources) with Wilson intervals."""
    n_classes = len(sources)
    query_labels = np.asarray(query_labels)
    out = []
    for evaluator, scores in ((f"k-NN (k={min(int(k), len(ref))})", knn_scores(ref, ref_labels, query, n_classes, k)),
                              ("linear probe", probe_scores(ref, ref_labels, query, n_classes, seed))):
        ident = Identification(space, space_label or space, evaluator, group, list(sources), len(ref))
        for r in EVAL_AT:
            if r >= n_classes and r > 1:
                continue  # trivially 1: the true source is always among all of them
            knn_own = evaluator.startswith("k-NN") and r > 1
            ident.metrics.append(Metric.proportion(
                f"{'knn' if evaluator.startswith('k-NN') else 'probe'}_acc@{r}", hits_at(scores, query_labels, r),
                len(query_labels),
                f"share of held-out views whose source is among the {r} top-ranked of {n_classes} sources "
                f"({evaluator}; chance {min(r, n_classes) / n_classes:.3f})",
                OWN + " (k-NN sources ranked by votes)" if knn_own else PAPER, f"{evaluator} acc@{r}"))
        out.append(ident)
    return out


def identification_rows(idents: Sequence[Identification], digits: int = 3) -> list[dict]:
    """Table rows: group, space (naming its encoder), classifier, acc@r with interval, n, chance."""
    rows = []
    for ident in idents:
        row = {"group": ident.group, "space": ident.space_label, "classifier": ident.evaluator,
               "sources": len(ident.sources), "n (test views)": ident.n, "n train views": ident.n_train}
        for r in EVAL_AT:
            m = ident.metric(r)
            row[f"acc@{r} [95% CI]"] = m.fmt(digits).rsplit(" (n=", 1)[0] if m else "–"
            row[f"chance@{r}"] = round(ident.chance(r), digits) if m else None
        rows.append(row)
    return rows


IDENT_COLUMNS = ["group", "space", "classifier", "sources", "n (test views)", "n train views",
                 *[c for r in EVAL_AT for c in (f"acc@{r} [95% CI]", f"chance@{r}")]]


def raw_knn_metrics(pairs: Sequence[QAPair], raw: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> dict:
    """Older summary (k-NN acc@1 of single-pair views, raw space); kept for callers of the first version."""
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    test = split_questions(pairs, test_fraction, seed)
    out: dict = {"n_train": int((~test).sum()), "n_test": int(test.sum()), "n_sources": len(names),
                 "split": "by question", "chance": round(1.0 / max(len(names), 1), 4)}
    if len(names) >= 2 and test.any() and (~test).any():
        out["raw"] = {k: hits_at(knn_scores(raw[~test], labels[~test], raw[test], len(names), k), labels[test], 1)
                      / int(test.sum()) for k in KS}
    return out


# ----------------------------------------------------------------------------- languages
def language_report(pairs: Sequence[QAPair], x: np.ndarray, test: np.ndarray, space: str, space_label: str,
                    k: int = DEFAULT_K, seed: int = 0) -> list[dict]:
    """Does a source stay in place across languages? For every (train language A, test language B):
    classifiers fitted on A's views of the train questions, scored on B's views of the held-out
    questions (A = B: within one language). High acc@1 off the diagonal means a source's position
    survives translation. This project's own use of the paper's k-NN / probe evaluation (UniVaR
    studies languages by training on many; it has no such table). Value questions only; sources
    present in both languages."""
    pairs = list(pairs)
    langs = sorted({p.language for p in pairs if not p.is_control})
    if len(langs) < 2:
        return []
    rows = []
    for a in langs:
        for b in langs:
            ref_i = [i for i, p in enumerate(pairs) if p.language == a and not test[i] and not p.is_control]
            q_i = [i for i, p in enumerate(pairs) if p.language == b and test[i] and not p.is_control]
            names = sorted({pairs[i].source for i in ref_i} & {pairs[i].source for i in q_i})
            ref_i = [i for i in ref_i if pairs[i].source in names]
            q_i = [i for i in q_i if pairs[i].source in names]
            if len(names) < 2 or not ref_i or not q_i:
                continue
            for ident in identify(x[ref_i], [names.index(pairs[i].source) for i in ref_i], x[q_i],
                                  [names.index(pairs[i].source) for i in q_i], names, k, seed, space, space_label,
                                  f"train {a} → test {b}"):
                m = ident.metric(1)
                rows.append({"train language": a, "test language": b, "space": space_label,
                             "classifier": ident.evaluator, "sources": len(names), "n (test views)": m.n,
                             "acc@1 [95% CI]": m.fmt().rsplit(" (n=", 1)[0], "chance@1": round(ident.chance(1), 3),
                             "source": OWN})
    return rows


LANGUAGE_COLUMNS = ["train language", "test language", "space", "classifier", "sources", "n (test views)",
                    "acc@1 [95% CI]", "chance@1"]
