"""Import recorded outputs of any method, and the replayed ValueDCG models side by side (Runs tab).

Handlers are module-level functions of plain arguments; the tab derives the owner from the request.
The scoring is each method's own (:mod:`valdemo.recorded`); nothing here calls a model.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from .. import recorded as REC
from ..core.recorded import LABEL
from ..core.result import METRICS_HEADERS, metrics_table
from ..inputs import InputError
from ..vum import replay as R
from .common import request_owner, ui_errors

INTRO = (f"Score outputs generated elsewhere (your own cluster, vLLM, TGI) with the same code as the live tabs, "
         f"without calling a model: one JSONL file of recorded rows per import, in the shapes of "
         f"`docs/recorded_runs.md`. Malformed rows are counted with their line numbers. Each import is "
         f"saved as a run labelled **{LABEL}**. DeNEVIL rows without a recorded violation probability are "
         f"counted as judge failures here (the CLI takes `--judge SPEC`); UniVaR runs the bundled encoder.")
FAILURE_HEADERS = ["step", "failed", "of", "reasons", "lines"]


def replay_recorded(method: str, upload: str | None, save: bool = True, owner: str = ""):
    """(notes markdown, metrics table, failures table, summary JSON) of one recorded file."""
    method = (method or "").strip().lower()
    if method not in REC.METHODS:
        raise InputError(f"choose a method: {', '.join(REC.METHODS)}")
    if not upload:
        raise InputError("upload a .jsonl file of recorded rows")
    up = Path(upload)
    if up.suffix.lower() not in {".jsonl", ".ndjson"}:
        raise InputError(f"{up.name}: upload a .jsonl file (one JSON object a line)")
    results = REC.import_file(method, up, owner=owner or None)
    runs = REC.save_all(results, owner=owner, source="ui") if save else []
    metric_rows, fail_rows, notes = [], [], []
    for i, res in enumerate(results):
        who = res.models.get("target")
        tag = f"{who} · " if method == "vum" else ""
        for c in res.caveats:
            if c not in notes:
                notes.append(c)
        blocks = [("", res.metrics)] + list(res.groups.items())
        for name, ms in blocks:
            for row in metrics_table(ms):
                metric_rows.append([f"{tag}{name + ' · ' if name else ''}{row[0]}", *row[1:]])
        bad = res.extra.get("malformed_rows") or {}
        for f in res.failures:
            lines = bad.get("lines", {}) if f.step == bad.get("step") else {}
            fail_rows.append([f"{tag}{f.step}", f.failed, f.total, ", ".join(f"{k}: {v}" for k, v in f.reasons.items()),
                              "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in lines.items())])
        if runs:
            notes.append(f"Saved as run `{runs[i]}`" + (f" ({who})" if method == "vum" else "") + ".")
    summary = {"label": LABEL, "method": method, "file": up.name, "runs": runs,
               "results": [{k: v for k, v in r.as_dict().items() if k != "rows"} | {"n_rows": len(r.rows)}
                           for r in results]}
    return ("\n\n".join(f"**{n}**" if i == 0 else n for i, n in enumerate(notes)),
            pd.DataFrame(metric_rows, columns=METRICS_HEADERS), pd.DataFrame(fail_rows, columns=FAILURE_HEADERS),
            summary)


def replayed_view(owner: str):
    """(note, table, figure) of the newest saved VUM replay run per model that ``owner`` may read."""
    rep = R.replayed_models(owner)
    if not rep["models"]:
        return ("_No replayed ValueDCG runs yet: replay the release in the Value dialogue tab (**Replay a recorded "
                "release**) or with `python -m valdemo vum replay --valuedcg DIR`._",
                pd.DataFrame([], columns=R.REPLAYED_HEADERS), None)
    warns = [f"⚠ {w}" for w in R.gap_warnings(rep)]
    return ("\n\n".join([f"**{R.REPLAYED_NOTE}**", *warns]), pd.DataFrame(R.replayed_table(rep), columns=R.REPLAYED_HEADERS),
            R.scaling_figure(R.scaling_points(rep)))


def build_replayed(prefix: str, api_name: str | None = None) -> None:
    """The replayed ValueDCG models side by side (the scaling picture), from the visitor's saved replay runs."""
    with gr.Accordion("Replayed ValueDCG models side by side (recorded outputs, not run here)", open=False,
                      elem_id=f"{prefix}-replayed-box"):
        rp_btn = gr.Button("Show replayed models", elem_id=f"{prefix}-replayed-show")
        rp_note = gr.Markdown(elem_id=f"{prefix}-replayed-note")
        rp_table = gr.Dataframe(headers=R.REPLAYED_HEADERS, label=f"Per model ({LABEL}, not run here)",
                                interactive=False, wrap=True, elem_id=f"{prefix}-replayed-table")
        rp_plot = gr.Plot(label="Know what vs know why by model (95% intervals)", elem_id=f"{prefix}-replayed-plot")

    @ui_errors
    def replayed_ui(request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return replayed_view(request_owner(request, profile).id)

    rp_btn.click(replayed_ui, None, [rp_note, rp_table, rp_plot],
                 **({"api_name": api_name} if api_name else {"api_visibility": "private"}))


def build(ctx) -> None:
    build_replayed("runs", api_name="replayed_models")
    with gr.Accordion("Import recorded outputs (any method)", open=False, elem_id="runs-import-box"):
        gr.Markdown(INTRO)
        with gr.Row():
            method = gr.Dropdown(list(REC.METHODS), value="svo", label="Method", elem_id="runs-import-method")
            upload = gr.File(label="Recorded rows (.jsonl)", file_types=[".jsonl", ".ndjson"], type="filepath",
                             elem_id="runs-import-file")
            save = gr.Checkbox(True, label="Save as a run")
        go = gr.Button("Import and score", variant="primary", elem_id="runs-import-run")
        notes = gr.Markdown(elem_classes=["caveat"], elem_id="runs-import-notes")
        metrics = gr.Dataframe(headers=METRICS_HEADERS, label="Metrics (value, 95% interval, n, source)",
                               interactive=False, wrap=True, elem_id="runs-import-metrics")
        failures = gr.Dataframe(headers=FAILURE_HEADERS, label="Failures (counted, never scored; malformed rows "
                                                               "by line)", interactive=False, wrap=True,
                                elem_id="runs-import-failures")
        summary = gr.JSON(label="Summary", elem_id="runs-import-summary")

    @ui_errors
    def import_ui(method: str, upload: str | None, save: bool, request: gr.Request = None,
                  profile: gr.OAuthProfile | None = None):
        return replay_recorded(method, upload, bool(save), request_owner(request, profile).id)

    go.click(import_ui, [method, upload, save], [notes, metrics, failures, summary], api_name="replay_recorded")
