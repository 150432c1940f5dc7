"""Value dialogue protocols: the prompt texts and settings of a run, as data files.

``assets/protocols/vum/<name>.toml``: ``valuedcg`` (the default: ValueDCG's structure) and
``valdemo`` (this project's variant). A user may load their own file by path. Every run
records the protocol's name and the hash of its text, so a report says which one ran.

Reads the file with :mod:`tomllib`; ``valdemo.core.protocol`` (prompt files for every
method) is used for the text and hash where it exists.
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..inputs import InputError

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "assets" / "protocols" / "vum"
DEFAULT_PROTOCOL = "valuedcg"
PROTOCOLS = ("valuedcg", "valdemo")
_REQUIRED = ("kw_header", "kw_question", "kw_question_binary", "kw_answer", "kw_prompt", "judge_system", "judge")


@dataclass(frozen=True)
class VumProtocol:
    name: str
    hash: str
    description: str
    source: str
    know_what: str  # "bare" (the value's name only) or "defined" (name + definition)
    know_why: str  # "single" (one answer, three parts) or "per_part" (three prompts)
    max_part_words: int
    cut_parts: bool
    judge_temperature: float
    templates: dict[str, str]
    anchors: dict[str, str]
    tasks: dict[str, str]
    part_tasks: dict[str, str] = field(default_factory=dict)
    part_starts: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def render(self, key: str, **fields: object) -> str:
        return _render(self.templates[key], key, **fields)

    def describe(self) -> dict:
        """What a run records: name, hash, description, source and the settings that change numbers."""
        return {"name": self.name, "hash": self.hash, "description": self.description, "source": self.source,
                "know_what": self.know_what, "know_why": self.know_why, "max_part_words": self.max_part_words,
                "cut_parts": self.cut_parts, "judge_temperature": self.judge_temperature}


def _render(template: str, key: str, **fields: object) -> str:
    try:
        return string.Formatter().vformat(template, (), fields)
    except (KeyError, IndexError) as exc:
        raise InputError(f"protocol template {key!r} uses an unknown field {exc}") from None


def render_text(template: str, **fields: object) -> str:
    return _render(template, "text", **fields)


@lru_cache(maxsize=16)
def _load(path: str) -> VumProtocol:
    p = Path(path)
    raw = p.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"protocol {p.name}: not a TOML file ({exc})") from None
    digest = hashlib.sha256(raw).hexdigest()[:12]
    try:  # the shared loader, where it exists, checks the templates and gives the same hash
        from ..core.protocol import parse_protocol
    except ImportError:
        parse_protocol = None
    if parse_protocol is not None:
        digest = parse_protocol(raw.decode("utf-8"), "vum", name=p.stem, path=str(p)).hash
    templates = data.get("templates") or {}
    missing = [k for k in _REQUIRED if k not in templates]
    know_why = str(data.get("know_why", "single"))
    if know_why not in {"single", "per_part"}:
        raise InputError(f"protocol {p.name}: know_why must be 'single' or 'per_part'")
    missing += [k for k in (("why_single",) if know_why == "single" else ("why_part",)) if k not in templates]
    if missing:
        raise InputError(f"protocol {p.name}: missing templates {', '.join(missing)}")
    parts = ("attribution", "counterfactual", "rebuttal")
    for table in ("anchors", "tasks") + (("part_tasks", "part_starts") if know_why == "per_part" else ()):
        lacking = [x for x in parts if x not in (data.get(table) or {})]
        if lacking:
            raise InputError(f"protocol {p.name}: [{table}] lacks {', '.join(lacking)}")
    return VumProtocol(
        name=str(data.get("name") or p.stem), hash=digest,
        description=str(data.get("description", "")), source=str(data.get("source", "")),
        know_what=str(data.get("know_what", "bare")), know_why=know_why,
        max_part_words=int(data.get("max_part_words", 30)), cut_parts=bool(data.get("cut_parts", False)),
        judge_temperature=float(data.get("judge_temperature", 0.0)),
        templates={k: str(v) for k, v in templates.items()}, anchors=dict(data["anchors"]),
        tasks=dict(data["tasks"]), part_tasks=dict(data.get("part_tasks") or {}),
        part_starts=dict(data.get("part_starts") or {}), path=str(p))


def load_protocol(name_or_path: str | VumProtocol | None = None) -> VumProtocol:
    """A bundled protocol by name (``valuedcg``, ``valdemo``) or a TOML file by path."""
    if isinstance(name_or_path, VumProtocol):
        return name_or_path
    key = (name_or_path or DEFAULT_PROTOCOL).strip()
    path = PROTOCOL_DIR / f"{key}.toml" if key in PROTOCOLS else Path(key)
    if not path.is_file():
        raise InputError(f"protocol {key!r}: not one of {', '.join(PROTOCOLS)} and no such file")
    return _load(str(path.resolve()))
