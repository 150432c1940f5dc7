"""CLAVE (issue 5): label samples by hand, extract value concepts, calibrate a small recognizer.

CLAVE (Yao et al., 2024, "CLAVE: An Adaptive Framework for Evaluating Values of
LLM Generated Responses") pairs a large model, which reads a few human-labelled
samples and writes high-level *value concepts*, with a small model calibrated on
the human labels and those concepts; the paper reports that fewer than 100
labels per value suffice. No code or data were released; this module is our own
reading of the method:

* labels are three-way (ValueNet's convention): 1 adheres, -1 opposes, 0 unrelated;
* the large (judge) model writes concepts for a value ("adhering looks like ...",
  "opposing looks like ...") from the labelled samples;
* the small recognizer is a logistic-regression head over sentence embeddings
  (bundled MiniLM by default): the text embedding, its product with the value
  definition's embedding, the value, and the text's similarities to the value's
  adhering / opposing concept embeddings. It trains in seconds on a CPU;
* evaluation uses held-out human labels (k-fold by default) beside uncalibrated
  baselines on the same split: embedding similarity to label descriptions, the
  judge prompted zero-shot, and the majority class.

No gradio here: the tab (``valdemo/ui/clave.py``) and the CLI (``valdemo/cli/clave.py``)
are thin front ends over these functions.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import store as st
from .inputs import InputError, check_int, check_text, parse_label, read_records, value_from_filename
from .models import ChatModel, GenParams, unwrap, user
from .parsing import Parsed, ParseStats, fence, parse_choice, parse_json_object
from .values import SCHWARTZ, SCHWARTZ_KEYS, Value, get_value

log = logging.getLogger(__name__)

#: label -> name; the order is the order of probability columns everywhere.
LABELS: tuple[int, ...] = (1, -1, 0)
LABEL_NAMES: dict[int, str] = {1: "adheres", -1: "opposes", 0: "unrelated"}
GOLD = "gold"
DEFAULT_TARGET = 50
BUNDLED_SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "clave" / "samples.csv"
METHODS = ("recognizer", "llm_concepts", "embed_zero_shot", "llm_zero_shot", "majority")
METHOD_TITLES = {
    "recognizer": "calibrated recognizer",
    "embed_zero_shot": "embedding similarity (zero-shot)",
    "llm_concepts": "judge prompted with the concepts",
    "llm_zero_shot": "judge model prompted (zero-shot)",
    "majority": "majority class",
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


def check_value(name: object, where: str = "value") -> Value:
    """A known value (Schwartz or moral foundation), as an InputError when unknown."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: value is missing")
    try:
        return get_value(name)
    except KeyError:
        raise InputError(f"{where}: unknown value {name!r} (known: {', '.join(SCHWARTZ_KEYS)})") from None


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
    rows = read_records(p, required=("text", "value"), optional=("label", "annotator", "note", "created"))
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
        _seeded.add(store.path)


# ---------------------------------------------------------------------------------
# labelling
# ---------------------------------------------------------------------------------


def value_card(value_key: str) -> dict:
    v = get_value(value_key)
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


def submit_label(store: st.Store, annotator: str, sample_id: int, label: object, note: str = "") -> dict:
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
    seq = st.clave_add_label(store, sid, annotator, value, note)
    return {"ok": True, "seq": seq, "sample_id": sid, "annotator": annotator,
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
# export, import, hub sync
# ---------------------------------------------------------------------------------

EXPORT_FIELDS = ("text", "value", "label", "annotator", "note", "created")


def export_rows(store: st.Store, annotator: str | None = None) -> list[dict]:
    return [{"text": r["text"], "value": r["value"], "label": r["label"], "annotator": r["annotator"],
             "note": r["note"], "created": r["created"]} for r in st.clave_current_labels(store, annotator)]


def write_rows(rows: Sequence[dict], out: str | Path, fmt: str) -> Path:
    import csv

    fmt = fmt.lower().strip()
    if fmt not in {"jsonl", "csv"}:
        raise InputError(f"format must be jsonl or csv, got {fmt!r}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(f, fieldnames=list(EXPORT_FIELDS))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in EXPORT_FIELDS})
    os.replace(tmp, path)
    return path


def export_labels(store: st.Store, fmt: str, out: str | Path, annotator: str | None = None) -> dict:
    rows = export_rows(store, annotator)
    if not rows:
        raise InputError("there are no labels to export yet")
    path = write_rows(rows, out, fmt)
    return {"path": str(path), "labels": len(rows), "format": fmt.lower().strip()}


HUB_SUBDIR = "clave"


def hub_token(oauth_token: str | None = None) -> str | None:
    """The signed-in user's OAuth token, else ``HF_TOKEN``, else None (never logged)."""
    return (oauth_token or "").strip() or os.environ.get("HF_TOKEN", "").strip() or None


def is_local_target(target: str) -> bool:
    return target.startswith(("/", "./", "../", "~", "file://")) or os.path.isdir(target)


def _local_dir(target: str) -> Path:
    return Path(target[len("file://"):] if target.startswith("file://") else target).expanduser()


_schedulers: dict[str, object] = {}
_schedulers_lock = threading.Lock()


def _scheduler(store: st.Store, repo_id: str, token: str):
    from huggingface_hub import CommitScheduler

    with _schedulers_lock:
        if repo_id not in _schedulers:
            folder = Path(store.path).parent / "clave_hub_outbox" / re.sub(r"[^A-Za-z0-9_.-]", "_", repo_id)
            folder.mkdir(parents=True, exist_ok=True)
            _schedulers[repo_id] = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                                                   path_in_repo=HUB_SUBDIR, every=10, token=token,
                                                   allow_patterns=["*.jsonl"], private=True)
        return _schedulers[repo_id]


def push_labels(store: st.Store, target: str, token: str | None = None) -> dict:
    """Append this store's current labels as a new JSONL file to ``target``.

    ``target`` is a Hugging Face dataset repo id (synced with ``CommitScheduler``; needs a
    token) or a local folder (a shared drive, or a test). Files are only ever added, so
    several people pushing to one target never overwrite each other.
    """
    target = check_text(target, "hub dataset repo", max_chars=300)
    rows = export_rows(store)
    if not rows:
        raise InputError("there are no labels to push yet")
    name = f"labels-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
    if is_local_target(target):
        path = write_rows(rows, _local_dir(target) / HUB_SUBDIR / name, "jsonl")
        return {"pushed": len(rows), "target": str(_local_dir(target)), "file": str(path)}
    token = hub_token(token)
    if not token:
        raise InputError("no Hugging Face token: set HF_TOKEN or sign in with Hugging Face; "
                         "local labels are unaffected (export them instead)")
    try:
        scheduler = _scheduler(store, target, token)
        with scheduler.lock:
            write_rows(rows, Path(scheduler.folder_path) / name, "jsonl")
        scheduler.trigger().result(timeout=120)
    except InputError:
        raise
    except Exception as exc:  # network, auth, repo errors: say so, keep local work
        raise InputError(f"could not push to the Hugging Face dataset {target!r} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); local labels are unaffected") from None
    return {"pushed": len(rows), "target": target, "file": f"{HUB_SUBDIR}/{name}"}


def pull_labels(store: st.Store, target: str, token: str | None = None) -> dict:
    """Import every label file under ``target`` (repo id or folder); already-present rows are skipped."""
    target = check_text(target, "hub dataset repo", max_chars=300)
    if is_local_target(target):
        folder = _local_dir(target) / HUB_SUBDIR
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_id=target, repo_type="dataset", token=hub_token(token),
                                            allow_patterns=[f"{HUB_SUBDIR}/*.jsonl"])) / HUB_SUBDIR
        except Exception as exc:
            raise InputError(f"could not pull from the Hugging Face dataset {target!r} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); local labels are unaffected") from None
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise InputError(f"no label files found under {target!r}")
    added, samples = 0, 0
    for f in files:
        result = import_samples(store, read_samples(f), f"hub:{target}")
        added += result["labels_added"]
        samples += result["samples"]
    return {"files": len(files), "rows": samples, "labels_added": added, "target": target}


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
# concepts
# ---------------------------------------------------------------------------------

CONCEPT_SYSTEM = ("You write annotation guidelines. You read labelled examples and summarise, in short "
                  "phrases, what the examples in each group have in common.")


def concept_prompt(value: Value, samples: Sequence[Sample], per_label: int = 8) -> str:
    groups = {1: [], -1: []}
    for s in samples:
        if s.label in groups and len(groups[s.label]) < per_label:
            groups[s.label].append(s.text)
    if not groups[1] and not groups[-1]:
        raise InputError(f"no samples labelled 'adheres' or 'opposes' for {value.name} yet: label some first")
    parts = [f"Value: {value.name}. Definition: {value.definition}", ""]
    for label, texts in groups.items():
        body = "\n".join(f"- {t}" for t in texts) or "(none)"
        parts += [f"Texts a person labelled as {LABEL_NAMES[label].upper()} this value:",
                  fence(body, LABEL_NAMES[label].upper()), ""]
    parts.append('Write 2 to 5 short concepts for each group. Answer only with JSON: '
                 '{"adheres": ["...", "..."], "opposes": ["...", "..."]}')
    return "\n".join(parts)


def parse_concepts(text: str | None) -> Parsed:
    """Concepts from a model answer: a JSON object, or ``adheres: ...`` / ``opposes: ...`` lines."""
    parsed = parse_json_object(text)
    if parsed.ok:
        obj = {str(k).strip().lower(): v for k, v in parsed.value.items()}
        out = {}
        for kind in ("adheres", "opposes"):
            items = obj.get(kind, [])
            if isinstance(items, str):
                items = [items]
            out[kind] = [str(i).strip() for i in items if isinstance(i, (str, int, float)) and str(i).strip()]
        if out["adheres"] or out["opposes"]:
            return Parsed(out, True)
    try:
        lines = text_to_concepts(text or "")
    except InputError:
        return Parsed.fail("no concepts")
    return Parsed(lines, True) if lines["adheres"] or lines["opposes"] else Parsed.fail("no concepts")


def text_to_concepts(text: str) -> dict[str, list[str]]:
    """The editable form: one concept per line, ``adheres: ...`` or ``opposes: ...``."""
    out: dict[str, list[str]] = {"adheres": [], "opposes": []}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip().lstrip("-*• ").strip()
        if not line:
            continue
        m = re.match(r"^(adheres?|adhering|opposes?|opposing)\s*[:\-]\s*(.+)$", line, re.I)
        if not m:
            raise InputError(f"concepts line {n}: start it with 'adheres:' or 'opposes:' ({line[:60]!r})")
        kind = "adheres" if m.group(1).lower().startswith("adher") else "opposes"
        out[kind].append(m.group(2).strip())
    return out


def concepts_to_text(concepts: dict) -> str:
    return "\n".join(f"{kind}: {c}" for kind in ("adheres", "opposes") for c in concepts.get(kind, []))


@dataclass
class ConceptResult:
    value: str
    concepts: dict
    ok: bool
    raw: str
    model: str
    reason: str = ""

    def as_dict(self) -> dict:
        return {"value": self.value, "concepts": self.concepts, "ok": self.ok, "raw": self.raw,
                "model": self.model, "reason": self.reason}


def extract_concepts(model: ChatModel, value: str, samples: Sequence[Sample], per_label: int = 8,
                     max_new_tokens: int = 200) -> ConceptResult:
    """The judge reads the labelled samples of ``value`` and writes concepts (parse failures reported)."""
    v = check_value(value)
    mine = [s for s in samples if s.value == v.key]
    prompt = concept_prompt(v, mine, per_label)
    reply = model.chat(user(prompt, CONCEPT_SYSTEM), GenParams(max_new_tokens=max_new_tokens))
    parsed = parse_concepts(reply.text)
    return ConceptResult(v.key, parsed.value if parsed.ok else {"adheres": [], "opposes": []}, parsed.ok,
                         reply.text, unwrap(model).spec, parsed.reason)


def save_concepts(store: st.Store, value: str, concepts: dict, model: str) -> dict:
    key = check_value(value).key
    clean = {k: [c.strip() for c in concepts.get(k, []) if c and c.strip()] for k in ("adheres", "opposes")}
    if not clean["adheres"] and not clean["opposes"]:
        raise InputError("no concepts to save")
    st.clave_save_concepts(store, key, clean, model)
    return {"value": key, "concepts": clean, "model": model}


def stored_concepts(store: st.Store) -> dict[str, dict]:
    return {k: v["concepts"] for k, v in st.clave_latest_concepts(store).items()}


def read_concepts(path: str | Path) -> dict[str, dict]:
    """Concepts from a CSV/JSONL file with columns ``value,kind,concept`` (kind adheres|opposes)."""
    p = Path(path)
    rows = read_records(p, required=("value", "kind", "concept"))
    offset = 1 if p.suffix.lower() in {".jsonl", ".json", ".ndjson"} else 2
    out: dict[str, dict] = {}
    for n, r in enumerate(rows, start=offset):
        where = f"{p.name} row {n}"
        key = check_value(r["value"], where).key
        kind = r["kind"].lower()
        if kind not in {"adheres", "opposes"}:
            raise InputError(f"{where}: kind must be adheres or opposes, got {r['kind']!r}")
        out.setdefault(key, {"adheres": [], "opposes": []})[kind].append(r["concept"])
    return out


# ---------------------------------------------------------------------------------
# the small recognizer
# ---------------------------------------------------------------------------------


def _definition_text(v: Value) -> str:
    ex = f" For example: {', '.join(v.examples)}." if v.examples else ""
    return f"{v.name}: {v.definition}{ex}"


_EMB_CACHE_MAX = 50_000  # texts per encoder kept in memory (about 75 MB at 384 dims)
_emb_caches: dict[str, dict[str, np.ndarray]] = {}
_emb_lock = threading.Lock()


class _Embeddings:
    """Embeds texts through the shared encoder; a text is encoded once per process
    (calibrating again, or predicting on labelled texts, re-uses the vectors)."""

    def __init__(self, encoder_spec: str = ""):
        from .embed import get_encoder

        self.encoder = get_encoder(encoder_spec)
        with _emb_lock:
            self._cache = _emb_caches.setdefault(encoder_spec, {})

    def __call__(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        with _emb_lock:
            known = {t: self._cache[t] for t in set(texts) if t in self._cache}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            fresh = dict(zip(todo, self.encoder.encode(todo, progress=progress), strict=True))
            known.update(fresh)
            with _emb_lock:
                if len(self._cache) + len(fresh) > _EMB_CACHE_MAX:
                    self._cache.clear()
                self._cache.update(fresh)
        return np.stack([known[t] for t in texts])


N_SIM = 7  # similarity features per row


def _features(text_emb: np.ndarray, values: Sequence[str], concepts: dict[str, dict], emb: _Embeddings) -> np.ndarray:
    """[text, text * definition, value one-hot, similarities to definition and concepts]."""
    n, dim = text_emb.shape
    keys = sorted(set(values))
    emb([_definition_text(get_value(k)) for k in keys]  # one encoder call for all of them
        + [c for k in keys for kind in ("adheres", "opposes") for c in concepts.get(k, {}).get(kind, [])])
    defs = {k: emb([_definition_text(get_value(k))])[0] for k in keys}
    concept_embs = {}
    for k in set(values):
        c = concepts.get(k, {})
        concept_embs[k] = (emb(c.get("adheres", [])) if c.get("adheres") else None,
                           emb(c.get("opposes", [])) if c.get("opposes") else None)
    out = np.zeros((n, dim * 2 + len(SCHWARTZ_KEYS) + N_SIM), dtype=np.float32)
    for i, (e, k) in enumerate(zip(text_emb, values, strict=True)):
        d = defs[k]
        out[i, :dim] = e
        out[i, dim:2 * dim] = e * d * np.sqrt(dim)
        if k in SCHWARTZ_KEYS:
            out[i, 2 * dim + SCHWARTZ_KEYS.index(k)] = 1.0
        a, o = concept_embs[k]
        sims = [float(e @ d)]
        sa = a @ e if a is not None else None
        so = o @ e if o is not None else None
        sims += [float(sa.max()), float(sa.mean())] if sa is not None else [0.0, 0.0]
        sims += [float(so.max()), float(so.mean())] if so is not None else [0.0, 0.0]
        sims += [sims[1] - sims[3], 1.0 if (a is not None or o is not None) else 0.0]
        out[i, 2 * dim + len(SCHWARTZ_KEYS):] = sims
    return out


@dataclass
class Recognizer:
    """A 3-way head over embedding features; numpy-only at prediction time (no pickle)."""

    coef: np.ndarray  # (3, d)
    intercept: np.ndarray  # (3,)
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    concepts: dict[str, dict]
    encoder_spec: str = ""
    meta: dict = field(default_factory=dict)
    _emb: _Embeddings | None = field(default=None, repr=False)

    def _embeddings(self) -> _Embeddings:
        if self._emb is None:
            self._emb = _Embeddings(self.encoder_spec)
        return self._emb

    def proba_from_emb(self, text_emb: np.ndarray, values: Sequence[str]) -> np.ndarray:
        x = (_features(text_emb, values, self.concepts, self._embeddings()) - self.mean) / self.scale
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str], values: Sequence[str]) -> np.ndarray:
        """(n, 3) probabilities in :data:`LABELS` order (adheres, opposes, unrelated)."""
        if len(texts) != len(values):
            raise InputError(f"{len(texts)} texts but {len(values)} values")
        keys = [check_value(v).key for v in values]
        texts = [check_text(t) for t in texts]
        return self.proba_from_emb(self._embeddings()(texts), keys)

    def predict(self, texts: Sequence[str], values: Sequence[str]) -> list[dict]:
        """``[{"label": 1|-1|0, "label_name": ..., "probs": {"adheres": p, ...}}]`` per text."""
        return [_as_prediction(p) for p in self.predict_proba(texts, values)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "concepts": self.concepts, "encoder_spec": self.encoder_spec}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, coef=self.coef, intercept=self.intercept, mean=self.mean, scale=self.scale,
                 meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["coef"], z["intercept"], z["mean"], z["scale"], meta.pop("concepts"),
                       meta.pop("encoder_spec"), meta)


def _as_prediction(p: np.ndarray) -> dict:
    best = LABELS[int(np.argmax(p))]
    return {"label": best, "label_name": LABEL_NAMES[best],
            "probs": {LABEL_NAMES[lab]: round(float(q), 4) for lab, q in zip(LABELS, p, strict=True)}}


def _fit(x: np.ndarray, y: Sequence[int], c: float = 1.0) -> tuple[np.ndarray, ...]:
    """Standardise, then multinomial logistic regression; returns (coef, intercept, mean, scale)
    with rows in :data:`LABELS` order (classes absent from ``y`` get a very low score)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale
    coef = np.zeros((len(LABELS), x.shape[1]), dtype=np.float64)
    intercept = np.full(len(LABELS), -30.0)
    present = sorted(set(y))
    if len(present) == 1:
        intercept[LABELS.index(present[0])] = 0.0
        return coef, intercept, mean, scale
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    clf.fit(xs, list(y))
    cls = [int(k) for k in clf.classes_]
    if len(cls) == 2:  # binary: sklearn keeps one row for the positive class
        coef[LABELS.index(cls[1])] = clf.coef_[0]
        intercept[LABELS.index(cls[1])] = clf.intercept_[0]
        intercept[LABELS.index(cls[0])] = 0.0
    else:
        for row, k in enumerate(cls):
            coef[LABELS.index(k)] = clf.coef_[row]
            intercept[LABELS.index(k)] = clf.intercept_[row]
    return coef, intercept, mean, scale


def train_recognizer(samples: Sequence[Sample], concepts: dict[str, dict] | None = None,
                     encoder_spec: str = "", c: float = 1.0, _emb: _Embeddings | None = None,
                     _text_emb: np.ndarray | None = None) -> Recognizer:
    """Calibrate the recognizer on labelled samples (and the values' concepts, if any)."""
    labelled = [s for s in samples if s.label is not None]
    if len(labelled) < 2:
        raise InputError(f"need at least 2 labelled samples to calibrate, got {len(labelled)}")
    concepts = concepts or {}
    emb = _emb or _Embeddings(encoder_spec)
    text_emb = _text_emb if _text_emb is not None else emb([s.text for s in labelled])
    values = [s.value for s in labelled]
    x = _features(text_emb, values, concepts, emb)
    coef, intercept, mean, scale = _fit(x, [s.label for s in labelled], c)
    return Recognizer(coef, intercept, mean, scale, {k: concepts[k] for k in set(values) if k in concepts},
                      encoder_spec, {"n_train": len(labelled), "values": sorted(set(values)),
                                     "label_counts": {LABEL_NAMES[k]: v for k, v in
                                                      Counter(s.label for s in labelled).items()}}, emb)


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


# ---------------------------------------------------------------------------------
# persisted recognizers
# ---------------------------------------------------------------------------------


def recognizer_dir(store: st.Store) -> Path:
    return Path(store.path).parent / "clave_recognizers"


def save_recognizer(store: st.Store, rec: Recognizer, report: dict | None = None) -> str:
    rec_id = f"clave-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path = rec.save(recognizer_dir(store) / f"{rec_id}.npz")
    summary = {"n_train": rec.meta.get("n_train"), "values": rec.meta.get("values"),
               "protocol": (report or {}).get("protocol"),
               "overall": (report or {}).get("overall", {}).get("recognizer")}
    st.clave_save_recognizer(store, rec_id, str(path), summary)
    rec.meta["id"] = rec_id
    return rec_id


_loaded: dict[str, Recognizer] = {}


def latest_recognizer(store: st.Store | None = None) -> Recognizer | None:
    """The most recently calibrated recognizer (``.predict(texts, values)``), or None."""
    store = store or st.get_store()
    row = st.clave_latest_recognizer_row(store)
    if row is None:
        return None
    if row["id"] not in _loaded:
        try:
            rec = Recognizer.load(row["path"])
        except (OSError, KeyError, ValueError) as exc:
            log.warning("calibrated recognizer %s cannot be read (%s)", row["id"], exc)
            return None
        rec.meta["id"] = row["id"]
        _loaded[row["id"]] = rec
    return _loaded[row["id"]]


def predict_text(store: st.Store, text: str, value: str) -> dict:
    text = check_text(text, "text")
    key = check_value(value).key
    rec = latest_recognizer(store)
    if rec is None:
        raise InputError("no calibrated recognizer yet: calibrate first")
    return {**rec.predict([text], [key])[0], "value": key, "recognizer": rec.meta.get("id"),
            "trained_on_value": key in rec.meta.get("values", [])}


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


__all__ = [
    "DEFAULT_TARGET", "GOLD", "LABELS", "LABEL_NAMES", "METHODS", "Recognizer", "Sample", "SCHWARTZ",
    "agreement", "bundled_samples", "calibrate", "calibrate_store", "export_labels", "extract_concepts",
    "import_file", "latest_recognizer", "next_sample", "predict_text", "progress", "pull_labels",
    "push_labels", "read_samples", "submit_label", "train_recognizer", "undo_last",
]
