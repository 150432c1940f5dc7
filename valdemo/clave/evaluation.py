"""CLAVE evaluation: held-out agreement with people, beside uncalibrated baselines; annotator agreement."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .. import store as st
from ..core.choose import choose, reason_kind
from ..core.metrics import macro_f1
from ..core.result import OWN, Failures, Metric, Result
from ..inputs import InputError
from ..models import BUNDLED_CAVEAT, ChatModel, GenParams, unwrap, user
from ..parsing import Parsed, ParseStats, fence
from ..values import Value
from .concepts import extract_concepts_many, load_concept_protocol, response_concepts, stored_concepts
from .inputs import LABEL_NAMES, LABELS, METHOD_TITLES, ProgressFn, Sample, check_annotator, value_info
from .recognizers import (
    DEFAULT_SMALL_MODEL,
    SMALL_MODELS,
    Recognizer,
    _Embeddings,
    make_small_model,
    softmax,
    train_recognizer,
    value_classes,
)
from .storage import save_recognizer, training_rows

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------
# agreement between annotators
# ---------------------------------------------------------------------------------


def krippendorff_alpha_nominal(units: Sequence[Sequence[int]]) -> float | None:
    """Krippendorff's alpha for nominal data; ``units`` holds each item's labels (>= 2 to count)."""
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        return None
    cats = sorted({c for u in pairable for c in u})
    index = {c: i for i, c in enumerate(cats)}
    o = np.zeros((len(cats), len(cats)))
    for u in pairable:
        m = len(u)
        counts = Counter(u)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                o[index[c], index[k]] += pairs / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return None
    d_o = o.sum() - np.trace(o)
    d_e = (n * n - (n_c ** 2).sum()) / (n - 1)
    if d_e == 0:
        return 1.0 if d_o == 0 else None
    return float(1.0 - d_o / d_e)


def agreement(store: st.Store) -> dict:
    """Cohen's kappa for each pair of annotators on shared samples; Krippendorff's alpha over all."""
    from sklearn.metrics import cohen_kappa_score

    rows = st.clave_current_labels(store)
    by_annotator: dict[str, dict[int, int]] = defaultdict(dict)
    for r in rows:
        by_annotator[r["annotator"]][r["sample_id"]] = r["label"]
    names = sorted(by_annotator)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(by_annotator[a]) & set(by_annotator[b]))
            if not shared:
                continue
            ya = [by_annotator[a][s] for s in shared]
            yb = [by_annotator[b][s] for s in shared]
            pairs.append({"a": a, "b": b, "n_shared": len(shared),
                          "percent_agreement": float(np.mean([x == y for x, y in zip(ya, yb, strict=True)])),
                          "cohen_kappa": _finite(cohen_kappa_score(ya, yb, labels=list(LABELS)))})
    items: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        items[r["sample_id"]].append(r["label"])
    multi = [v for v in items.values() if len(v) >= 2]
    return {"annotators": names, "pairs": pairs, "n_items_multi": len(multi),
            "krippendorff_alpha": krippendorff_alpha_nominal(multi) if len(names) >= 2 else None,
            "statistic": "cohen_kappa" if len(names) == 2 else "krippendorff_alpha"}


def _finite(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# ---------------------------------------------------------------------------------
# baselines (uncalibrated: they read no label)
# ---------------------------------------------------------------------------------


def _label_descriptions(v: Value) -> list[str]:
    """One description per label in :data:`LABELS` order, for the embedding baseline."""
    return [f"This text expresses {v.name.lower()}: {v.definition}",
            f"This text rejects {v.name.lower()}; it goes against {v.definition[0].lower()}{v.definition[1:]}",
            f"An ordinary remark that has nothing to do with {v.name.lower()}."]


def embed_zero_shot(text_emb: np.ndarray, values: Sequence[str], emb: _Embeddings,
                    classes: dict[str, list[int]] | None = None) -> list[np.ndarray]:
    """Probabilities from cosine similarity to a description of each of the value's classes
    (softmax at temperature 1/20, no training)."""
    keys = sorted(set(values))
    emb([d for k in keys for d in _label_descriptions(value_info(k))])
    protos = {k: emb(_label_descriptions(value_info(k))) for k in keys}
    out = []
    for e, k in zip(text_emb, values, strict=True):
        cls = (classes or {}).get(k, list(LABELS))
        out.append(softmax(protos[k][[LABELS.index(c) for c in cls]] @ e * 20.0))
    return out


LLM_OPTIONS = "ABC"  # A adheres, B opposes, C unrelated (LABELS order)
LLM_SYSTEM = "You classify texts by the human value they express. Answer with a single letter."


def llm_prompt(text: str, v: Value, concepts: dict | None = None) -> str:
    guide = ""
    for kind, lead in (("adheres", "A text that adheres to this value"), ("opposes", "A text that opposes it")):
        if concepts and concepts.get(kind):
            guide += f"{lead}: " + "; ".join(concepts[kind]) + "\n"
    return (f"Value: {v.name}. Definition: {v.definition}\n{guide}\n{fence(text, 'TEXT')}\n\n"
            f"Does the text above adhere to this value, oppose it, or is it unrelated?\n"
            f"A. adheres\nB. opposes\nC. unrelated\nAnswer with A, B or C.")


def llm_zero_shot(model: ChatModel, texts: Sequence[str], values: Sequence[str],
                  progress: ProgressFn | None = None,
                  concepts: dict[str, dict] | None = None) -> tuple[list[int | None], ParseStats, str]:
    """The judge prompted zero-shot (or, with ``concepts``, guided by each value's concepts), read
    by :func:`valdemo.core.choose.choose` (complete-answer probabilities where the backend has
    them, else generated letters parsed); unreadable answers stay None (scored wrong) and are
    counted."""
    convs = [user(llm_prompt(t, value_info(k), (concepts or {}).get(k)), LLM_SYSTEM)
             for t, k in zip(texts, values, strict=True)]
    choices = choose(model, convs, LLM_OPTIONS, params=GenParams(max_new_tokens=8), progress=progress)
    stats = ParseStats()
    preds = []
    for c in choices:
        stats.add(Parsed(c.option, c.ok, reason_kind(c.reason)))
        preds.append(LABELS[LLM_OPTIONS.index(c.option)] if c.ok else None)
    via = choices[0].via if choices else "parse"
    return preds, stats, "option probabilities" if via == "probs" else "generated letter"


# ---------------------------------------------------------------------------------
# calibration sample choice, probability calibration
# ---------------------------------------------------------------------------------

SELECTIONS = ("random", "kmeans")


def select_rows(idx: Sequence[int], embs: np.ndarray, n: int | None, how: str, seed: int) -> list[int]:
    """Up to ``n`` of ``idx``: a random subset, or (CLAVE, Sec. 3) the row nearest each of ``n``
    k-means centroids of their embeddings, so the labels spread over the kinds of text."""
    idx = list(idx)
    if n is None or len(idx) <= n:
        return idx
    if how == "random":
        return [idx[i] for i in np.random.default_rng(seed).permutation(len(idx))[:n]]
    if how != "kmeans":
        raise InputError(f"sample choice must be one of {', '.join(SELECTIONS)}, got {how!r}")
    from sklearn.cluster import KMeans

    x = embs[idx]
    km = KMeans(n_clusters=n, n_init=1, random_state=seed).fit(x)
    picked: list[int] = []
    for c in range(n):
        members = np.where(km.labels_ == c)[0]
        if len(members):
            best = members[np.argmin(((x[members] - km.cluster_centers_[c]) ** 2).sum(axis=1))]
            picked.append(idx[int(best)])
    return picked


def fit_temperature(logits: Sequence[np.ndarray], gold_index: Sequence[int]) -> float:
    """Temperature scaling (one T per value): the T in [0.05, 20] that minimises the negative
    log-likelihood of held-out labels (Guo et al. 2017). 1.0 with fewer than 5 rows."""
    if len(logits) < 5:
        return 1.0
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        t = float(np.exp(log_t))
        return -float(np.mean([np.log(max(softmax(z, t)[g], 1e-12)) for z, g in zip(logits, gold_index, strict=True)]))

    got = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(got.x))


ECE_BINS = 10


def ece(rows: Sequence[tuple[float, bool]]) -> float | None:
    """Expected calibration error: over 10 equal-width confidence bins, the share of rows in the
    bin times |accuracy - mean confidence| (Guo et al. 2017, Eq. 3)."""
    if not rows:
        return None
    conf = np.array([r[0] for r in rows])
    ok = np.array([float(r[1]) for r in rows])
    bins = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in range(ECE_BINS):
        m = bins == b
        if m.any():
            total += m.mean() * abs(ok[m].mean() - conf[m].mean())
    return float(total)


# ---------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------

#: methods that read human labels (the calibrated ones) vs those that read none
USES_LABELS = {"recognizer": True, "no_concepts": True, "llm_concepts": True, "majority": True,
               "embed_zero_shot": False, "llm_zero_shot": False}
#: the baselines the goal compares against: they learn nothing from the labels but the class prior
UNCALIBRATED = ("embed_zero_shot", "llm_zero_shot", "majority")
F1_DEF = ("macro-F1 over the classes this value has in the labels (valdemo.core.metrics.macro_f1); "
          "an unreadable judge answer counts as wrong; bootstrap 95% interval over the held-out rows")
ACC_DEF = "share of held-out rows whose prediction equals the human label; Wilson 95% interval"


def _folds(keys: Sequence, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds stratified by (value, label) where every such group has k rows, else plain k-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    idx = np.arange(len(keys))
    strat = [f"{v}|{lab}" for v, lab in keys]
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if min(Counter(strat).values()) >= k
                else KFold(k, shuffle=True, random_state=seed))
    return list(splitter.split(idx, strat))


def _value_metrics(gold: list[int], pred: list[int | None], classes: list[int], n_train: float,
                   method: str) -> dict:
    rows = list(zip(gold, pred, strict=True))
    f1 = Metric.over_rows("macro_f1", rows, _fast_macro_f1(classes), F1_DEF, OWN, "macro-F1")
    acc = Metric.proportion("accuracy", sum(g == p for g, p in rows), len(rows), ACC_DEF, OWN, "accuracy")
    confusion = [[sum(g == a and p == b for g, p in rows) for b in LABELS] for a in LABELS]
    return {"macro_f1": f1.as_dict(), "accuracy": acc.as_dict(), "n_train": n_train, "n_eval": len(rows),
            "failed": sum(p is None for p in pred), "confusion": confusion, "classes": classes,
            "uses_labels": USES_LABELS[method]}


def _fast_macro_f1(classes: list[int]):
    """macro-F1 over ``classes`` for (gold, pred) rows, vectorised for the bootstrap; equal to
    valdemo.core.metrics.macro_f1 (checked in tests/test_clave.py)."""

    def stat(rows) -> float:
        arr = np.array([(g, 99 if p is None else p) for g, p in rows])
        g, p = arr[:, 0], arr[:, 1]
        f1s = []
        for c in classes:
            tp = np.sum((g == c) & (p == c))
            denom = 2 * tp + np.sum((g != c) & (p == c)) + np.sum((g == c) & (p != c))
            f1s.append(2 * tp / denom if denom else 0.0)
        return float(np.mean(f1s))

    return stat


def _argmax_label(p: np.ndarray, classes: list[int]) -> int:
    return classes[int(np.argmax(p))]


def calibrate(samples: Sequence[Sample], guidelines: dict[str, dict] | None = None, folds: int = 5,
              eval_samples: Sequence[Sample] | None = None, judge: ChatModel | None = None,
              encoder_spec: str = "", learning_curve: bool = True, seed: int = 0,
              progress: ProgressFn | None = None, *, kind: str = DEFAULT_SMALL_MODEL,
              use_concepts: bool | None = None, per_value: int | None = None, selection: str = "random",
              concept_protocol: str = "concepts", curve_orders: int = 2, concept_tokens: int = 64,
              guideline_tokens: int = 200, fit_final: bool = True) -> tuple[dict, Recognizer | None]:
    """Calibrate a recognizer and score it, with its baselines, against held-out human labels.

    Every trained method sees, in each fold, only that fold's training rows: the small model,
    the per-value majority, and the judge's value concepts (written per fold from the fold's
    training labels). Per-response concepts (CLAVE step 1) read no label, so they are written
    once per text. ``use_concepts`` (default: when a judge is given) makes the recognizer read
    them and adds the ablation without concepts. ``per_value`` caps the labels per value the
    small model is calibrated on (CLAVE: under 100), chosen by ``selection`` (random or k-means).
    ``guidelines`` are value concepts a person wrote (the Concepts tab); given, the judge reads
    them in every fold instead (they may have seen held-out rows: the report says so).
    Returns the report and the recognizer calibrated on all of ``samples`` (None with
    ``fit_final=False``: a benchmark that only needs the held-out scores).
    """
    t0 = time.perf_counter()
    train = [s for s in samples if s.label is not None]
    if selection not in SELECTIONS:
        raise InputError(f"sample choice must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    if per_value is not None and int(per_value) < 2:
        raise InputError(f"labels per value must be at least 2, got {per_value}")
    make_small_model(kind, encoder_spec)  # checks the name early
    if eval_samples is None:
        folds = int(folds)
        if folds < 2:
            raise InputError(f"folds must be at least 2, got {folds}")
        if len(train) < 2 * folds:
            raise InputError(f"k-fold with k={folds} needs at least {2 * folds} labels, got {len(train)}")
    else:
        eval_samples = [s for s in eval_samples if s.label is not None]
        if not eval_samples:
            raise InputError("the evaluation file has no labelled rows")
        if len(train) < 2:
            raise InputError(f"need at least 2 labelled samples to calibrate, got {len(train)}")
    use_concepts = (judge is not None) if use_concepts is None else bool(use_concepts)
    if use_concepts and judge is None:
        raise InputError("per-response concepts need a judge model")
    pool = list(train) + list(eval_samples or [])
    classes = value_classes(pool)
    emb = _Embeddings(encoder_spec)
    embs = emb([s.text for s in pool], progress=progress)
    failures: list[Failures] = []
    models: dict = {"encoder": encoder_spec or "bundled MiniLM (all-MiniLM-L6-v2)"}
    concepts: list[list[str]] | None = None
    protocol = None
    if use_concepts:
        protocol = load_concept_protocol(concept_protocol)
        concepts, fails = response_concepts(judge, [s.text for s in pool], [s.value for s in pool], protocol,
                                            max_new_tokens=concept_tokens, progress=progress)
        failures.append(fails)
    if judge is not None:
        models["judge"] = unwrap(judge).spec
        models["judge_is_bundled"] = unwrap(judge).is_bundled
    if eval_samples is None:
        splits = _folds([(s.value, s.label) for s in train], folds, seed)
    else:
        splits = [(np.arange(len(train)), np.arange(len(train), len(pool)))]

    def pick(tr: Sequence[int], n: int | None, how: str, order_seed: int) -> list[int]:
        by_value: dict[str, list[int]] = defaultdict(list)
        for i in tr:
            by_value[pool[i].value].append(int(i))
        return [i for v in sorted(by_value) for i in select_rows(by_value[v], embs, n, how, order_seed)]

    def fit(idx: list[int], with_concepts: bool) -> Recognizer:
        return train_recognizer([pool[i] for i in idx], [concepts[i] for i in idx] if with_concepts else None,
                                kind, encoder_spec, classes, _emb=emb)

    methods = ["recognizer"] + (["no_concepts"] if use_concepts else []) + ["embed_zero_shot"]
    if judge is not None:
        methods += ["llm_zero_shot", "llm_concepts"]
    methods.append("majority")
    preds: dict[str, dict[int, int | None]] = {m: {} for m in methods}
    n_train: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in methods}
    oof_logits: dict[int, np.ndarray] = {}
    fold_of: dict[int, int] = {}
    guide_fails = Failures("value concepts (judge with concepts)")
    concept_judge_fails = Failures("judge with concepts")
    for f_no, (tr, te) in enumerate(splits):
        te = [int(i) for i in te]
        chosen = pick(tr, per_value, selection, seed + f_no)
        counts = Counter(pool[i].value for i in chosen)
        te_texts, te_vals = [pool[i].text for i in te], [pool[i].value for i in te]
        te_con = [concepts[i] for i in te] if use_concepts else None
        rec = fit(chosen, use_concepts)
        for i, z, v in zip(te, rec.logits(te_texts, te_vals, te_con), te_vals, strict=True):
            oof_logits[i] = z
            fold_of[i] = f_no
            preds["recognizer"][i] = _argmax_label(z, classes[v])
        if use_concepts:
            ablation = fit(chosen, False)
            for i, z, v in zip(te, ablation.logits(te_texts, te_vals), te_vals, strict=True):
                preds["no_concepts"][i] = _argmax_label(z, classes[v])
        full = Counter(pool[i].value for i in tr)
        for v in {pool[i].value for i in te}:
            for m in ("recognizer", *(["no_concepts"] if use_concepts else [])):
                n_train[m][v].append(counts.get(v, 0))
            n_train["majority"][v].append(full.get(v, 0))
        majority = {v: Counter(pool[i].label for i in tr if pool[i].value == v).most_common(1)
                    for v in {pool[i].value for i in te}}
        for i in te:
            got = majority[pool[i].value]
            preds["majority"][i] = got[0][0] if got else None
        if judge is not None:
            guide, shown = _fold_guidelines(judge, [pool[i] for i in tr], sorted(set(te_vals)), guidelines,
                                            guide_fails, guideline_tokens)
            got, stats, _ = llm_zero_shot(judge, te_texts, te_vals, concepts=guide)
            for i, p in zip(te, got, strict=True):
                preds["llm_concepts"][i] = p
            concept_judge_fails.extend(_failures_from(stats, "judge with concepts"))
            for v in set(te_vals):
                n_train["llm_concepts"][v].append(shown.get(v, 0))
    eval_idx = sorted(preds["recognizer"])
    ev = [pool[i] for i in eval_idx]
    for i, p, s in zip(eval_idx, embed_zero_shot(embs[eval_idx], [s.value for s in ev], emb, classes), ev, strict=True):
        preds["embed_zero_shot"][i] = _argmax_label(p, classes[s.value])
    llm_info = None
    if judge is not None:
        got, stats, how = llm_zero_shot(judge, [s.text for s in ev], [s.value for s in ev])
        for i, p in zip(eval_idx, got, strict=True):
            preds["llm_zero_shot"][i] = p
        failures.append(_failures_from(stats, "judge zero-shot"))
        llm_info = {"model": unwrap(judge).spec, "is_bundled": unwrap(judge).is_bundled, "how": how,
                    "parse": stats.as_dict()}
    for f in (guide_fails, concept_judge_fails):
        if f.total:
            failures.append(f)

    by_value: dict[str, list[int]] = defaultdict(list)
    for i in eval_idx:
        by_value[pool[i].value].append(i)
    per_value_report = {}
    for v, members in sorted(by_value.items()):
        gold = [pool[i].label for i in members]
        per_value_report[v] = {m: _value_metrics(gold, [preds[m][i] for i in members], classes[v],
                                                 float(np.mean(n_train[m][v])) if n_train[m].get(v) else 0, m)
                               for m in methods}
    overall = {}
    for m in methods:
        f1s = [per_value_report[v][m]["macro_f1"]["value"] for v in per_value_report]
        f1s = [x for x in f1s if x is not None]
        gold = [pool[i].label for i in eval_idx]
        pred = [preds[m][i] for i in eval_idx]
        overall[m] = {
            "macro_f1": Metric.mean("macro_f1_mean", f1s, "mean over values of each value's macro-F1; "
                                    "bootstrap 95% interval over values", OWN, "mean macro-F1 over values").as_dict(),
            "accuracy": Metric.proportion("accuracy", sum(g == p for g, p in zip(gold, pred, strict=True)), len(gold),
                                          ACC_DEF, OWN).as_dict(),
            "n_eval": len(gold), "failed": sum(p is None for p in pred), "uses_labels": USES_LABELS[m],
            "confusion": [[sum(g == a and p == b for g, p in zip(gold, pred, strict=True)) for b in LABELS]
                          for a in LABELS]}
    report = {
        "methods": methods,
        "method_titles": {m: METHOD_TITLES[m] for m in methods},
        "overall": overall,
        "per_value": per_value_report,
        "goal": goal_comparison(per_value_report, methods),
        "calibration": _probability_calibration(eval_idx, oof_logits, fold_of, pool, classes),
        "protocol": f"{folds}-fold cross-validation" if eval_samples is None else "separate evaluation set",
        "folds": folds if eval_samples is None else None,
        "n_labels": len(train), "n_eval": len(ev),
        "small_model": {"kind": kind, "title": SMALL_MODELS[kind].title, "per_value": per_value,
                        "selection": selection},
        "concepts": {"per_response": use_concepts, "protocol": protocol.as_dict() if protocol else None,
                     "examples": [{"text": pool[i].text, "value": pool[i].value, "concepts": concepts[i]}
                                  for i in eval_idx[:5]] if use_concepts else []},
        "guidelines_note": ("the judge read value concepts a person saved, which may have been written from "
                            "rows held out here; the 'judge with concepts' scores can be optimistic")
                           if guidelines and judge is not None else "",
        "failures": [f.as_dict() for f in failures], "models": models, "llm": llm_info,
        "labels": {LABEL_NAMES[k]: k for k in LABELS}, "classes": classes,
        "caveats": [BUNDLED_CAVEAT] if llm_info and llm_info["is_bundled"] else [],
    }
    if learning_curve:
        report["learning_curve"] = _learning_curve(pool, splits, classes, concepts, fit, pick,
                                                   curve_orders, seed)
    if not fit_final:
        report["seconds"] = round(time.perf_counter() - t0, 3)
        return report, None
    final = fit(pick(range(len(train)), per_value, selection, seed), use_concepts)
    final.temperature = {v: fit_temperature([oof_logits[i] for i in by_value[v]],
                                            [classes[v].index(pool[i].label) for i in by_value[v]])
                         for v in by_value if v in final.classes}
    final.meta.update({"protocol": report["protocol"], "concept_model": models.get("judge") if use_concepts else None,
                       "concept_protocol": report["concepts"]["protocol"],
                       "held_out": {v: {"macro_f1": per_value_report[v]["recognizer"]["macro_f1"],
                                        "n_eval": per_value_report[v]["recognizer"]["n_eval"]}
                                    for v in per_value_report}})
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report, final


def _failures_from(stats: ParseStats, step: str) -> Failures:
    f = Failures(step, stats.ok + stats.failed, stats.failed)
    f.reasons.update(stats.reasons)
    return f


def _fold_guidelines(judge: ChatModel, tr: Sequence[Sample], values: Sequence[str], given: dict | None,
                     fails: Failures, max_new_tokens: int = 200) -> tuple[dict, dict]:
    """Value concepts for the judge-with-concepts baseline: the person's (``given``) or written
    now from this fold's training rows only. Returns them and how many labelled rows each read."""
    out, shown = {}, {}
    todo = [v for v in values if not (given and given.get(v))]
    for v in values:
        if v not in todo:
            out[v], shown[v] = given[v], 0
    for v, got in extract_concepts_many(judge, todo, tr, max_new_tokens=max_new_tokens).items():
        if got is None:  # no adhering / opposing rows in this fold
            fails.add(False, "no adhering or opposing training rows")
            continue
        fails.add(got.ok, got.reason)
        out[v] = got.concepts
        mine = [s for s in tr if s.value == v]
        shown[v] = min(8, sum(s.label == 1 for s in mine)) + min(8, sum(s.label == -1 for s in mine))
    return out, shown


def goal_comparison(per_value: dict, methods: Sequence[str], target: str = "recognizer") -> dict:
    """The recognizer against the best uncalibrated baseline (highest mean macro-F1 over values):
    the margin per value and on average, and the values where it loses (this project's own test
    of CLAVE's claim that a calibrated small model beats uncalibrated evaluators)."""
    base = [m for m in UNCALIBRATED if m in methods]
    if target not in methods or not base or not per_value:
        return {}

    def mean_f1(m):
        got = [per_value[v][m]["macro_f1"]["value"] for v in per_value]
        return float(np.mean([x or 0.0 for x in got]))

    best = max(base, key=mean_f1)
    margins = {v: (per_value[v][target]["macro_f1"]["value"] or 0.0) - (per_value[v][best]["macro_f1"]["value"] or 0.0)
               for v in per_value}
    mean = Metric.mean("margin", list(margins.values()), f"mean over values of macro-F1 ({target}) minus "
                       f"macro-F1 ({best}); bootstrap 95% interval over values", OWN, "mean margin")
    return {"target": target, "best_baseline": best, "margins": margins, "mean_margin": mean.as_dict(),
            "values_lost": sorted(v for v, d in margins.items() if d < 0),
            "goal": "mean margin >= 0.05 and no value lost (issue 15)",
            "met": (mean.value or 0.0) >= 0.05 and not any(d < 0 for d in margins.values())}


def _probability_calibration(eval_idx, oof_logits, fold_of, pool, classes) -> dict:
    """ECE of the recognizer's held-out probabilities, raw and temperature-scaled, per value. The
    temperature for the rows of fold k is fitted on the other folds' held-out rows only
    (cross-fitted), so the scaled ECE is itself held out."""
    out = {}
    by_value: dict[str, list[int]] = defaultdict(list)
    for i in eval_idx:
        by_value[pool[i].value].append(i)
    for v, members in sorted(by_value.items()):
        cls = classes[v]
        raw, scaled, temps = [], [], []
        folds_here = sorted({fold_of[i] for i in members})
        for f in folds_here:
            others = [i for i in members if fold_of[i] != f]
            t = fit_temperature([oof_logits[i] for i in others], [cls.index(pool[i].label) for i in others]) \
                if len(folds_here) > 1 else 1.0
            temps.append(t)
            for i in members:
                if fold_of[i] != f:
                    continue
                for dest, temp in ((raw, 1.0), (scaled, t)):
                    p = softmax(oof_logits[i], temp)
                    dest.append((float(p.max()), cls[int(np.argmax(p))] == pool[i].label))
        d = f"expected calibration error over {ECE_BINS} confidence bins; bootstrap 95% interval over rows"
        out[v] = {"ece_raw": Metric.over_rows("ece_raw", raw, ece, d + " (raw probabilities)", OWN, "ECE, raw").as_dict(),
                  "ece_scaled": Metric.over_rows("ece_scaled", scaled, ece, d + " (temperature fitted on the "
                                                 "other folds)", OWN, "ECE, temperature-scaled").as_dict(),
                  "temperature_mean": float(np.mean(temps)) if temps else 1.0}
    return out


CURVE_SIZES = (10, 25, 50, 100, 200)


def _learning_curve(pool, splits, classes, concepts, fit, pick, orders: int, seed: int) -> list[dict]:
    """Mean macro-F1 over values on held-out rows, per number of labels per value, over every
    fold and ``orders`` random orders of the training rows (mean and standard deviation)."""
    out = []
    biggest = max(Counter(pool[i].value for i in splits[0][0]).values())
    sizes = [n for n in CURVE_SIZES if n < biggest] + [biggest]
    for n in sizes:
        runs = []
        for f_no, (tr, te) in enumerate(splits):
            for o in range(orders):
                rec = fit(pick(tr, n, "random", seed + 100 * o + f_no), concepts is not None)
                te_l = [int(i) for i in te]
                z = rec.logits([pool[i].text for i in te_l], [pool[i].value for i in te_l],
                               [concepts[i] for i in te_l] if concepts is not None else None)
                by_value: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
                for i, zi in zip(te_l, z, strict=True):
                    v = pool[i].value
                    by_value[v][0].append(pool[i].label)
                    by_value[v][1].append(_argmax_label(zi, classes[v]))
                runs.append(float(np.mean([macro_f1(g, p, classes[v]) for v, (g, p) in by_value.items()])))
        out.append({"n_per_value": int(n), "macro_f1": float(np.mean(runs)), "sd": float(np.std(runs)),
                    "runs": len(runs)})
    return out


def calibrate_store(store: st.Store, annotator: str | None = None, folds: int = 5, judge: ChatModel | None = None,
                    progress: ProgressFn | None = None, owner: str | None = None, name: str = "",
                    source: str = "ui", **options) -> dict:
    """Calibrate on the store's labels (and the person's saved value concepts, for the judge
    baseline); saves the recognizer under ``name`` and the evaluation as a run
    (:mod:`valdemo.core.runs`), both owned by ``owner``; the report, with both ids."""
    from .storage import check_recognizer_name

    name = check_recognizer_name(name)
    rows = training_rows(store, check_annotator(annotator) if annotator else None)
    report, rec = calibrate(rows, stored_concepts(store, owner), folds=folds, judge=judge, progress=progress, **options)
    save_calibration(store, report, rec, owner or "", name, source)
    return report


def save_calibration(store: st.Store, report: dict, rec: Recognizer | None, owner: str = "", name: str = "",
                     source: str = "ui") -> dict:
    """Save the evaluation as a run through :func:`valdemo.core.runs.save_run` and (when given) the
    recognizer under ``name``; sets ``report["run_id"]`` / ``report["recognizer_id"]``."""
    from ..core.runs import save_run
    from .storage import new_recognizer_id

    if rec is not None:  # the run names its recognizer, and the recognizer its run
        report["recognizer_id"] = new_recognizer_id()
        report["recognizer_name"] = name
    report["run_id"] = save_run(to_result(report), owner=owner, source=source, store=store)
    if rec is not None:
        save_recognizer(store, rec, report, owner, name, report["recognizer_id"])
    return report


def to_result(report: dict) -> Result:
    """The calibration report as the shared :class:`~valdemo.core.result.Result`: headline = mean
    macro-F1 over values per method (and the goal margin); groups = each value's metrics per
    method; rows = one per value and method (n_train, n_eval, unreadable, confusion)."""
    titles = report.get("method_titles") or {m: METHOD_TITLES[m] for m in report["methods"]}

    def metric(d: dict, name: str, label: str) -> Metric:
        iv = d.get("interval")
        return Metric(name, d.get("value"), int(d.get("n", 0)), tuple(iv) if iv else None, d.get("definition", ""),
                      d.get("source", OWN), d.get("interval_kind", "none"), label)

    headline = [metric(report["overall"][m]["macro_f1"], f"macro_f1_mean:{m}", f"mean macro-F1 · {titles[m]}")
                for m in report["methods"]]
    goal = report.get("goal") or {}
    if goal:
        headline.insert(0, metric(goal["mean_margin"], "goal_margin",
                                  f"recognizer minus {titles.get(goal['best_baseline'], goal['best_baseline'])}"))
    groups, rows = {}, []
    for v, block in report["per_value"].items():
        groups[v] = []
        for m in report["methods"]:
            r = block[m]
            groups[v] += [metric(r["macro_f1"], f"macro_f1:{m}", f"macro-F1 · {titles[m]}"),
                          metric(r["accuracy"], f"accuracy:{m}", f"accuracy · {titles[m]}")]
            rows.append({"value": v, "method": m, "macro_f1": r["macro_f1"]["value"], "accuracy": r["accuracy"]["value"],
                         "n_train": r["n_train"], "n_eval": r["n_eval"], "unreadable": r["failed"],
                         "uses_labels": r["uses_labels"], "classes": r["classes"], "confusion": r["confusion"]})
    failures = [Failures(f["step"], int(f["total"]), int(f["failed"]), Counter(f.get("reasons", {})))
                for f in report.get("failures", [])]
    concepts = report.get("concepts") or {}
    return Result("clave", metrics=headline, rows=rows, failures=failures,
                  protocol={"name": report["protocol"], "concepts": concepts.get("protocol")},
                  models=dict(report.get("models", {})),
                  params={**report.get("small_model", {}), "folds": report.get("folds"),
                          "n_labels": report.get("n_labels"), "n_eval": report.get("n_eval"),
                          "per_response_concepts": concepts.get("per_response"),
                          "recognizer_id": report.get("recognizer_id"), "recognizer_name": report.get("recognizer_name", "")},
                  caveats=list(report.get("caveats", [])) + ([report["guidelines_note"]] if report.get("guidelines_note") else []),
                  groups=groups,
                  extra={"goal": goal, "calibration": report.get("calibration", {}),
                         "learning_curve": report.get("learning_curve", []), "classes": report.get("classes", {}),
                         "seconds": report.get("seconds")})


SUMMARY_HEADERS = ["value", "method", "macro-F1", "95% interval", "accuracy", "n_train", "n_eval", "unreadable"]


def summary_table(report: dict) -> list[list]:
    """Rows per value and method (then the mean over values) for display, with intervals and n."""
    rows = []
    for v, block in report["per_value"].items():
        for m in report["methods"]:
            r = block[m]
            f1 = r["macro_f1"]
            rows.append([v, METHOD_TITLES[m], _r(f1["value"]), _iv(f1["interval"]), _r(r["accuracy"]["value"]),
                         r["n_train"], r["n_eval"], r["failed"]])
    for m in report["methods"]:
        o = report["overall"][m]
        f1 = o["macro_f1"]
        rows.append([f"mean of {f1['n']} values", METHOD_TITLES[m], _r(f1["value"]), _iv(f1["interval"]),
                     _r(o["accuracy"]["value"]), "", o["n_eval"], o["failed"]])
    return rows


def _iv(iv) -> str:
    return "" if not iv else f"[{iv[0]:.3f}, {iv[1]:.3f}]"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
