"""Value space tab (UniVaR): answers -> embeddings -> projection, neighbours, source distances.

Thin: every number comes from :mod:`valdemo.univar`. Sets (QA pairs, embeddings)
live in that module's in-process registry; this tab passes their ids around, so
the named API endpoints chain the same way (generate -> embed -> project).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import univar as U
from ..models import BUNDLED_CAVEAT, GenParams
from .common import progress_callback, resolve_model, ui_errors

QUESTION_SETS = ["quick (30 questions)", "full bundled set", "uploaded questions"]
QA_COLUMNS = ["id", "source", "dimension", "question", "answer"]
NEIGHBOUR_COLUMNS = ["rank", "id", "similarity", "source", "same_source", "dimension", "question", "answer"]
MAX_TABLE_ROWS = 300

INTRO = """**Value space** (UniVaR, Cahyawijaya et al. 2024): each source (a model, or the same model
under a persona) answers value-eliciting questions; each question-answer pair is embedded; sources
whose values differ should land apart. The optional *value head* is trained with UniVaR's objective
(two views of 1..λ QA pairs per source, symmetric InfoNCE) and is judged by k-nearest-neighbour
source identification on held-out questions, side by side with the raw encoder."""


def _caveat(bundled: bool) -> str:
    return f"> ⚠️ **{BUNDLED_CAVEAT}**" if bundled else ""


def _qa_table(pairs) -> pd.DataFrame:
    rows = [{"id": i, "source": p.source, "dimension": p.dimension, "question": p.question, "answer": p.answer}
            for i, p in enumerate(pairs[:MAX_TABLE_ROWS])]
    return pd.DataFrame(rows, columns=QA_COLUMNS)


def _qa_status(qa: U.QASet) -> str:
    meta = qa.meta
    lines = [f"**{len(qa.pairs)} QA pairs** from {len(qa.sources)} sources: " + ", ".join(f"`{s}`" for s in qa.sources)]
    if meta.get("empty_answers"):
        per = ", ".join(f"{k}: {v}" for k, v in meta.get("empty_by_source", {}).items())
        lines.append(f"⚠️ **{meta['empty_answers']} empty answers** were left out ({per}).")
    if meta.get("truncated_answers"):
        lines.append(f"{meta['truncated_answers']} answers hit the token limit (kept, cut short).")
    if len(qa.pairs) > MAX_TABLE_ROWS:
        lines.append(f"The table shows the first {MAX_TABLE_ROWS}; exports hold all.")
    caveat = _caveat(qa.bundled)
    return "\n\n".join(lines + ([caveat] if caveat else []))


def _metrics_md(es: U.EmbeddedSet) -> str:
    m = es.metrics
    lines = [f"Encoder **{es.encoder}** · {len(es.pairs)} points · embedding set `{es.id}`"]
    if "raw" not in m:
        lines.append(m.get("note", "kNN source identification needs at least two sources."))
    else:
        lines.append(f"kNN source identification on {m['n_test']} held-out QA pairs "
                     f"(questions split train/test; references: {m['n_train']} train pairs; "
                     f"chance {m['chance']:.2f}).")
        if es.head is not None:
            lines.append(f"Value head: λ={m.get('lambda')}, {m.get('steps')} steps, "
                         f"loss {m.get('first_loss')} → {m.get('final_loss')}, {m.get('train_s')} s.")
    caveat = _caveat(es.qa.bundled)
    return "\n\n".join(lines + ([caveat] if caveat else []))


def _metrics_df(es: U.EmbeddedSet) -> pd.DataFrame:
    return pd.DataFrame(U.knn_table(es.metrics), columns=["k", "raw", "head"])


def _explore_note(es: U.EmbeddedSet) -> str:
    rows = {r["k"]: r for r in U.knn_table(es.metrics)}
    lines = [f"{len(es.pairs)} points from {len(es.qa.sources)} sources · encoder {es.encoder}."]
    if rows[1]["raw"] is not None:
        head = f", value head {rows[1]['head']:.2f}" if rows[1]["head"] is not None else ""
        lines.append(f"kNN source identification acc@1 on held-out questions: raw {rows[1]['raw']:.2f}{head} "
                     f"(chance {es.metrics.get('chance', 0):.2f}).")
    caveat = _caveat(es.qa.bundled)
    return " ".join(lines) + (f"\n\n{caveat}" if caveat else "")


def _point_choices(es: U.EmbeddedSet) -> list[tuple[str, int]]:
    return [(f"#{i} · {p.source} · {p.question[:60]}", i) for i, p in enumerate(es.pairs)]


def _proj(method, dims, n_neighbors, min_dist, metric) -> U.ProjectionParams:
    return U.ProjectionParams(method=str(method), dims=int(dims), n_neighbors=int(n_neighbors),
                              min_dist=float(min_dist), metric=str(metric))


def _figure(es: U.EmbeddedSet, space: str, params: U.ProjectionParams, color_by: str, search: str):
    coords = U.project_set(es, space, params)
    return U.scatter_figure(es.pairs, coords, color_by, search,
                            title=f"{space} space · {params.method.upper()} {params.dims}-D")


def _similarity(es: U.EmbeddedSet, space: str):
    if len(es.qa.sources) < 2:
        return None, "Only one source: nothing to compare."
    names, dist = U.source_distances(es, space)
    ranked = U.ranked_pairs(names, dist)
    lines = ["| rank | source | source | distance |", "|---|---|---|---|"]
    lines += [f"| {i} | {r['source_a']} | {r['source_b']} | {r['distance']:.4f} |" for i, r in enumerate(ranked, 1)]
    caveat = _caveat(es.qa.bundled)
    return U.heatmap_figure(names, dist), "\n".join(lines) + (f"\n\n{caveat}" if caveat else "")


def build(ctx) -> None:
    demo = U.load_demo() if U.demo_available() else None
    demo_params = U.demo_projection_params()
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
            max_new_tokens = gr.Slider(8, 512, value=64, step=8, label="Max new tokens per answer")
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

    with gr.Accordion("2 · Embed and train the value head", open=demo is None):
        with gr.Row():
            encoder = gr.Dropdown(["bundled", *U.UNIVAR_ENCODERS], value="bundled", allow_custom_value=True,
                                  label="Encoder", info="bundled MiniLM, any sentence-transformers id/path; "
                                                        "UniVaR encoders need the model hub")
            train_head = gr.Checkbox(value=True, label="Train value head (UniVaR objective)")
            lam = gr.Slider(1, 20, value=5, step=1, label="λ (max QA pairs per view)")
            steps = gr.Slider(20, 2000, value=300, step=20, label="Training steps")
        embed_btn = gr.Button("Embed", variant="primary", elem_id="univar-embed")
        emb_id = gr.Textbox(value=demo.id if demo else "", label="Embedding set id", elem_id="univar-emb-id")
        metrics_md = gr.Markdown(_metrics_md(demo) if demo else "")
        metrics_df = gr.Dataframe(_metrics_df(demo) if demo else None, headers=["k", "raw", "head"],
                                  label="kNN source identification accuracy (held-out questions)",
                                  interactive=False)

    gr.Markdown("### 3 · Explore" + (" · bundled demo set (the bundled model under four personas)" if demo else ""))
    with gr.Row():
        space = gr.Radio(["raw", "head"], value="raw", label="Space")
        method = gr.Radio(list(U.PROJECTIONS), value=demo_params.method, label="Projection")
        dims = gr.Radio([2, 3], value=demo_params.dims, label="Dimensions")
        color_by = gr.Dropdown(list(U.COLOR_BY), value="source", label="Colour by")
    with gr.Row():
        n_neighbors = gr.Slider(2, 100, value=demo_params.n_neighbors, step=1, label="UMAP n_neighbors")
        min_dist = gr.Slider(0.0, 1.0, value=demo_params.min_dist, step=0.05, label="UMAP min_dist")
        metric = gr.Dropdown(list(U.UMAP_METRICS), value=demo_params.metric, label="UMAP metric")
        search = gr.Textbox(label="Highlight points containing", placeholder="e.g. family, money, tradition")
    project_btn = gr.Button("Project", variant="primary", elem_id="univar-project")
    explore_note = gr.Markdown(_explore_note(demo) if demo else "", elem_id="univar-note")
    plot = gr.Plot(_figure(demo, "raw", demo_params, "source", "") if demo else None, label="Value space",
                   elem_id="univar-plot")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Inspect a point**: nearest neighbours in the original embedding space")
            with gr.Row():
                point = gr.Dropdown(_point_choices(demo) if demo else [], value=0 if demo else None,
                                    label="Point (or type its id)", allow_custom_value=True, scale=3)
                k = gr.Slider(1, 50, value=8, step=1, label="k", scale=1)
            nn_btn = gr.Button("Show neighbours", elem_id="univar-neighbours")
            nn_table = gr.Dataframe(headers=NEIGHBOUR_COLUMNS, wrap=True, max_height=360, interactive=False)
        with gr.Column():
            gr.Markdown("**Source similarity**: cosine distance between source centroids")
            sim_btn = gr.Button("Compare sources", elem_id="univar-similarity")
            sim_init = _similarity(demo, "raw") if demo else (None, "")
            heat = gr.Plot(sim_init[0], label="Centroid distances")
            ranked = gr.Markdown(sim_init[1])
    with gr.Row():
        fmt = gr.Radio(["csv", "parquet"] if U.parquet_available() else ["csv"], value="csv", label="Table format")
        export_btn = gr.Button("Export embeddings, projection and figure", elem_id="univar-export")
    files = gr.File(label="Exports", file_count="multiple")

    proj_inputs = [method, dims, n_neighbors, min_dist, metric]

    @ui_errors
    def generate(models_text, names, pfile, qset, upload_file, max_tokens, creds, progress=gr.Progress()):
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
        qa = U.generate_qa(chat_models, questions, chosen, GenParams(max_new_tokens=int(max_tokens)),
                           progress_callback(progress, "answers"))
        U.remember(qa)
        return qa.id, _qa_table(qa.pairs), _qa_status(qa)

    @ui_errors
    def upload_qa(upload_file):
        if not upload_file:
            raise gr.Error("upload a QA pairs file (source,question,answer[,language]) first")
        qa = U.remember(U.qa_set_from_pairs(U.load_qa_pairs(upload_file)))
        return qa.id, _qa_table(qa.pairs), _qa_status(qa)

    @ui_errors
    def embed(set_id, enc, head, lam_v, steps_v, progress=gr.Progress()):
        qa = U.get_qa_set(set_id)
        params = U.HeadParams(lam=int(lam_v), steps=int(steps_v))
        es = U.embed_qa(qa, "" if enc in (None, "bundled") else enc, bool(head), params,
                        progress_callback(progress, "embeddings"))
        return es.id, _metrics_md(es), _metrics_df(es), gr.update(choices=_point_choices(es), value=0)

    @ui_errors
    def project(set_id, space_v, method_v, dims_v, nn_v, md_v, metric_v, color_v, search_v,
                progress=gr.Progress()):
        es = U.get_embedded(set_id)
        progress(0.1, desc=f"{method_v} projection")
        fig = _figure(es, space_v, _proj(method_v, dims_v, nn_v, md_v, metric_v), color_v, search_v or "")
        return fig, _explore_note(es)

    @ui_errors
    def show_neighbours(set_id, space_v, point_v, k_v):
        es = U.get_embedded(set_id)
        if point_v in (None, ""):
            raise gr.Error("pick a point first")
        rows = U.neighbours(es, point_v, int(k_v), space_v)
        return pd.DataFrame(rows, columns=NEIGHBOUR_COLUMNS)

    @ui_errors
    def compare(set_id, space_v):
        es = U.get_embedded(set_id)
        es.space(space_v)
        return _similarity(es, space_v)

    @ui_errors
    def export(set_id, space_v, method_v, dims_v, nn_v, md_v, metric_v, color_v, fmt_v):
        es = U.get_embedded(set_id)
        params = _proj(method_v, dims_v, nn_v, md_v, metric_v)
        coords = U.project_set(es, space_v, params)
        out = Path(tempfile.mkdtemp(prefix="valdemo-univar-"))
        table = U.export_points(es, out, coords, space_v, fmt_v)
        fig = U.scatter_figure(es.pairs, coords, color_v, title=f"{space_v} space · {params.method.upper()}")
        html = U.write_figure_html(fig, out / "figure.html")
        qa = U.write_qa_jsonl(es.pairs, out / "qa.jsonl")
        return [str(table), str(html), str(qa)]

    gen_btn.click(generate, [models, persona_names, personas_file, question_set, upload, max_new_tokens, ctx.creds],
                  [qa_id, qa_table, qa_status], api_name="univar_generate", **ctx.model_event())
    qa_btn.click(upload_qa, [upload], [qa_id, qa_table, qa_status], api_name="univar_upload_qa")
    embed_btn.click(embed, [qa_id, encoder, train_head, lam, steps], [emb_id, metrics_md, metrics_df, point],
                    api_name="univar_embed", **ctx.model_event())
    project_btn.click(project, [emb_id, space, *proj_inputs, color_by, search], [plot, explore_note],
                      api_name="univar_project")
    search.submit(project, [emb_id, space, *proj_inputs, color_by, search], [plot, explore_note],
                  api_visibility="private")
    nn_btn.click(show_neighbours, [emb_id, space, point, k], [nn_table], api_name="univar_neighbours")
    sim_btn.click(compare, [emb_id, space], [heat, ranked], api_name="univar_similarity")
    export_btn.click(export, [emb_id, space, *proj_inputs, color_by, fmt], [files], api_name="univar_export")
