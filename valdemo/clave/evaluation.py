"""CLAVE evaluation: held-out agreement with people, beside uncalibrated baselines; annotator agreement."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .. import store as st
from ..inputs import InputError
from ..models import ChatModel, GenParams, unwrap, user
from ..parsing import Parsed, ParseStats, fence, parse_choice
from ..values import Value, get_value
from .concepts import stored_concepts
from .inputs import LABEL_NAMES, LABELS, METHOD_TITLES, METHODS, ProgressFn, Sample, check_annotator
from .recognizers import Recognizer, _Embeddings, train_recognizer
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
# baselines (uncalibrated)
# ---------------------------------------------------------------------------------


def _label_descriptions(v: Value) -> list[str]:
    """One description per label in :data:`LABELS` order, for the embedding baseline."""
    return [f"This text expresses {v.name.lower()}: {v.definition}",
            f"This text rejects {v.name.lower()}; it goes against {v.definition[0].lower()}{v.definition[1:]}",
            f"An ordinary remark that has nothing to do with {v.name.lower()}."]


def embed_zero_shot(text_emb: np.ndarray, values: Sequence[str], emb: _Embeddings) -> np.ndarray:
    """Probabilities from cosine similarity to a description of each label (softmax, no training)."""
    out = np.zeros((len(values), len(LABELS)))
    keys = sorted(set(values))
    emb([d for k in keys for d in _label_descriptions(get_value(k))])
    protos = {k: emb(_label_descriptions(get_value(k))) for k in keys}
    for i, (e, k) in enumerate(zip(text_emb, values, strict=True)):
        z = protos[k] @ e * 20.0
        z -= z.max()
        out[i] = np.exp(z) / np.exp(z).sum()
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
    """The judge prompted zero-shot (or, with ``concepts``, guided by each value's concepts): option
    probabilities where the backend has them, else generated letters parsed; failures stay None
    (scored wrong) and are counted."""
    convs = [user(llm_prompt(t, get_value(k), (concepts or {}).get(k)), LLM_SYSTEM)
             for t, k in zip(texts, values, strict=True)]
    stats = ParseStats()
    probs = model.option_probs_batch(convs, list(LLM_OPTIONS), progress=progress)
    if probs is not None:
        preds = []
        for p in probs:
            stats.add(Parsed(True, True))
            preds.append(LABELS[LLM_OPTIONS.index(max(LLM_OPTIONS, key=lambda o: p.get(o, 0.0)))])
        return preds, stats, "option probabilities"
    replies = model.chat_batch(convs, GenParams(max_new_tokens=8), progress=progress)
    preds = []
    for r in replies:
        parsed = stats.add(parse_choice(r.text, LLM_OPTIONS))
        preds.append(LABELS[LLM_OPTIONS.index(parsed.value)] if parsed.ok else None)
    return preds, stats, "generated letter"


# ---------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------

FAILED = 9  # stands for a judge answer that could not be read (always wrong)


def scores(y_true: Sequence[int], y_pred: Sequence[int | None]) -> dict:
    """accuracy, macro-F1 (over the three labels), Cohen's kappa and the confusion matrix."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

    yt = list(y_true)
    yp = [FAILED if p is None else p for p in y_pred]
    if not yt:
        return {"accuracy": None, "macro_f1": None, "kappa": None, "n_eval": 0}
    with np.errstate(all="ignore"):
        kappa = cohen_kappa_score(yt, yp) if len(set(yt) | set(yp)) > 1 else (1.0 if yt == yp else 0.0)
    return {"accuracy": float(np.mean([a == b for a, b in zip(yt, yp, strict=True)])),
            "macro_f1": float(f1_score(yt, yp, labels=list(LABELS), average="macro", zero_division=0)),
            "kappa": _finite(kappa),
            "confusion": confusion_matrix(yt, yp, labels=list(LABELS)).tolist(),
            "n_eval": len(yt), "n_failed": sum(p is None for p in y_pred)}


def _folds(labels: Sequence[int], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(labels)
    idx = np.arange(n)
    smallest = min(Counter(labels).values())
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if smallest >= k
                else KFold(k, shuffle=True, random_state=seed))
    return list(splitter.split(idx, list(labels)))


def calibrate(samples: Sequence[Sample], concepts: dict[str, dict] | None = None, folds: int = 5,
              eval_samples: Sequence[Sample] | None = None, judge: ChatModel | None = None,
              encoder_spec: str = "", learning_curve: bool = True, seed: int = 0,
              progress: ProgressFn | None = None) -> tuple[dict, Recognizer]:
    """Calibrate and evaluate against human labels.

    With ``eval_samples`` the recognizer trains on ``samples`` and is scored on them;
    otherwise k-fold cross-validation over ``samples`` (each row predicted by the fold
    that held it out). Baselines are scored on the same held-out rows. Returns the
    report and the recognizer trained on all of ``samples``.
    """
    t0 = time.perf_counter()
    train = [s for s in samples if s.label is not None]
    concepts = concepts or {}
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
    emb = _Embeddings(encoder_spec)
    pool = list(train) + list(eval_samples or [])
    all_emb = emb([s.text for s in pool], progress=progress)
    train_emb = all_emb[:len(train)]
    if eval_samples is None:
        splits = _folds([s.label for s in train], folds, seed)
        held, held_emb = train, train_emb
    else:
        splits = [(np.arange(len(train)), np.arange(len(train), len(pool)))]
        held, held_emb = pool, all_emb

    preds: dict[str, dict[int, int | None]] = {m: {} for m in METHODS}
    n_train_sizes = []
    for tr, te in splits:
        tr_s = [pool[i] for i in tr]
        rec = train_recognizer(tr_s, concepts, encoder_spec, _emb=emb, _text_emb=held_emb[tr])
        te_vals = [held[i].value for i in te]
        for i, p in zip(te, rec.proba_from_emb(held_emb[te], te_vals), strict=True):
            preds["recognizer"][int(i)] = LABELS[int(np.argmax(p))]
        majority = Counter(s.label for s in tr_s).most_common(1)[0][0]
        for i in te:
            preds["majority"][int(i)] = majority
        n_train_sizes.append(len(tr))
    eval_idx = sorted(preds["recognizer"])
    ev = [held[i] for i in eval_idx]
    ev_emb = held_emb[eval_idx]
    for i, p in zip(eval_idx, embed_zero_shot(ev_emb, [s.value for s in ev], emb), strict=True):
        preds["embed_zero_shot"][i] = LABELS[int(np.argmax(p))]
    skipped = {}
    llm_info = None
    if judge is not None:
        got, stats, how = llm_zero_shot(judge, [s.text for s in ev], [s.value for s in ev])
        for i, p in zip(eval_idx, got, strict=True):
            preds["llm_zero_shot"][i] = p
        llm_info = {"model": unwrap(judge).spec, "is_bundled": unwrap(judge).is_bundled, "how": how,
                    "parse": stats.as_dict()}
    else:
        skipped["llm_zero_shot"] = "no judge model given"
        del preds["llm_zero_shot"]
    with_concepts = {s.value for s in ev} & {k for k, c in concepts.items() if c.get("adheres") or c.get("opposes")}
    if judge is not None and with_concepts:
        got, stats, _ = llm_zero_shot(judge, [s.text for s in ev], [s.value for s in ev], concepts=concepts)
        for i, p in zip(eval_idx, got, strict=True):
            preds["llm_concepts"][i] = p
        llm_info["concepts_parse"] = stats.as_dict()
    else:
        skipped["llm_concepts"] = "no judge model given" if judge is None else "no concepts for these values"
        del preds["llm_concepts"]

    n_train = int(round(float(np.mean(n_train_sizes))))
    y = [s.label for s in ev]

    def block(members: list[int]) -> dict:
        out = {}
        for m, table in preds.items():
            out[m] = {**scores([y[j] for j in members], [table[eval_idx[j]] for j in members]), "n_train": n_train}
        return out

    by_value: dict[str, list[int]] = defaultdict(list)
    for j, s in enumerate(ev):
        by_value[s.value].append(j)
    report = {
        "methods": list(preds),
        "method_titles": {m: METHOD_TITLES[m] for m in preds},
        "overall": block(list(range(len(ev)))),
        "per_value": {k: block(v) for k, v in sorted(by_value.items())},
        "protocol": f"{folds}-fold cross-validation" if eval_samples is None else "separate evaluation set",
        "folds": folds if eval_samples is None else None,
        "n_labels": len(train), "n_eval": len(ev), "n_train": n_train,
        "concept_values": sorted(k for k in concepts if k in {s.value for s in train}),
        "concept_note": ("concepts are written from labelled samples, which may include the rows held out "
                         "here; the concept-based scores can be optimistic") if concepts else "",
        "skipped": skipped, "llm": llm_info, "labels": {LABEL_NAMES[k]: k for k in LABELS},
    }
    if learning_curve:
        report["learning_curve"] = _learning_curve(held, held_emb, splits[0], concepts, encoder_spec, emb, seed)
    final = train_recognizer(train, concepts, encoder_spec, _emb=emb, _text_emb=train_emb)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    final.meta.update({"report_overall": report["overall"].get("recognizer"), "protocol": report["protocol"]})
    return report, final


def _learning_curve(held, embs, split, concepts, encoder_spec, emb, seed) -> list[dict]:
    tr, te = split
    rng = np.random.default_rng(seed)
    order = rng.permutation(tr)
    sizes = [n for n in (10, 20, 50, 100, 200, 500, 1000, 2000) if n < len(tr)] + [len(tr)]
    y_te = [held[i].label for i in te]
    out = []
    for n in sizes:
        sub = order[:n]
        rec = train_recognizer([held[i] for i in sub], concepts, encoder_spec, _emb=emb, _text_emb=embs[sub])
        p = rec.proba_from_emb(embs[te], [held[i].value for i in te])
        pred = [LABELS[int(np.argmax(q))] for q in p]
        out.append({"n_labels": int(n), "macro_f1": scores(y_te, pred)["macro_f1"]})
    return out


def calibrate_store(store: st.Store, annotator: str | None = None, folds: int = 5, judge: ChatModel | None = None,
                    progress: ProgressFn | None = None) -> dict:
    """Calibrate on the store's labels and concepts; saves the recognizer; the report (with its id)."""
    rows = training_rows(store, check_annotator(annotator) if annotator else None)
    report, rec = calibrate(rows, stored_concepts(store), folds=folds, judge=judge, progress=progress)
    report["recognizer_id"] = save_recognizer(store, rec, report)
    return report


def summary_table(report: dict) -> list[list]:
    """Rows ``[scope, method, accuracy, macro_f1, kappa, n_train, n_eval]`` for display."""
    rows = []
    for scope, block in [("overall", report["overall"]), *sorted(report["per_value"].items())]:
        for m in report["methods"]:
            r = block[m]
            rows.append([scope, METHOD_TITLES[m], _r(r["accuracy"]), _r(r["macro_f1"]), _r(r["kappa"]),
                         r["n_train"], r["n_eval"]])
    return rows


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
