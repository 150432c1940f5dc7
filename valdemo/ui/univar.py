"""Value space tab (UniVaR): answers -> embeddings (and the value head) -> evaluation, projection.

Thin: every number comes from :mod:`valdemo.univar`. Sets (QA pairs, embeddings) are kept in
the store per owner (the visitor) and reopen after a restart; this tab passes their ids
around, so the named API endpoints chain the same way (generate -> embed -> project).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import univar as U
from ..core.runs import save_plain, save_run
from ..inputs import check_int
from ..models import BUNDLED_CAVEAT, GenParams
from .common import progress_callback, request_owner, resolve_model, run_stoppable, stop_button, ui_errors
from .lazy import draw_on_load
from .published import published_accordion

QUESTION_SETS = ["quick (30 questions)", "full bundled set", "uploaded questions"]
QA_COLUMNS = ["id", "source", "dimension", "question", "answer"]
NEIGHBOUR_COLUMNS = ["rank", "id", "similarity", "source", "same_source", "dimension", "question", "answer"]
MAX_TABLE_ROWS = 300
COLOR_LABELS = [("source", "source"), ("question topic (value dimension)", "dimension"),
                ("question family", "family"), ("language", "language"), ("model", "model"),
                ("persona", "persona")]

INTRO = """**Value space** (UniVaR, Cahyawijaya et al. 2024, arXiv 2404.07900): each source (a model, or
one model under a persona) answers value-eliciting questions. UniVaR's point is that a *value*
representation is not a sentence embedding: it is learned so that views of the same source
(1..λ of its QA pairs joined into one text and encoded together) land together whatever the
questions. Here a frozen sentence encoder reads the joined views and a small **value head** is
trained on top with UniVaR's objective (symmetric InfoNCE, temperature 0.02 = the paper's logit
scale 50). Both spaces are judged as the paper does: which source gave a view of **held-out
questions**, by k-NN and a linear probe, acc@1/3/5/10 with 95% Wilson intervals and chance.
Non-value control questions are never trained on and are evaluated apart. Every plot and number
names the encoder behind it; the raw encoder's space is sentence-embedding similarity, not UniVaR."""

UMAP_CAVEAT = ("UMAP keeps neighbourhoods, not distances: how far apart two clusters sit, and their sizes, "
               "mean little. Read neighbours and the evaluation table, not gaps on the map. Colour by "
               "*question topic*: if points group by topic rather than source, the space is showing what was "
               "asked, not the values in the answers.")


def _caveat(bundled: bool) -> str:
    return f"> ⚠️ **{BUNDLED_CAVEAT}**" if bundled else ""


def _owner(request: gr.Request | None) -> str:
    return request_owner(request).id


def _qa_table(pairs) -> pd.DataFrame:
    rows = [{"id": i, "source": p.source, "dimension": p.dimension, "question": p.question, "answer": p.answer}
            for i, p in enumerate(pairs[:MAX_TABLE_ROWS])]
    return pd.DataFrame(rows, columns=QA_COLUMNS)


def _qa_status(qa: U.QASet) -> str:
    meta = qa.meta
    lines = [f"**{len(qa.pairs)} QA pairs** from {len(qa.sources)} sources: " + ", ".join(f"`{s}`" for s in qa.sources)]
    if meta.get("stopped"):
        lines.insert(0, meta["stopped"]["message"])
    if meta.get("demo"):
        names = ", ".join(meta.get("personas") or [])
        lines.append(f"Bundled demo set: **one model under personas**: the bundled 135M model answering under "
                     f"{len(meta.get('personas') or [])} system prompts with different value priorities ({names}), "
                     f"not several models.")
    if meta.get("empty_answers"):
        per = ", ".join(f"{k}: {v}" for k, v in meta.get("empty_by_source", {}).items())
        lines.append(f"⚠️ **{meta['empty_answers']} empty answers** were left out ({per}).")
    if meta.get("truncated_answers"):
        lines.append(f"⚠️ **{meta['truncated_answers']} of {len(qa.pairs)} answers stopped at the token limit** "
                     f"(kept, cut short; raise max new tokens).")
    if meta.get("dropped_at_token_limit"):
        per = ", ".join(f"{k}: {v}" for k, v in meta.get("dropped_by_source", {}).items())
        lines.append(f"⚠️ **{meta['dropped_at_token_limit']} of {meta.get('n_asked')} asked answers were left out**: "
                     f"still cut at the token limit after {len(meta.get('attempts') or []) - 1} re-asks with seeded sampling ({per}).")
    if len(qa.pairs) > MAX_TABLE_ROWS:
        lines.append(f"The table shows the first {MAX_TABLE_ROWS}; exports hold all.")
    caveat = _caveat(qa.bundled)
    return "\n\n".join(lines + ([caveat] if caveat else []))


def _metrics_md(es: U.EmbeddedSet) -> str:
    m = es.metrics or {}
    lines = [f"Encoder **{es.encoder}** · {len(es.pairs)} QA pairs · embedding set `{es.id}`"]
    for space in (["raw", "head"] if es.head is not None else ["raw"]):
        lines.append(f"- `{space}`: {es.space_label(space)}")
    if m.get("note"):
        lines.append(m["note"])
    if m.get("n_test_pairs"):
        p = m.get("params", {})
        lines.append(f"Questions split train/test ({m.get('n_train_pairs')} / {m.get('n_test_pairs')} value QA pairs; "
                     f"{m.get('n_control_pairs', 0)} control pairs evaluated apart, never trained on). Evaluation "
                     f"views hold {p.get('eval_lambda', 1)} pair(s); k-NN k = {p.get('k')}. Seen sources: "
                     f"{', '.join(m.get('seen_sources', []))}; unseen: {', '.join(m.get('unseen_sources', [])) or 'none'}.")
    if es.head is not None and "final_loss" in m:
        p = m.get("params", {})
        lines.append(f"Value head: views of 1..λ={p.get('lam')} pairs joined, {m.get('n_training_views')} training "
                     f"views, temperature {p.get('temperature')}, {p.get('steps')} steps, InfoNCE loss "
                     f"{m.get('first_loss')} → {m.get('final_loss')} ({m.get('train_s')} s). A falling training loss "
                     f"is not success: read the held-out table.")
    langs = m.get("languages") or []
    if langs:
        lines.append("**Per language** (does a source stay in place across languages? classifiers fitted on one "
                     "language's train questions, scored on another's held-out questions; this project's own "
                     "table):\n\n| train | test | space | classifier | n | acc@1 [95% CI] | chance |\n"
                     "|---|---|---|---|---|---|---|\n"
                     + "\n".join(f"| {r['train language']} | {r['test language']} | {r['space']} | {r['classifier']} "
                                 f"| {r['n (test views)']} | {r['acc@1 [95% CI]']} | {r['chance@1']} |" for r in langs))
    cut = [f"{what}: {c} of {n}" for what, (c, n) in (m.get("over_limit") or {}).items() if c]
    if cut:
        lines.append("⚠️ Cut at the encoder's input limit (read only in part): " + "; ".join(cut) + ".")
    caveat = _caveat(es.qa.bundled)
    return "\n\n".join(lines + ([caveat] if caveat else []))


def _metrics_df(es: U.EmbeddedSet) -> pd.DataFrame:
    return pd.DataFrame(U.identification_rows(U.identifications(es)), columns=U.IDENT_COLUMNS)


def _explore_note(es: U.EmbeddedSet, space: str) -> str:
    lines = [f"{len(es.pairs)} points (one QA pair each) from {len(es.qa.sources)} sources · "
             f"space: **{es.space_label(space)}**."]
    best = next((i for i in U.identifications(es) if i.space == space and i.evaluator == "linear probe"), None)
    if best and best.metric(1):
        lines.append(f"Held-out source identification ({best.group}, linear probe): acc@1 {best.metric(1).fmt()} "
                     f"(chance {best.chance(1):.2f}).")
    text = " ".join(lines) + f"\n\n{UMAP_CAVEAT}"
    caveat = _caveat(es.qa.bundled)
    return text + (f"\n\n{caveat}" if caveat else "")


def _point_choices(es: U.EmbeddedSet) -> list[tuple[str, int]]:
    return [(f"#{i} · {p.source} · {p.question[:60]}", i) for i, p in enumerate(es.pairs)]


def _proj(method, dims, n_neighbors, min_dist, metric) -> U.ProjectionParams:
    return U.ProjectionParams(method=str(method), dims=int(dims), n_neighbors=int(n_neighbors),
                              min_dist=float(min_dist), metric=str(metric))


def _figure(es: U.EmbeddedSet, space: str, params: U.ProjectionParams, color_by: str, search: str):
    coords = U.project_set(es, space, params)
    return U.scatter_figure(es.pairs, coords, color_by, search,
                            title=f"{es.space_label(space)} · {params.method.upper()} {params.dims}-D")


def _similarity(es: U.EmbeddedSet, space: str):
    if len(es.qa.sources) < 2:
        return None, "Only one source: nothing to compare."
    names, dist = U.source_distances(es, space)
    return U.heatmap_figure(names, dist, es.space_label(space)), _similarity_md(es, space)


def _similarity_md(es: U.EmbeddedSet, space: str) -> str:
    if len(es.qa.sources) < 2:
        return "Only one source: nothing to compare."
    names, dist = U.source_distances(es, space)
    ranked = U.ranked_pairs(names, dist)
    lines = [f"Space: {es.space_label(space)}", "", "| rank | source | source | distance |", "|---|---|---|---|"]
    lines += [f"| {i} | {r['source_a']} | {r['source_b']} | {r['distance']:.4f} |" for i, r in enumerate(ranked, 1)]
    caveat = _caveat(es.qa.bundled)
    return "\n".join(lines) + (f"\n\n{caveat}" if caveat else "")


def _saved_choices(owner: str) -> list[tuple[str, str]]:
    out = []
    for s in U.list_sets(owner, "emb"):
        head = " + value head" if s.get("head") else ""
        out.append((f"{s['id']} · {s.get('n_pairs')} pairs · {len(s.get('sources', []))} sources · "
                    f"{s.get('encoder')}{head}", s["id"]))
    return out


def build(ctx) -> None:
    demo = U.load_demo() if U.demo_available() else None
    demo_params = U.demo_projection_params()
    demo_space = demo.default_space if demo else "raw"
    gr.Markdown(INTRO)
    personas = U.load_personas()

    with gr.Accordion("1 · Answers: sources and questions", open=demo is None):
        with gr.Row():
            models = gr.Textbox(value=ctx.settings.default_target, label="Models (comma-separated specs)",
                                info="each model x each persona is one source", scale=3)
            persona_names = gr.CheckboxGroup([p.name for p in personas], value=["caring", "ambitious"],
                                             label="Bundled personas (system prompts)", scale=3)
        with gr.Row():
            question_set = gr.Radio(QUESTION_SETS, value=QUESTION_SETS[0], label="Questions")
            max_new_tokens = gr.Slider(8, 512, value=256, step=8, label="Max new tokens per answer",
                                       info="answers that stop at this limit are counted and shown")
        with gr.Row():
            upload = gr.File(label="Upload questions (question[,id,dimension,family,language]) or QA pairs "
                                   "(source,question,answer[,language]) as CSV/JSONL",
                             file_types=[".csv", ".jsonl", ".json"])
            personas_file = gr.File(label="Optional personas file (JSON list of {name, system}, or CSV name,system)",
                                    file_types=[".json", ".csv", ".jsonl"])
        with gr.Row():
            gen_btn = gr.Button("Generate answers", variant="primary", elem_id="univar-generate")
            qa_btn = gr.Button("Use uploaded QA pairs", elem_id="univar-upload-qa")
        qa_id = gr.Textbox(value=demo.qa.id if demo else "", label="QA set id", elem_id="univar-qa-id")
        qa_status = gr.Markdown(_qa_status(demo.qa) if demo else "")
        qa_table = gr.Dataframe(_qa_table(demo.pairs) if demo else None, headers=QA_COLUMNS, wrap=True,
                                max_height=320, label="QA pairs", interactive=False)

    with gr.Accordion("2 · Embed, train the value head, evaluate", open=True):
        with gr.Row():
            encoder = gr.Dropdown(["bundled", *U.UNIVAR_ENCODERS], value="bundled", allow_custom_value=True,
                                  label="Encoder", info="bundled MiniLM, any sentence-transformers id/path; "
                                                        "UniVaR encoders need the model hub")
            train_head = gr.Checkbox(value=True, label="Train value head (UniVaR objective)")
            lam = gr.Slider(1, U.MAX_LAMBDA, value=5, step=1, label="λ (max QA pairs per training view)",
                            info="pairs of a view are joined and encoded together; MiniLM reads 256 tokens")
            steps = gr.Slider(20, 2000, value=300, step=20, label="Training steps")
        with gr.Accordion("Evaluation settings", open=False):
            with gr.Row():
                temperature = gr.Number(value=U.PAPER_TEMPERATURE, label="Temperature (0.02 = logit scale 50)")
                k_nn = gr.Slider(1, U.MAX_K, value=U.DEFAULT_K, step=1, label="k-NN neighbours (k)")
                eval_lam = gr.Slider(1, U.MAX_LAMBDA, value=1, step=1, label="QA pairs per evaluation view")
                unseen = gr.Number(value=0, precision=0, label="Unseen sources (last N held out of training)")
        embed_btn = gr.Button("Embed and evaluate", variant="primary", elem_id="univar-embed")
        emb_id = gr.Textbox(value=demo.id if demo else "", label="Embedding set id", elem_id="univar-emb-id")
        with gr.Row():
            saved = gr.Dropdown([], label="Your saved embedding sets (kept in the store; reopen after a restart)",
                                allow_custom_value=True, scale=4)
            refresh_btn = gr.Button("Refresh list", scale=1, elem_id="univar-refresh")
            open_btn = gr.Button("Open", scale=1, elem_id="univar-open")
        metrics_md = gr.Markdown(_metrics_md(demo) if demo else "")
        metrics_df = gr.Dataframe(_metrics_df(demo) if demo else None, headers=U.IDENT_COLUMNS, wrap=True,
                                  label="Source identification on held-out questions (acc@r, 95% Wilson "
                                        "interval, n test views, chance)", interactive=False)
        published_accordion("univar")  # the paper's Table 1 beside this app's identification numbers

    gr.Markdown("### 3 · Explore" + (" · bundled demo set (one model under four personas)" if demo else ""))
    with gr.Row():
        space = gr.Radio(["raw", "head"], value=demo_space, label="Space",
                         info="head = the value space trained here; raw = the encoder's sentence embeddings")
        method = gr.Radio(list(U.PROJECTIONS), value=demo_params.method, label="Projection")
        dims = gr.Radio([2, 3], value=demo_params.dims, label="Dimensions")
        color_by = gr.Dropdown(COLOR_LABELS, value="source", label="Colour by")
        topic_btn = gr.Button("Colour by question topic", elem_id="univar-topic")
    with gr.Row():
        n_neighbors = gr.Slider(2, 100, value=demo_params.n_neighbors, step=1, label="UMAP n_neighbors")
        min_dist = gr.Slider(0.0, 1.0, value=demo_params.min_dist, step=0.05, label="UMAP min_dist")
        metric = gr.Dropdown(list(U.UMAP_METRICS), value=demo_params.metric, label="UMAP metric")
        search = gr.Textbox(label="Highlight points containing", placeholder="e.g. family, money, tradition")
    project_btn = gr.Button("Project", variant="primary", elem_id="univar-project")
    explore_note = gr.Markdown(_explore_note(demo, demo_space) if demo else "", elem_id="univar-note")
    plot = gr.Plot(label="Value space", elem_id="univar-plot")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Inspect a point**: nearest neighbours in the chosen space (not the projection)")
            with gr.Row():
                point = gr.Dropdown(_point_choices(demo) if demo else [], value=0 if demo else None,
                                    label="Point (or type its id)", allow_custom_value=True, scale=3)
                k = gr.Slider(1, 50, value=8, step=1, label="k", scale=1)
            nn_btn = gr.Button("Show neighbours", elem_id="univar-neighbours")
            nn_table = gr.Dataframe(headers=NEIGHBOUR_COLUMNS, wrap=True, max_height=360, interactive=False)
        with gr.Column():
            gr.Markdown("**Source similarity**: cosine distance between source centroids in the chosen space")
            sim_btn = gr.Button("Compare sources", elem_id="univar-similarity")
            heat = gr.Plot(label="Centroid distances")
            ranked = gr.Markdown(_similarity_md(demo, demo_space) if demo else "")
    if demo:  # the demo's figures are drawn when a page loads, not while the app is built (issue 19)
        draw_on_load(lambda: (_figure(demo, demo_space, demo_params, "source", ""),
                              _similarity(demo, demo_space)[0]), plot, heat)
    with gr.Row():
        fmt = gr.Radio(["csv", "parquet"] if U.parquet_available() else ["csv"], value="csv", label="Table format")
        export_btn = gr.Button("Export embeddings, projection and figure", elem_id="univar-export")
    files = gr.File(label="Exports", file_count="multiple")

    proj_inputs = [method, dims, n_neighbors, min_dist, metric]

    @ui_errors
    def generate(models_text, names, pfile, qset, upload_file, max_tokens, creds, request: gr.Request,
                 progress=gr.Progress()):
        specs = U.parse_model_list(models_text or "")
        chosen = U.select_personas(list(names or []), U.load_personas(pfile) if pfile else personas)
        if qset == QUESTION_SETS[2]:
            if not upload_file:
                raise gr.Error("upload a questions file first (or pick a bundled question set)")
            if U.looks_like_qa_file(upload_file):
                raise gr.Error("this file holds QA pairs (it has an answer column): use 'Use uploaded QA pairs'")
            questions = U.load_questions(upload_file)
        else:
            questions = U.load_questions()
            if qset == QUESTION_SETS[0]:
                questions = U.pick_questions(questions, 30)
        chat_models = [resolve_model(s, creds) for s in specs]
        params, report = GenParams(max_new_tokens=int(max_tokens)), progress_callback(progress, "answers")
        # Stop keeps the questions every model answered under every persona (issue 12)
        outcome = run_stoppable(questions, lambda qs, *ms: U.generate_qa(list(ms), qs, chosen, params, report),
                                chat_models, unit="questions")
        if outcome.value is None:
            raise gr.Error(outcome.message())
        qa, owner = outcome.value, _owner(request)
        if outcome.stopped:
            qa.meta["stopped"] = {**outcome.marks(), "message": outcome.message()}
            save_plain("univar-generate", {"models": specs, "personas": [p.name for p in chosen],
                                           "params": params.as_dict()},
                       {"qa_set": qa.id, "pairs": len(qa.pairs), "empty_answers": qa.meta.get("empty_answers", 0)},
                       [p.as_dict() for p in qa.pairs], owner=owner, outcome=outcome)
        U.remember(qa, owner=owner)
        return qa.id, _qa_table(qa.pairs), _qa_status(qa)

    @ui_errors
    def upload_qa(upload_file, request: gr.Request):
        if not upload_file:
            raise gr.Error("upload a QA pairs file (source,question,answer[,language]) first")
        qa = U.remember(U.qa_set_from_pairs(U.load_qa_pairs(upload_file)), owner=_owner(request))
        return qa.id, _qa_table(qa.pairs), _qa_status(qa)

    @ui_errors
    def embed(set_id, enc, head, lam_v, steps_v, temp_v, k_v, eval_lam_v, unseen_v, request: gr.Request,
              progress=gr.Progress()):
        params = U.HeadParams(lam=int(lam_v), steps=int(steps_v),
                              temperature=float(U.PAPER_TEMPERATURE if temp_v in (None, "") else temp_v),
                              k=int(k_v or U.DEFAULT_K), eval_lambda=int(eval_lam_v or 1),
                              unseen_sources=int(unseen_v or 0))
        owner = _owner(request)
        qa = U.get_qa_set(set_id, owner)
        es = U.embed_qa(qa, "" if enc in (None, "bundled") else enc, bool(head), params,
                        progress_callback(progress, "embeddings"), owner=owner)
        save_run(U.to_result(es), owner=owner, source="ui")  # the evaluation, with its owner
        return (es.id, _metrics_md(es), _metrics_df(es), gr.update(choices=_point_choices(es), value=0),
                es.default_space)

    @ui_errors
    def refresh(request: gr.Request):
        return gr.update(choices=_saved_choices(_owner(request)))

    @ui_errors
    def open_saved(set_id, request: gr.Request):
        if not set_id:
            raise gr.Error("pick a saved set first (Refresh list)")
        es = U.get_embedded(set_id, _owner(request))
        return (es.id, es.qa.id, _qa_table(es.pairs), _qa_status(es.qa), _metrics_md(es), _metrics_df(es),
                gr.update(choices=_point_choices(es), value=0), es.default_space)

    @ui_errors
    def project(set_id, space_v, method_v, dims_v, nn_v, md_v, metric_v, color_v, search_v, request: gr.Request,
                progress=gr.Progress()):
        params = _proj(method_v, dims_v, nn_v, md_v, metric_v)
        es = U.get_embedded(set_id, _owner(request))
        progress(0.1, desc=f"{method_v} projection")
        fig = _figure(es, space_v, params, color_v, search_v or "")
        return fig, _explore_note(es, space_v)

    @ui_errors
    def show_neighbours(set_id, space_v, point_v, k_v, request: gr.Request):
        k_v = check_int(k_v, "k", 1, 100)
        es = U.get_embedded(set_id, _owner(request))
        if point_v in (None, ""):
            raise gr.Error("pick a point first")
        rows = U.neighbours(es, point_v, int(k_v), space_v)
        return pd.DataFrame(rows, columns=NEIGHBOUR_COLUMNS)

    @ui_errors
    def compare(set_id, space_v, request: gr.Request):
        es = U.get_embedded(set_id, _owner(request))
        es.space(space_v)
        return _similarity(es, space_v)

    @ui_errors
    def export(set_id, space_v, method_v, dims_v, nn_v, md_v, metric_v, color_v, fmt_v, request: gr.Request):
        params = _proj(method_v, dims_v, nn_v, md_v, metric_v)
        es = U.get_embedded(set_id, _owner(request))
        coords = U.project_set(es, space_v, params)
        out = Path(tempfile.mkdtemp(prefix="valdemo-univar-"))
        table = U.export_points(es, out, coords, space_v, fmt_v)
        fig = U.scatter_figure(es.pairs, coords, color_v, title=f"{es.space_label(space_v)} · {params.method.upper()}")
        html = U.write_figure_html(fig, out / "figure.html")
        qa = U.write_qa_jsonl(es.pairs, out / "qa.jsonl")
        return [str(table), str(html), str(qa)]

    gen_event = gen_btn.click(generate, [models, persona_names, personas_file, question_set, upload, max_new_tokens,
                                         ctx.creds], [qa_id, qa_table, qa_status], api_name="univar_generate",
                              **ctx.model_event())
    stop_button(gen_event, "univar-generate-stop", cancel=False, api_name="univar_generate_stop")  # keeps finished
    qa_btn.click(upload_qa, [upload], [qa_id, qa_table, qa_status], api_name="univar_upload_qa")
    embed_btn.click(embed, [qa_id, encoder, train_head, lam, steps, temperature, k_nn, eval_lam, unseen],
                    [emb_id, metrics_md, metrics_df, point, space], api_name="univar_embed", **ctx.model_event())
    refresh_btn.click(refresh, [], [saved], api_name="univar_saved_sets")
    open_btn.click(open_saved, [saved], [emb_id, qa_id, qa_table, qa_status, metrics_md, metrics_df, point, space],
                   api_name="univar_open")
    project_btn.click(project, [emb_id, space, *proj_inputs, color_by, search], [plot, explore_note],
                      api_name="univar_project")
    search.submit(project, [emb_id, space, *proj_inputs, color_by, search], [plot, explore_note],
                  api_visibility="private")
    topic_btn.click(lambda: "dimension", [], [color_by], api_visibility="private").then(
        project, [emb_id, space, *proj_inputs, color_by, search], [plot, explore_note], api_visibility="private")
    nn_btn.click(show_neighbours, [emb_id, space, point, k], [nn_table], api_name="univar_neighbours")
    sim_btn.click(compare, [emb_id, space], [heat, ranked], api_name="univar_similarity")
    export_btn.click(export, [emb_id, space, *proj_inputs, color_by, fmt], [files], api_name="univar_export")
