"""CLAVE plots (plotly, no gradio): confusion matrices per method, the learning curve."""

from __future__ import annotations

from .inputs import LABEL_NAMES, LABELS

SHORT = {"recognizer": "recognizer", "no_concepts": "no concepts", "embed_zero_shot": "embedding sim.",
         "llm_zero_shot": "judge zero-shot", "llm_concepts": "judge + concepts", "majority": "majority"}


def confusion_figure(report: dict):
    """Held-out rows of all values pooled: human label (rows) against each method's prediction."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = report["methods"]
    names = [LABEL_NAMES[k] for k in LABELS]
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=[SHORT[m] for m in methods],
                        horizontal_spacing=0.04, shared_yaxes=True)
    for i, m in enumerate(methods, start=1):
        z = report["overall"][m]["confusion"]
        fig.add_trace(go.Heatmap(z=z, x=names, y=names, colorscale="Blues", showscale=False,
                                 text=z, texttemplate="%{text}"), row=1, col=i)
        fig.update_xaxes(title_text="predicted", row=1, col=i)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="human", row=1, col=1)
    fig.update_layout(height=320, margin={"t": 40, "b": 40, "l": 60, "r": 10})
    return fig


def curve_figure(report: dict):
    """Mean macro-F1 over values against labels per value (mean ± sd over folds and orders),
    with the best uncalibrated baseline as a line."""
    import plotly.graph_objects as go

    curve = report.get("learning_curve") or []
    fig = go.Figure(go.Scatter(x=[c["n_per_value"] for c in curve], y=[c["macro_f1"] for c in curve],
                               error_y={"type": "data", "array": [c["sd"] for c in curve]},
                               mode="lines+markers", name="recognizer"))
    goal = report.get("goal") or {}
    base = goal.get("best_baseline")
    if base:
        fig.add_hline(y=report["overall"][base]["macro_f1"]["value"] or 0.0, line_dash="dot",
                      annotation_text=f"{SHORT[base]} (no calibration)")
    fig.update_layout(height=300, xaxis_title="labels per value used for calibration",
                      yaxis_title="mean macro-F1 over values (held out)", xaxis_type="log",
                      yaxis_range=[0, 1], margin={"t": 20, "b": 40, "l": 60, "r": 10})
    return fig
