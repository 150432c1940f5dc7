"""CLAVE storage: the labelling queue (per annotator, durable, undoable) and saved recognizers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .. import store as st
from ..core.result import OWN, Failures, Metric, NotMeasured, Result
from ..inputs import InputError, check_int, check_text
from ..models import ChatModel
from ..values import SCHWARTZ_KEYS
from .concepts import load_concept_protocol, response_concepts
from .inputs import (
    DEFAULT_TARGET,
    LABEL_NAMES,
    Sample,
    check_annotator,
    check_label,
    check_value,
    ensure_bundled,
    value_info,
)
from .recognizers import Recognizer

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------
# labelling
# ---------------------------------------------------------------------------------


def value_card(value_key: str) -> dict:
    v = value_info(value_key)
    return {"value": v.key, "name": v.name, "definition": v.definition, "examples": list(v.examples)}


def next_sample(store: st.Store, annotator: str, value: str | None = None) -> dict | None:
    """The next sample this annotator has not labelled or skipped, with its value's definition."""
    ensure_bundled(store)
    annotator = check_annotator(annotator)
    key = check_value(value).key if value else None
    sample = st.clave_next_sample(store, annotator, key)
    if sample is None:
        return None
    return {"sample_id": sample["id"], "text": sample["text"], "source": sample["source"],
            **value_card(sample["value"])}


def submit_label(store: st.Store, annotator: str, sample_id: int, label: object, note: str = "",
                 owner: str = "", verified: bool = False) -> dict:
    """Record a label; returns the acknowledgement only after the commit (durable on disk).

    ``label`` may be 1/-1/0, a label word, or ``"skip"`` (recorded, so the sample is not shown
    again, and undoable like a label).
    """
    annotator = check_annotator(annotator)
    try:
        sid = int(sample_id)
    except (TypeError, ValueError):
        raise InputError(f"sample id must be a whole number, got {sample_id!r}") from None
    skipped = isinstance(label, str) and label.strip().lower() in {"skip", "s"}
    value = None if skipped else check_label(label)
    note = (note or "").strip()
    if len(note) > 2000:
        raise InputError(f"note is {len(note)} characters; the limit is 2000")
    seq = st.clave_add_label(store, sid, annotator, value, note, owner=owner, verified=verified)
    return {"ok": True, "seq": seq, "sample_id": sid, "annotator": annotator, "verified": bool(verified),
            "label": value, "label_name": "skipped" if skipped else LABEL_NAMES[value], "durable": True}


def undo_last(store: st.Store, annotator: str) -> dict:
    """Undo the annotator's latest submission; the sample comes back into their queue."""
    row = st.clave_undo(store, check_annotator(annotator))
    if row is None:
        return {"ok": False, "undone": None, "message": "nothing to undo"}
    name = "skipped" if row["label"] is None else LABEL_NAMES[row["label"]]
    return {"ok": True, "undone": {"seq": row["seq"], "sample_id": row["sample_id"], "label": row["label"],
                                   "label_name": name, "value": row["value"], "text": row["text"]},
            "message": f"undid '{name}' on sample {row['sample_id']}"}


def progress(store: st.Store, annotator: str | None, target: int = DEFAULT_TARGET) -> dict:
    """Labels per value toward ``target`` (skips excluded); for one annotator, or all."""
    target = check_int(target, "target labels per value", 1, 100_000)
    ensure_bundled(store)
    available = st.clave_sample_counts(store)
    counts = Counter(r["value"] for r in st.clave_current_labels(store, annotator))
    keys = [k for k in SCHWARTZ_KEYS] + sorted(set(available) - set(SCHWARTZ_KEYS))
    per_value = {k: {"labelled": counts.get(k, 0), "target": target, "available": available.get(k, 0)}
                 for k in keys}
    done = sum(min(v["labelled"], target) for v in per_value.values())
    return {"annotator": annotator, "per_value": per_value,
            "overall": {"labelled": sum(counts.values()), "toward_target": done, "target": target * len(keys)}}


def training_rows(store: st.Store, annotator: str | None = None) -> list[Sample]:
    """Labels to calibrate on: one annotator's, or the majority per sample across annotators
    (ties are left out)."""
    rows = st.clave_current_labels(store, annotator)
    by_sample: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_sample[r["sample_id"]].append(r)
    out = []
    for group in by_sample.values():
        votes = Counter(r["label"] for r in group).most_common()
        if len(votes) > 1 and votes[0][1] == votes[1][1]:
            continue
        out.append(Sample(group[0]["text"], group[0]["value"], votes[0][0]))
    return out


# ---------------------------------------------------------------------------------
# persisted recognizers
# ---------------------------------------------------------------------------------


def recognizer_dir(store: st.Store) -> Path:
    return Path(store.path).parent / "clave_recognizers"


#: a recognizer's name: what its owner calls it (letters, digits, space, . _ -; up to 60 characters)
RECOGNIZER_NAME = re.compile(r"^[\w][\w .\-]{0,59}$")


def check_recognizer_name(name: str | None) -> str:
    name = (name or "").strip()
    if name and not RECOGNIZER_NAME.match(name):
        raise InputError(f"recognizer name {name[:80]!r}: use up to 60 letters, digits, spaces, '.', '_' or '-'")
    return name


def new_recognizer_id() -> str:
    return f"clave-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def save_recognizer(store: st.Store, rec: Recognizer, report: dict | None = None, owner: str = "",
                    name: str = "", rec_id: str = "") -> str:
    """Save a calibrated recognizer, owned by ``owner`` (an Owner id; '' for local tools), under
    ``name`` (optional; the owner's newest recognizer of a name is the one that name opens)."""
    name = check_recognizer_name(name)
    rec_id = rec_id or new_recognizer_id()
    path = rec.save(recognizer_dir(store) / f"{rec_id}.npz")
    summary = {"n_train": rec.meta.get("n_train"), "values": rec.values, "kind": rec.model.kind,
               "uses_concepts": rec.uses_concepts, "protocol": (report or {}).get("protocol"),
               "held_out": rec.meta.get("held_out"), "run_id": (report or {}).get("run_id")}
    st.clave_save_recognizer(store, rec_id, str(path), summary, owner, name)
    rec.meta["id"] = rec_id
    rec.meta["name"] = name
    return rec_id


def list_recognizers(store: st.Store, owner: str | None = None) -> list[dict]:
    """The recognizers ``owner`` may read (None: all), newest first: id, name, when, the values it
    was calibrated on and its held-out macro-F1 per value."""
    out = []
    for r in st.clave_recognizer_rows(store, owner):
        s = r["summary"]
        out.append({"id": r["id"], "name": r["name"], "created": r["created"], "values": s.get("values", []),
                    "kind": s.get("kind"), "uses_concepts": s.get("uses_concepts"), "n_train": s.get("n_train"),
                    "protocol": s.get("protocol"), "run_id": s.get("run_id"),
                    "held_out_macro_f1": {v: (h.get("macro_f1") or {}).get("value")
                                          for v, h in (s.get("held_out") or {}).items()}})
    return out


_loaded: dict[str, Recognizer] = {}


def get_recognizer(store: st.Store | None = None, ref: str = "", owner: str | None = None) -> Recognizer | None:
    """The recognizer named (or with id) ``ref`` among those ``owner`` may read (None: any); with
    no ``ref``, the newest. None where there is none."""
    store = store or st.get_store()
    row = st.clave_latest_recognizer_row(store, owner, (ref or "").strip())
    if row is None:
        return None
    if row["id"] not in _loaded:
        try:
            rec = Recognizer.load(row["path"])
        except (OSError, KeyError, ValueError) as exc:
            log.warning("calibrated recognizer %s cannot be read (%s)", row["id"], exc)
            return None
        rec.meta["id"] = row["id"]
        rec.meta["name"] = row["name"]
        _loaded[row["id"]] = rec
    return _loaded[row["id"]]


def latest_recognizer(store: st.Store | None = None, owner: str | None = None) -> Recognizer | None:
    """The most recently calibrated recognizer ``owner`` may read (None: any), or None."""
    return get_recognizer(store, "", owner)


def recognizer_label(rec: Recognizer) -> str:
    """How a recognizer is named on screen: ``name (id)``, or its id."""
    rid, name = rec.meta.get("id", "?"), rec.meta.get("name") or ""
    return f"{name} ({rid})" if name else str(rid)


def texts_concepts(rec: Recognizer, texts: Sequence[str], values: Sequence[str],
                   judge: ChatModel | None = None) -> tuple[list[list[str]] | None, Failures | None]:
    """A concept-based recognizer reads each new text's concepts first (CLAVE step 1): written
    by ``judge``, else by the model that wrote its calibration concepts."""
    if not rec.uses_concepts:
        return None, None
    if judge is None:
        from ..models import get_model

        spec = rec.meta.get("concept_model")
        if not spec:
            raise InputError("this recognizer reads concepts but names no judge model: calibrate again")
        judge = get_model(spec)
    protocol = load_concept_protocol((rec.meta.get("concept_protocol") or {}).get("name") or "concepts")
    return response_concepts(judge, texts, values, protocol)


def profile_result(answers: Sequence[dict], store: st.Store | None = None, owner: str | None = None,
                   ref: str = "") -> Result:
    """The recognizer named ``ref`` (its name or id; default: the newest ``owner`` may read) reads a
    model's own answers (``[{"question", "answer"}]``)
    for every Schwartz value it was calibrated on: per value, the shares it labels adhering,
    opposing and unrelated (Wilson intervals over answers) and its held-out macro-F1 from
    calibration; overall, the shares over every (answer, value) pair. Raises
    :class:`~valdemo.core.result.NotMeasured` when there is nothing to measure with."""
    from ..values import SCHWARTZ

    rec = get_recognizer(store, ref, owner)
    if rec is None and ref:
        raise NotMeasured(f"No CLAVE recognizer named {ref!r} that you may use; adherence is not measured.")
    if rec is None:
        raise NotMeasured("No CLAVE recognizer has been calibrated yet, so adherence is not measured. "
                          "Calibrate one in the 'Calibrate evaluator' tab (or `python -m valdemo clave "
                          "calibrate --save`), then run the profile again.")
    if not answers:
        raise NotMeasured("no answers to read (the value-space section produced none)")
    known = [v.key for v in SCHWARTZ if rec.knows(v.key)]  # only values it was calibrated on (issue 15)
    if not known:
        raise NotMeasured(f"The calibrated CLAVE recognizer knows none of the Schwartz values (it knows "
                          f"{', '.join(rec.values)}); label Schwartz samples and calibrate again.")
    texts = [r["answer"] for r in answers]
    source = "CLAVE (Yao et al.): the calibrated small recognizer's label; share of answers is this project's own"
    rows: list[dict] = []
    groups: dict[str, list[Metric]] = {}
    concept_fails = Failures("answers' concepts (recognizer input)")
    for key in known:
        concepts, fails = texts_concepts(rec, texts, [key] * len(texts))
        if fails is not None:
            concept_fails.extend(fails)
        preds = rec.predict(texts, [key] * len(texts), concepts)
        labels = [p["label"] for p in preds]
        n = len(labels)
        groups[key] = [Metric.proportion(name, labels.count(lab), n, f"share of the model's answers the recognizer "
                                         f"labels '{name}' for this value", source, name)
                       for name, lab in (("adheres", 1), ("opposes", -1), ("unrelated", 0))]
        f1 = ((rec.meta.get("held_out") or {}).get(key) or {}).get("macro_f1")
        if f1:
            groups[key].append(replace(Metric.from_dict(f1), name="held_out_macro_f1",
                                       label="recognizer's held-out macro-F1 (calibration)"))
        rows += [{"value": key, "question": r["question"], "answer": r["answer"], **p}
                 for r, p in zip(answers, preds, strict=True)]
    headline = [Metric.proportion(f"answers_{name}", sum(r["label"] == lab for r in rows), len(rows),
                                  f"share of (answer, calibrated value) pairs labelled '{name}'", OWN,
                                  f"answers {name} (share, all calibrated values)")
                for name, lab in (("adhering", 1), ("opposing", -1))]
    return Result("clave", metrics=headline, rows=rows, failures=[concept_fails] if concept_fails.total else [],
                  models={"recognizer": recognizer_label(rec)}, groups=groups,
                  extra={"values_not_calibrated": [v.key for v in SCHWARTZ if not rec.knows(v.key)]})


def predict_text(store: st.Store, text: str, value: str, judge: ChatModel | None = None,
                 owner: str | None = None, recognizer: str = "") -> dict:
    """Label one text with the recognizer named ``recognizer`` (default: the newest); only for a
    value it was calibrated on."""
    text = check_text(text, "text")
    key = check_value(value).key
    rec = get_recognizer(store, recognizer, owner)
    if rec is None:
        raise InputError(f"no calibrated recognizer named {recognizer!r}" if (recognizer or "").strip()
                         else "no calibrated recognizer yet: calibrate first")
    if not rec.knows(key):
        raise InputError(f"the calibrated recognizer saw no labels for {key}; it scores only "
                         f"{', '.join(rec.values)} (label some {key} samples and calibrate again)")
    concepts, fails = texts_concepts(rec, [text], [key], judge)
    out = {**rec.predict([text], [key], concepts)[0], "value": key, "recognizer": rec.meta.get("id"),
           "recognizer_name": rec.meta.get("name") or "",
           "trained_on_value": True, "held_out": (rec.meta.get("held_out") or {}).get(key),
           "calibrated_probabilities": key in rec.temperature}
    if concepts is not None:
        out["concepts"] = concepts[0]
        out["concept_failures"] = fails.as_dict()
    return out
