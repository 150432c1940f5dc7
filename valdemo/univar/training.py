"""The value head, trained with UniVaR's objective, and the evaluation run around it.

UniVaR (Cahyawijaya et al., 2024) learns a value embedding by multi-view contrastive learning:
a *view* of a source is 1..lambda of its QA pairs joined into one text and encoded together;
two views of the same source are a positive pair, views of the other sources in the batch are
negatives, and the loss is the symmetric InfoNCE over cosine similarities times a logit scale.
Its published encoders fine-tune a whole sentence encoder on a GPU. Here, on a CPU, the sentence
encoder stays frozen and a small MLP (the *value head*) is trained on top of the encoder's
embeddings of joined views. The default temperature 0.02 is the paper's logit scale of 50 as
issue 16 reads the paper; the public training code starts a learnable scale at 20 (tau = 0.05),
so the temperature is a parameter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..inputs import InputError, check_float, check_int
from .encoding import MAX_LAMBDA, encode_views
from .evaluation import DEFAULT_K, MAX_K, Identification, identify, language_report, split_questions
from .sets import ProgressFn, QAPair, space_label

#: The paper's logit scale 50 as a temperature (1 / 50); see the module docstring.
PAPER_TEMPERATURE = 0.02


@dataclass(frozen=True)
class HeadParams:
    """How the head is trained and evaluated (every field is recorded with the set)."""

    lam: int = 5  # training views hold 1..lam QA pairs (UniVaR: up to 80)
    steps: int = 300
    out_dim: int = 128
    hidden: int = 256
    lr: float = 2e-3
    temperature: float = PAPER_TEMPERATURE
    replicas: int = 8  # independent one-view-pair-per-source batches per step
    views_per_source: int = 48  # training views drawn (and encoded) per source
    test_fraction: float = 0.3
    seed: int = 0
    k: int = DEFAULT_K  # k-NN neighbours in the evaluation
    eval_lambda: int = 1  # QA pairs per evaluation view
    unseen_sources: int = 0  # the last N sources are held out of training (evaluated as unseen)

    def __post_init__(self) -> None:
        check_int(self.lam, "lambda", 1, MAX_LAMBDA)
        check_int(self.steps, "steps", 1, 20_000)
        check_float(self.temperature, "temperature", 0.005, 1.0)
        check_float(self.test_fraction, "test fraction", 0.05, 0.9)
        check_int(self.views_per_source, "views per source", 4, 1024)
        check_int(self.k, "k (k-NN neighbours)", 1, MAX_K)
        check_int(self.eval_lambda, "evaluation view size", 1, MAX_LAMBDA)
        check_int(self.unseen_sources, "unseen sources", 0, 100)


class ValueHead:
    """A 2-layer MLP over frozen encoder embeddings of views."""

    def __init__(self, in_dim: int, params: HeadParams):
        import torch

        torch.manual_seed(params.seed)
        self.params = params
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_dim, params.hidden), torch.nn.GELU(), torch.nn.Linear(params.hidden, params.out_dim))
        self.losses: list[float] = []

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights as plain arrays (what the bundled demo set keeps, ``head.npz``)."""
        return {k.replace(".", "_"): v.detach().numpy().copy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_arrays(cls, arrays, params: HeadParams) -> ValueHead:
        """A trained head back from :meth:`arrays` (its first layer's width sets the input size)."""
        import torch

        head = cls(int(np.asarray(arrays["0_weight"]).shape[1]), params)
        head.net.load_state_dict({k: torch.from_numpy(np.asarray(arrays[k.replace(".", "_")], dtype=np.float32))
                                  for k in head.net.state_dict()})
        head.net.eval()
        return head

    def transform(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.net(torch.from_numpy(np.asarray(x, dtype=np.float32)))
            return torch.nn.functional.normalize(out, dim=1).numpy()

    def fit(self, views: np.ndarray, labels: np.ndarray, progress: ProgressFn | None = None) -> ValueHead:
        """Symmetric InfoNCE: per step and replica, two different views of every source; the other
        sources' views in the same replica are the negatives."""
        import torch

        p = self.params
        sources = np.unique(labels)
        if len(sources) < 2:
            raise InputError("training the value head needs at least two sources")
        members = [np.flatnonzero(labels == s) for s in sources]
        if min(len(m) for m in members) < 2:
            raise InputError("every source needs at least two training views")
        x = torch.from_numpy(np.asarray(views, dtype=np.float32))
        opt = torch.optim.AdamW(self.net.parameters(), lr=p.lr, weight_decay=1e-4)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny MLP: one thread is many times faster on a shared CPU
        try:
            self._loop(x, members, opt, np.random.default_rng(p.seed), progress)
        finally:
            torch.set_num_threads(threads)
        self.net.eval()
        return self

    def _loop(self, x, members, opt, gen, progress) -> None:
        import torch
        import torch.nn.functional as F

        p = self.params
        n_src = len(members)
        targets = torch.arange(n_src)
        self.net.train()
        for step in range(p.steps):
            loss = torch.zeros(())
            a_rows, b_rows = [], []
            for _ in range(p.replicas):
                for idx in members:
                    a, b = gen.choice(idx, size=2, replace=False)
                    a_rows.append(a)
                    b_rows.append(b)
            h = F.normalize(self.net(x[np.array(a_rows + b_rows)]), dim=1)
            va, vb = h[: len(a_rows)], h[len(a_rows):]
            for r in range(p.replicas):
                sl = slice(r * n_src, (r + 1) * n_src)
                logits = (va[sl] @ vb[sl].T) / p.temperature
                loss = loss + (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
            loss = loss / p.replicas
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses.append(float(loss.detach()))
            if progress and (step % 20 == 0 or step == p.steps - 1):
                progress(step + 1, p.steps)


# ----------------------------------------------------------------------------- views from a set
def draw_views(members: Sequence[np.ndarray], lam: int, n_views: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """``n_views`` random views per source, each of 1..lam distinct pairs (size uniform), as
    (source index, pair indices)."""
    out = []
    for s, idx in enumerate(members):
        for _ in range(n_views):
            size = int(rng.integers(1, min(lam, len(idx)) + 1))
            out.append((s, sorted(int(i) for i in rng.choice(idx, size=size, replace=False))))
    return out


def chunk_views(members: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """Disjoint views of ``size`` pairs per source (shuffled, remainder left out): evaluation items
    that share no pair."""
    out = []
    for s, idx in enumerate(members):
        idx = np.array(idx)
        rng.shuffle(idx)
        for start in range(0, len(idx) - size + 1, size):
            out.append((s, sorted(int(i) for i in idx[start : start + size])))
    return out


def _members(labels: np.ndarray, mask: np.ndarray, n: int) -> list[np.ndarray]:
    return [np.flatnonzero(mask & (labels == s)) for s in range(n)]


def evaluate_head(pairs: Sequence[QAPair], raw: np.ndarray, params: HeadParams, progress: ProgressFn | None = None,
                  encoder=None, train_head: bool = True,
                  encoder_name: str = "") -> tuple[ValueHead | None, np.ndarray | None, dict]:
    """Train the head on views of the train questions of the seen sources (value questions only),
    then evaluate raw and head spaces per group (seen, unseen, control) on held-out questions.

    ``raw`` holds the encoder's embedding of every pair alone (views of one pair); views of more
    pairs are encoded with ``encoder`` (needed when lambda or eval_lambda > 1).
    Returns (head or None, head embeddings of every pair or None, metrics dict).
    """
    pairs = list(pairs)
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    control = np.array([p.is_control for p in pairs], dtype=bool)
    value = ~control
    test = np.zeros(len(pairs), dtype=bool)
    if value.any():
        test[value] = split_questions([p for p, v in zip(pairs, value, strict=True) if v], params.test_fraction,
                                      params.seed)
    if control.any():
        test[control] = split_questions([p for p, c in zip(pairs, control, strict=True) if c], params.test_fraction,
                                        params.seed)
    n_unseen = min(params.unseen_sources, max(len(names) - 2, 0))
    seen = names[: len(names) - n_unseen]
    unseen = names[len(names) - n_unseen:]
    metrics: dict[str, Any] = {
        "n_pairs": len(pairs), "n_sources": len(names), "sources": names, "seen_sources": seen,
        "unseen_sources": unseen, "n_control_pairs": int(control.sum()),
        "n_train_pairs": int((value & ~test).sum()), "n_test_pairs": int((value & test).sum()),
        "split": "by question", "params": asdict(params), "encoder": encoder_name,
        "over_limit": {}, "identification": [],
    }
    if n_unseen < params.unseen_sources:
        metrics["note_unseen"] = f"asked for {params.unseen_sources} unseen sources; kept {n_unseen} (two must be seen)"
    if len(names) < 2 or not (value & test).any() or not (value & ~test).any():
        metrics["note"] = "source identification needs at least two sources and two value questions"
        return None, None, metrics
    rng = np.random.default_rng(params.seed)
    head: ValueHead | None = None
    head_emb = None
    if train_head:
        seen_mask = value & ~test & np.isin(labels, [names.index(s) for s in seen])
        members = _members(labels, seen_mask, len(seen))
        if min(len(m) for m in members) < 2:
            metrics["note"] = "every seen source needs at least two QA pairs on training questions"
        else:
            views = draw_views(members, params.lam, params.views_per_source, rng)
            x, cut = _featurise(views, pairs, raw, encoder)
            metrics["over_limit"]["training views"] = [cut, len(views)]
            t0 = time.perf_counter()
            head = ValueHead(raw.shape[1], params).fit(x, np.array([s for s, _ in views]), progress)
            metrics.update(train_s=round(time.perf_counter() - t0, 3), first_loss=round(head.losses[0], 4),
                           final_loss=round(head.losses[-1], 4), n_training_views=len(views))
            head_emb = head.transform(raw)
    idents: list[Identification] = []
    groups = [("seen sources" if unseen else "all sources", value, seen), ("unseen sources", value, unseen),
              ("control questions (non-value)", control, names)]
    for group, mask, group_names in groups:
        if len(group_names) < 2 or not (mask & test).any():
            continue
        idx = [names.index(s) for s in group_names]
        ref_members = [np.flatnonzero(mask & ~test & (labels == i)) for i in idx]
        test_members = [np.flatnonzero(mask & test & (labels == i)) for i in idx]
        if min(len(m) for m in ref_members) < params.eval_lambda or not any(
                len(m) >= params.eval_lambda for m in test_members):
            continue
        ref_views = chunk_views(ref_members, params.eval_lambda, np.random.default_rng(params.seed + 1))
        test_views = chunk_views(test_members, params.eval_lambda, np.random.default_rng(params.seed + 2))
        x_ref, cut_ref = _featurise(ref_views, pairs, raw, encoder)
        x_test, cut_test = _featurise(test_views, pairs, raw, encoder)
        metrics["over_limit"][f"{group} evaluation views"] = [cut_ref + cut_test, len(ref_views) + len(test_views)]
        spaces = [("raw", x_ref, x_test)]
        if head is not None:
            spaces.append(("head", head.transform(x_ref), head.transform(x_test)))
        for space, a, b in spaces:
            idents += identify(a, [s for s, _ in ref_views], b, [s for s, _ in test_views], group_names,
                               params.k, params.seed, space, space_label(encoder_name or "encoder", space), group)
    metrics["identification"] = [i.as_dict() for i in idents]
    metrics["languages"] = language_report(pairs, raw, test, "raw", space_label(encoder_name or "encoder", "raw"),
                                           params.k, params.seed)
    if head_emb is not None and metrics["languages"]:
        metrics["languages"] += language_report(pairs, head_emb, test, "head",
                                                space_label(encoder_name or "encoder", "head"), params.k, params.seed)
    return head, head_emb, metrics


def _featurise(views: Sequence[tuple[int, list[int]]], pairs: Sequence[QAPair], raw: np.ndarray,
               encoder) -> tuple[np.ndarray, int]:
    """Embeddings of views: a one-pair view is that pair's raw embedding; longer views are joined
    and encoded together (returns the embeddings and how many views the encoder cut)."""
    if all(len(v) == 1 for _, v in views):
        return raw[[v[0] for _, v in views]], 0
    if encoder is None:
        raise InputError("views of more than one QA pair need the encoder (pass encoder=...)")
    return encode_views(encoder, [[pairs[i] for i in v] for _, v in views])
