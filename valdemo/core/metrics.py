"""The one metrics module: every number a method reports is computed here.

Proportions get Wilson score intervals; means and other statistics get percentile
bootstrap intervals with a fixed seed (so a rerun shows the same interval). Macro-F1 is
always over a *declared* label set, so two tabs never disagree on what it means.
Cross-checked against scikit-learn and the ``krippendorff`` package in tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054
DEFAULT_BOOT = 2000
DEFAULT_SEED = 0

Interval = tuple[float, float]


def wilson(k: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval for k successes out of n (None when n is 0)."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"k must be in 0..n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def bootstrap(values: Sequence[float] | np.ndarray, stat: Callable[[np.ndarray], float] = np.mean,
              n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED, level: float = 0.95) -> Interval | None:
    """Percentile bootstrap interval of ``stat`` over resamples of ``values`` (None when empty)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    if arr.size == 1:
        v = float(stat(arr))
        return (v, v)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    stats = np.array([stat(arr[i]) for i in idx]) if stat is not np.mean else arr[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


def bootstrap_paired(rows: Sequence, stat: Callable[[Sequence], float], n_boot: int = DEFAULT_BOOT,
                     seed: int = DEFAULT_SEED, level: float = 0.95) -> Interval | None:
    """Bootstrap over whole rows (items), for statistics of several columns (F1, a gap, a paired
    difference). ``stat`` receives a resampled list of rows; resamples where it returns None or
    NaN are dropped."""
    rows = list(rows)
    if not rows:
        return None
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(rows), size=len(rows))
        v = stat([rows[i] for i in pick])
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out.append(float(v))
    if not out:
        return None
    alpha = (1 - level) / 2
    return (float(np.quantile(out, alpha)), float(np.quantile(out, 1 - alpha)))


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> float | None:
    """Share of items whose prediction equals the gold label. A ``None`` prediction (an
    unreadable answer) counts as wrong: callers decide whether to pass failures in."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    if not gold:
        return None
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: Sequence[Hashable], pred: Sequence[Hashable | None],
             labels: Sequence[Hashable]) -> float | None:
    """Unweighted mean of per-class F1 over the declared ``labels`` (scikit-learn's
    ``f1_score(average="macro", labels=labels, zero_division=0)``): a class with no gold and
    no predicted items scores 0. Declare only the classes the item set can have."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    if not gold or not labels:
        return None
    f1s = []
    for c in labels:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(sum(f1s) / len(f1s))


def per_class(gold: Sequence[Hashable], pred: Sequence[Hashable | None],
              labels: Sequence[Hashable]) -> dict:
    """Precision, recall, F1 and support per declared label."""
    out = {}
    for c in labels:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
        out[c] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    return out


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa between two raters over the same items (None when undefined)."""
    if len(a) != len(b):
        raise ValueError("the two raters differ in length")
    n = len(a)
    if n == 0:
        return None
    cats = sorted(set(a) | set(b), key=repr)
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pe = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in cats)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else None
    return (po - pe) / (1 - pe)


def krippendorff_alpha(data: Sequence[Sequence[float | None]], level: str = "nominal") -> float | None:
    """Krippendorff's alpha; ``data`` is raters x items with ``None`` for missing.

    ``level`` is ``nominal`` or ``interval`` (squared difference). Items with fewer than two
    ratings are not pairable and are left out, as in Krippendorff (2011).
    """
    if level not in {"nominal", "interval"}:
        raise ValueError(f"level must be nominal or interval, got {level!r}")
    n_items = len(data[0]) if data else 0
    units = []
    for j in range(n_items):
        vals = [r[j] for r in data if r[j] is not None and not (isinstance(r[j], float) and math.isnan(r[j]))]
        if len(vals) >= 2:
            units.append(vals)
    if not units:
        return None

    def delta(x, y) -> float:
        return float(x != y) if level == "nominal" else (float(x) - float(y)) ** 2

    n_total = sum(len(u) for u in units)
    d_o = 0.0
    for u in units:
        m = len(u)
        d_o += sum(delta(u[i], u[k]) for i in range(m) for k in range(m) if i != k) / (m - 1)
    d_o /= n_total
    pooled = [v for u in units for v in u]
    if level == "nominal":
        counts: dict = {}
        for v in pooled:
            counts[v] = counts.get(v, 0) + 1
        d_e = (n_total * n_total - sum(c * c for c in counts.values())) / (n_total * (n_total - 1))
    else:
        arr = np.asarray(pooled, dtype=float)
        d_e = float(2 * n_total * arr.var() * n_total / (n_total * (n_total - 1)))
    if d_e == 0:
        return None
    return 1.0 - d_o / d_e


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation (None when fewer than 3 pairs or a constant column)."""
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 3:
        return None
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata

    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 3:
        return None
    return pearson(rankdata(x), rankdata(y))
