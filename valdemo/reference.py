"""Published reference results: the figures the five papers report for the models they evaluated.

Shipped as data, one JSON file per paper in ``assets/reference/<method>.json``::

    {"method": "vum", "paper": "<title>", "arxiv_id": "2310.00378",
     "search_note": "<how the figures were found, and what could not be>",
     "figures": [{"model": "...", "metric": "...", "value": 0.0, "unit": "...",
                  "arxiv_version": "v4", "table_or_figure": "Table 2", "setting": "...",
                  "quote": "<the row or sentence as the paper prints it>",
                  "read_from": "<optional: where the number was read, when not the arXiv PDF itself>",
                  "read_off_plot": false}]}

Every figure carries its citation (paper, arXiv id and version, table or figure) and is shown
labelled "published", beside (never mixed with) a visitor's own results. Only figures printed
by a paper belong here, never estimated. A figure read from somewhere other than the arXiv PDF
(e.g. the authors' repository showing the paper's table) names that place in ``read_from``;
where the arXiv version it matches could not be checked, ``arxiv_version`` is "unverified" and
``read_from`` is required. ``read_off_plot: true`` marks a value read off a plot rather than
printed as a number; it is shown with that flag (none is shipped so far).
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
#: ``arxiv_version`` of a figure whose arXiv version could not be checked (then ``read_from`` is required).
UNVERIFIED = "unverified"


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

    read_from: str = ""
    read_off_plot: bool = False

    @property
    def citation(self) -> str:
        version = "" if self.arxiv_version == UNVERIFIED else self.arxiv_version
        cite = f"{self.paper}, arXiv:{self.arxiv_id}{version}, {self.table_or_figure}"
        if self.arxiv_version == UNVERIFIED:
            cite += " (arXiv version not checked)"
        if self.read_from:
            cite += f"; read from {self.read_from}"
        if self.read_off_plot:
            cite += "; READ OFF A PLOT, not printed as a number"
        return cite


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
        read_from = fig.get("read_from", "")
        if not isinstance(read_from, str):
            raise ReferenceError(f"{at}: 'read_from' must be text")
        if version == UNVERIFIED:
            if not read_from.strip():
                raise ReferenceError(f"{at}: an 'unverified' arXiv version needs 'read_from' (where the number was read)")
        elif not (version.startswith("v") and version[1:].isdigit()):
            raise ReferenceError(f"{at}: 'arxiv_version' must look like v1, v2, ... (or '{UNVERIFIED}' with 'read_from')")
        read_off_plot = fig.get("read_off_plot", False)
        if not isinstance(read_off_plot, bool):
            raise ReferenceError(f"{at}: 'read_off_plot' must be true or false")
        figures.append(Figure(method=method, paper=paper, arxiv_id=arxiv_id, arxiv_version=version,
                              table_or_figure=_text(fig, "table_or_figure", at), model=_text(fig, "model", at),
                              metric=_text(fig, "metric", at), value=float(value), unit=_text(fig, "unit", at),
                              setting=_text(fig, "setting", at), quote=_text(fig, "quote", at),
                              read_from=read_from.strip(), read_off_plot=read_off_plot))
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


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def published_markdown(method: str, folder: Path | None = None) -> str:
    """A short block for a tab or report: the paper's published figures, or why none is shipped.

    Figures are grouped by where they are printed (table or figure, and setting): one table per
    group, a row per model, a column per metric, each cell labelled "published" in its header,
    and the full citation under the table."""
    ref = load_reference(method, folder)
    head = f"**Published results** ({ref.paper}, arXiv:{ref.arxiv_id}); these are the paper's, not this app's."
    if not ref.figures:
        return f"{head}\n\nNo published figure is shipped for this method yet: {ref.search_note}"
    lines = [head]
    for (where, setting, citation), figs in groups(ref).items():
        metrics = list(dict.fromkeys(f.metric for f in figs))
        models = list(dict.fromkeys(f.model for f in figs))
        cells = {(f.model, f.metric): f"{f.value:g} {f.unit}".strip() for f in figs}
        lines += ["", f"*{_cell(where)}: {_cell(setting)}*", "",
                  f"| model ({LABEL}) | " + " | ".join(_cell(m) for m in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        lines += ["| " + " | ".join([_cell(m), *(cells.get((m, x), "") for x in metrics)]) + " |" for m in models]
        lines += ["", f"Source: {_cell(citation)}."]
    return "\n".join(lines)


def groups(ref: PaperReference) -> dict[tuple[str, str, str], list[Figure]]:
    """The paper's figures by (table or figure, setting, citation), in file order."""
    out: dict[tuple[str, str, str], list[Figure]] = {}
    for f in ref.figures:
        out.setdefault((f.table_or_figure, f.setting, f.citation), []).append(f)
    return out


def published_html(folder: Path | None = None) -> str:
    """Every paper's published figures as HTML for the profile report, each table labelled "published"
    with its full citation; a paper without figures says why in one line."""
    import html

    parts = ['<section class="published" id="published"><h2>Published results (the papers\' own figures, '
             'not this app\'s)</h2>']
    for method in METHODS:
        ref = load_reference(method, folder)
        parts.append(f'<div class="published-paper" data-method="{method}"><h3>{html.escape(ref.paper)} '
                     f'(arXiv:{html.escape(ref.arxiv_id)})</h3>')
        if not ref.figures:
            parts.append(f"<p>No published figure is shipped for this method: {html.escape(ref.search_note)}</p></div>")
            continue
        for (where, setting, citation), figs in groups(ref).items():
            metrics = list(dict.fromkeys(f.metric for f in figs))
            models = list(dict.fromkeys(f.model for f in figs))
            cells = {(f.model, f.metric): f"{f.value:g} {f.unit}".strip() for f in figs}
            head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
            body = "".join("<tr><td>" + html.escape(m) + "</td>"
                           + "".join(f"<td>{html.escape(cells.get((m, x), ''))}</td>" for x in metrics) + "</tr>"
                           for m in models)
            parts.append(f"<p><i>{html.escape(where)}: {html.escape(setting)}</i></p>"
                         f'<table class="published-table"><thead><tr><th>model ({LABEL})</th>{head}</tr></thead>'
                         f"<tbody>{body}</tbody></table><p class=\"source\">Source: {html.escape(citation)}.</p>")
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)
