"""Value space (UniVaR): embeddings of models' answers to value-eliciting questions.

UniVaR (Cahyawijaya et al., 2024; public code HLTCHKUST/UniVaR, Apache-2.0)
represents the values of a language model as embeddings of its answers to
value-eliciting questions, trained so that question-answer (QA) sets from the
same source land close together; models are then compared by projecting the
embeddings (UMAP) and by k-nearest-neighbour source identification.

This module does the same on a CPU, offline:

* **sources** are model spec x persona (system prompt): the bundled model under
  a few personas is already several sources;
* **answers** come from ``chat_batch`` (cached by the response cache); empty
  answers are counted and left out, never embedded as if they were answers;
* **embeddings** of each QA pair (``"Q: ... A: ..."``) come from a frozen
  sentence encoder (:mod:`valdemo.embed`);
* a **value head** (a small MLP over the frozen embeddings) is trained with
  UniVaR's objective: two views of one source, each the mean-pooled head output
  of 1..lambda QA pairs, symmetric InfoNCE over the sources in a batch
  (CLIP-style). Questions are split into train/test; kNN source identification
  accuracy on the test questions is reported for the raw encoder and the head;
* the **explorer**: UMAP or PCA projections (cached per embedding set), plotly
  scatter, nearest neighbours, centroid distances between sources, exports.

Nothing here imports gradio.
"""

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

from .inputs import InputError, check_float, check_int, check_text, read_records, read_upload_text
from .models import ChatModel, GenParams, ModelError, ModelUnavailable, get_model, unwrap, user

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "univar"
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
        """What the encoder sees: UniVaR's ``Q: ... A: ...`` form."""
        return f"Q: {self.question}\nA: {self.answer}"

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
        if qid in seen:
            raise InputError(f"{name}: duplicate question id {qid!r} (question {n})")
        seen.add(qid)
        out.append(Question(qid, text, (row.get("dimension") or "").upper(), row.get("family") or "",
                            row.get("language") or "en"))
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
    if p.suffix.lower() == ".json":
        text = read_upload_text(p, "personas file")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, list):
            raise InputError(f"{p.name}: expected a JSON list of {{\"name\", \"system\"}} objects")
        rows = []
        for n, obj in enumerate(data, start=1):
            if not isinstance(obj, dict) or not str(obj.get("name", "")).strip():
                raise InputError(f"{p.name} item {n}: needs a non-empty \"name\"")
            rows.append({"name": str(obj["name"]).strip(), "system": str(obj.get("system") or "").strip()})
    else:
        rows = read_records(p, required=["name"], optional=["system"], what="personas file")
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
        where = f"{name} row {n}"
        out.append(QAPair(
            source=check_text(r["source"], f"{where}: source", 200),
            question=check_text(r["question"], f"{where}: question", 4000),
            answer=check_text(r["answer"], f"{where}: answer", 8000),
            dimension=(r.get("dimension") or "").upper(), family=r.get("family") or "",
            language=r.get("language") or "en", qid=r.get("id") or _digest(r["question"])[:8],
            model=r.get("model") or r["source"], persona=r.get("persona") or "",
        ))
    _check_size(len(out))
    return out


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
                params: GenParams | None = None, progress: ProgressFn | None = None) -> QASet:
    """Ask every model, under every persona, every question (batched, cached)."""
    if not questions:
        raise InputError("no questions to ask")
    personas = list(personas) or [Persona("default")]
    params = params or GenParams(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    _check_size(len(models) * len(personas) * len(questions))
    total = len(models) * len(personas) * len(questions)
    pairs: list[QAPair] = []
    empty: Counter = Counter()
    truncated = 0
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
            truncated += reply.finish_reason == "length"
            pairs.append(QAPair(src, q.text, answer, q.dimension, q.family, q.language, q.qid, spec, persona.name))
    if not pairs:
        raise ModelError("every answer was empty; nothing to embed")
    meta = {
        "models": [unwrap(m).spec for m in models], "personas": [p.name for p in personas],
        "n_questions": len(questions), "params": params.as_dict(),
        "bundled": any(unwrap(m).is_bundled for m in models),
        "empty_answers": sum(empty.values()), "empty_by_source": dict(empty), "truncated_answers": truncated,
    }
    return QASet(pairs, meta)


def qa_set_from_pairs(pairs: list[QAPair], origin: str = "upload") -> QASet:
    if len({p.source for p in pairs}) < 1:
        raise InputError("no QA pairs")
    return QASet(pairs, {"origin": origin, "bundled": False, "empty_answers": 0, "empty_by_source": {},
                         "truncated_answers": 0})


# ----------------------------------------------------------------------------- encoders
def resolve_encoder(spec: str = ""):
    """The shared encoder for ``spec`` ("" or "bundled" = bundled MiniLM).

    The published UniVaR encoders (``CAiRE/UniVaR-lambda-*``) run custom code
    from the model hub: they load only when the hub (or a local copy) is there.
    """
    from .embed import get_encoder

    spec = (spec or "").strip()
    if spec in ("", "bundled"):
        return get_encoder("")
    check_text(spec, "encoder", 500)
    is_univar = spec.startswith("CAiRE/UniVaR")
    if is_univar and not Path(spec).exists() and not _hub_or_cached(spec):
        raise ModelUnavailable(
            f"the published UniVaR encoder {spec!r} downloads from the model hub, which this machine cannot "
            f"reach, and it is not in the local cache. Use the bundled MiniLM (leave the encoder empty), a "
            f"local sentence-transformers folder, or run where the hub is reachable.")
    enc = get_encoder(spec, trust_remote_code=is_univar)
    try:
        _ = enc.dim  # loads now, so a missing model fails with a clear message
    except (ModelUnavailable, OSError, ValueError) as exc:
        if is_univar:
            raise ModelUnavailable(
                f"the published UniVaR encoder {spec!r} downloads from the model hub, which this machine "
                f"cannot reach (or it is not in the local cache). Use the bundled MiniLM (leave the encoder "
                f"empty), a local sentence-transformers folder, or run where the hub is reachable. "
                f"Detail: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        if isinstance(exc, ModelUnavailable):
            raise
        raise ModelUnavailable(f"cannot load encoder {spec!r}: {exc}") from exc
    return enc


def _hub_or_cached(repo_id: str) -> bool:
    """True when ``repo_id`` is in the local hub cache, or the hub answers."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return True
    except Exception:  # noqa: BLE001 - a broken cache is just "not cached"
        pass
    from .models.local import hub_reachable

    return hub_reachable()


# ----------------------------------------------------------------------------- value head
def split_questions(pairs: Sequence[QAPair], test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """Boolean mask: True for pairs whose question is in the test split (split by question)."""
    qids = sorted({p.qid or p.question for p in pairs})
    rng = np.random.default_rng(seed)
    rng.shuffle(qids)
    n_test = max(1, int(round(len(qids) * test_fraction))) if len(qids) > 1 else 0
    test = set(qids[:n_test])
    return np.array([(p.qid or p.question) in test for p in pairs], dtype=bool)


def knn_accuracy(ref: np.ndarray, ref_labels: Sequence[int], query: np.ndarray, query_labels: Sequence[int],
                 ks: Sequence[int] = KS) -> dict[int, float]:
    """k-nearest-neighbour source identification (cosine; majority vote, ties -> higher summed similarity)."""
    if len(ref) == 0 or len(query) == 0:
        return {k: float("nan") for k in ks}
    ref_labels = np.asarray(ref_labels)
    query_labels = np.asarray(query_labels)
    sims = _normalise(query) @ _normalise(ref).T
    order = np.argsort(-sims, axis=1)
    n_labels = int(max(ref_labels.max(), query_labels.max())) + 1
    out = {}
    for k in ks:
        kk = min(k, len(ref))
        top = order[:, :kk]
        votes = np.zeros((len(query), n_labels))
        weight = np.zeros((len(query), n_labels))
        rows = np.arange(len(query))[:, None]
        np.add.at(votes, (rows, ref_labels[top]), 1.0)
        np.add.at(weight, (rows, ref_labels[top]), sims[rows, top])
        pred = np.argmax(votes * 1e3 + weight, axis=1)
        out[k] = float(np.mean(pred == query_labels))
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


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


def raw_knn_metrics(pairs: Sequence[QAPair], raw: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> dict:
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    test = split_questions(pairs, test_fraction, seed)
    out: dict[str, Any] = {"n_train": int((~test).sum()), "n_test": int(test.sum()), "n_sources": len(names),
                           "split": "by question", "chance": round(1.0 / max(len(names), 1), 4)}
    if len(names) >= 2 and test.any() and (~test).any():
        out["raw"] = knn_accuracy(raw[~test], labels[~test], raw[test], labels[test])
    return out


# ----------------------------------------------------------------------------- embedded sets
@dataclass
class EmbeddedSet:
    qa: QASet
    encoder: str
    raw: np.ndarray
    head: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    id: str = ""
    projections: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pairs(self) -> list[QAPair]:
        return self.qa.pairs

    def space(self, name: str = "raw") -> np.ndarray:
        if name == "head":
            if self.head is None:
                raise InputError("this embedding set has no trained value head; embed with 'train head' on")
            return self.head
        if name != "raw":
            raise InputError(f"space must be raw or head, got {name!r}")
        return self.raw


def embed_qa(qa: QASet, encoder: str = "", train_head: bool = False, head_params: HeadParams | None = None,
             progress: ProgressFn | None = None) -> EmbeddedSet:
    """Embed every QA pair with a frozen encoder; optionally train the value head.

    Cached: the same QA set, encoder and head settings give the same registered set.
    """
    head_params = head_params or HeadParams()
    set_id = "emb-" + _digest(qa.id, encoder or "bundled", train_head, head_params.__dict__ if train_head else None)
    existing = _registry_get(set_id)
    if existing is not None:
        return existing
    enc = resolve_encoder(encoder)
    raw = enc.encode([p.text() for p in qa.pairs], progress=progress)
    if train_head:
        _, head_emb, metrics = evaluate_head(qa.pairs, raw, head_params)
    else:
        head_emb, metrics = None, raw_knn_metrics(qa.pairs, raw, head_params.test_fraction, head_params.seed)
    es = EmbeddedSet(qa, enc.name, raw, head_emb, metrics, set_id)
    return remember(es)


def knn_table(metrics: dict) -> list[dict]:
    """Rows ``{k, raw, head}`` for display (head None when not trained)."""
    raw, head = metrics.get("raw") or {}, metrics.get("head") or {}
    return [{"k": k, "raw": _r(raw.get(k)), "head": _r(head.get(k))} for k in KS]


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), 4)


# ----------------------------------------------------------------------------- registry
_REGISTRY: OrderedDict[str, Any] = OrderedDict()
_PINNED: set[str] = set()
_REGISTRY_LOCK = threading.Lock()
REGISTRY_SIZE = 16


def remember(obj: Any, pin: bool = False) -> Any:
    """Keep a QA set or embedded set in this process (LRU, pinned ones never evicted)."""
    with _REGISTRY_LOCK:
        if obj.id in _REGISTRY:
            _REGISTRY.move_to_end(obj.id)
            return _REGISTRY[obj.id]
        _REGISTRY[obj.id] = obj
        if pin:
            _PINNED.add(obj.id)
        for key in list(_REGISTRY):
            if len(_REGISTRY) <= REGISTRY_SIZE + len(_PINNED):
                break
            if key not in _PINNED:
                del _REGISTRY[key]
        return obj


def _registry_get(set_id: str) -> Any:
    with _REGISTRY_LOCK:
        obj = _REGISTRY.get(set_id)
        if obj is not None:
            _REGISTRY.move_to_end(set_id)
        return obj


def get_qa_set(set_id: str) -> QASet:
    obj = _registry_get((set_id or "").strip())
    if isinstance(obj, EmbeddedSet):
        return obj.qa
    if not isinstance(obj, QASet):
        raise InputError(f"unknown QA set {set_id!r}: generate answers or upload QA pairs first")
    return obj


def get_embedded(set_id: str) -> EmbeddedSet:
    obj = _registry_get((set_id or "").strip())
    if not isinstance(obj, EmbeddedSet):
        raise InputError(f"unknown embedding set {set_id!r}: embed a QA set first")
    return obj


# ----------------------------------------------------------------------------- projection
@dataclass(frozen=True)
class ProjectionParams:
    method: str = "umap"
    dims: int = 2
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.method not in PROJECTIONS:
            raise InputError(f"projection must be one of {', '.join(PROJECTIONS)}, got {self.method!r}")
        if self.dims not in (2, 3):
            raise InputError(f"dims must be 2 or 3, got {self.dims!r}")
        check_int(self.n_neighbors, "n_neighbors", 2, 200)
        check_float(self.min_dist, "min_dist", 0.0, 1.0)
        if self.metric not in UMAP_METRICS:
            raise InputError(f"metric must be one of {', '.join(UMAP_METRICS)}, got {self.metric!r}")


def project(x: np.ndarray, params: ProjectionParams | None = None) -> np.ndarray:
    """2-D or 3-D coordinates of the rows of ``x`` (UMAP or PCA)."""
    params = params or ProjectionParams()
    n = len(x)
    if n < params.dims + 1:
        raise InputError(f"need at least {params.dims + 1} points to project, got {n}")
    if params.method == "pca":
        return pca(x, params.dims)
    import umap

    reducer = umap.UMAP(n_components=params.dims, n_neighbors=min(params.n_neighbors, n - 1),
                        min_dist=params.min_dist, metric=params.metric, random_state=params.seed, n_jobs=1,
                        init="spectral" if n > params.dims + 2 else "random")
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def pca(x: np.ndarray, dims: int = 2) -> np.ndarray:
    """Principal components by SVD; signs fixed (largest loading positive) so reruns agree."""
    centred = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = min(dims, vt.shape[0])
    signs = np.sign(vt[np.arange(comps), np.argmax(np.abs(vt[:comps]), axis=1)])
    out = (u[:, :comps] * s[:comps]) * signs
    if comps < dims:
        out = np.hstack([out, np.zeros((len(x), dims - comps))])
    return out.astype(np.float32)


def project_set(es: EmbeddedSet, space: str = "raw", params: ProjectionParams | None = None) -> np.ndarray:
    """The projection of one space of an embedded set, computed once per parameter set."""
    params = params or ProjectionParams()
    key = (space, params)
    with es.lock:
        if key not in es.projections:
            es.projections[key] = project(es.space(space), params)
        return es.projections[key]


# ----------------------------------------------------------------------------- explorer
def search_matches(pairs: Sequence[QAPair], query: str) -> np.ndarray:
    """Indices of pairs whose question, answer, source or dimension contains ``query`` (case-insensitive)."""
    q = (query or "").strip().lower()
    if not q:
        return np.zeros(0, dtype=int)
    return np.array([i for i, p in enumerate(pairs)
                     if q in p.question.lower() or q in p.answer.lower() or q in p.source.lower()
                     or q in p.dimension.lower()], dtype=int)


def _wrap(text: str, width: int = 70, limit: int = 400) -> str:
    import html
    import textwrap

    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width)) or "(empty)"


def _group_key(p: QAPair, color_by: str) -> str:
    if color_by not in COLOR_BY:
        raise InputError(f"colour by must be one of {', '.join(COLOR_BY)}, got {color_by!r}")
    return getattr(p, color_by) or "(none)"


def scatter_figure(pairs: Sequence[QAPair], coords: np.ndarray, color_by: str = "source", search: str = "",
                   title: str = ""):
    """Plotly scatter (2-D or 3-D), one trace per group; hover shows question and answer.

    Points matching ``search`` are drawn on top in a "matches" trace; the rest fade.
    """
    import plotly.graph_objects as go

    dims = coords.shape[1]
    matches = search_matches(pairs, search)
    faded = len(matches) > 0
    groups: dict[str, list[int]] = OrderedDict()
    for i, p in enumerate(pairs):
        groups.setdefault(_group_key(p, color_by), []).append(i)
    hover = ("<b>#%{customdata[0]}</b> %{customdata[1]}<br><i>%{customdata[2]}</i><br>"
             "<b>Q:</b> %{customdata[3]}<br><b>A:</b> %{customdata[4]}<extra></extra>")

    def custom(idx):
        return [[i, pairs[i].source, pairs[i].dimension, _wrap(pairs[i].question), _wrap(pairs[i].answer)]
                for i in idx]

    def trace(idx, name, **marker):
        kw = dict(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=name, customdata=custom(idx),
                  hovertemplate=hover, marker=marker)
        if dims == 3:
            return go.Scatter3d(z=coords[idx, 2], **kw)
        return go.Scatter(**kw)

    fig = go.Figure()
    size = 4 if dims == 3 else 7
    for name, idx in groups.items():
        fig.add_trace(trace(np.array(idx), f"{name} ({len(idx)})", size=size, opacity=0.2 if faded else 0.8))
    if faded:
        fig.add_trace(trace(matches, f"matches '{search.strip()}' ({len(matches)})", size=size + 5,
                            color="rgba(0,0,0,0)", line=dict(color="black", width=2)))
    fig.update_layout(title=title or None, legend_title_text=color_by, height=620,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), template="plotly_white")
    return fig


def neighbours(es: EmbeddedSet, index: int, k: int = 10, space: str = "raw") -> list[dict]:
    """The ``k`` nearest neighbours of point ``index`` in the original (not projected) space."""
    x = es.space(space)
    index = check_int(index, "point id", 0, len(x) - 1)
    k = check_int(k, "k", 1, 100)
    sims = _normalise(x) @ _normalise(x[index : index + 1]).T
    order = [int(i) for i in np.argsort(-sims[:, 0]) if i != index][:k]
    return [{"rank": r + 1, "id": i, "similarity": round(float(sims[i, 0]), 4), "source": es.pairs[i].source,
             "same_source": es.pairs[i].source == es.pairs[index].source, "dimension": es.pairs[i].dimension,
             "question": es.pairs[i].question, "answer": es.pairs[i].answer} for r, i in enumerate(order)]


def source_centroids(x: np.ndarray, pairs: Sequence[QAPair]) -> tuple[list[str], np.ndarray]:
    names = list(dict.fromkeys(p.source for p in pairs))
    labels = np.array([names.index(p.source) for p in pairs])
    cents = np.vstack([x[labels == j].mean(axis=0) for j in range(len(names))])
    return names, cents


def source_distances(es: EmbeddedSet, space: str = "raw") -> tuple[list[str], np.ndarray]:
    """Cosine distances between source centroids in the original space."""
    names, cents = source_centroids(es.space(space), es.pairs)
    c = _normalise(cents)
    return names, np.clip(1.0 - c @ c.T, 0.0, 2.0)


def ranked_pairs(names: Sequence[str], dist: np.ndarray) -> list[dict]:
    """Every pair of sources, closest first."""
    rows = [{"source_a": names[i], "source_b": names[j], "distance": round(float(dist[i, j]), 4)}
            for i in range(len(names)) for j in range(i + 1, len(names))]
    return sorted(rows, key=lambda r: r["distance"])


def heatmap_figure(names: Sequence[str], dist: np.ndarray):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=np.round(dist, 4), x=list(names), y=list(names), colorscale="Viridis_r",
                               colorbar=dict(title="cosine<br>distance"),
                               hovertemplate="%{y} ↔ %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=max(320, 60 * len(names) + 120), margin=dict(l=10, r=10, t=30, b=10),
                      title="Distance between source centroids", template="plotly_white")
    return fig


# ----------------------------------------------------------------------------- export
def points_frame(es: EmbeddedSet, coords: np.ndarray | None = None, space: str = "raw",
                 with_embeddings: bool = True):
    import pandas as pd

    df = pd.DataFrame([{"id": i, **p.as_dict()} for i, p in enumerate(es.pairs)])
    if coords is not None:
        for j, axis in enumerate("xyz"[: coords.shape[1]]):
            df[axis] = coords[:, j]
    if with_embeddings:
        x = es.space(space)
        df = pd.concat([df, pd.DataFrame(x, columns=[f"e{j}" for j in range(x.shape[1])])], axis=1)
    return df


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401

        return True
    except ImportError:
        return False


def export_points(es: EmbeddedSet, out_dir: str | Path, coords: np.ndarray | None = None, space: str = "raw",
                  fmt: str = "csv") -> Path:
    """Embeddings + projection + metadata as CSV, or Parquet when pyarrow is installed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = points_frame(es, coords, space)
    if fmt == "parquet" and parquet_available():
        path = out_dir / "points.parquet"
        df.to_parquet(path, index=False)
    else:
        path = out_dir / "points.csv"
        df.to_csv(path, index=False)
    return path


def write_figure_html(fig, path: str | Path) -> Path:
    """A self-contained HTML file (plotly.js inlined: opens offline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def write_qa_jsonl(pairs: Sequence[QAPair], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
    return path


# ----------------------------------------------------------------------------- bundled demo set
DEMO_QA = DEMO_DIR / "qa.jsonl"
DEMO_EMB = DEMO_DIR / "embeddings.npy"
DEMO_META = DEMO_DIR / "meta.json"
DEMO_PROJ = DEMO_DIR / "projection.npy"
DEMO_HEAD = DEMO_DIR / "embeddings_head.npy"


def demo_available() -> bool:
    return DEMO_QA.is_file() and DEMO_EMB.is_file() and DEMO_META.is_file()


def load_demo() -> EmbeddedSet:
    """The bundled, pre-computed demo set (QA pairs, raw embeddings, a UMAP projection)."""
    if not demo_available():
        raise InputError("the bundled demo set is missing; run scripts/univar_build_demo.py")
    meta = json.loads(DEMO_META.read_text())
    set_id = "emb-demo-" + meta.get("digest", "")
    existing = _registry_get(set_id)
    if existing is not None:
        return existing
    pairs = [QAPair(**json.loads(line)) for line in DEMO_QA.read_text(encoding="utf-8").splitlines() if line]
    raw = _normalise(np.load(DEMO_EMB).astype(np.float32))
    qa = remember(QASet(pairs, {**meta.get("qa_meta", {}), "bundled": True, "demo": True}), pin=True)
    metrics = meta.get("metrics") or raw_knn_metrics(pairs, raw)
    metrics = {**metrics, **{s: {int(k): v for k, v in metrics[s].items()} for s in ("raw", "head") if s in metrics}}
    head = _normalise(np.load(DEMO_HEAD).astype(np.float32)) if DEMO_HEAD.is_file() else None
    es = EmbeddedSet(qa, meta.get("encoder", "all-MiniLM-L6-v2 (bundled)"), raw, head, metrics, set_id)
    if DEMO_PROJ.is_file():
        es.projections[("raw", ProjectionParams(**meta["projection"]))] = np.load(DEMO_PROJ).astype(np.float32)
    return remember(es, pin=True)


def demo_projection_params() -> ProjectionParams:
    if DEMO_META.is_file():
        return ProjectionParams(**json.loads(DEMO_META.read_text()).get("projection", {}))
    return ProjectionParams()


# ----------------------------------------------------------------------------- one-call pipeline (CLI)
def run_pipeline(specs: Sequence[str] | None, questions: Sequence[Question] | None, personas: Sequence[Persona],
                 encoder: str = "", train_head: bool = False, head_params: HeadParams | None = None,
                 proj: ProjectionParams | None = None, out_dir: str | Path | None = None,
                 qa_pairs: list[QAPair] | None = None, params: GenParams | None = None, creds=None,
                 use_cache: bool | None = None, progress: Callable[[str], ProgressFn] | None = None,
                 export_format: str = "csv") -> dict:
    """Generate (or take) QA pairs, embed, optionally train the head, project, write files."""
    if qa_pairs is not None:
        qa = qa_set_from_pairs(qa_pairs)
    else:
        models = [get_model(s, creds, use_cache=use_cache) for s in (specs or [])]
        qa = generate_qa(models, questions or [], personas, params, progress("answers") if progress else None)
    remember(qa)
    es = embed_qa(qa, encoder, train_head, head_params, progress("embeddings") if progress else None)
    space = "head" if es.head is not None else "raw"
    proj = proj or ProjectionParams()
    coords = project_set(es, space, proj)
    summary = summarise(es)
    summary.update(space=space, projection=proj.__dict__)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"qa": write_qa_jsonl(es.pairs, out / "qa.jsonl"),
                 "embeddings": _save_npy(out / "embeddings.npy", es.raw)}
        if es.head is not None:
            files["embeddings_head"] = _save_npy(out / "embeddings_head.npy", es.head)
        files["points"] = export_points(es, out, coords, space, export_format)
        fig = scatter_figure(es.pairs, coords, "source", title=f"Value space ({space}, {proj.method})")
        files["figure"] = write_figure_html(fig, out / "figure.html")
        summary["files"] = {k: str(v) for k, v in files.items()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return summary


def _save_npy(path: Path, x: np.ndarray) -> Path:
    np.save(path, x)
    return path


def summarise(es: EmbeddedSet) -> dict:
    m = es.metrics
    counts = Counter(p.source for p in es.pairs)
    out = {"n_points": len(es.pairs), "sources": list(counts), "points_per_source": dict(counts),
           "encoder": es.encoder, "embedding_set": es.id, "qa_set": es.qa.id,
           "empty_answers": es.qa.meta.get("empty_answers", 0),
           "empty_by_source": es.qa.meta.get("empty_by_source", {}),
           "truncated_answers": es.qa.meta.get("truncated_answers", 0),
           "bundled_model": es.qa.bundled, "head_trained": es.head is not None,
           "knn": {k: v for k, v in m.items() if k not in ("raw", "head")}}
    for k in KS:
        out[f"knn_acc_at_{k}"] = {"raw": _r((m.get("raw") or {}).get(k)), "head": _r((m.get("head") or {}).get(k))}
    return out


# ----------------------------------------------------------------------------- for other methods (issue 9)
QUICK_SIZE = 10


def _as_models(models: Sequence[ChatModel | str], creds=None) -> list[ChatModel]:
    if not models:
        raise InputError("name at least one model")
    return [get_model(m, creds) if isinstance(m, str) else m for m in models]


def profile_questions(size: str = "quick") -> list[Question]:
    """quick: ~10 questions spread over the value dimensions (from the demo set when bundled); full: all."""
    if size not in ("quick", "full"):
        raise InputError(f"size must be quick or full, got {size!r}")
    questions = load_questions()
    if size == "full":
        return questions
    pool = questions
    if DEMO_QA.is_file():
        demo_qids = {json.loads(line)["qid"] for line in DEMO_QA.read_text(encoding="utf-8").splitlines() if line}
        pool = [q for q in questions if q.qid in demo_qids] or questions
    return pick_questions([q for q in pool if q.family != "control"], QUICK_SIZE)


def source_answers(models: Sequence[ChatModel | str], size: str = "quick", personas: Sequence[Persona] = (),
                   params: GenParams | None = None, progress: ProgressFn | None = None,
                   creds=None) -> dict[str, list[tuple[str, str]]]:
    """Each source's (question, answer) pairs on the profile questions, so another method can score them."""
    qa = generate_qa(_as_models(models, creds), profile_questions(size), personas or [Persona("default")],
                     params, progress)
    out: dict[str, list[tuple[str, str]]] = {}
    for p in qa.pairs:
        out.setdefault(p.source, []).append((p.question, p.answer))
    return out


def profile_summary(models: Sequence[ChatModel | str], size: str = "quick", progress: ProgressFn | None = None,
                    creds=None, with_reference: bool = True, neighbours_k: int = 3,
                    params: GenParams | None = None) -> dict:
    """Where each model sits in the value space: centroid in a 2-D PCA projection, nearest other sources.

    With ``with_reference`` the bundled demo set's sources (the bundled model under
    personas) answering the same questions are projected alongside, as landmarks.
    """
    models = _as_models(models, creds)
    questions = profile_questions(size)
    qa = generate_qa(models, questions, [Persona("default")], params, progress)
    pairs = list(qa.pairs)
    enc = resolve_encoder("")
    raw = enc.encode([p.text() for p in pairs])
    reference: list[str] = []
    if with_reference and demo_available():
        demo = load_demo()
        qids = {q.qid for q in questions}
        keep = [i for i, p in enumerate(demo.pairs) if p.qid in qids]
        if keep:
            ref_pairs = [QAPair(**{**demo.pairs[i].as_dict(), "source": "reference: " + demo.pairs[i].source})
                         for i in keep]
            reference = list(dict.fromkeys(p.source for p in ref_pairs))
            pairs += ref_pairs
            raw = np.vstack([raw, demo.raw[keep]])
    names, cents = source_centroids(raw, pairs)
    coords = project(raw, ProjectionParams(method="pca", dims=2))
    _, cent_xy = source_centroids(coords, pairs)
    c = _normalise(cents)
    dist = np.clip(1.0 - c @ c.T, 0.0, 2.0)
    sources = {}
    for i, name in enumerate(names):
        order = [j for j in np.argsort(dist[i]) if j != i][:neighbours_k]
        sources[name] = {
            "centroid": [round(float(v), 4) for v in cent_xy[i]],
            "n_answers": int(sum(p.source == name for p in pairs)),
            "reference": name in reference,
            "nearest": [{"source": names[j], "distance": round(float(dist[i, j]), 4)} for j in order],
        }
    return {"size": size, "n_questions": len(questions), "encoder": enc.name, "projection": "pca-2d",
            "sources": sources, "empty_answers": qa.meta["empty_answers"],
            "bundled_model": qa.bundled or bool(reference)}
