"""Published reference results: the figures the five papers report for the models they evaluated.

Shipped as data, one JSON file per paper in ``assets/reference/<method>.json``::

    {"method": "vum", "paper": "<title>", "arxiv_id": "2310.00378",
     "search_note": "<how the figures were found, and what could not be>",
     "figures": [{"model": "...", "metric": "...", "value": 0.0, "unit": "...",
                  "arxiv_version": "v4", "table_or_figure": "Table 2", "setting": "...",
                  "quote": "<the row or sentence as the paper prints it>"}]}

Every figure carries its citation (paper, arXiv id and version, table or figure) and is shown
labelled "published", beside (never mixed with) a visitor's own results. Only figures written
in a paper's text belong here: never estimated, never read off a plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "assets" / "reference"
METHODS = ("vum", "svo", "clave", "univar", "denevil")
PAPER_FIELDS = ("method", "paper", "arxiv_id", "search_note", "figures")
#: What every figure must carry: what was measured, its value, and where in which paper it is printed.
FIGURE_FIELDS = ("model", "metric", "value", "unit", "arxiv_version", "table_or_figure", "setting", "quote")
LABEL = "published"


class ReferenceError(ValueError):
    """A reference file or figure without its citation fields."""


@dataclass(frozen=True)
class Figure:
    method: str
    paper: str
    arxiv_id: str
    arxiv_version: str
    table_or_figure: str
    model: str
    metric: str
    value: float
    unit: str
    setting: str
    quote: str

    @property
    def citation(self) -> str:
        return f"{self.paper}, arXiv:{self.arxiv_id}{self.arxiv_version}, {self.table_or_figure}"


@dataclass(frozen=True)
class PaperReference:
    method: str
    paper: str
    arxiv_id: str
    search_note: str
    figures: tuple[Figure, ...]


def _text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ReferenceError(f"{where}: '{key}' is missing or empty")
    return value.strip()


def parse_reference(doc: dict, where: str = "reference") -> PaperReference:
    """Check one paper's reference document; every figure must carry every citation field."""
    if not isinstance(doc, dict):
        raise ReferenceError(f"{where}: not a JSON object")
    missing = [k for k in PAPER_FIELDS if k not in doc]
    if missing:
        raise ReferenceError(f"{where}: missing {', '.join(missing)}")
    method = _text(doc, "method", where)
    if method not in METHODS:
        raise ReferenceError(f"{where}: unknown method {method!r} (one of {', '.join(METHODS)})")
    paper, arxiv_id = _text(doc, "paper", where), _text(doc, "arxiv_id", where)
    if not isinstance(doc["figures"], list):
        raise ReferenceError(f"{where}: 'figures' must be a list")
    figures = []
    for i, fig in enumerate(doc["figures"]):
        at = f"{where}: figure {i + 1}"
        if not isinstance(fig, dict):
            raise ReferenceError(f"{at}: not a JSON object")
        gone = [k for k in FIGURE_FIELDS if k not in fig]
        if gone:
            raise ReferenceError(f"{at}: missing citation field(s) {', '.join(gone)}")
        value = fig["value"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ReferenceError(f"{at}: 'value' must be a finite number as printed in the paper")
        version = _text(fig, "arxiv_version", at)
        if not (version.startswith("v") and version[1:].isdigit()):
            raise ReferenceError(f"{at}: 'arxiv_version' must look like v1, v2, ...")
        figures.append(Figure(method=method, paper=paper, arxiv_id=arxiv_id, arxiv_version=version,
                              table_or_figure=_text(fig, "table_or_figure", at), model=_text(fig, "model", at),
                              metric=_text(fig, "metric", at), value=float(value), unit=_text(fig, "unit", at),
                              setting=_text(fig, "setting", at), quote=_text(fig, "quote", at)))
    return PaperReference(method, paper, arxiv_id, _text(doc, "search_note", where), tuple(figures))


def load_reference(method: str, folder: Path | None = None) -> PaperReference:
    path = Path(folder or REFERENCE_DIR) / f"{method}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReferenceError(f"{path.name}: cannot read: {exc}") from exc
    ref = parse_reference(doc, path.name)
    if ref.method != method:
        raise ReferenceError(f"{path.name}: says method {ref.method!r}")
    return ref


def load_all(folder: Path | None = None) -> dict[str, PaperReference]:
    return {m: load_reference(m, folder) for m in METHODS}


REFERENCE_HEADERS = ["model", "metric", "value", "setting", "source", "label"]


def published_rows(method: str, folder: Path | None = None) -> list[list]:
    """Rows for a table shown beside a visitor's results, each labelled "published" with its citation."""
    ref = load_reference(method, folder)
    return [[f.model, f.metric, f"{f.value:g} {f.unit}".strip(), f.setting, f.citation, LABEL] for f in ref.figures]


def published_markdown(method: str, folder: Path | None = None) -> str:
    """A short block for a tab or report: the paper's published figures, or why none is shipped."""
    ref = load_reference(method, folder)
    head = f"**Published results** ({ref.paper}, arXiv:{ref.arxiv_id}); these are the paper's, not this app's."
    if not ref.figures:
        return f"{head}\n\nNo published figure is shipped for this method yet: {ref.search_note}"
    lines = [head, "", "| " + " | ".join(REFERENCE_HEADERS) + " |", "|" + "---|" * len(REFERENCE_HEADERS)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in published_rows(method, folder)]
    return "\n".join(lines)
