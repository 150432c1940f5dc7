"""CLAVE concepts: the judge model writes value concepts; parsing, editing, storing them."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import store as st
from ..core.result import Failures
from ..inputs import InputError, read_records
from ..models import ChatModel, GenParams, unwrap, user
from ..parsing import Parsed, fence, parse_json_object
from ..values import Value
from .inputs import LABEL_NAMES, ProgressFn, Sample, check_value, value_info

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


def extract_concepts_many(model: ChatModel, values: Sequence[str], samples: Sequence[Sample], per_label: int = 8,
                          max_new_tokens: int = 200) -> dict[str, ConceptResult | None]:
    """:func:`extract_concepts` for several values in one batched call; None for a value with no
    adhering or opposing sample to read."""
    prompts = {}
    for value in values:
        v = check_value(value)
        try:
            prompts[v.key] = concept_prompt(v, [s for s in samples if s.value == v.key], per_label)
        except InputError:
            continue
    keys = list(prompts)
    replies = model.chat_batch([user(prompts[k], CONCEPT_SYSTEM) for k in keys],
                               GenParams(max_new_tokens=max_new_tokens)) if keys else []
    out: dict[str, ConceptResult | None] = {check_value(v).key: None for v in values}
    for k, reply in zip(keys, replies, strict=True):
        parsed = parse_concepts(reply.text)
        out[k] = ConceptResult(k, parsed.value if parsed.ok else {"adheres": [], "opposes": []}, parsed.ok,
                               reply.text, unwrap(model).spec, parsed.reason)
    return out


def save_concepts(store: st.Store, value: str, concepts: dict, model: str, owner: str = "") -> dict:
    """Save a value's concepts, owned by ``owner`` (an Owner id; '' for local tools)."""
    key = check_value(value).key
    clean = {k: [c.strip() for c in concepts.get(k, []) if c and c.strip()] for k in ("adheres", "opposes")}
    if not clean["adheres"] and not clean["opposes"]:
        raise InputError("no concepts to save")
    st.clave_save_concepts(store, key, clean, model, owner)
    return {"value": key, "concepts": clean, "model": model}


def stored_concepts(store: st.Store, owner: str | None = None) -> dict[str, dict]:
    """The latest concepts per value among those ``owner`` may read (None: all)."""
    return {k: v["concepts"] for k, v in st.clave_latest_concepts(store, owner).items()}


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
# per-response concepts (CLAVE step 1, Sec. 3): the judge reads each text
# ---------------------------------------------------------------------------------

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "assets" / "protocols" / "clave"
MAX_CONCEPTS = 5
CONCEPT_MAX_CHARS = 80


@dataclass(frozen=True)
class ConceptProtocol:
    """Prompt templates from a data file (``assets/protocols/clave/<name>.toml``), with the
    hash of the file's text so a run records exactly which prompt wrote its concepts."""

    name: str
    hash: str
    templates: dict

    def render(self, key: str, **fields) -> str:
        return self.templates[key].format(**fields)

    def as_dict(self) -> dict:
        return {"name": self.name, "hash": self.hash}


def load_concept_protocol(name_or_path: str = "concepts") -> ConceptProtocol:
    """Load the concept-extraction prompt (a bundled name or a user's .toml path)."""
    import hashlib
    import tomllib

    p = Path(name_or_path)
    if not p.suffix:
        p = PROTOCOL_DIR / f"{name_or_path}.toml"
    if not p.is_file():
        raise InputError(f"concept protocol {name_or_path!r} not found")
    raw = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p.name}: not valid TOML ({exc})") from None
    templates = data.get("templates", data)
    for key in ("system", "user"):
        if not isinstance(templates.get(key), str):
            raise InputError(f"{p.name}: templates.{key} is missing")
    return ConceptProtocol(str(data.get("name", p.stem)), hashlib.sha256(raw.encode()).hexdigest()[:12],
                           {k: v for k, v in templates.items() if isinstance(v, str)})


def parse_response_concepts(text: str | None) -> Parsed:
    """Concepts from a judge's answer: ``- phrase`` lines (or a JSON list); ``none`` is a valid
    empty answer; anything else without a phrase is a failure."""
    text = (text or "").strip()
    if not text:
        return Parsed.fail("empty answer")
    items: list[str] = []
    start = text.find("[")
    if start >= 0 and text.rfind("]") > start:
        try:
            got = json.loads(text[start:text.rfind("]") + 1])
            items = [str(i) for i in got if isinstance(i, (str, int, float))] if isinstance(got, list) else []
        except json.JSONDecodeError:
            items = []
    if not items:
        for line in text.splitlines():
            m = re.match(r"^\s*(?:[-*•]|\d+[.)])\s*(.+)$", line)
            if m:
                items.append(m.group(1))
    clean = []
    for item in items:
        c = item.strip().strip('"').strip()
        if c and c.lower().rstrip(".") != "none" and c not in clean:
            clean.append(c[:CONCEPT_MAX_CHARS])
    if clean:
        return Parsed(clean[:MAX_CONCEPTS], True)
    if re.fullmatch(r"(?is)\W*none\W*", text):
        return Parsed([], True)
    return Parsed.fail("no concept lines")


def response_concepts(model: ChatModel, texts: Sequence[str], values: Sequence[str],
                      protocol: ConceptProtocol | None = None, max_new_tokens: int = 64,
                      progress: ProgressFn | None = None) -> tuple[list[list[str]], Failures]:
    """CLAVE step 1 per response: the judge reads each text with its value's definition and
    lists the text's value concepts. One batched call through the model (cached when the
    model is the cached wrapper, as ``get_model`` returns it). An unreadable answer is a
    counted failure and that row gets no concepts (the small model sees "no concepts")."""
    protocol = protocol or load_concept_protocol()
    convs = []
    for t, k in zip(texts, values, strict=True):
        v = value_info(k)
        convs.append(user(protocol.render("user", value_name=v.name, definition=v.definition,
                                          text_block=fence(t, "TEXT"), max_concepts=MAX_CONCEPTS),
                          protocol.render("system")))
    replies = model.chat_batch(convs, GenParams(max_new_tokens=max_new_tokens, temperature=0.0), progress=progress)
    fails = Failures("concept extraction")
    out = []
    for r in replies:
        parsed = parse_response_concepts(r.text)
        fails.add(parsed.ok, parsed.reason)
        out.append(list(parsed.value) if parsed.ok else [])
    return out, fails
