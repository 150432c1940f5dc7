"""Value dialogue tab (VUM / ValueDCG): know what vs know why, and their gap.

Thin: reads inputs, calls :mod:`valdemo.vum`, renders. Every number shown is
computed there.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import vum
from ..core.owner import is_public
from ..core.runs import save_run
from ..inputs import InputError, check_int, parse_label
from ..models import BUNDLED_CAVEAT, unwrap
from ..store import vum_overrides
from ..vum import replay as R
from .common import (
    caveat_markdown,
    progress_callback,
    request_owner,
    resolve_model,
    run_stoppable,
    same_model_warning,
    stop_button,
    ui_errors,
)
from .published import published_accordion

LABEL_CHOICES = [("reflects (1)", "1"), ("opposes (-1)", "-1"), ("unrelated (0)", "0"), ("not given", "none")]
VALUE_CHOICES = vum.value_names()
OVERRIDE_COLUMNS = ["created", "value", "part", "judge_score", "human_score", "part_text", "judge", "owner_name"]
TABLE_HEADERS = ["value", "n", "know_what_acc", "know_what_ci", "know_what_macro_f1", "parse_failures",
                 "know_why_rate", "know_why_ci", "dcg", "dcg_ci", "over_long_parts"]
PROTOCOL_CHOICES = [("valuedcg (ValueDCG's structure)", "valuedcg"), ("valdemo (this project's variant)", "valdemo")]
SAMPLING_CHOICES = [("proportional to the file's labels (as ValueDCG)", "proportional"),
                    ("balanced (labels interleaved)", "balanced")]
SCORE_CHOICES = [("keep judge's", ""), *[(str(i), str(i)) for i in range(1, 6)]]

INTRO = f"""
**Value dialogue** (VUM, after ValueDCG): does the model know *what* value a statement reflects,
and can it say *why*?

- *Know what*: a few-shot question "does this statement show [value]? A. Yes B. No C. Not applicable"
  (true label 1 → A, −1 → B, 0 → C; ETHICS sets `ethics_<name>.csv`: A/B only), scored from option
  probabilities where the backend gives them, else by reading the letter: unreadable answers count as
  wrong and are shown.
- *Know why*: the target explains the true judgement in three parts (attribution, counterfactual,
  rebuttal); the judge scores each 0-5; know-why rate = mean score ÷ 5.
- *Gap*: **{vum.FORMULA}**. A positive gap: the explanations look better than the judgements behind them.
  _{R.GAP_NOTE}_
  Every number shows its n and a 95% interval (Wilson for accuracy, bootstrap over items otherwise).
- *Protocol*: **valuedcg** (default; ValueDCG's structure: the value's bare name, one three-part answer
  under a {vum.MAX_PART_WORDS}-word-per-part instruction, over-long parts counted and never cut, a strict judge at
  temperature 0 with a scored example per level) or **valdemo** (this project's variant: definitions in
  the question, three separate prompts cut to {vum.MAX_PART_WORDS} words, a bare rubric). The wording of both is this
  project's own. Every run says which protocol ran.
"""


def _models(target_spec: str, judge_spec: str, creds) -> tuple:
    return resolve_model(target_spec, creds), resolve_model(judge_spec, creds)


def _notes(target, judge=None) -> str:
    """The bundled-model caveat and, when a judge is used, the same-model warning."""
    notes = [caveat_markdown([target, judge])]
    if judge is not None:
        notes.append(same_model_warning(target, judge))
    return "\n\n".join(n for n in notes if n)


def _protocol_note(name: str) -> str:
    p = vum.load_protocol(name)
    return f"**Protocol:** `{p.name}` (hash `{p.hash}`): {p.description}. Source: {p.source}."


def _answer_md(state: dict) -> str:
    if state.get("phase") == "answer":
        return f"**Target's answer (streaming):** {state.get('answer', '')}"
    if "pred" not in state:
        return ""
    if state["mode"] == "option_probs":
        probs = " · ".join(f"{o} {p:.2f}" for o, p in state["probs"].items())
        how = f"option probabilities: {probs}"
    else:
        how = f"answer text: `{(state.get('answer') or '').strip()[:200]}`"
        if not state["parse_ok"]:
            how += f" — **could not be read ({state['parse_reason']}): counted as wrong**"
    verdict = ("unknown (no true label)" if state.get("correct") is None
               else "correct ✅" if state["correct"] else "wrong ❌")
    gold = f" · true answer **{state['gold']}**" if state.get("gold") else ""
    return f"**Know what:** predicted **{state['pred'] or '—'}**{gold} · {verdict}  \n{how}"


def _critique_md(state: dict) -> str:
    raw = state.get("parts") or state.get("critique_raw") or {}
    lines = [f"**{p.capitalize()}:** {raw.get(p, '').strip() or '…'}" for p in vum.PARTS if p in raw]
    if not any(raw.get(p) for p in vum.PARTS) and raw.get("whole"):
        lines = [f"_(no labelled part yet)_ {raw['whole'].strip()}"]
    if state.get("truncated_parts"):
        lines.append(f"_cut to {vum.MAX_PART_WORDS} words: {', '.join(state['truncated_parts'])}_")
    if state.get("over_long_parts"):
        lines.append(f"_longer than {vum.MAX_PART_WORDS} words (counted, not cut): "
                     f"{', '.join(state['over_long_parts'])}_")
    if state.get("missing_parts") and state.get("phase") in {"judging", "done"}:
        lines.append(f"_missing (scored 0): {', '.join(state['missing_parts'])}_")
    return "\n\n".join(lines)


def _scores_md(state: dict) -> str:
    if state.get("phase") == "judging":
        return "_The judge is scoring…_"
    if state.get("phase") != "done":
        return ""
    rows = ["| part | judge score | judge said |", "|---|---|---|"]
    for p in vum.PARTS:
        score = state["scores"][p]
        shown = "unreadable (not scored)" if score is None else str(score)
        said = " ".join((state["judge_raw"][p] or "(part empty: 0 by the rubric)").split())[:80]
        rows.append(f"| {p} | {shown} | {said} |")
    why = state["know_why_rate"]
    rows += ["", f"**Know-why rate:** {'—' if why is None else f'{why:.2f}'}"]
    if state.get("dcg") is not None:
        rows.append(f" · **gap (know-why − know-what):** {state['dcg']:+.2f}")
    return "\n".join(rows)


def _agreement_md(store, owner_id: str | None = None) -> tuple[str, pd.DataFrame]:
    """Judge vs the overrides ``owner_id`` may read (their own; locally also the legacy ones)."""
    entries = vum.latest_overrides(store, owner_id)
    stats = vum.agreement([(o["judge_score"], o["human_score"]) for o in entries])
    cols = OVERRIDE_COLUMNS
    table = pd.DataFrame([{c: o[c] for c in cols} for o in entries[-50:]], columns=cols)
    if not stats["n"]:
        return "_No overrides yet: score a judged answer yourself to compare with the judge._", table

    def fmt(x):
        return "—" if x is None else f"{x:.2f}"

    return (f"**Judge vs you** over {stats['n']} scored parts: exact {fmt(stats['exact'])} · "
            f"within 1 {fmt(stats['within_1'])} · Spearman {fmt(stats['spearman'])}"), table


def _bundled(*models) -> bool:
    return any(m is not None and unwrap(m).is_bundled for m in models)


def save_live_run(store, row: dict, config, owner_id: str) -> str:
    """Save a finished single (live) evaluation as a one-row VUM run of ``owner_id`` (through
    :mod:`valdemo.core.runs`); its id."""
    saved = dict(row)  # the whole row, its raw critique included
    labelled = "parse_ok" in saved and saved.get("correct") is not None  # no true label: no accuracy to count
    res = vum.to_result([saved] if labelled else [], {
        "protocol": vum.load_protocol(config.protocol).describe(), "target": row.get("target"),
        "judge": row.get("judge"), "config": {"mode": "live", "values": [row.get("value")],
                                              **dataclasses.asdict(config)}})
    res.rows = [saved]
    res.extra.update(live=True)
    return save_run(res, owner=owner_id, source="ui", store=store)


def _plot(summary: dict):
    import plotly.graph_objects as go

    per = summary["per_value"]
    names = [vum.value_name(v) for v in per]
    fig = go.Figure()
    fig.add_bar(name="know what (accuracy)", x=names, y=[s["know_what_acc"] for s in per.values()])
    if any(s["know_why_rate"] is not None for s in per.values()):
        fig.add_bar(name="know why (rate)", x=names, y=[s["know_why_rate"] for s in per.values()])
        fig.add_scatter(name="gap (DCG)", x=names, y=[s["dcg"] for s in per.values()], mode="markers+text",
                        text=[None if s["dcg"] is None else f"{s['dcg']:+.2f}" for s in per.values()],
                        textposition="top center", marker={"size": 12, "symbol": "diamond"})
    fig.update_layout(barmode="group", yaxis_title="score (0-1)", height=420, margin={"t": 30},
                      legend={"orientation": "h"})
    return fig


REVIEW_INTRO = """
**Review saved rows: your scores against the judge's.** Open any row of any of your saved VUM runs
(batch, single live evaluations, replayed releases), read the critique and the judge's scores, and
give your own (1-5 per part; empty keeps the judge's). Each score is stored with who gave it (your
signed-in name, or this session / the local owner, marked unverified) and the run and row it belongs
to; scoring the same part of the same row again replaces your earlier score in the agreement.
The agreement table covers every row you have overridden, per know-why part and all parts pooled:
n pairs, exact and within-1 shares, Pearson, Spearman, Cohen's κ and Krippendorff's α (interval
level), each with a 95% interval (bootstrap over pairs; Wilson for the shares). These agreement
summaries are this project's own.
"""
REVIEW_COLUMNS = ["created", "run_id", "row_idx", "value", "part", "judge_score", "human_score", "judge",
                  "owner_name", "verified"]


def review_run_choices(store, owner_id: str) -> list[tuple[str, str]]:
    """(label, run id) of the VUM runs ``owner_id`` may read, newest first."""
    out = []
    for run in store.list_runs(method="vum", limit=200, owner=owner_id):
        s = run.get("summary") or {}
        n = ((s.get("overall") or {}).get("n") or s.get("n")
             or next((m.get("n") for m in s.get("metrics") or [] if m.get("name") == "know_what_acc"), ""))
        when = pd.Timestamp(run["created"], unit="s").strftime("%Y-%m-%d %H:%M")
        out.append((f"{run['id']} · {when}" + (f" · {n} rows" if n else ""), run["id"]))
    return out


def review_row_markdown(store, run_id: str, row_idx, owner_id: str) -> str:
    """One saved row as a person reads it: statement, value, label, know-what verdict, each critique
    part with the judge's score, and the visitor's earlier scores of this row."""
    run, row = vum.saved_row(store, run_id, row_idx, owner_id)
    idx = int(check_int(row_idx, "row", 0, 10**9))
    n_rows = len(store.run_rows(run["id"], owner_id))
    label = row.get("label")
    lines = [f"**Run `{run['id']}` · row {idx}** (rows 0-{n_rows - 1}) · value **{vum.value_name(row.get('value') or '')}**"
             f" · true label {'not given' if label is None else label}",
             f"> {' '.join(str(row.get('text', '')).split())}"]
    if "correct" in row:
        verdict = "—" if row.get("correct") is None else ("correct" if row["correct"] else "wrong")
        lines.append(f"Know what: predicted **{row.get('pred') or 'unreadable'}**, true **{row.get('gold') or '—'}** "
                     f"· {verdict}")
    scores = row.get("scores") or {}
    if not scores:
        lines.append("_This row has no judged critique (a know-what-only run): nothing to override._")
        return "\n\n".join(lines)
    parts = row.get("parts") or {}
    table = ["| part | critique | judge score |", "|---|---|---|"]
    for p in vum.PARTS:
        sc = scores.get(p)
        text = " ".join(str(parts.get(p, "")).split())[:300] or "(empty: 0 by the rubric)"
        table.append(f"| {p} | {text.replace('|', '/')} | {'unreadable (not scored)' if sc is None else sc} |")
    lines.append("\n".join(table))
    mine = [o for o in vum_overrides(store, owner_id) if o.get("run_id") == run["id"] and o.get("row_idx") == idx]
    if mine:
        lines.append("Your earlier scores of this row: " + ", ".join(f"{o['part']} {o['human_score']}" for o in mine))
    return "\n\n".join(lines)


def agreement_frames(store, owner_id: str) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(summary line, per-part agreement table, the visitor's latest 50 overrides)."""
    table = vum.agreement_table(store, owner_id)
    rows = R.consistency_table(None, table)
    entries = vum.latest_overrides(store, owner_id)
    recent = pd.DataFrame([{**{c: o.get(c) for c in REVIEW_COLUMNS},
                            "created": pd.Timestamp(o["created"], unit="s").strftime("%Y-%m-%d %H:%M:%S")}
                           for o in entries[-50:]], columns=REVIEW_COLUMNS)
    n = table["parts"]["all parts"]["n"]
    if not n:
        return ("_No overrides yet: open a judged row and give your scores to compare with the judge._",
                pd.DataFrame(rows, columns=R.CONSISTENCY_HEADERS), recent)
    md = (f"**Judge vs you** over {n} scored parts of {table['n_rows']} rows "
          f"(judges: {', '.join(table['judges']) or '—'}).")
    return md, pd.DataFrame(rows, columns=R.CONSISTENCY_HEADERS), recent


def review_save(store, run_id: str, row_idx, s_attr, s_cf, s_reb, owner) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """Store ``owner``'s scores for a saved row; (row markdown, agreement summary, table, overrides)."""
    saved = vum.override_saved_row(store, run_id, row_idx, dict(zip(vum.PARTS, (s_attr, s_cf, s_reb),
                                                                          strict=True)), owner)
    md, table, recent = agreement_frames(store, owner.id)
    who = owner.name if owner.verified else f"{owner.name} (unverified)"
    note = f"Saved {len(saved)} score(s) as **{who}**.\n\n" + md
    return review_row_markdown(store, run_id, row_idx, owner.id), note, table, recent


REPLAY_INTRO = f"""
**Replay a recorded release.** Scores what models *already answered* elsewhere, without calling any model:
a folder in the ValueDCG release's layout (`response/<model>/<VALUE>.json` and/or
`know_why_save/<model>/<value>.json`, as a zip or, on a private server, a folder path), or a JSONL file
of recorded rows (see the README). Know what = the option the recorded answer **starts with** (an answer
that starts with no option is counted as a failure and as wrong; no letter is looked for further on).
Know why = the recorded judge's mean part score ÷ 5 (for the release: its GPT-4o judge).

_{R.GAP_NOTE}_
"""


def _replay_plot(result: dict):
    return R.scaling_figure(R.scaling_points(result))


@ui_errors
def replay_handler(folder: str, upload: str | None, save: bool, request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None):
    """Replay a release folder (server path; not in public mode), a zip of one, or a JSONL of recorded
    rows: (notes, overall table, model x value table, plot, consistency table, summary)."""
    from ..store import get_store

    folder = (folder or "").strip()
    if folder and is_public():
        raise InputError("a folder on the server can only be replayed in a private app: upload a zip instead")
    if bool(folder) == bool(upload):
        raise InputError("give one source: a folder path or an uploaded zip / JSONL file")
    if upload:
        up = Path(upload)
        if up.suffix.lower() == ".zip":
            root = R.extract_zip(up, Path(tempfile.mkdtemp(prefix="vum-replay-")))
            result, origin = R.replay(folder=root), up.name
        elif up.suffix.lower() in {".jsonl", ".ndjson"}:
            result, origin = R.replay(jsonl=up), up.name
        else:
            raise InputError(f"{up.name}: upload a .zip of a release folder or a .jsonl of recorded rows")
    else:
        result, origin = R.replay(folder=folder), folder
    store = get_store()
    notes = [f"**{result['caveat']}**", *result.get("notes", []), *(f"⚠ {w}" for w in R.gap_warnings(result))]
    owner = request_owner(request, profile).id if request is not None else ""  # the signed-in user's, if any
    if save:
        runs = R.save_runs(result, origin=origin, owner=owner, store=store)
        result["runs"] = runs
        notes.append("Saved runs: " + ", ".join(f"{m} → `{r}`" for m, r in runs.items()))
    own = R.own_agreement(store, owner if request is not None else None)  # only overrides this visitor may read
    if not any(a["n"] for a in own["parts"].values()):
        notes.append("_No overrides of this app's judge yet, so its judge-human agreement has no row here._")
    cons = R.consistency_table(result.get("consistency"), own)
    summary = R.public(result)
    return ("\n\n".join(notes), pd.DataFrame(R.overall_table(result), columns=R.OVERALL_HEADERS),
            pd.DataFrame(R.value_table(result), columns=R.VALUE_HEADERS), _replay_plot(result),
            pd.DataFrame(cons, columns=R.CONSISTENCY_HEADERS), summary)


def build(ctx) -> None:
    gr.Markdown(INTRO)
    bundled = vum.bundled_items()
    picks = [(f"{it.value} · {vum.LABEL_WORDS[it.label]} · {it.text}", it.key) for it in bundled]
    by_key = {it.key: it for it in bundled}

    with gr.Tab("Live"):
        with gr.Row():
            pick = gr.Dropdown(picks, value=None, label="Bundled item (optional)", elem_id="vum-pick", scale=3)
        with gr.Row():
            text = gr.Textbox(label="Scenario (first person, like ValueNet)", lines=2, scale=3,
                              value=bundled[0].text, elem_id="vum-text")
            value = gr.Dropdown(VALUE_CHOICES, value=bundled[0].value, label="Schwartz value", scale=1)
            label = gr.Radio(LABEL_CHOICES, value=str(bundled[0].label), label="True label", scale=2)
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                shots = gr.Number(vum.DEFAULT_SHOTS, precision=0, label="Few-shot examples (0-16)")
                tokens = gr.Number(vum.DEFAULT_CRITIQUE_TOKENS, precision=0,
                                   label="Max new tokens per critique part (16-1024)")
                protocol = gr.Radio(PROTOCOL_CHOICES, value=vum.DEFAULT_PROTOCOL, label="Protocol")
        run_live = gr.Button("Evaluate", variant="primary", elem_id="vum-live-run")
        live_notes = gr.Markdown(elem_classes="caveat")
        answer_md = gr.Markdown(elem_id="vum-answer")
        critique_md = gr.Markdown(elem_id="vum-critique")
        scores_md = gr.Markdown(elem_id="vum-scores")
        # The row behind the text above, for the API and the override below; not a raw panel on the page.
        result = gr.JSON(label="Result (row)", visible=False)
        with gr.Accordion("Your scores (override the judge)", open=False):
            with gr.Row():
                human = [gr.Dropdown(SCORE_CHOICES, value="", label=p.capitalize()) for p in vum.PARTS]
            save = gr.Button("Save my scores", elem_id="vum-override")
            agree_md = gr.Markdown()
            agree_df = gr.Dataframe(label="Stored overrides (latest 50)", interactive=False,
                                    headers=OVERRIDE_COLUMNS)
            refresh = gr.Button("Refresh agreement", size="sm")

    with gr.Tab("Batch"):
        with gr.Row():
            values = gr.CheckboxGroup(VALUE_CHOICES, value=[k for _, k in VALUE_CHOICES[:3]], label="Values")
        with gr.Row():
            n_items = gr.Number(3, precision=0, label="Items per value")
            b_shots = gr.Number(vum.DEFAULT_SHOTS, precision=0, label="Few-shot examples (0-16)")
            b_tokens = gr.Number(vum.DEFAULT_CRITIQUE_TOKENS, precision=0,
                                 label="Max new tokens per critique part (16-1024)")
            know_why = gr.Checkbox(value=True, label="Know why (critique + judge)")
        with gr.Row():
            b_protocol = gr.Radio(PROTOCOL_CHOICES, value=vum.DEFAULT_PROTOCOL, label="Protocol")
            b_sampling = gr.Radio(SAMPLING_CHOICES, value="proportional", label="Sampling (items per value)")
            b_all = gr.Checkbox(value=False, label="All values in the uploaded data (e.g. an ETHICS set)")
        data = gr.File(label="Data (optional): ValueDCG CSV (input,label; ..._VALUE.csv or a value column) "
                             "or JSONL; empty = the bundled 120 items",
                       file_count="multiple", file_types=[".csv", ".jsonl", ".json"], type="filepath")
        run_batch = gr.Button("Run batch", variant="primary", elem_id="vum-batch-run")
        batch_notes = gr.Markdown(elem_classes="caveat")
        table = gr.Dataframe(label="Results per value", interactive=False, elem_id="vum-table",
                             headers=TABLE_HEADERS)
        plot = gr.Plot(label="Know what vs know why per value")
        files = gr.File(label="Download rows (CSV, JSONL)", file_count="multiple", interactive=False)
        summary_json = gr.JSON(label="Summary", visible=False)  # for the API; the tab shows the table and plot
        published_accordion("vum")

    with gr.Tab("Review saved rows"):
        gr.Markdown(REVIEW_INTRO)
        with gr.Row():
            rv_run = gr.Dropdown([], value=None, label="Your saved VUM run", allow_custom_value=True, scale=3,
                                 elem_id="vum-review-run")
            rv_idx = gr.Number(0, precision=0, label="Row (0 = first)", scale=1)
            rv_list = gr.Button("Refresh my runs", size="sm", scale=1)
            rv_show = gr.Button("Show row", scale=1, elem_id="vum-review-show")
        rv_row = gr.Markdown(elem_id="vum-review-row")
        with gr.Row():
            rv_human = [gr.Dropdown(SCORE_CHOICES, value="", label=f"Your score: {p}") for p in vum.PARTS]
        rv_save = gr.Button("Save my scores for this row", variant="primary", elem_id="vum-review-save")
        rv_md = gr.Markdown(elem_id="vum-review-agreement")
        rv_table = gr.Dataframe(label="Judge vs you, per know-why part (all your overridden rows)",
                                headers=R.CONSISTENCY_HEADERS, interactive=False, elem_id="vum-review-table")
        rv_recent = gr.Dataframe(label="Your overrides (latest 50; a re-scored part shows its latest score)",
                                 headers=REVIEW_COLUMNS, interactive=False)
        rv_refresh = gr.Button("Refresh agreement", size="sm")

    @ui_errors
    def review_list_handler(request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        choices = review_run_choices(ctx.store, request_owner(request, profile).id)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    rv_list.click(review_list_handler, None, rv_run, api_name="vum_review_runs", queue=False)

    @ui_errors
    def review_show_handler(run_id, row_idx, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return review_row_markdown(ctx.store, run_id, row_idx, request_owner(request, profile).id)

    rv_show.click(review_show_handler, [rv_run, rv_idx], rv_row, api_name="vum_review_row")

    @ui_errors
    def review_save_handler(run_id, row_idx, s_attr, s_cf, s_reb, request: gr.Request = None,
                            profile: gr.OAuthProfile | None = None):
        return review_save(ctx.store, run_id, row_idx, s_attr, s_cf, s_reb, request_owner(request, profile))

    rv_save.click(review_save_handler, [rv_run, rv_idx, *rv_human], [rv_row, rv_md, rv_table, rv_recent],
                  api_name="vum_override_row")

    @ui_errors
    def review_agreement_handler(request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return agreement_frames(ctx.store, request_owner(request, profile).id)

    rv_refresh.click(review_agreement_handler, None, [rv_md, rv_table, rv_recent], api_name="vum_agreement_table")

    def fill(key):
        item = by_key.get(key)
        if item is None:
            return gr.update(), gr.update(), gr.update()
        return item.text, item.value, str(item.label)

    pick.change(fill, pick, [text, value, label], api_visibility="private", queue=False)

    @ui_errors
    def live_handler(scenario, value_key, label_raw, n_shots, max_tokens, target_spec, judge_spec, creds,
                     proto=vum.DEFAULT_PROTOCOL, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        target, judge = _models(target_spec, judge_spec, creds)
        config = vum.RunConfig(shots=n_shots, critique_tokens=max_tokens, protocol=proto or vum.DEFAULT_PROTOCOL)
        notes = "\n\n".join(x for x in (_protocol_note(config.protocol), _notes(target, judge)) if x)
        given = str(label_raw or "").strip().lower() not in {"", "none"}
        true_label = parse_label(label_raw, "true label") if given else None
        state: dict = {}
        for state in vum.live(None, target, judge, config=config, text=scenario, value=value_key, label=true_label):
            if state.get("phase") == "done":  # a single evaluation is a saved one-row run (overridable later)
                state["run_id"] = save_live_run(ctx.store, state, config, request_owner(request, profile).id)
                state["row_idx"] = 0
                notes += f"\n\nSaved as run `{state['run_id']}` (row 0): score it later under **Review saved rows**."
            yield notes, _answer_md(state), _critique_md(state), _scores_md(state), state
        yield notes, _answer_md(state), _critique_md(state), _scores_md(state), state

    run_live.click(live_handler, [text, value, label, shots, tokens, ctx.target, ctx.judge, ctx.creds, protocol],
                   [live_notes, answer_md, critique_md, scores_md, result], api_name="vum_live",
                   **ctx.model_event())

    @ui_errors
    def override_handler(row, s_attr, s_cf, s_reb, request: gr.Request = None,
                         profile: gr.OAuthProfile | None = None):
        if not isinstance(row, dict):
            raise InputError("there is no judged answer to override yet: run the live evaluation first")
        owner = request_owner(request, profile)  # overrides record who made them (issue 12)
        vum.save_overrides(ctx.store, row, dict(zip(vum.PARTS, (s_attr, s_cf, s_reb), strict=True)), owner=owner)
        return _agreement_md(ctx.store, owner.id)

    save.click(override_handler, [result, *human], [agree_md, agree_df], api_name="vum_override")

    @ui_errors
    def agreement_handler(request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        return _agreement_md(ctx.store, request_owner(request, profile).id)

    refresh.click(agreement_handler, None, [agree_md, agree_df], api_name="vum_agreement")

    @ui_errors
    def batch_handler(value_keys, n, paths, n_shots, max_tokens, with_why, target_spec, judge_spec, creds,
                      proto=vum.DEFAULT_PROTOCOL, sampling="proportional", all_values=False,
                      progress=gr.Progress(), request: gr.Request = None,
                      profile: gr.OAuthProfile | None = None):
        paths = [p for p in (paths or []) if p]
        items = vum.load_many(paths) if paths else vum.bundled_items()
        if all_values and paths:
            keys = vum.values_present(items)
        else:
            if not value_keys:
                raise InputError("choose at least one value")
            keys = vum.parse_values(value_keys, known=vum.values_present(items))
        n = check_int(n, "items per value", 1, 1_000_000)
        sampling = sampling or "proportional"
        selected = vum.select_items(items, keys, n, sampling=sampling)
        if not selected:
            raise InputError(f"the data has no items for {', '.join(keys)}")
        target, judge = _models(target_spec, judge_spec, creds)
        config = vum.RunConfig(shots=n_shots, critique_tokens=max_tokens, know_why=bool(with_why),
                               protocol=proto or vum.DEFAULT_PROTOCOL)
        report = progress_callback(progress, "Value dialogue")
        outcome = run_stoppable(selected, lambda its, t, j: vum.run(its, t, j, config, pool=items, progress=report),
                                [target, judge if with_why else None], unit="items")  # Stop keeps what finished
        if outcome.value is None:
            raise gr.Error(outcome.message())
        summary, rows = outcome.value
        res = vum.to_result(rows, summary, [BUNDLED_CAVEAT] if _bundled(target, judge if with_why else None) else [])
        res.params.update(values=keys, n_per_value=n, sampling=sampling,
                          data=[Path(p).name for p in paths] or ["bundled"])
        run_id = save_run(res, owner=request_owner(request, profile).id, source="ui", store=ctx.store,
                          outcome=outcome)  # the visitor's run (issue 12), marked if stopped
        out_dir = Path(tempfile.mkdtemp(prefix="vum-"))
        downloads = [str(vum.write_csv(rows, out_dir / f"{run_id}.csv")),
                     str(vum.write_jsonl(rows, out_dir / f"{run_id}.jsonl"))]
        notes = _notes(target, judge if with_why else None)
        info = (f"Run `{run_id}` saved · {len(rows)} items ({sampling} sampling) · discriminator: "
                f"{', '.join(summary['overall']['modes'])}\n\n{_protocol_note(config.protocol)}")
        return ("\n\n".join(n for n in (outcome.message(), info, notes) if n), pd.DataFrame(vum.summary_table(summary)),
                _plot(summary), downloads, {"run_id": run_id, **summary, **outcome.marks()})

    batch_event = run_batch.click(batch_handler,
                    [values, n_items, data, b_shots, b_tokens, know_why, ctx.target, ctx.judge, ctx.creds,
                     b_protocol, b_sampling, b_all],
                    [batch_notes, table, plot, files, summary_json], api_name="vum_batch", **ctx.model_event())
    stop_button(batch_event, "vum-batch-stop", cancel=False, api_name="vum_batch_stop")  # issue 12: keeps what finished

    with gr.Accordion("Replay a recorded release", open=False, elem_id="vum-replay"):
        gr.Markdown(REPLAY_INTRO)
        with gr.Row():
            rp_folder = gr.Textbox(label="Release folder on the server (private app only)", visible=not is_public(),
                                   placeholder="../shared/data/valuedcg", scale=2)
            rp_upload = gr.File(label="or upload: a .zip of a release folder, or a .jsonl of recorded rows",
                                file_types=[".zip", ".jsonl"], type="filepath", scale=2)
            rp_save = gr.Checkbox(value=True, label="Save one run per model", scale=1)
        rp_run = gr.Button("Replay", variant="primary", elem_id="vum-replay-run")
        rp_notes = gr.Markdown(elem_classes="caveat")
        rp_overall = gr.Dataframe(label="Per model (replayed recorded outputs of the release, not run here)",
                                  headers=R.OVERALL_HEADERS, interactive=False, elem_id="vum-replay-overall")
        rp_values = gr.Dataframe(label="Per model × value", headers=R.VALUE_HEADERS, interactive=False)
        rp_plot = gr.Plot(label="Know what vs know why by model")
        rp_cons = gr.Dataframe(label="Judge vs people: the release's GPT-4o (its 200-critique study) and this "
                                     "app's judge (your overrides)", headers=R.CONSISTENCY_HEADERS,
                               interactive=False)
        rp_summary = gr.JSON(visible=False)
    rp_run.click(replay_handler, [rp_folder, rp_upload, rp_save],
                 [rp_notes, rp_overall, rp_values, rp_plot, rp_cons, rp_summary], api_name="vum_replay")
