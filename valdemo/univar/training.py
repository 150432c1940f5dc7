"""The value head: a small MLP over frozen encoder outputs, trained with UniVaR's objective."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inputs import InputError, check_float, check_int
from .evaluation import knn_accuracy, split_questions
from .sets import ProgressFn, QAPair


@dataclass(frozen=True)
class HeadParams:
    lam: int = 5  # views hold 1..lam QA pairs
    steps: int = 300
    out_dim: int = 128
    hidden: int = 256
    lr: float = 2e-3
    temperature: float = 0.1
    replicas: int = 8  # independent one-view-pair-per-source batches per step
    test_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.lam, "lambda", 1, 100)
        check_int(self.steps, "steps", 1, 20_000)
        check_float(self.temperature, "temperature", 0.01, 1.0)
        check_float(self.test_fraction, "test fraction", 0.05, 0.9)


class ValueHead:
    """A 2-layer MLP over frozen encoder embeddings, trained with UniVaR's objective."""

    def __init__(self, in_dim: int, params: HeadParams):
        import torch

        torch.manual_seed(params.seed)
        self.params = params
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_dim, params.hidden), torch.nn.GELU(), torch.nn.Linear(params.hidden, params.out_dim))
        self.losses: list[float] = []

    def transform(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.net(torch.from_numpy(np.asarray(x, dtype=np.float32)))
            return torch.nn.functional.normalize(out, dim=1).numpy()

    def fit(self, x: np.ndarray, labels: np.ndarray, progress: ProgressFn | None = None) -> ValueHead:
        """Symmetric InfoNCE between two views per source; each view = mean of 1..lambda pairs."""
        import torch

        p = self.params
        gen = np.random.default_rng(p.seed)
        sources = np.unique(labels)
        if len(sources) < 2:
            raise InputError("training the value head needs at least two sources")
        members = [np.flatnonzero(labels == s) for s in sources]
        xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
        opt = torch.optim.AdamW(self.net.parameters(), lr=p.lr, weight_decay=1e-4)
        n_views = p.replicas * len(sources)
        targets = torch.arange(len(sources)).repeat(p.replicas)
        block = torch.block_diag(*[torch.ones(len(sources), len(sources))] * p.replicas).bool()
        self.net.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny MLP: one thread is many times faster on a shared CPU
        try:
            self._loop(xt, members, opt, targets, block, n_views, len(x), gen, progress)
        finally:
            torch.set_num_threads(threads)
        self.net.eval()
        return self

    def _loop(self, xt, members, opt, targets, block, n_views, n, gen, progress) -> None:
        import torch
        import torch.nn.functional as F

        p = self.params
        n_src = len(members)
        for step in range(p.steps):
            w1 = np.zeros((n_views, n), dtype=np.float32)
            w2 = np.zeros_like(w1)
            for r in range(p.replicas):
                for j, idx in enumerate(members):
                    for w in (w1, w2):
                        size = int(gen.integers(1, min(p.lam, len(idx)) + 1))
                        pick = gen.choice(idx, size=size, replace=False)
                        w[r * n_src + j, pick] = 1.0 / size
            h = self.net(xt)
            v1 = F.normalize(torch.from_numpy(w1) @ h, dim=1)
            v2 = F.normalize(torch.from_numpy(w2) @ h, dim=1)
            logits = (v1 @ v2.T) / p.temperature
            logits = logits.masked_fill(~block, float("-inf"))  # negatives: other sources in the same replica
            local = targets + torch.arange(p.replicas).repeat_interleave(n_src) * n_src
            loss = (F.cross_entropy(logits, local) + F.cross_entropy(logits.T, local)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses.append(float(loss.detach()))
            if progress and (step % 20 == 0 or step == p.steps - 1):
                progress(step + 1, p.steps)


def evaluate_head(pairs: Sequence[QAPair], raw: np.ndarray, params: HeadParams,
                  progress: ProgressFn | None = None) -> tuple[ValueHead | None, np.ndarray | None, dict]:
    """Train the head on the train questions; kNN acc@1/3/5 on the test questions, raw vs head."""
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    test = split_questions(pairs, params.test_fraction, params.seed)
    metrics: dict[str, Any] = {"n_train": int((~test).sum()), "n_test": int(test.sum()),
                               "n_sources": len(names), "split": "by question", "lambda": params.lam,
                               "steps": params.steps}
    if len(names) < 2 or test.sum() == 0 or (~test).sum() == 0:
        metrics["note"] = "kNN source identification needs at least two sources and two questions"
        return None, None, metrics
    metrics["raw"] = knn_accuracy(raw[~test], labels[~test], raw[test], labels[test])
    t0 = time.perf_counter()
    head = ValueHead(raw.shape[1], params).fit(raw[~test], labels[~test], progress)
    metrics["train_s"] = round(time.perf_counter() - t0, 3)
    metrics["final_loss"] = round(head.losses[-1], 4)
    metrics["first_loss"] = round(head.losses[0], 4)
    emb = head.transform(raw)
    metrics["head"] = knn_accuracy(emb[~test], labels[~test], emb[test], labels[test])
    metrics["chance"] = round(1.0 / len(names), 4)
    return head, emb, metrics


