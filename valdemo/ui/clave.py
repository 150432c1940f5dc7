"""Calibrate evaluator tab (CLAVE, issue 5): label by keyboard, concepts, calibration, agreement.

Thin: every decision and number comes from :mod:`valdemo.clave`; this module only
wires components and renders. Labels are committed to SQLite before the
acknowledgement is shown.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import gradio as gr

from .. import clave
from ..core.owner import annotator_label, is_public
from ..core.result import Metric
from ..inputs import InputError
from ..values import SCHWARTZ_KEYS
from .common import (
    caveat_markdown,
    label_identity,
    oauth_enabled,
    progress_callback,
    request_owner,
    resolve_model,
    ui_errors,
)
from .published import published_accordion

ALL = "all values"


def whose_labels(who: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None = None) -> str | None:
    """Whose labels a calibration uses (issue 12): the name given; empty means the visitor's own:
    the signed-in user's, or locally all labels (they all belong to the one local owner). In public
    mode with nobody signed in labels are kept under typed names, so a name must be given."""
    who = (who or "").strip()
    if who:
        return who
    owner = request_owner(request, profile)
    if owner.verified:
        return owner.name
    if is_public():
        raise InputError("say whose labels to calibrate on (your annotator name): empty would take every "
                         "visitor's labels")
    return None


def reader_identity(name: str | None, request: gr.Request | None,
                    profile: gr.OAuthProfile | None = None) -> tuple[str, bool]:
    """(annotator, verified) for reading one annotator's queue, labels or progress: with sign-in on
    only your own (another name is refused); without it the typed name, unverified."""
    annotator, verified, _ = label_identity(name, request, profile)
    return annotator, verified
NAME_KEY = "valdemo-clave-annotator"
KEY_IDS = {"1": "clave-adheres", "2": "clave-opposes", "3": "clave-unrelated", "s": "clave-skip", "u": "clave-undo"}

# A document-level listener: number keys and s/u click the labelling buttons while they are
# visible, except when the person is typing in a text field (the note, the annotator name).
KEYBOARD_JS = """
if (!window.__valdemoClaveKeys) {
  window.__valdemoClaveKeys = true;
  const map = %s;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    const id = map[(e.key || "").toLowerCase()];
    if (!id) return;
    const btn = document.getElementById(id);
    if (!btn || btn.offsetParent === null || btn.disabled) return;
    e.preventDefault();
    btn.click();
  });
}
""".replace("%s", json.dumps(KEY_IDS))

INTRO = """**Calibrate evaluator** (CLAVE, Yao et al., NeurIPS 2024, arXiv 2407.10725, Sec. 3). Label samples as
*adhering to*, *opposing* or *unrelated to* a value. With the judge on, it first writes each text's value
concepts (step 1); a small recognizer, one head per value, is then calibrated on your labels (and those
concepts) and scored against you on held-out labels beside baselines that read no label. It scores only the
values it was calibrated on. Every number here is this project's own measurement, with its n and 95% interval."""


# -- rendering ----------------------------------------------------------------------


def sample_markdown(sample: dict | None, annotator: str) -> tuple[str, str]:
    if sample is None:
        return (f"### All done\n{annotator or 'You'} labelled or skipped every sample in this selection. "
                "Pick another value, upload more samples, or press **u** to undo.", "")
    text = sample["text"].replace("\n", "  \n")
    card = (f"### {sample['name']}\n{sample['definition']}\n\n"
            f"*e.g. {', '.join(sample['examples'])}*\n\n<small>sample #{sample['sample_id']} · {sample['source']}</small>")
    return f"> {text}", card


def progress_markdown(prog: dict) -> str:
    lines = ["| value | labelled | target |", "|---|---:|---:|"]
    for key, p in prog["per_value"].items():
        if p["available"] == 0 and p["labelled"] == 0:
            continue
        mark = " ✓" if p["labelled"] >= p["target"] else ""
        lines.append(f"| {key.title()} | {p['labelled']}{mark} | {p['target']} |")
    o = prog["overall"]
    pct = 100.0 * o["toward_target"] / max(o["target"], 1)
    return f"**Overall:** {o['labelled']} labels · {pct:.0f}% of the targets\n\n" + "\n".join(lines)


def ack_markdown(ack: dict) -> str:
    return (f"✅ saved #{ack['seq']}: **{ack['label_name']}** on sample {ack['sample_id']} "
            f"by {ack['annotator']} ({time.strftime('%H:%M:%S')})")


def report_markdown(report: dict, judge_model) -> str:
    """What the calibration showed, every number with its n and 95% interval (project's own
    quantities; CLAVE is Yao et al. 2024, Sec. 3)."""
    sm = report["small_model"]
    lines = [f"**{report['protocol']}** on {report['n_labels']} labels ({report['n_eval']} scored held out); "
             f"small model: {sm['title']}"
             + (f", up to {sm['per_value']} labels per value chosen by {sm['selection']}" if sm["per_value"] else "")
             + (", reading the judge's per-response concepts" if report["concepts"]["per_response"] else
                ", without concepts (no judge given)")
             + f"; recognizer `{report.get('recognizer_id', '-')}`"
             + (f" saved as **{report['recognizer_name']}**" if report.get("recognizer_name") else " saved")
             + f", run `{report.get('run_id', '-')}` (Runs tab), {report['seconds']:.1f} s.", "",
             "Mean over values of each value's macro-F1 (over the classes that value has):"]
    for m in report["methods"]:
        o = report["overall"][m]
        f1 = Metric(**{**o["macro_f1"], "interval": tuple(o["macro_f1"]["interval"]) if o["macro_f1"]["interval"] else None})
        lines.append(f"- {clave.METHOD_TITLES[m]}: **{f1.fmt()}**"
                     + ("" if o["uses_labels"] else " · reads no label")
                     + (f" · {o['failed']} of {o['n_eval']} answers unreadable (scored wrong)" if o["failed"] else ""))
    goal = report.get("goal") or {}
    if goal:
        mm = goal["mean_margin"]
        lost = ", ".join(goal["values_lost"]) or "none"
        lines.append(f"\nRecognizer against the best baseline that reads no label "
                     f"({clave.METHOD_TITLES[goal['best_baseline']]}): mean margin **{mm['value']:+.3f}** "
                     f"[{mm['interval'][0]:+.3f}, {mm['interval'][1]:+.3f}] (n={mm['n']} values); values lost: {lost}.")
    cal = report.get("calibration") or {}
    if cal:
        parts = [f"{v.title()} {c['ece_raw']['value']:.3f} → {c['ece_scaled']['value']:.3f} (n={c['ece_raw']['n']})"
                 for v, c in cal.items() if c["ece_raw"]["value"] is not None]
        lines.append("\nProbabilities: expected calibration error, raw → temperature-scaled on the other folds: "
                     + "; ".join(parts) + ". The saved recognizer uses the temperature fitted on all held-out folds.")
    for f in report.get("failures", []):
        if f["total"]:
            lines.append(f"\n{f['step']}: {f['failed']} of {f['total']} failed {f['reasons'] or ''}")
    if report["concepts"]["examples"]:
        ex = report["concepts"]["examples"][0]
        lines.append(f"\nExample concepts ({ex['value'].title()}): {'; '.join(ex['concepts']) or '(none)'}")
    if report.get("guidelines_note"):
        lines.append(f"\nNote: {report['guidelines_note']}.")
    caveat = caveat_markdown([judge_model]) if judge_model is not None else ""
    return "\n".join(lines) + (f"\n\n{caveat}" if caveat else "")


confusion_figure = clave.confusion_figure
curve_figure = clave.curve_figure


# -- the tab ------------------------------------------------------------------------


def build(ctx) -> None:
    store = ctx.store
    values = [ALL, *SCHWARTZ_KEYS]
    gr.Markdown(INTRO)
    current = gr.State(None)

    with gr.Tabs():
        with gr.Tab("Label", id="clave-label"):
            with gr.Row():
                annotator = gr.Textbox(label="Annotator", placeholder="your name (labels are kept per annotator)",
                                       elem_id="clave-annotator", scale=2)
                value_filter = gr.Dropdown(values, value=ALL, label="Value", scale=2, elem_id="clave-value-filter")
                target = gr.Number(clave.DEFAULT_TARGET, label="Target per value", precision=0, minimum=1, scale=1)
                start = gr.Button("Start / resume", elem_id="clave-start", scale=1)
            with gr.Row():
                with gr.Column(scale=3):
                    sample_md = gr.Markdown("Type your name and press **Start / resume**.", elem_id="clave-sample")
                    with gr.Row():
                        b_adh = gr.Button("1 · Adheres", variant="primary", elem_id="clave-adheres")
                        b_opp = gr.Button("2 · Opposes", variant="primary", elem_id="clave-opposes")
                        b_unr = gr.Button("3 · Unrelated", variant="primary", elem_id="clave-unrelated")
                    with gr.Row():
                        b_skip = gr.Button("s · Skip", elem_id="clave-skip", size="sm")
                        b_undo = gr.Button("u · Undo", elem_id="clave-undo", size="sm")
                    note = gr.Textbox(label="Note (optional, saved with the next label)", elem_id="clave-note")
                    ack = gr.Markdown(elem_id="clave-ack")
                with gr.Column(scale=2):
                    value_md = gr.Markdown(elem_id="clave-value-card")
                    progress_md = gr.Markdown(elem_id="clave-progress")
            gr.HTML("<small>Keys: <b>1</b> adheres · <b>2</b> opposes · <b>3</b> unrelated · <b>s</b> skip · "
                    "<b>u</b> undo (not while typing in a text box). Each label is saved before it is "
                    "acknowledged; reload or come back later to resume.</small>", js_on_load=KEYBOARD_JS)

        with gr.Tab("Samples & sync", id="clave-samples"):
            with gr.Row():
                upload = gr.File(label="Samples: CSV/JSONL (text,value[,label]) or ValueNet CSV (input,label)",
                                 file_types=[".csv", ".jsonl", ".json"], elem_id="clave-upload")
                with gr.Column():
                    upload_as = gr.Textbox(clave.GOLD, label="Labels in the file belong to")
                    import_btn = gr.Button("Import", elem_id="clave-import")
                    import_md = gr.Markdown()
            with gr.Row():
                fmt = gr.Radio(["jsonl", "csv"], value="jsonl", label="Export format")
                export_btn = gr.Button("Export all labels", elem_id="clave-export")
                export_file = gr.File(label="Export", interactive=False)
            with gr.Row():
                hub_repo = gr.Textbox(ctx.settings.clave_hub_repo, label="Hugging Face dataset repo (or local folder)",
                                      placeholder="user/valdemo-labels", scale=3)
                push_btn = gr.Button("Push labels", scale=1)
                pull_btn = gr.Button("Pull labels", scale=1)
            hub_md = gr.Markdown("Token: the signed-in user's, else `HF_TOKEN`. Pushing adds one file with the labels "
                                 "not sent before (never a full snapshot); where the Space sets "
                                 "`VALDEMO_CLAVE_HUB_REPO`, new labels also go there every "
                                 "`VALDEMO_LABEL_SYNC_MINUTES` by themselves.")

        with gr.Tab("Concepts", id="clave-concepts"):
            with gr.Row():
                concept_value = gr.Dropdown(list(SCHWARTZ_KEYS), value=SCHWARTZ_KEYS[0], label="Value")
                extract_btn = gr.Button("Extract concepts with the judge", elem_id="clave-extract")
            concepts_box = gr.Textbox(label="Concepts (one per line: 'adheres: ...' or 'opposes: ...'; editable)",
                                      lines=8, elem_id="clave-concepts-text")
            with gr.Row():
                save_concepts_btn = gr.Button("Save edited concepts", elem_id="clave-save-concepts")
            concepts_md = gr.Markdown()

        with gr.Tab("Calibrate", id="clave-calibrate"):
            with gr.Row():
                cal_who = gr.Textbox("", label="Whose labels (empty: your own; locally all annotators')")
                folds = gr.Slider(2, 10, value=5, step=1, label="Folds (k)")
                with_judge = gr.Checkbox(False, label="Use the judge: per-response concepts and its baselines (slow on CPU)")
                per_value = gr.Number(0, label="Labels per value for the small model (0: all)", precision=0, minimum=0)
                selection = gr.Radio(list(clave.SELECTIONS), value="random", label="Which labels (when capped)")
                cal_name = gr.Textbox("", label="Name this recognizer (optional; the profile and 'Evaluate a text' "
                                      "can then choose it)", elem_id="clave-cal-name")
                cal_btn = gr.Button("Calibrate and evaluate", variant="primary", elem_id="clave-calibrate-btn")
            cal_md = gr.Markdown(elem_id="clave-cal-summary")
            cal_table = gr.Dataframe(headers=clave.SUMMARY_HEADERS,
                                     interactive=False, elem_id="clave-cal-table")
            confusion_plot = gr.Plot(label="Confusion matrices, all held-out rows (rows: human)")
            curve_plot = gr.Plot(label="Learning curve: labels per value, every fold, two orders (mean ± sd)")
            published_accordion("clave")

        with gr.Tab("Agreement", id="clave-agreement"):
            agree_btn = gr.Button("Compute agreement between annotators")
            agree_md = gr.Markdown()
            agree_table = gr.Dataframe(headers=["a", "b", "shared samples", "agreement", "Cohen's kappa"],
                                       interactive=False)

        with gr.Tab("Evaluate a text", id="clave-predict"):
            with gr.Row():
                pred_text = gr.Textbox(label="Text", lines=3, scale=3)
                pred_value = gr.Dropdown(list(SCHWARTZ_KEYS), value=SCHWARTZ_KEYS[0], label="Value", scale=1,
                                         allow_custom_value=True)
            pred_rec = gr.Textbox("", label="Recognizer (its name or id; empty: your newest)", elem_id="clave-pred-rec")
            pred_btn = gr.Button("Label with the calibrated recognizer", elem_id="clave-predict-btn")
            pred_label = gr.Label(num_top_classes=3, label="Recognizer")
            pred_md = gr.Markdown()

    # -- labelling handlers -----------------------------------------------------------

    def _view(name: str, value: str, goal, ack_text: str = ""):
        sample = clave.next_sample(store, name, None if value in ("", ALL, None) else value)
        text_md, card = sample_markdown(sample, name)
        prog = clave.progress(store, name, int(goal or clave.DEFAULT_TARGET))
        return text_md, card, (sample or {}).get("sample_id"), ack_text, progress_markdown(prog)

    view_out = [sample_md, value_md, current, ack, progress_md]

    @ui_errors
    def resume(name, value, goal):
        return _view(clave.check_annotator(name), value, goal)

    def on_load(saved, *extra):
        profile = extra[0] if extra else None
        name = (getattr(profile, "username", "") or saved or "").strip()
        if not name:
            return gr.update(), gr.update(), None, "", "", gr.update(), gr.update()
        # "Whose labels" (Calibrate) defaults to the visitor's own (issue 12).
        return (*_view(name, ALL, clave.DEFAULT_TARGET), name, name)

    if oauth_enabled():
        def load_with_login(saved, profile: gr.OAuthProfile | None):
            return on_load(saved, profile)
        loader = load_with_login
    else:
        def loader(saved):
            return on_load(saved)

    from gradio.context import Context as GradioContext  # the app's Blocks: resume on page load

    # The annotator's name is remembered in this browser (localStorage) and read back on load.
    GradioContext.root_block.load(loader, [annotator], [*view_out, annotator, cal_who], api_visibility="private",
                                  js=f"() => [localStorage.getItem('{NAME_KEY}') || '']")
    for trigger in (start.click, value_filter.change):
        trigger(resume, [annotator, value_filter, target], view_out, api_visibility="private",
                js=f"(n, v, g) => {{ if (n && n.trim()) localStorage.setItem('{NAME_KEY}', n.trim()); return [n, v, g]; }}")

    def make_label_handler(label):
        @ui_errors
        def handler(name, sample_id, note_text, value, goal, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None):
            name, verified, owner = label_identity(name, request, profile)  # issue 12: only as yourself
            name = clave.check_annotator(name)
            if sample_id is None:
                raise gr.Error("no sample on screen: press Start / resume")
            result = clave.submit_label(store, name, int(sample_id), label, note_text or "", owner=owner.id,
                                        verified=verified)
            return (*_view(name, value, goal, ack_markdown(result)), "")
        return handler

    for btn, label in ((b_adh, 1), (b_opp, -1), (b_unr, 0), (b_skip, "skip")):
        btn.click(make_label_handler(label), [annotator, current, note, value_filter, target], [*view_out, note],
                  api_visibility="private", trigger_mode="once")

    @ui_errors
    def undo(name, value, goal, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        name = clave.check_annotator(label_identity(name, request, profile)[0])
        result = clave.undo_last(store, name)
        text_md, card, _, _, prog = _view(name, value, goal)
        if result["ok"]:  # show the undone sample again so it can be relabelled
            u = result["undone"]
            text_md, card = sample_markdown({**clave.value_card(u["value"]), "sample_id": u["sample_id"],
                                             "text": u["text"], "source": "undone"}, name)
            return text_md, card, u["sample_id"], f"↩️ {result['message']}", prog
        return text_md, card, _, f"↩️ {result['message']}", prog

    b_undo.click(undo, [annotator, value_filter, target], view_out, api_visibility="private", trigger_mode="once")

    # -- samples, export, hub -------------------------------------------------------------

    @ui_errors
    def do_import(file, who):
        if not file:
            raise gr.Error("choose a file first")
        r = clave.import_file(store, file, who or clave.GOLD)
        return (f"Imported {r['samples']} rows ({r['distinct_samples']} distinct samples), "
                f"{r['labels_added']} new labels{' by ' + ', '.join(r['annotators']) if r['annotators'] else ''}.")

    import_btn.click(do_import, [upload, upload_as], import_md, api_visibility="private")

    @ui_errors
    def do_export(kind):
        out = Path(tempfile.mkdtemp(prefix="clave-export-")) / f"clave-labels.{kind}"
        return clave.export_labels(store, kind, out)["path"]

    export_btn.click(do_export, [fmt], export_file, api_visibility="private")

    def hub_handler(action):
        def run(repo, *extra):
            token = getattr(extra[0], "token", None) if extra else None
            if action == "push":
                r = clave.push_labels(store, repo, token)
                if not r["pushed"] and not r["undone"]:
                    return f"Nothing new to push to `{r['target']}`: every label was sent before (pushes are append-only)."
                return (f"Pushed {r['pushed']} new labels" + (f" and {r['undone']} undos" if r["undone"] else "")
                        + f" to `{r['target']}` ({', '.join(f'`{f}`' for f in r['files'])}); only rows not sent before go.")
            r = clave.pull_labels(store, repo, token)
            return f"Pulled {r['files']} files from `{r['target']}`: {r['labels_added']} new labels."

        if oauth_enabled():
            def with_token(repo, token: gr.OAuthToken | None):
                return run(repo, token)
            return ui_errors(with_token)
        return ui_errors(run)

    push_btn.click(hub_handler("push"), [hub_repo], hub_md, api_visibility="private")
    pull_btn.click(hub_handler("pull"), [hub_repo], hub_md, api_visibility="private")

    # -- concepts -----------------------------------------------------------------------

    def show_concepts(value, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        stored = clave.st.clave_latest_concepts(store, request_owner(request, profile).id).get(value)
        if not stored:
            return "", f"No concepts saved for {value.title()} yet."
        return (clave.concepts_to_text(stored["concepts"]),
                f"Saved concepts for {value.title()} by `{stored['model']}`.")

    concept_value.change(show_concepts, [concept_value], [concepts_box, concepts_md], api_visibility="private")

    @ui_errors
    def extract(value, judge_spec, creds, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        owner = request_owner(request, profile).id
        model = resolve_model(judge_spec, creds)
        result = clave.extract_concepts(model, value, clave.training_rows(store))
        caveat = caveat_markdown([model])
        if not result.ok:
            return "", (f"⚠️ Could not read concepts from the judge's answer ({result.reason}); 1 failure. "
                        f"Its answer:\n\n```\n{result.raw.strip()[:1500]}\n```\n\nWrite them yourself above. {caveat}")
        clave.save_concepts(store, value, result.concepts, result.model, owner)
        return (clave.concepts_to_text(result.concepts),
                f"Concepts for {value.title()} written by `{result.model}` and saved; edit and save to change. {caveat}")

    extract_btn.click(extract, [concept_value, ctx.judge, ctx.creds], [concepts_box, concepts_md],
                      api_name="clave_extract_concepts", **ctx.model_event())

    @ui_errors
    def save_edited(value, text, name, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        owner = request_owner(request, profile).id
        concepts = clave.text_to_concepts(text or "")
        stored = clave.st.clave_latest_concepts(store, owner).get(value)
        who = (name or "").strip() or "someone"
        origin = f"edited by {who}" + (f" (from {stored['model']})" if stored else "")
        clave.save_concepts(store, value, concepts, origin, owner)
        return f"Saved {sum(len(v) for v in concepts.values())} concepts for {value.title()} ({origin})."

    save_concepts_btn.click(save_edited, [concept_value, concepts_box, annotator], concepts_md,
                            api_visibility="private")

    # -- calibration, agreement, prediction --------------------------------------------

    @ui_errors
    def calibrate(who, k, use_judge, judge_spec, creds, cap, how, name="", progress=gr.Progress(), request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        judge = resolve_model(judge_spec, creds) if use_judge else None
        report = clave.calibrate_store(store, whose_labels(who, request, profile), int(k), judge,
                                       progress=progress_callback(progress, "embedding"),
                                       per_value=int(cap) if cap else None, selection=how or "random",
                                       owner=request_owner(request, profile).id, name=name or "")
        return (report_markdown(report, judge), clave.summary_table(report), confusion_figure(report),
                curve_figure(report))

    cal_btn.click(calibrate, [cal_who, folds, with_judge, ctx.judge, ctx.creds, per_value, selection, cal_name],
                  [cal_md, cal_table, confusion_plot, curve_plot], api_visibility="private", **ctx.model_event())

    @ui_errors
    def agree():
        r = clave.agreement(store)
        if not r["pairs"]:
            return "No two annotators have labelled the same samples yet.", []
        alpha = r["krippendorff_alpha"]
        head = (f"{len(r['annotators'])} annotators, {r['n_items_multi']} samples labelled by two or more. "
                + (f"Krippendorff's alpha (nominal): **{alpha:.3f}**" if alpha is not None else ""))
        who = clave.st.clave_annotator_verified(store)  # issue 12: typed names are marked unverified

        def name(n: str) -> str:
            return annotator_label(n, who.get(n, False))

        rows = [[name(p["a"]), name(p["b"]), p["n_shared"], round(p["percent_agreement"], 3),
                 None if p["cohen_kappa"] is None else round(p["cohen_kappa"], 3)] for p in r["pairs"]]
        if not all(who.get(n, False) for n in r["annotators"]):
            head += "\n\n_(unverified)_: a name typed without Hugging Face sign-in; anyone could have used it."
        return head, rows

    agree_btn.click(agree, None, [agree_md, agree_table], api_visibility="private")

    @ui_errors
    def predict_ui(text, value, recognizer="", request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        r = clave.predict_text(store, text, value, owner=request_owner(request, profile).id,
                               recognizer=recognizer or "")
        held = r.get("held_out") or {}
        f1 = held.get("macro_f1") or {}
        agree = (f" · held-out macro-F1 for {r['value'].title()}: {f1['value']:.3f} "
                 f"[{f1['interval'][0]:.3f}, {f1['interval'][1]:.3f}] (n={f1['n']})" if f1.get("value") is not None else "")
        probs = ("temperature-scaled on held-out folds" if r["calibrated_probabilities"]
                 else "not calibrated (too few labels to fit a temperature)")
        concepts = f"\n\nConcepts the judge wrote: {'; '.join(r['concepts']) or '(none)'}" if "concepts" in r else ""
        return r["probs"], f"**{r['label_name']}** · recognizer {r['recognizer_name'] or ''} `{r['recognizer']}`{agree} · probabilities {probs}{concepts}"

    pred_btn.click(predict_ui, [pred_text, pred_value, pred_rec], [pred_label, pred_md], api_visibility="private")

    # -- named API endpoints (same functions the buttons call) ------------------------

    @ui_errors
    def clave_next(annotator: str, value: str = "", request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None) -> dict:
        """The next sample this annotator has not labelled or skipped ({"done": true} when none).
        With sign-in on, only your own queue; without it the name is marked unverified."""
        annotator, verified = reader_identity(annotator, request, profile)
        sample = clave.next_sample(store, annotator, value or None) or {"done": True}
        return {**sample, "annotator": annotator, "verified": verified}

    @ui_errors
    def clave_label(annotator: str, sample_id: int, label: str, note: str = "", request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
        """Label a sample (1/-1/0, adheres/opposes/unrelated, or skip); acknowledged after the commit.
        With Hugging Face sign-in on, only as the signed-in user."""
        annotator, verified, owner = label_identity(annotator, request, profile)
        return clave.submit_label(store, annotator, sample_id, label, note, owner=owner.id, verified=verified)

    @ui_errors
    def clave_undo(annotator: str, request: gr.Request = None, profile: gr.OAuthProfile | None = None) -> dict:
        """Undo this annotator's latest label or skip (with sign-in on, only your own)."""
        return clave.undo_last(store, label_identity(annotator, request, profile)[0])

    @ui_errors
    def clave_progress(annotator: str, target: int = clave.DEFAULT_TARGET, request: gr.Request = None,
                       profile: gr.OAuthProfile | None = None) -> dict:
        """Labels per value toward the target (empty annotator: everyone; with sign-in on, only your own)."""
        annotator, verified = reader_identity(annotator, request, profile)
        return {**clave.progress(store, annotator or None, int(target)), "verified": verified}

    @ui_errors
    def clave_labels(annotator: str = "", request: gr.Request = None, profile: gr.OAuthProfile | None = None) -> list:
        """Current labels (one annotator, or all when empty; with sign-in on, only your own). Each row
        says whether its annotator was verified."""
        return clave.export_rows(store, reader_identity(annotator, request, profile)[0] or None)

    @ui_errors
    def clave_calibrate(annotator: str = "", folds: int = 5, judge: str = "", name: str = "",
                        request: gr.Request = None, profile: gr.OAuthProfile | None = None) -> dict:
        """Calibrate on stored labels (and your saved concepts); per value scores beside baselines; the
        recognizer is saved as yours under ``name`` (optional) and the evaluation as a run (run_id)."""
        model = resolve_model(judge) if judge.strip() else None
        return clave.calibrate_store(store, whose_labels(annotator, request, profile), int(folds), model,
                                     owner=request_owner(request, profile).id, name=name or "", source="api")

    @ui_errors
    def clave_predict(text: str, value: str, recognizer: str = "", request: gr.Request = None,
                      profile: gr.OAuthProfile | None = None) -> dict:
        """Label and probabilities from your recognizer named ``recognizer`` (name or id; empty: your
        newest), for values it was calibrated on."""
        return clave.predict_text(store, text, value, owner=request_owner(request, profile).id,
                                  recognizer=recognizer or "")

    @ui_errors
    def clave_recognizers(request: gr.Request = None, profile: gr.OAuthProfile | None = None) -> list:
        """Your saved recognizers, newest first: name, id, values, held-out macro-F1 per value, run id."""
        return clave.list_recognizers(store, request_owner(request, profile).id)

    for fn in (clave_next, clave_label, clave_undo, clave_progress, clave_labels, clave_predict, clave_recognizers):
        gr.api(fn, api_name=fn.__name__)
    gr.api(clave_calibrate, api_name="clave_calibrate", **ctx.model_event())
