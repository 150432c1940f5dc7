"""Projection (UMAP, PCA), the explorer's figures and neighbours, exports."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inputs import InputError, check_float, check_int
from .sets import COLOR_BY, PROJECTIONS, UMAP_METRICS, EmbeddedSet, QAPair, _normalise


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


def heatmap_figure(names: Sequence[str], dist: np.ndarray, space: str = ""):
    """Cosine distances between source centroids; ``space`` (naming its encoder) goes in the title."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=np.round(dist, 4), x=list(names), y=list(names), colorscale="Viridis_r",
                               colorbar=dict(title="cosine<br>distance"),
                               hovertemplate="%{y} ↔ %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=max(320, 60 * len(names) + 120), margin=dict(l=10, r=10, t=60, b=10),
                      title="Distance between source centroids" + (f"<br><sub>{space}</sub>" if space else ""),
                      template="plotly_white")
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


