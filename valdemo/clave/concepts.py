"""CLAVE concepts: the judge model writes value concepts; parsing, editing, storing them."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import store as st
from ..inputs import InputError, read_records
from ..models import ChatModel, GenParams, unwrap, user
from ..parsing import Parsed, fence, parse_json_object
from ..values import Value
from .inputs import LABEL_NAMES, Sample, check_value

log = logging.getLogger(__name__)

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
