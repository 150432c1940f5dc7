"""CLAVE recognizers: the small model that maps (value, text, concepts) to a label."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..inputs import InputError, check_text
from ..values import Value
from .inputs import LABEL_NAMES, LABELS, ProgressFn, Sample, check_value, custom_values, load_custom_values, value_info

log = logging.getLogger(__name__)

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
        from ..embed import get_encoder

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


# ---------------------------------------------------------------------------------
# small models behind one interface
# ---------------------------------------------------------------------------------

#: ``"; "``-joined concepts are embedded as one text; a row without concepts gets this.
NO_CONCEPTS = "(no concepts)"


def concept_text(concepts: Sequence[str] | None) -> str:
    return "; ".join(c for c in (concepts or []) if c) or NO_CONCEPTS


class SmallModel(Protocol):
    """What a recognizer's small model does: learn (value, text[, concepts]) -> label from a few
    labels, then give logits over the value's classes. ``concepts`` is None when the model is
    calibrated without concepts (the ablation), else one list of concept strings per text."""

    kind: str

    def fit(self, rows: Sequence[Sample], concepts: Sequence[Sequence[str]] | None,
            classes: dict[str, list[int]]) -> None: ...

    def logits(self, texts: Sequence[str], values: Sequence[str],
               concepts: Sequence[Sequence[str]] | None) -> list[np.ndarray]: ...


def _identity_scaling(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unit-length embeddings are used as they are: standardising them per dimension
    lost about 0.05 macro-F1 on ValueNet (benchmarks/clave.py, seen 2026-11-23)."""
    return np.zeros(x.shape[1]), np.ones(x.shape[1])


class EmbeddingHead:
    """One class-balanced multinomial logistic regression per value over frozen sentence
    embeddings (the text's, and with concepts also the embedding of its concepts). Fits in
    well under a second per value on a CPU once the texts are embedded (this project's own
    choice of small model; CLAVE fine-tunes a small LLM, Sec. 3)."""

    kind = "head"
    title = "logistic head on frozen MiniLM embeddings"

    def __init__(self, encoder_spec: str = "", c: float = 0.5, emb: _Embeddings | None = None):
        self.encoder_spec = encoder_spec
        self.c = float(c)
        self._emb = emb
        self.params: dict[str, dict[str, np.ndarray]] = {}

    @property
    def emb(self) -> _Embeddings:
        if self._emb is None:
            self._emb = _Embeddings(self.encoder_spec)
        return self._emb

    def features(self, texts: Sequence[str], concepts: Sequence[Sequence[str]] | None) -> np.ndarray:
        x = self.emb(texts)
        if concepts is not None:
            x = np.hstack([x, self.emb([concept_text(c) for c in concepts])])
        return x

    def fit(self, rows, concepts, classes) -> None:
        from sklearn.linear_model import LogisticRegression

        x_all = self.features([s.text for s in rows], concepts)
        by_value: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(rows):
            by_value[s.value].append(i)
        for value, idx in by_value.items():
            cls = classes[value]
            x = x_all[idx]
            y = [rows[i].label for i in idx]
            mean, scale = _identity_scaling(x)
            coef = np.zeros((len(cls), x.shape[1]))
            intercept = np.zeros(len(cls))
            present = sorted(set(y))
            if len(present) == 1:  # one class seen: it always wins
                intercept[:] = -30.0
                intercept[cls.index(present[0])] = 0.0
            else:
                clf = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced")
                clf.fit((x - mean) / scale, y)
                seen = [int(k) for k in clf.classes_]
                intercept[:] = -30.0  # a class with no training label is never predicted
                if len(seen) == 2:  # binary: scikit-learn keeps one row, for the second class
                    coef[cls.index(seen[1])] = clf.coef_[0]
                    intercept[cls.index(seen[1])] = clf.intercept_[0]
                    intercept[cls.index(seen[0])] = 0.0
                else:
                    for row, k in enumerate(seen):
                        coef[cls.index(k)] = clf.coef_[row]
                        intercept[cls.index(k)] = clf.intercept_[row]
            self.params[value] = {"coef": coef, "intercept": intercept, "mean": mean, "scale": scale}

    def logits(self, texts, values, concepts) -> list[np.ndarray]:
        x = self.features(texts, concepts)
        out = []
        for xi, v in zip(x, values, strict=True):
            p = self.params[v]
            out.append(((xi - p["mean"]) / p["scale"]) @ p["coef"].T + p["intercept"])
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {f"{v}|{k}": a for v, p in self.params.items() for k, a in p.items()}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], encoder_spec: str, c: float) -> EmbeddingHead:
        head = cls(encoder_spec, c)
        for key, a in arrays.items():
            value, name = key.split("|", 1)
            head.params.setdefault(value, {})[name] = a
        return head


class FineTunedEncoder:
    """The bundled MiniLM fine-tuned end to end with a 3-way classification head, one model for
    all values: input ``"<value>: <definition>"`` paired with the text (and its concepts); the
    logits are read only over the value's own classes; loss weighted to balance each value's
    classes. Plain fine-tuning (AdamW), this project's own choice (CLAVE fine-tunes a small LLM,
    Sec. 3). Slow on a CPU: see benchmarks/clave.py."""

    kind = "finetune"
    title = "fine-tuned MiniLM with a classification head"

    def __init__(self, encoder_spec: str = "", epochs: int = 4, lr: float = 4e-5, batch_size: int = 16,
                 seed: int = 0, max_length: int = 128):
        self.encoder_spec = encoder_spec
        self.epochs, self.lr, self.batch_size, self.seed, self.max_length = epochs, lr, batch_size, seed, max_length
        self.model = None
        self.tokenizer = None
        self.classes: dict[str, list[int]] = {}

    def _load(self):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..embed import EMBED_INSTALL_HINT, default_embed_source

        # the bundled MiniLM, else the same model by its hub id (preloaded on a Space; issue 18)
        path = self.encoder_spec or default_embed_source()[0]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS))
        except OSError as exc:
            hint = "" if self.encoder_spec else f": {EMBED_INSTALL_HINT}"
            raise InputError(f"the fine-tuned recognizer cannot load its encoder {path!r}{hint}") from exc

    def _pairs(self, texts, values, concepts):
        firsts = [_definition_text(value_info(v)) for v in values]
        seconds = [t if concepts is None else f"{t} [concepts: {concept_text(c)}]"
                   for t, c in zip(texts, concepts if concepts is not None else [None] * len(texts), strict=True)]
        return firsts, seconds

    def fit(self, rows, concepts, classes) -> None:
        import torch

        torch.manual_seed(self.seed)
        self.classes = {k: list(v) for k, v in classes.items()}
        self._load()
        values = [s.value for s in rows]
        firsts, seconds = self._pairs([s.text for s in rows], values, concepts)
        y = torch.tensor([LABELS.index(s.label) for s in rows])
        w = torch.tensor(_balanced_weights(rows), dtype=torch.float32)
        mask = torch.tensor(_class_mask(values, self.classes))
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.01)
        steps = self.epochs * ((len(rows) + self.batch_size - 1) // self.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / max(steps, 1)))
        gen = torch.Generator().manual_seed(self.seed)
        self.model.train()
        for _ in range(self.epochs):
            for b in torch.randperm(len(rows), generator=gen).split(self.batch_size):
                idx = b.tolist()
                enc = self.tokenizer([firsts[i] for i in idx], [seconds[i] for i in idx], padding=True,
                                     truncation=True, max_length=self.max_length, return_tensors="pt")
                logits = self.model(**enc).logits + mask[b]
                loss = (torch.nn.functional.cross_entropy(logits, y[b], reduction="none") * w[b]).sum() / w[b].sum()
                loss.backward()
                opt.step()
                sched.step()
                opt.zero_grad()
        self.model.eval()

    def logits(self, texts, values, concepts) -> list[np.ndarray]:
        import torch

        firsts, seconds = self._pairs(texts, values, concepts)
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                enc = self.tokenizer(firsts[start:start + 64], seconds[start:start + 64], padding=True,
                                     truncation=True, max_length=self.max_length, return_tensors="pt")
                out.append(self.model(**enc).logits.numpy())
        z = np.concatenate(out) if out else np.zeros((0, len(LABELS)))
        return [row[[LABELS.index(c) for c in self.classes[v]]] for row, v in zip(z, values, strict=True)]


def _class_mask(values: Sequence[str], classes: dict[str, list[int]]) -> np.ndarray:
    """0 for each row's value's own classes, -1e4 elsewhere (added to logits over :data:`LABELS`)."""
    m = np.full((len(values), len(LABELS)), -1e4, dtype=np.float32)
    for i, v in enumerate(values):
        for c in classes[v]:
            m[i, LABELS.index(c)] = 0.0
    return m


def _balanced_weights(rows: Sequence[Sample]) -> list[float]:
    """Per-row loss weights that give each class of a value equal total weight within that value."""
    counts = Counter((s.value, s.label) for s in rows)
    per_value = Counter(s.value for s in rows)
    n_classes = Counter(v for (v, _lab) in counts)
    return [per_value[s.value] / (n_classes[s.value] * counts[(s.value, s.label)]) for s in rows]


#: the answer letters the LoRA model is trained to put first, in :data:`LABELS` order
LORA_OPTIONS = "ABC"


class LoraCausalLM:
    """A small causal LM (default: the bundled SmolLM2-135M) fine-tuned with LoRA adapters
    (``peft``) to answer A (adheres), B (opposes) or C (unrelated) after a prompt holding the
    value's definition, the text and (with concepts) the judge's concepts; its logits are the
    LM's next-token logits of those three letters, read over the value's own classes, with a
    class-balanced cross-entropy. Close to CLAVE's small model (Sec. 3 fine-tunes a small LLM on
    concepts -> label); the prompt and training loop are this project's own. Meant for a GPU
    (it uses one when torch sees it); on a CPU it works but is slow: see benchmarks/clave.py."""

    kind = "lora"
    title = "LoRA fine-tune of a small causal LM (bundled SmolLM2-135M; for a GPU)"

    def __init__(self, model_path: str = "", epochs: int = 2, lr: float = 3e-4, batch_size: int = 8,
                 rank: int = 8, seed: int = 0, max_length: int = 192, max_steps: int | None = None,
                 device: str | None = None):
        self.model_path = model_path
        self.encoder_spec = ""  # (the recognizer's meta reads it; this model has no sentence encoder)
        self.epochs, self.lr, self.batch_size, self.rank = epochs, lr, batch_size, rank
        self.seed, self.max_length, self.max_steps, self.device = seed, max_length, max_steps, device
        self.model = None
        self.tokenizer = None
        self.option_ids: list[int] = []
        self.classes: dict[str, list[int]] = {}
        self.steps_done = 0

    def _load(self) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.model_path
        if not path:
            from ..models.local import resolve_local_model  # the bundled model's folder (a path, not a backend)

            path = resolve_local_model()[0]
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except OSError as exc:
            raise InputError(f"the LoRA recognizer cannot load its model {path!r}") from exc
        self.tokenizer.padding_side = "left"  # the answer position is the last one in every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.option_ids = []
        for letter in LORA_OPTIONS:
            ids = self.tokenizer.encode(" " + letter, add_special_tokens=False)
            self.option_ids.append(ids[-1])
        if len(set(self.option_ids)) != len(LORA_OPTIONS):
            raise InputError(f"the tokenizer of {path!r} does not give the answer letters distinct tokens")
        config = LoraConfig(r=self.rank, lora_alpha=2 * self.rank, lora_dropout=0.0, bias="none",
                            target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        self.model = get_peft_model(base, config).to(self.device)
        self.model_path = path

    def prompt(self, text: str, value: str, concepts: Sequence[str] | None) -> str:
        v = value_info(value)
        extra = "" if concepts is None else f"Concepts in the text: {concept_text(concepts)}\n"
        return (f"Value: {_definition_text(v)}\nText: {text}\n{extra}"
                f"Does the text adhere to the value (A), oppose it (B), or is it unrelated (C)? Answer:")

    def _option_logits(self, prompts: Sequence[str]):
        enc = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        out = self.model(**enc).logits[:, -1, :]
        return out[:, self.option_ids]

    def fit(self, rows, concepts, classes) -> None:
        import torch

        torch.manual_seed(self.seed)
        self.classes = {k: list(v) for k, v in classes.items()}
        self._load()
        prompts = [self.prompt(s.text, s.value, None if concepts is None else concepts[i]) for i, s in enumerate(rows)]
        y = torch.tensor([LABELS.index(s.label) for s in rows], device=self.device)
        w = torch.tensor(_balanced_weights(rows), dtype=torch.float32, device=self.device)
        mask = torch.tensor(_class_mask([s.value for s in rows], self.classes), device=self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        per_epoch = (len(rows) + self.batch_size - 1) // self.batch_size
        steps = self.epochs * per_epoch if self.max_steps is None else min(self.max_steps, self.epochs * per_epoch)
        gen = torch.Generator().manual_seed(self.seed)
        self.model.train()
        self.steps_done = 0
        while self.steps_done < steps:
            for b in torch.randperm(len(rows), generator=gen).split(self.batch_size):
                if self.steps_done >= steps:
                    break
                idx = b.tolist()
                z = self._option_logits([prompts[i] for i in idx]) + mask[idx]
                loss = (torch.nn.functional.cross_entropy(z, y[idx], reduction="none") * w[idx]).sum() / w[idx].sum()
                loss.backward()
                opt.step()
                opt.zero_grad()
                self.steps_done += 1
        self.model.eval()

    def logits(self, texts, values, concepts) -> list[np.ndarray]:
        import torch

        prompts = [self.prompt(t, v, None if concepts is None else concepts[i])
                   for i, (t, v) in enumerate(zip(texts, values, strict=True))]
        out = []
        with torch.no_grad():
            for start in range(0, len(prompts), 16):
                out.append(self._option_logits(prompts[start:start + 16]).float().cpu().numpy())
        z = np.concatenate(out) if out else np.zeros((0, len(LABELS)))
        return [row[[LABELS.index(c) for c in self.classes[v]]] for row, v in zip(z, values, strict=True)]


SMALL_MODELS = {"head": EmbeddingHead, "finetune": FineTunedEncoder, "lora": LoraCausalLM}
DEFAULT_SMALL_MODEL = "head"


def make_small_model(kind: str, encoder_spec: str = "", emb: _Embeddings | None = None) -> SmallModel:
    if kind not in SMALL_MODELS:
        raise InputError(f"small model must be one of {', '.join(SMALL_MODELS)}, got {kind!r}")
    if kind == "head":
        return EmbeddingHead(encoder_spec, emb=emb)
    return FineTunedEncoder(encoder_spec) if kind == "finetune" else LoraCausalLM()


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(z, dtype=float) / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


# ---------------------------------------------------------------------------------
# the recognizer: a small model per calibration, with the values it knows
# ---------------------------------------------------------------------------------


@dataclass
class Recognizer:
    """A calibrated small model. It scores only the values it was calibrated on
    (:attr:`classes`), each over that value's own classes; probabilities are temperature-scaled
    per value where :attr:`temperature` was fitted on held-out folds (else 1.0, uncalibrated)."""

    model: SmallModel
    classes: dict[str, list[int]]
    uses_concepts: bool = False
    temperature: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def values(self) -> list[str]:
        return sorted(self.classes)

    def knows(self, value: str) -> bool:
        return value in self.classes

    def logits(self, texts, values, concepts=None) -> list[np.ndarray]:
        if self.uses_concepts and concepts is None:
            raise InputError("this recognizer was calibrated with concepts: extract the texts' concepts first")
        return self.model.logits(texts, values, concepts if self.uses_concepts else None)

    def proba(self, texts: Sequence[str], values: Sequence[str],
              concepts: Sequence[Sequence[str]] | None = None) -> list[np.ndarray]:
        unknown = sorted({v for v in values if v not in self.classes})
        if unknown:
            raise InputError(f"this recognizer was not calibrated on {', '.join(unknown)} "
                             f"(it knows {', '.join(self.values)})")
        z = self.logits(texts, values, concepts)
        return [softmax(zi, self.temperature.get(v, 1.0)) for zi, v in zip(z, values, strict=True)]

    def predict(self, texts: Sequence[str], values: Sequence[str],
                concepts: Sequence[Sequence[str]] | None = None) -> list[dict]:
        """``[{"label", "label_name", "probs": {class name: p}}]``, classes of each row's value."""
        if len(texts) != len(values):
            raise InputError(f"{len(texts)} texts but {len(values)} values")
        keys = [check_value(v).key for v in values]
        texts = [check_text(t) for t in texts]
        return [_as_prediction(p, self.classes[k]) for p, k in zip(self.proba(texts, keys, concepts), keys, strict=True)]

    def save(self, path: str | Path) -> Path:
        if not isinstance(self.model, EmbeddingHead):
            raise InputError(f"saving a {self.model.kind!r} recognizer is not supported yet (only 'head')")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        defs = {k: d for k, d in custom_values().items() if k in self.classes}
        meta = {**self.meta, "classes": self.classes, "uses_concepts": self.uses_concepts, "value_definitions": defs,
                "temperature": self.temperature, "kind": self.model.kind,
                "encoder_spec": self.model.encoder_spec, "c": self.model.c}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **self.model.state())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        if meta.get("kind") != "head" or "classes" not in meta:
            raise ValueError("not a recognizer file of this version")
        load_custom_values(meta.get("value_definitions") or {})
        model = EmbeddingHead.from_state(arrays, meta.pop("encoder_spec"), meta.pop("c"))
        classes = {k: [int(c) for c in v] for k, v in meta.pop("classes").items()}
        return cls(model, classes, meta.pop("uses_concepts"), meta.pop("temperature"), meta)


def _as_prediction(p: np.ndarray, classes: Sequence[int]) -> dict:
    best = classes[int(np.argmax(p))]
    return {"label": best, "label_name": LABEL_NAMES[best],
            "probs": {LABEL_NAMES[lab]: round(float(q), 4) for lab, q in zip(classes, p, strict=True)}}


def value_classes(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """The declared label set of each value: the classes its labels use, in :data:`LABELS` order."""
    seen: dict[str, set[int]] = defaultdict(set)
    for s in samples:
        if s.label is not None:
            seen[s.value].add(s.label)
    return {v: [c for c in LABELS if c in got] for v, got in sorted(seen.items())}


def train_recognizer(samples: Sequence[Sample], concepts: Sequence[Sequence[str]] | None = None,
                     kind: str = DEFAULT_SMALL_MODEL, encoder_spec: str = "",
                     classes: dict[str, list[int]] | None = None, _emb: _Embeddings | None = None) -> Recognizer:
    """Calibrate a small model on labelled samples; ``concepts`` (one list per sample, the
    judge's per-response concepts) makes it a concept-based recognizer."""
    labelled = [i for i, s in enumerate(samples) if s.label is not None]
    if len(labelled) < 2:
        raise InputError(f"need at least 2 labelled samples to calibrate, got {len(labelled)}")
    rows = [samples[i] for i in labelled]
    got = [concepts[i] for i in labelled] if concepts is not None else None
    classes = classes or value_classes(rows)
    model = make_small_model(kind, encoder_spec, _emb)
    model.fit(rows, got, classes)
    return Recognizer(model, {v: classes[v] for v in sorted({s.value for s in rows})}, concepts is not None, {},
                      {"n_train": len(rows), "kind": kind,
                       "n_train_per_value": dict(sorted(Counter(s.value for s in rows).items())),
                       "label_counts": {LABEL_NAMES[k]: v for k, v in Counter(s.label for s in rows).items()}})
