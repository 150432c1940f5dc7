"""The one metrics module, cross-checked against scikit-learn and the krippendorff package."""

from __future__ import annotations

import math

import numpy as np
import pytest

from valdemo.core import metrics as M
from valdemo.core.result import OWN, Failures, Metric, Result


def test_wilson_hand_computed():
    # 8 of 10: centre (0.8 + 1.92/20)/(1.384) ... checked against the textbook value.
    lo, hi = M.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert M.wilson(0, 0) is None
    lo, hi = M.wilson(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.5
    assert M.wilson(5, 5)[1] == 1.0
    with pytest.raises(ValueError):
        M.wilson(6, 5)


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_and_kappa_match_sklearn(seed):
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    rng = np.random.default_rng(seed)
    labels = ["A", "B", "C"]
    gold = list(rng.choice(labels, 40))
    pred = list(rng.choice(labels + ["B"], 40))
    assert M.macro_f1(gold, pred, labels) == pytest.approx(
        f1_score(gold, pred, labels=labels, average="macro", zero_division=0))
    assert M.accuracy(gold, pred) == pytest.approx(accuracy_score(gold, pred))
    assert M.cohen_kappa(gold, pred) == pytest.approx(cohen_kappa_score(gold, pred))


def test_macro_f1_declared_labels_decide():
    gold, pred = ["A", "A", "B"], ["A", "A", "B"]
    assert M.macro_f1(gold, pred, ["A", "B"]) == 1.0
    # Declaring a class the set cannot have caps the score: the caller must declare honestly.
    assert M.macro_f1(gold, pred, ["A", "B", "C"]) == pytest.approx(2 / 3)
    # An unreadable answer (None) is a miss, never a class.
    assert M.macro_f1(["A", "B"], [None, "B"], ["A", "B"]) == pytest.approx(0.5)


@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_krippendorff_matches_package(level):
    krippendorff = pytest.importorskip("krippendorff", reason="the krippendorff package (requirements-dev)")
    rng = np.random.default_rng(3)
    data = rng.integers(1, 6, size=(3, 30)).astype(float)
    data[1, :12] = data[0, :12]
    data[2, 5] = np.nan
    data[0, 7] = np.nan
    ours = M.krippendorff_alpha([[None if math.isnan(v) else v for v in row] for row in data], level)
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_bootstrap_covers_mean_and_is_repeatable():
    vals = [0.0, 1.0] * 20
    a = M.bootstrap(vals)
    assert a == M.bootstrap(vals)
    assert a[0] < 0.5 < a[1]
    assert M.bootstrap([]) is None
    assert M.bootstrap([0.3]) == (0.3, 0.3)


def test_metric_carries_n_interval_and_source():
    m = Metric.proportion("acc", 3, 4, "share correct", "VUM paper, Sec. 3", label="know-what")
    assert m.value == 0.75 and m.n == 4 and m.interval_kind == "wilson"
    assert "(n=4)" in m.fmt() and "[" in m.fmt()
    empty = Metric.mean("x", [], "mean", OWN)
    assert empty.value is None and empty.fmt() == "n/a (n=0)" and empty.is_own
    f = Failures("know-what answers")
    f.add(True)
    f.add(False, "no option")
    assert f.fmt() == "1 of 2 know-what answers" and f.reasons["no option"] == 1
    r = Result("vum", metrics=[m], failures=[f])
    d = r.as_dict()
    assert d["metrics"][0]["interval"] and d["failures"][0]["total"] == 2
    assert r.metric("acc") is m and r.failure("know-what answers") is f
