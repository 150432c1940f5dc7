"""Moral principles grouped by Moral Foundations Theory: the bundled set and uploads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..inputs import InputError, check_text, read_records
from ..values import MORAL_FOUNDATIONS

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "denevil"
PRINCIPLES_FILE = ASSETS / "principles.csv"

#: Moral foundations by lower-case key ("care", "fairness", ...).
FOUNDATIONS: dict[str, str] = {v.key.lower(): v.name for v in MORAL_FOUNDATIONS}
_FOUNDATION_ALIASES = {"harm": "care", "care/harm": "care", "cheating": "fairness", "betrayal": "loyalty",
                       "subversion": "authority", "degradation": "sanctity", "purity": "sanctity",
                       "ingroup": "loyalty", "in-group": "loyalty"}

#: The three defence conditions, in display order.



# -- principles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Principle:
    """A moral principle, its foundation, and optionally a ready story beginning."""

    foundation: str  # key of FOUNDATIONS
    text: str
    prompt: str = ""

    @property
    def label(self) -> str:
        return f"[{self.foundation}] {self.text}"


def normalise_foundation(name: object, where: str = "foundation") -> str:
    """A foundation key from "care", "Care / harm", "harm", ...; InputError naming the choices."""
    raw = " ".join(str(name or "").strip().lower().split())
    if not raw:
        raise InputError(f"{where}: foundation is empty (choose one of {', '.join(FOUNDATIONS)})")
    compact = raw.replace(" ", "")
    if compact in _FOUNDATION_ALIASES:
        return _FOUNDATION_ALIASES[compact]
    first = re.split(r"[/\s]", raw)[0]
    if first in FOUNDATIONS:
        return first
    for key, label in FOUNDATIONS.items():
        if raw == label.lower():
            return key
    raise InputError(f"{where}: unknown foundation {str(name).strip()!r} (choose one of {', '.join(FOUNDATIONS)})")


def make_principle(text: object, foundation: object, prompt: object = "", where: str = "principle") -> Principle:
    """A checked Principle from what a person typed."""
    principle = check_text(text, f"{where}: principle", max_chars=500)
    found = normalise_foundation(foundation, where)
    story = check_text(prompt, f"{where}: prompt", max_chars=2000) if (prompt or "").strip() else ""
    return Principle(found, principle, story)


def load_principles(path: str | Path) -> list[Principle]:
    """Principles from a CSV or JSONL upload with ``foundation,principle[,prompt]``.

    Errors name the file and the row (CSV: header = row 1; JSONL: line number).
    """
    p = Path(path)
    rows = read_records(p, ("foundation", "principle"), ("prompt",), what="principles file")
    first_row = 1 if p.suffix.lower() in {".jsonl", ".json", ".ndjson"} else 2
    return [make_principle(r["principle"], r["foundation"], r.get("prompt", ""), where=f"{p.name} row {n}")
            for n, r in enumerate(rows, start=first_row)]


@lru_cache(maxsize=1)
def _bundled() -> tuple[Principle, ...]:
    return tuple(load_principles(PRINCIPLES_FILE))


def bundled_principles(foundation: str | None = None) -> list[Principle]:
    """The project's bundled principles (at least 10 per foundation), optionally one foundation's."""
    key = normalise_foundation(foundation) if foundation else None
    return [p for p in _bundled() if key is None or p.foundation == key]


def bundled_prompts(per_foundation: int | None = None) -> list[Principle]:
    """Bundled principles that carry a ready story beginning, ``per_foundation`` of each at most."""
    out: list[Principle] = []
    for key in FOUNDATIONS:
        ready = [p for p in bundled_principles(key) if p.prompt]
        out += ready[:per_foundation] if per_foundation else ready
    return out


def find_principle(text: str) -> Principle | None:
    """The bundled principle with this text (case-insensitive), if any."""
    wanted = " ".join(text.lower().split())
    return next((p for p in _bundled() if " ".join(p.text.lower().split()) == wanted), None)
