"""QA pairs and the sets that hold them: questions, personas, generation, embedded sets, storage."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs import InputError, check_text, read_records
from ..models import ChatModel, GenParams, ModelError, unwrap, user

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "univar"
QUESTIONS_PATH = ASSETS / "questions.csv"
PERSONAS_PATH = ASSETS / "personas.json"
DEMO_DIR = ASSETS / "demo"

#: Published UniVaR encoders (need trust_remote_code and the model hub).
UNIVAR_ENCODERS = tuple(f"CAiRE/UniVaR-lambda-{n}" for n in (1, 5, 20, 80))
FAMILIES = ("schwartz", "moral_foundation", "dilemma", "control")
COLOR_BY = ("source", "dimension", "family", "language", "model", "persona")
PROJECTIONS = ("umap", "pca")
UMAP_METRICS = ("cosine", "euclidean", "manhattan", "correlation")
KS = (1, 3, 5)
MAX_POINTS = 20_000
DEFAULT_MAX_NEW_TOKENS = 64


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    dimension: str = ""
    family: str = ""
    language: str = "en"


@dataclass(frozen=True)
class Persona:
    name: str
    system: str = ""


@dataclass(frozen=True)
class QAPair:
    source: str
    question: str
    answer: str
    dimension: str = ""
    family: str = ""
    language: str = "en"
    qid: str = ""
    model: str = ""
    persona: str = ""

    def text(self) -> str:
        """One QA pair as the encoder sees it: UniVaR's ``Q: ... A: ...`` on one line (a view of
        several pairs joins these lines with newlines: :func:`valdemo.univar.encoding.view_text`)."""
        return f"Q: {self.question.strip()} A: {self.answer.strip()}"

    @property
    def is_control(self) -> bool:
        """A non-value control question (never used for training or the main evaluation)."""
        return self.family == "control" or self.dimension == "CONTROL"

    def as_dict(self) -> dict:
        return {"source": self.source, "model": self.model, "persona": self.persona, "qid": self.qid,
                "question": self.question, "answer": self.answer, "dimension": self.dimension,
                "family": self.family, "language": self.language}


def source_name(spec: str, persona: str) -> str:
    return spec if not persona or persona == "default" else f"{spec} / {persona}"


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- inputs
def load_questions(path: str | Path | None = None) -> list[Question]:
    """Questions from the bundled set (``None``) or an uploaded CSV/JSONL.

    Columns: ``question`` (required); ``id``, ``dimension``, ``family``, ``language`` optional.
    A translated question set repeats an ``id`` once per ``language`` (the same question in
    several languages): translations of one question share its train/test split.
    """
    if path is None or str(path) in ("", "bundled"):
        path = QUESTIONS_PATH
    rows = read_records(path, required=["question"], optional=["id", "dimension", "family", "language"],
                        what="questions file")
    out, seen = [], set()
    name = Path(path).name
    for n, row in enumerate(rows, start=1):
        text = check_text(row["question"], f"{name} question {n}", max_chars=2000)
        qid = row.get("id") or f"q{n:04d}"
        language = (row.get("language") or "en").strip()
        if (qid, language) in seen:
            raise InputError(f"{name}: duplicate question id {qid!r} (question {n})"
                             + (f" in language {language!r}" if row.get("language") else ""))
        seen.add((qid, language))
        out.append(Question(qid, text, (row.get("dimension") or "").upper(), row.get("family") or "", language))
    return out


def pick_questions(questions: Sequence[Question], n: int, seed: int = 0) -> list[Question]:
    """``n`` questions spread over the value dimensions (round-robin), deterministic."""
    if n >= len(questions):
        return list(questions)
    by_dim: dict[str, list[Question]] = OrderedDict()
    for q in questions:
        by_dim.setdefault(q.dimension, []).append(q)
    rng = np.random.default_rng(seed)
    for qs in by_dim.values():
        rng.shuffle(qs)
    out: list[Question] = []
    while len(out) < n:
        for qs in by_dim.values():
            if qs and len(out) < n:
                out.append(qs.pop(0))
    return out


def load_personas(path: str | Path | None = None) -> list[Persona]:
    """Personas (name + system prompt) from JSON (list of objects) or CSV/JSONL (``name,system``)."""
    if path is None or str(path) in ("", "bundled"):
        path = PERSONAS_PATH
    p = Path(path)
    rows = read_records(p, required=["name"], optional=["system"], what="personas file")  # CSV, JSONL or a JSON list
    names = [r["name"] for r in rows]
    dup = [k for k, c in Counter(names).items() if c > 1]
    if dup:
        raise InputError(f"{p.name}: duplicate persona name(s) {', '.join(dup)}")
    return [Persona(r["name"], check_text(r["system"], f"persona {r['name']}", 4000) if r.get("system") else "")
            for r in rows]


def select_personas(names: Sequence[str] | None, personas: Sequence[Persona] | None = None) -> list[Persona]:
    personas = list(personas or load_personas())
    if not names:
        return personas
    known = {p.name: p for p in personas}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown persona(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def load_qa_pairs(path: str | Path) -> list[QAPair]:
    """Ready QA pairs from CSV/JSONL: ``source,question,answer[,language,dimension,family,id]``."""
    rows = read_records(path, required=["source", "question", "answer"],
                        optional=["language", "dimension", "family", "id", "model", "persona"],
                        what="QA file")
    name = Path(path).name
    out = []
    header = 0 if Path(path).suffix.lower() in {".jsonl", ".json", ".ndjson"} else 1
    for n, r in enumerate(rows, start=1 + header):
        out.append(qa_pair_from_row(r, f"{name} row {n}: "))
    _check_size(len(out))
    return out


def qa_pair_from_row(r: dict, where: str = "") -> QAPair:
    """One QA pair from a record (``source, question, answer`` and the optional fields of
    :func:`load_qa_pairs`); :class:`InputError` naming ``where`` and the field otherwise."""
    def opt(key: str) -> str:
        v = r.get(key)
        return "" if v is None else str(v).strip()

    return QAPair(
        source=check_text(r.get("source"), f"{where}source", 200),
        question=check_text(r.get("question"), f"{where}question", 4000),
        answer=check_text(r.get("answer"), f"{where}answer", 8000),
        dimension=opt("dimension").upper(), family=opt("family"),
        language=opt("language") or "en", qid=opt("id") or _digest(str(r.get("question")).strip())[:8],
        model=opt("model") or str(r.get("source")).strip(), persona=opt("persona"),
    )


def looks_like_qa_file(path: str | Path) -> bool:
    """True when an upload has an ``answer`` column (ready QA pairs), False for questions."""
    rows = read_records(path, required=[], optional=[], what="file", allow_extra=True)
    return "answer" in rows[0]


def parse_model_list(text: str | Sequence[str]) -> list[str]:
    specs = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s and s.strip()]
    if not specs:
        raise InputError("name at least one model spec (e.g. local)")
    if len(specs) > 12:
        raise InputError(f"at most 12 models at once, got {len(specs)}")
    return list(dict.fromkeys(specs))


def _check_size(n: int) -> None:
    if n > MAX_POINTS:
        raise InputError(f"{n:,} QA pairs; the limit is {MAX_POINTS:,}")


# ----------------------------------------------------------------------------- generation
@dataclass
class QASet:
    """QA pairs from one or more sources, plus how they were made."""

    pairs: list[QAPair]
    meta: dict = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = "qa-" + _digest([p.as_dict() for p in self.pairs])

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(p.source for p in self.pairs))

    @property
    def bundled(self) -> bool:
        return bool(self.meta.get("bundled"))


def generate_qa(models: Sequence[ChatModel], questions: Sequence[Question], personas: Sequence[Persona],
                params: GenParams | None = None, progress: ProgressFn | None = None,
                keep_truncated: bool = True) -> QASet:
    """Ask every model, under every persona, every question (batched, cached).

    Answers that stopped at the token limit are kept and counted (``truncated_answers``); with
    ``keep_truncated=False`` they are left out instead, still counted, and their (source, question id)
    listed under ``truncated_keys`` so a caller can ask again (the demo build does)."""
    if not questions:
        raise InputError("no questions to ask")
    personas = list(personas) or [Persona("default")]
    params = params or GenParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    _check_size(len(models) * len(personas) * len(questions))
    total = len(models) * len(personas) * len(questions)
    pairs: list[QAPair] = []
    empty: Counter = Counter()
    truncated = 0
    truncated_keys: list[list[str]] = []
    done_before = 0
    for model in models:
        convs = [user(q.text, p.system or None) for p in personas for q in questions]
        report = (lambda d, _t, base=done_before: progress(base + d, total)) if progress else None
        replies = model.chat_batch(convs, params, progress=report)
        done_before += len(convs)
        spec = unwrap(model).spec
        for i, reply in enumerate(replies):
            persona, q = personas[i // len(questions)], questions[i % len(questions)]
            src = source_name(spec, persona.name)
            answer = " ".join(reply.text.split())
            if not answer:
                empty[src] += 1  # a failure: counted and shown, never embedded
                continue
            if reply.finish_reason == "length":
                truncated += 1
                if not keep_truncated:  # left out, counted and listed, never embedded as a whole answer
                    truncated_keys.append([src, q.qid])
                    continue
            pairs.append(QAPair(src, q.text, answer, q.dimension, q.family, q.language, q.qid, spec, persona.name))
    if not pairs and not truncated_keys:
        raise ModelError("every answer was empty; nothing to embed")
    meta = {
        "models": [unwrap(m).spec for m in models], "personas": [p.name for p in personas],
        "n_questions": len(questions), "params": params.as_dict(),
        "bundled": any(unwrap(m).is_bundled for m in models),
        "empty_answers": sum(empty.values()), "empty_by_source": dict(empty), "truncated_answers": truncated,
    }
    if not keep_truncated:
        meta.update(truncated_kept=False, truncated_keys=truncated_keys)
    return QASet(pairs, meta)


def qa_set_from_pairs(pairs: list[QAPair], origin: str = "upload") -> QASet:
    if len({p.source for p in pairs}) < 1:
        raise InputError("no QA pairs")
    return QASet(pairs, {"origin": origin, "bundled": False, "empty_answers": 0, "empty_by_source": {},
                         "truncated_answers": 0})


# ----------------------------------------------------------------------------- embedded sets
@dataclass
class EmbeddedSet:
    """A QA set with its embeddings: ``raw`` is the encoder's output for every pair (a view of one
    pair); ``head`` the trained value head's output for the same pairs, when one was trained.

    ``encoder`` names the encoder that produced ``raw`` (and under ``head``); every figure and
    number names it. ``metrics`` holds the evaluation (see :mod:`valdemo.univar.evaluation`)."""

    qa: QASet
    encoder: str
    raw: np.ndarray
    head: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    id: str = ""
    projections: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    owner: str = ""
    #: the trained :class:`~valdemo.univar.training.ValueHead` when this process trained it (not stored)
    head_model: Any = field(default=None, repr=False, compare=False)

    @property
    def pairs(self) -> list[QAPair]:
        return self.qa.pairs

    @property
    def default_space(self) -> str:
        """The value space where one exists (the trained head, or a published UniVaR encoder)."""
        return "head" if self.head is not None else "raw"

    def space_label(self, name: str = "raw") -> str:
        """What a space is, naming its encoder: a plot title or table row says this."""
        self.space(name)
        return space_label(self.encoder, name)

    def space(self, name: str = "raw") -> np.ndarray:
        if name == "head":
            if self.head is None:
                raise InputError("this embedding set has no trained value head; embed with 'train head' on")
            return self.head
        if name != "raw":
            raise InputError(f"space must be raw or head, got {name!r}")
        return self.raw


def space_label(encoder: str, space: str) -> str:
    """What a space is, naming its encoder (``raw``: the encoder itself; ``head``: the value head)."""
    if space == "head":
        return f"value head (UniVaR objective, trained here) over {encoder}"
    if is_univar_encoder(encoder):
        return f"UniVaR encoder {encoder}"
    return f"{encoder}: sentence-embedding similarity (not UniVaR)"


def is_univar_encoder(name: str) -> bool:
    """True for a published UniVaR encoder (its raw space is a value space)."""
    return "univar" in (name or "").lower()


def check_same_encoder(a: str, b: str, what: str = "the reference") -> None:
    """Refuse to compare embeddings from two encoders: their spaces are not the same space."""
    if (a or "") != (b or ""):
        raise InputError(f"encoder mismatch: this set was embedded with {a!r} but {what} with {b!r}; "
                         f"positions from different encoders cannot be compared. Embed both with one encoder.")



def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)



# ----------------------------------------------------------------------------- storage
# Sets live in the store (SQLite), one row per (owner, set id): a visitor reads, lists and
# overwrites only their own; a restart reopens them. The process keeps a small cache in front
# (least recently used first out): leaving the cache loses nothing. The bundled demo set is
# pinned in the cache and readable by every owner; it is never written to the store.
LOCAL_OWNER = "local"
PUBLIC = "*"  # owner key of pinned, bundled sets (readable by everyone)
REGISTRY_SIZE = 16
_REGISTRY: OrderedDict[tuple[str, str], Any] = OrderedDict()
_PINNED: set[tuple[str, str]] = set()
_REGISTRY_LOCK = threading.Lock()
_TABLE = """CREATE TABLE IF NOT EXISTS univar_sets (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    summary TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (owner, id)
)"""
_READY: set[str] = set()


def _the_store(store=None):
    from ..store import get_store

    store = store or get_store()
    key = str(store.path)
    if key not in _READY:
        with store.tx() as conn:
            conn.execute(_TABLE)
        _READY.add(key)
    return store


def _owner(owner: str | None) -> str:
    owner = LOCAL_OWNER if owner is None else str(owner)
    if not owner or owner == PUBLIC:
        raise InputError("sets need an owner")
    return owner


def _encode_set(obj: Any) -> tuple[str, bytes, dict]:
    import io
    import zlib

    qa = obj.qa if isinstance(obj, EmbeddedSet) else obj
    qa_doc = {"id": qa.id, "meta": qa.meta, "pairs": [p.as_dict() for p in qa.pairs]}
    if isinstance(obj, QASet):
        data = zlib.compress(json.dumps(qa_doc, ensure_ascii=False, default=str).encode("utf-8"))
        return "qa", data, {"sources": qa.sources, "n_pairs": len(qa.pairs)}
    doc = {"qa": qa_doc, "encoder": obj.encoder, "metrics": obj.metrics, "id": obj.id}
    buf = io.BytesIO()
    arrays = {"raw": obj.raw.astype(np.float32)}
    if obj.head is not None:
        arrays["head"] = obj.head.astype(np.float32)
    np.savez_compressed(buf, doc=np.frombuffer(zlib.compress(json.dumps(doc, ensure_ascii=False, default=str)
                                                             .encode("utf-8")), dtype=np.uint8), **arrays)
    return "emb", buf.getvalue(), {"sources": qa.sources, "n_pairs": len(qa.pairs), "encoder": obj.encoder,
                                   "head": obj.head is not None, "qa_set": qa.id}


def _decode_set(kind: str, data: bytes, owner: str) -> Any:
    import io
    import zlib

    def qa_from(doc: dict) -> QASet:
        return QASet([QAPair(**p) for p in doc["pairs"]], doc["meta"], doc["id"])

    if kind == "qa":
        return qa_from(json.loads(zlib.decompress(data)))
    npz = np.load(io.BytesIO(data))
    doc = json.loads(zlib.decompress(npz["doc"].tobytes()))
    return EmbeddedSet(qa_from(doc["qa"]), doc["encoder"], npz["raw"], npz["head"] if "head" in npz else None,
                       doc["metrics"], doc["id"], owner=owner)


def remember(obj: Any, pin: bool = False, owner: str | None = None, store=None) -> Any:
    """Keep a QA set or embedded set: in the store under ``owner`` (default: the local owner),
    and in this process's cache. ``pin`` (bundled sets only) keeps it in the cache for everyone
    and writes nothing."""
    key = (PUBLIC if pin else _owner(owner), obj.id)
    with _REGISTRY_LOCK:
        if key in _REGISTRY:
            _REGISTRY.move_to_end(key)
            return _REGISTRY[key]
    if not pin:
        if isinstance(obj, EmbeddedSet):
            obj.owner = key[0]
        kind, data, summary = _encode_set(obj)
        with _the_store(store).tx() as conn:
            conn.execute("INSERT OR REPLACE INTO univar_sets (owner, id, kind, created, summary, data) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (key[0], obj.id, kind, time.time(),
                                                        json.dumps(summary, default=str), data))
    _cache(key, obj, pin)
    return obj


def _cache(key: tuple[str, str], obj: Any, pin: bool = False) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY[key] = obj
        _REGISTRY.move_to_end(key)
        if pin:
            _PINNED.add(key)
        for k in list(_REGISTRY):
            if len(_REGISTRY) <= REGISTRY_SIZE + len(_PINNED):
                break
            if k not in _PINNED:
                del _REGISTRY[k]


def _registry_get(set_id: str, owner: str | None = None, store=None) -> Any:
    """The owner's set ``set_id`` (cache, then store), else a bundled one; None if neither."""
    set_id = (set_id or "").strip()
    owner = _owner(owner)
    with _REGISTRY_LOCK:
        for key in ((owner, set_id), (PUBLIC, set_id)):
            if key in _REGISTRY:
                _REGISTRY.move_to_end(key)
                return _REGISTRY[key]
    rows = _the_store(store).query("SELECT kind, data FROM univar_sets WHERE owner = ? AND id = ?", (owner, set_id))
    if not rows:
        return None
    obj = _decode_set(rows[0]["kind"], rows[0]["data"], owner)
    _cache((owner, set_id), obj)
    return obj


def list_sets(owner: str | None = None, kind: str | None = None, store=None, limit: int = 50) -> list[dict]:
    """The owner's saved sets, newest first: id, kind, created, summary."""
    sql = "SELECT id, kind, created, summary FROM univar_sets WHERE owner = ?"
    params: tuple = (_owner(owner),)
    if kind:
        sql += " AND kind = ?"
        params += (kind,)
    rows = _the_store(store).query(sql + " ORDER BY created DESC LIMIT ?", (*params, limit))
    return [{"id": r["id"], "kind": r["kind"], "created": r["created"], **json.loads(r["summary"])} for r in rows]


def uncache(set_id: str, owner: str | None = None) -> None:
    """Drop one of the owner's sets from this process's cache (the store keeps it)."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop((_owner(owner), set_id), None)


def forget_cache() -> None:
    """Empty this process's cache (the store keeps every set): what a restart does."""
    with _REGISTRY_LOCK:
        for key in [k for k in _REGISTRY if k not in _PINNED]:
            del _REGISTRY[key]


def get_qa_set(set_id: str, owner: str | None = None, store=None) -> QASet:
    obj = _registry_get(set_id, owner, store)
    if isinstance(obj, EmbeddedSet):
        return obj.qa
    if not isinstance(obj, QASet):
        raise InputError(f"unknown QA set {set_id!r}: generate answers or upload QA pairs first")
    return obj


def get_embedded(set_id: str, owner: str | None = None, store=None) -> EmbeddedSet:
    obj = _registry_get(set_id, owner, store)
    if not isinstance(obj, EmbeddedSet):
        raise InputError(f"unknown embedding set {set_id!r}: embed a QA set first")
    return obj
