"""Value profile tab (issue 9): the five methods on one or more models; a report to download.

Thin: :mod:`valdemo.profile` runs the methods and builds every number, table and
figure; this module reads the widgets and renders.
"""

from __future__ import annotations

import logging
import tempfile

import gradio as gr
import pandas as pd

from .. import profile as prof
from ..core.cancel import cancel_scope
from ..inputs import check_int
from ..values import SCHWARTZ
from . import example_report as example
from .common import request_owner, resolve_model, session_credentials, stop_button, stop_token, ui_errors
from .lazy import draw_on_load
from .published import published_all_accordion

log = logging.getLogger(__name__)

INTRO = (
    "### Value profile\n"
    "One run puts the five methods on the same model(s): value understanding (VUM), social value orientation "
    "(SVO), adherence of its own answers (CLAVE, when a recognizer has been calibrated), position in the value "
    "space (UniVaR), and moral violations with and without value instructions (DeNEVIL/VILMO). Leave *Models* "
    "empty to profile the Models panel's target; the judge comes from the Models panel. **quick** asks a few "
    "items per method; **full** the bundled sets. Answers are cached: a rerun is fast."
)
ALL = "all models (side by side)"
SECTIONS = ("vum", "clave", "svo", "univar", "denevil")


def _section_md(profile: dict, method: str, specs: list[str]) -> str:
    lines = [f"#### {prof.TITLES[method]}", f"_{prof.DEFINITIONS[method]}_", ""]
    if prof.protocol_note(profile, method, specs):
        lines += [f"{prof.protocol_note(profile, method, specs)}", ""]
    lines += [f"> ⚠️ {e}" for e in prof.section_errors(profile, method, specs)]
    lines += [f"- {n}" for n in prof.section_notes(profile, method, specs)]
    lines += ["", prof.md_table(prof.section_table(profile, method, specs))]
    n = sum(profile["profiles"][s]["methods"][method]["n_rows"] for s in specs)
    lines += ["", f"Rows behind these numbers: {n} (method `{method}` in the rows file below)."]
    return "\n".join(lines)


def _status_md(profile: dict) -> str:
    lines = [example.status_prefix(profile)] if profile.get("example") else []
    if profile["caveat"]:
        lines.append(f"> ⚠️ **{profile['caveat']}** (bundled: {', '.join(profile['bundled_models'])})")
    if prof.same_model_warning(profile):
        lines.append(f"> ⚠️ {prof.same_model_warning(profile)}")
    failed = [f"{s} · {m}" for s, p in profile["profiles"].items() for m, sec in p["methods"].items()
              if sec["status"] == "error"]
    lines.append(f"Run `{profile.get('run_id')}` · size **{profile['size']}** · judge `{profile['judge']}` · "
                 f"{profile['seconds']:.1f} s · cache hits **{profile['cache']['hits']}**, misses "
                 f"{profile['cache']['misses']}" + (f" · ⚠️ failed: {', '.join(failed)}" if failed else ""))
    if prof.size_settings_text(profile):
        lines.append(prof.size_settings_text(profile))
    return "\n\n".join(lines)


def render(profile: dict | None, view: str):
    """The page for one model, or all models side by side: status, headline, sections, plots."""
    if not profile:
        return ["", None, *[""] * len(SECTIONS), *[None] * len(prof.FIGURES)]
    all_specs = list(profile["profiles"])
    specs = [view] if view in all_specs else all_specs
    if len(specs) == 1:
        head = [{"metric": r["metric"], "value [95% CI] (n)": prof.fmt(r["value"]), "method": r["method"],
                 "source": r["source"]}
                for r in profile["profiles"][specs[0]]["headline"]]
    else:
        head = prof.comparison_table(profile)
    figs = prof.figures(profile, specs)
    return [_status_md(profile), pd.DataFrame(head), *[_section_md(profile, m, specs) for m in SECTIONS],
            *[figs[m] for m in prof.FIGURES]]


def render_page(profile: dict | None, view: str):
    """``render`` and the one-page readout (cards, one plain sentence per method; issue 18)."""
    if not profile:
        return [*render(profile, view), ""]
    specs = [view] if view in profile["profiles"] else list(profile["profiles"])
    return [*render(profile, view), example.example_readout(profile, specs)]


def first_load():
    """What the tab shows before any run: the example profile of the bundled model, labelled so."""
    profile = example.load_example()
    empty = [None, gr.update(), None, None, *render_page(None, ALL)]
    if profile is None:  # not shipped: the tab opens empty, as before
        return empty
    choices = [ALL, *profile["models"]] if len(profile["models"]) > 1 else list(profile["models"])
    try:
        report, data = example.served_files()
        return [profile, gr.update(choices=choices, value=choices[0]), report, data, *render_page(profile, choices[0])]
    except (KeyError, TypeError, ValueError) as exc:  # an example older than the profile's shape: the page still loads
        log.warning("the example profile does not render (%s: %s); rebuild it with scripts/build_example_report.py",
                    type(exc).__name__, exc)
        return empty


def build(ctx) -> None:
    gr.Markdown(INTRO)
    state = gr.State(None)
    with gr.Row():
        models = gr.Textbox(label="Models", placeholder="empty: the Models panel's target; or specs, comma separated",
                            elem_id="profile-models", scale=3)
        size = gr.Radio(["quick", "full"], value="quick", label="Size", elem_id="profile-size", scale=1)
        max_tokens = gr.Number(0, precision=0, label="Max new tokens (0: each method's default)", scale=1,
                               elem_id="profile-max-tokens")
        values = gr.Dropdown([(v.name, v.key) for v in SCHWARTZ], multiselect=True, value=[], scale=2,
                             label="Value-dialogue values (empty: all ten)", elem_id="profile-values")
        recognizer = gr.Textbox("", label="CLAVE recognizer (its name or id; empty: your newest)", scale=2,
                                elem_id="profile-clave-recognizer")
    with gr.Row() as stop_row:
        run_btn = gr.Button("Run profile", variant="primary", elem_id="profile-run", scale=4)
    status = gr.Markdown(elem_id="profile-status")
    readout = gr.HTML(elem_id="profile-readout")  # cards: one plain sentence per method, per model
    view = gr.Dropdown([ALL], value=ALL, label="Page", info="one model's page, or all models side by side",
                       elem_id="profile-view", interactive=True)
    headline = gr.Dataframe(label="Headline", elem_id="profile-headline", interactive=False, wrap=True,
                            # the value column wide enough for "0.550 [0.342, 0.742] (n=20)"; long names wrap
                            column_widths=["34%", "24%", "12%", "30%"])
    mds: dict[str, gr.Markdown] = {}
    plots: dict[str, gr.Plot] = {}
    for method in SECTIONS:
        with gr.Row(equal_height=False):
            if method in prof.FIGURES:
                plots[method] = gr.Plot(label=prof.TITLES[method], elem_id=f"profile-plot-{method}", scale=3)
            mds[method] = gr.Markdown(elem_id=f"profile-{method}", scale=2)  # its table needs room beside the plot
    with gr.Row():
        download = gr.DownloadButton("Download report", elem_id="profile-download")
        files = gr.File(label="profile.json and rows.jsonl (every number's rows)", file_count="multiple",
                        elem_id="profile-files", interactive=False)
    published_all_accordion("profile-published")
    # The summary stays an output of the API; the page shows it as the cards and tables above.
    summary = gr.JSON(label="Summary per model", elem_id="profile-summary", visible=False)
    from .recorded import build_replayed  # issue 20: the replayed ValueDCG models, also in the report

    build_replayed("profile")
    page_outputs = [status, headline, *[mds[m] for m in SECTIONS], *[plots[m] for m in prof.FIGURES], readout]

    @ui_errors
    def run(models_text, size_value, tokens, value_keys, target, judge, creds, recognizer_ref="", progress=gr.Progress(),
            request: gr.Request = None, oauth_profile: gr.OAuthProfile | None = None):
        specs = prof.parse_specs(models_text if (models_text or "").strip() else target)
        tokens = check_int(tokens or 0, "max new tokens", 0, 1024)
        config = prof.ProfileConfig(size=size_value or "quick", max_new_tokens=tokens or None,
                                    values=tuple(value_keys or ()), clave_recognizer=(recognizer_ref or "").strip())
        resolve_model(judge or "local", creds)  # a bad judge spec is the person's error, before any run
        stop = stop_token()  # the Stop button: what finished is kept, the rest says it was stopped
        with cancel_scope(stop):  # and a generation running when Stop is pressed ends at its next token
            profile = prof.run_profile(specs, judge or "local", config, creds=session_credentials(creds),
                                       store=ctx.store, progress=lambda f, label: progress(f, desc=label),
                                       should_stop=stop.is_set, source="ui",
                                       owner=request_owner(request, oauth_profile).id)  # the visitor's run (issue 12)
        paths = prof.write_report(profile, tempfile.mkdtemp(prefix="valdemo-profile-"))
        choices = [ALL, *profile["models"]] if len(profile["models"]) > 1 else list(profile["models"])
        return [profile, gr.update(choices=choices, value=choices[0]),
                str(paths["html"]), [str(paths["json"]), str(paths["rows"])],
                prof.summary_json(profile), *render_page(profile, choices[0])]

    run_event = run_btn.click(run, [models, size, max_tokens, values, ctx.target, ctx.judge, ctx.creds, recognizer],
                              [state, view, download, files, summary, *page_outputs], api_name="profile_run",
                              **ctx.model_event())
    with stop_row:
        stop_button(run_event, "profile-stop", cancel=False, api_name="profile_stop")
    view.change(render_page, [state, view], page_outputs, api_name="profile_view")
    draw_on_load(first_load, state, view, download, files, *page_outputs)  # the example opens at once
