"""CLAVE inputs: labels and their names, input checks, samples (bundled set, uploads, imports)."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import store as st
from ..inputs import InputError, check_text, parse_label, read_records, value_from_filename
from ..values import SCHWARTZ_KEYS, Value, get_value, normalise_value_key

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)

#: label -> name; the order is the order of probability columns everywhere.
LABELS: tuple[int, ...] = (1, -1, 0)
LABEL_NAMES: dict[int, str] = {1: "adheres", -1: "opposes", 0: "unrelated"}
GOLD = "gold"
DEFAULT_TARGET = 50
BUNDLED_SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "clave" / "samples.csv"
METHODS = ("recognizer", "no_concepts", "llm_concepts", "embed_zero_shot", "llm_zero_shot", "majority")
METHOD_TITLES = {
    "recognizer": "calibrated recognizer",
    "no_concepts": "calibrated recognizer without concepts (ablation)",
    "embed_zero_shot": "embedding similarity (zero-shot)",
    "llm_concepts": "judge prompted with value concepts (written per fold)",
    "llm_zero_shot": "judge prompted (zero-shot)",
    "majority": "majority class of the value (per fold)",
}
ProgressFn = Callable[[int, int], None]

# ---------------------------------------------------------------------------------
# checking input
# ---------------------------------------------------------------------------------


def check_annotator(name: object) -> str:
    """An annotator name: 1-64 printable characters."""
    text = check_text(name if isinstance(name, str) else None, "annotator name", max_chars=64)
    if any(ord(c) < 32 for c in text):
        raise InputError("annotator name contains control characters")
    return text


#: values from imported files (ValEval-style rows for any value system), by key
_custom_values: dict[str, Value] = {}
CUSTOM_VALUES_FILE = "clave_values.json"


def value_info(name: str) -> Value:
    """A built-in value (Schwartz, moral foundations) or one an imported file defined; KeyError."""
    try:
        return get_value(name)
    except KeyError:
        key = normalise_value_key(name)
        if key in _custom_values:
            return _custom_values[key]
        raise


def register_value(name: str, definition: str, where: str = "value") -> Value:
    """Define a value by name and definition (any value system); a built-in value keeps its own."""
    try:
        return get_value(name)
    except KeyError:
        pass
    key = normalise_value_key(name)
    if not key or len(key) > 64:
        raise InputError(f"{where}: value name must be 1-64 characters")
    definition = check_text(definition, f"{where} definition", max_chars=1000)
    known = _custom_values.get(key)
    if known is None or known.definition != definition:
        _custom_values[key] = Value(key, name.strip(), definition)
    return _custom_values[key]


def custom_values() -> dict[str, dict]:
    return {k: {"name": v.name, "definition": v.definition} for k, v in sorted(_custom_values.items())}


def load_custom_values(defs: dict) -> None:
    for key, d in (defs or {}).items():
        register_value(d.get("name") or key, d["definition"], f"saved value {key}")


def check_value(name: object, where: str = "value") -> Value:
    """A known value (built in, or defined by an imported file), as an InputError when unknown."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: value is missing")
    try:
        return value_info(name)
    except KeyError:
        raise InputError(f"{where}: unknown value {name!r} (known: {', '.join(SCHWARTZ_KEYS)}, or give its "
                         f"definition in a 'definition' column)") from None


def check_label(raw: object, where: str = "label") -> int:
    """1 / -1 / 0, or the words adheres / opposes / unrelated."""
    if isinstance(raw, bool) or raw is None:
        raise InputError(f"{where}: label is missing")
    if isinstance(raw, (int, float)):
        raw = str(int(raw)) if float(raw) == int(raw) else str(raw)
    return parse_label(str(raw), where)


# ---------------------------------------------------------------------------------
# samples: the bundled set and uploads
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    text: str
    value: str
    label: int | None = None
    annotator: str | None = None
    note: str = ""
    created: float | None = None


def read_samples(path: str | Path) -> list[Sample]:
    """Samples from a CSV/JSONL upload (``text,value[,label,annotator,note,created]``) or a
    ValueNet/ValueDCG per-value CSV (``input,label``; the value comes from the file name).

    Bad rows raise :class:`InputError` naming the file and row.
    """
    p = Path(path)
    peek = read_records(p, required=(), allow_extra=True)
    if "input" in peek[0] and "text" not in peek[0]:
        value_name = value_from_filename(p)
        if not value_name:
            raise InputError(f"{p.name}: an input,label file must be named like 'valuenet_<VALUE>.csv'")
        value = check_value(value_name, f"{p.name} (file name)").key
        rows = read_records(p, required=("input", "label"))
        offset = 2
        return [Sample(check_text(r["input"], f"{p.name} row {n} input"), value,
                       parse_label(r["label"], f"{p.name} row {n}"))
                for n, r in enumerate(rows, start=offset)]
    rows = read_records(p, required=("text", "value"),
                        optional=("label", "annotator", "note", "created", "verified", "definition", "system"))
    offset = 1 if p.suffix.lower() in {".jsonl", ".json", ".ndjson"} else 2
    out = []
    for n, r in enumerate(rows, start=offset):
        where = f"{p.name} row {n}"
        label = parse_label(r["label"], where) if r.get("label", "") != "" else None
        created = None
        if r.get("created"):
            try:
                created = float(r["created"])
            except ValueError:
                raise InputError(f"{where}: created {r['created']!r} is not a number (seconds since 1970)") from None
        annotator = check_annotator(r["annotator"]) if r.get("annotator") else None
        if r.get("definition", "").strip():  # ValEval-style rows: any value, defined in the file
            register_value(r["value"], r["definition"], where)
        out.append(Sample(check_text(r["text"], f"{where} text"), check_value(r["value"], where).key, label,
                          annotator, r.get("note", ""), created))
    return out


def import_samples(store: st.Store, samples: Sequence[Sample], source: str,
                   annotator: str = GOLD) -> dict:
    """Add samples to the pool and their labels (if any) under ``annotator`` (or the row's own).

    Label rows already present (same sample, annotator, label and time) are not added
    again, so pulling the same file twice changes nothing.
    """
    annotator = check_annotator(annotator)
    ids = st.clave_add_samples(store, [(s.value, s.text) for s in samples], source)
    existing = {(r["sample_id"], r["annotator"], r["label"], round(r["created"], 3))
                for r in store.query("SELECT sample_id, annotator, label, created FROM clave_labels")}
    now = time.time()
    rows = []
    for sid, s in zip(ids, samples, strict=True):
        if s.label is None:
            continue
        who = s.annotator or annotator
        created = s.created if s.created is not None else now
        key = (sid, who, s.label, round(created, 3))
        if key in existing:
            continue
        existing.add(key)
        rows.append((sid, who, s.label, s.note, created))
    st.clave_add_labels(store, rows)
    if _custom_values:  # the definitions of imported values outlive the process
        path = Path(store.path).parent / CUSTOM_VALUES_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(custom_values(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    return {"samples": len(samples), "distinct_samples": len(set(ids)), "labels_added": len(rows),
            "annotators": sorted({r[1] for r in rows}), "source": source}


def import_file(store: st.Store, path: str | Path, annotator: str = GOLD) -> dict:
    p = Path(path)
    return import_samples(store, read_samples(p), f"upload:{p.name}", annotator)


def bundled_samples() -> list[Sample]:
    """The project's own calibration samples (with the author's intended label)."""
    return read_samples(BUNDLED_SAMPLES)


_seeded: set[Path] = set()
_seed_lock = threading.Lock()


def ensure_bundled(store: st.Store) -> None:
    """Put the bundled samples (texts only, not their labels) into the pool, once per store."""
    with _seed_lock:
        if store.path in _seeded:
            return
        if not store.query("SELECT 1 FROM clave_samples WHERE source = 'bundled' LIMIT 1"):
            mixed = bundled_samples()  # the file is grouped by value and label; present it mixed
            random.Random(0).shuffle(mixed)
            st.clave_add_samples(store, [(s.value, s.text) for s in mixed], "bundled")
        defs = Path(store.path).parent / CUSTOM_VALUES_FILE
        if defs.is_file():
            load_custom_values(json.loads(defs.read_text(encoding="utf-8")))
        _seeded.add(store.path)
