"""Runs: reopen any saved run of any method (the visitor's own), compare two, download the rows.

Handlers are module-level functions of plain arguments (an owner id, a run id); the tab's
events derive the owner from the Gradio request (signed-in user, else the session in public
mode, else the local owner), so in public mode nobody sees another visitor's runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from ..core import runview as V
from ..core.result import METRICS_HEADERS
from ..core.runs import FORMAT, result_from_dict
from .common import request_owner, ui_errors

#: At most this many rows are shown on the page; the download has them all.
ROWS_SHOWN = 500

INTRO = (
    "Every run saved by a tab, the API or the CLI (`python -m valdemo runs`) can be reopened here: "
    "its metrics with n and 95% intervals and their sources, failures with their denominators, the "
    "protocol (name and hash), the models, caveats and rows. You see only your own runs"
    " (signed in: your Hugging Face name; on a public Space without sign-in: this browser session)."
)
NO_RUNS = ("_You have no saved runs yet. Every evaluation you run in a tab is saved under your name and "
           "shows up here (press **Refresh my runs**)._")
NOTHING_OPEN = "_No run opened yet: choose one of your runs above and press **Open**._"


def runs_list(owner: str, method: str = "") -> pd.DataFrame:
    """The runs ``owner`` may read, newest first (:data:`valdemo.core.runview.LIST_HEADERS`)."""
    return pd.DataFrame(V.list_table(owner, (method or "").strip() or None), columns=V.LIST_HEADERS)


def run_header(run: dict) -> str:
    s = V.summary(run)
    lines = [f"### Run `{s['id']}` · {s['method']}", f"Saved {s['when']} UTC"
             + (f" from the {s['source']}" if s["source"] else "") + f" · {s['rows']} rows."]
    proto = V.protocol_text(s["protocol"])
    if proto:
        lines.append(f"**Protocol:** {proto}")
    models = V.models_text(s["models"])
    if models:
        lines.append(f"**Models:** {models}")
    if s["format"] is None:
        lines.append("**Saved summary (as saved):** `" + str(s.get("saved_summary"))[:2000] + "`")
    return "\n\n".join(lines)


def caveats_markdown(run: dict) -> str:
    return "\n".join(f"> ⚠️ {c}" for c in V.caveats_of(run))


def rows_frame(run: dict, limit: int = ROWS_SHOWN) -> pd.DataFrame:
    headers, values = V.row_table((run.get("rows") or [])[:limit])
    return pd.DataFrame(values, columns=headers)


def runs_show(run_id: str, owner: str) -> tuple[str, pd.DataFrame, pd.DataFrame, str, pd.DataFrame, str]:
    """(header markdown, metrics, failures, caveats markdown, rows, CSV file of all rows)."""
    run = V.open_run(run_id, owner)
    path = Path(tempfile.mkdtemp(prefix="valdemo-run-")) / f"{run['id']}.csv"
    V.export_rows(run, path)
    n = len(run.get("rows") or [])
    header = run_header(run)
    if n > ROWS_SHOWN:
        header += f"\n\nThe first {ROWS_SHOWN} of {n} rows are shown below; the download has all {n}."
    return (header, pd.DataFrame(V.metric_rows(run), columns=METRICS_HEADERS),
            pd.DataFrame(V.failure_rows(run), columns=V.FAILURE_HEADERS), caveats_markdown(run),
            rows_frame(run), str(path))


def runs_compare(run_a: str, run_b: str, owner: str) -> tuple[pd.DataFrame, str]:
    """Metrics present in both runs with each run's value, interval and n; a note on the rest."""
    a, b = V.open_run(run_a, owner), V.open_run(run_b, owner)
    rows, only_a, only_b = V.compare_rows(a, b)
    note = [f"**A** = `{a['id']}` ({a['method']}), **B** = `{b['id']}` ({b['method']}). Each interval is that "
            "run's own 95% interval; the runs need not share items, so overlapping intervals are not a test "
            "of the difference."]
    if not rows:
        note.append("The two runs have no metric in common.")
    if only_a:
        note.append("Only in A: " + ", ".join(only_a))
    if only_b:
        note.append("Only in B: " + ", ".join(only_b))
    return pd.DataFrame(rows, columns=V.COMPARE_HEADERS), "\n\n".join(note)


def metric_figure(run: dict):
    """Value with its 95% interval per group for the metric most groups share (e.g. know-what
    accuracy per value), else the headline metrics; None where the run has no metric to draw."""
    if run.get("format") != FORMAT:
        return None
    res = result_from_dict(run)
    counts: dict[str, int] = {}
    for ms in res.groups.values():
        for m in ms:
            counts[m.name] = counts.get(m.name, 0) + 1
    if counts:
        name = max(counts, key=counts.get)
        points = [(g, next(m for m in ms if m.name == name)) for g, ms in res.groups.items()
                  if any(m.name == name for m in ms)]
        title = f"{points[0][1].title} per group"
    else:
        points = [(m.title, m) for m in res.metrics]
        title = "Headline metrics"
    points = [(g, m) for g, m in points if m.value is not None]
    if not points:
        return None
    import plotly.graph_objects as go

    lo = [m.value - m.interval[0] if m.interval else 0 for _, m in points]
    hi = [m.interval[1] - m.value if m.interval else 0 for _, m in points]
    fig = go.Figure(go.Scatter(x=[m.value for _, m in points], y=[f"{g} (n={m.n})" for g, m in points],
                               mode="markers", error_x={"type": "data", "array": hi, "arrayminus": lo}))
    fig.update_layout(title=f"{title}: value with its 95% interval", height=140 + 28 * len(points),
                      margin={"l": 10, "r": 10, "t": 50, "b": 30}, yaxis={"autorange": "reversed"})
    return fig


def _ids(table) -> list[str]:
    if isinstance(table, pd.DataFrame):
        return [str(v) for v in table.iloc[:, 0].tolist()] if len(table.columns) else []
    data = (table or {}).get("data", []) if isinstance(table, dict) else (table or [])
    return [str(r[0]) for r in data if r and r[0]]


def build(ctx) -> None:
    from gradio.context import Context as GradioContext

    gr.Markdown(INTRO)
    with gr.Row():
        method = gr.Textbox(label="Method (empty: all)", placeholder="vum, svo, clave, univar, denevil, profile",
                            scale=3, elem_id="runs-method")
        list_btn = gr.Button("Refresh my runs", scale=1, elem_id="runs-refresh")
    none_yet = gr.Markdown(NO_RUNS, elem_id="runs-none")
    table = gr.Dataframe(headers=V.LIST_HEADERS, visible=False, label="Your runs (newest first)", interactive=False,
                         wrap=True, max_height=360, elem_id="runs-table")
    with gr.Row():
        pick = gr.Dropdown([], label="Run to open", allow_custom_value=True, scale=3, elem_id="runs-pick")
        open_btn = gr.Button("Open", variant="primary", scale=1, elem_id="runs-open")
    header = gr.Markdown(NOTHING_OPEN, elem_id="runs-header")
    with gr.Column(visible=False) as opened:
        caveats = gr.Markdown(elem_classes=["caveat"])
        metrics = gr.Dataframe(headers=METRICS_HEADERS, label="Metrics (value, 95% interval, n, source)",
                               interactive=False, wrap=True, elem_id="runs-metrics")
        failures = gr.Dataframe(headers=V.FAILURE_HEADERS, label="Failures (counted, never scored)",
                                interactive=False, wrap=True, elem_id="runs-failures")
        plot = gr.Plot(label="Metrics with their 95% intervals", elem_id="runs-plot")
        rows = gr.Dataframe(label="Rows", interactive=False, wrap=True, max_height=420, elem_id="runs-rows")
        download = gr.File(label="Download all rows (CSV)", elem_id="runs-download")
    with gr.Accordion("Compare two runs", open=False, elem_id="runs-compare-box"):
        with gr.Row():
            pick_a = gr.Dropdown([], label="Run A", allow_custom_value=True)
            pick_b = gr.Dropdown([], label="Run B", allow_custom_value=True)
            cmp_btn = gr.Button("Compare", elem_id="runs-compare")
        cmp_note = gr.Markdown()
        cmp_table = gr.Dataframe(headers=V.COMPARE_HEADERS, label="Metrics in both runs", interactive=False,
                                 wrap=True, elem_id="runs-compare-table")

    from . import recorded  # import recorded outputs; the replayed ValueDCG models side by side (issue 20)

    recorded.build(ctx)

    @ui_errors
    def list_ui(method: str = "", request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return runs_list(request_owner(request, profile).id, method)

    @ui_errors
    def show_ui(run_id: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return runs_show(run_id, request_owner(request, profile).id)

    @ui_errors
    def plot_ui(run_id: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return metric_figure(V.open_run(run_id, request_owner(request, profile).id))

    @ui_errors
    def compare_ui(run_a: str, run_b: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        frame, note = runs_compare(run_a, run_b, request_owner(request, profile).id)
        return frame, note

    def choices(frame):
        ids = _ids(frame)
        first = ids[0] if ids else None
        second = ids[1] if len(ids) > 1 else first
        return (gr.update(choices=ids, value=first), gr.update(choices=ids, value=second),
                gr.update(choices=ids, value=first), gr.update(visible=bool(ids)), gr.update(visible=not ids))

    list_btn.click(list_ui, [method], [table], api_name="runs_list").then(
        choices, [table], [pick, pick_a, pick_b, table, none_yet], api_visibility="private", queue=False)
    open_btn.click(show_ui, [pick], [header, metrics, failures, caveats, rows, download], api_name="runs_show").success(
        lambda: gr.update(visible=True), None, [opened], api_visibility="private", queue=False).then(
        plot_ui, [pick], [plot], api_visibility="private")
    cmp_btn.click(compare_ui, [pick_a, pick_b], [cmp_table, cmp_note], api_name="runs_compare")
    # The visitor's own runs are listed when the page loads (no endpoint of its own).
    GradioContext.root_block.load(list_ui, [method], [table], api_visibility="private", queue=False,
                                  show_progress="hidden").then(
        choices, [table], [pick, pick_a, pick_b, table, none_yet], api_visibility="private", queue=False)
