"""``valdemo univar``: the Value space tab, headless (UniVaR).

Generates answers from model specs x personas (or reads ready QA pairs), embeds
them, optionally trains the value head, projects, and writes the QA set,
embeddings, projection and an HTML figure into ``--out``.
"""

from __future__ import annotations

import argparse

from . import CLIError, add_common, emit, progress_printer
from ._replay import add_replay_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("univar", help="value space: embed models' answers to value questions, project, compare")
    src = p.add_argument_group("sources")
    src.add_argument("--models", default="local", help="comma-separated model specs (default local)")
    src.add_argument("--personas", default=None,
                     help="personas file (JSON list of {name, system}, or CSV/JSONL name,system); "
                          "'bundled' for the bundled personas; default: no system prompt")
    src.add_argument("--persona-names", default="", help="comma-separated subset of the personas to use")
    src.add_argument("--questions", default=None,
                     help="questions CSV/JSONL (column question; optional id, dimension, family, language), "
                          "or 'bundled'")
    src.add_argument("--limit", type=int, default=0, help="use N questions spread over the value dimensions")
    src.add_argument("--qa", default=None, help="ready QA pairs CSV/JSONL (source,question,answer[,language]) "
                                                "instead of generating")
    src.add_argument("--max-new-tokens", type=int, default=64)
    emb = p.add_argument_group("embedding")
    emb.add_argument("--encoder", default="", help="sentence-transformers id or path; empty or 'bundled' = "
                                                   "bundled all-MiniLM-L6-v2; CAiRE/UniVaR-lambda-* needs the hub")
    emb.add_argument("--train-head", action="store_true", help="train the value head (UniVaR objective) and "
                                                               "report kNN accuracy raw vs head")
    emb.add_argument("--lambda", dest="lam", type=int, default=5,
                     help="training views hold 1..lambda QA pairs joined and encoded together (up to 80)")
    emb.add_argument("--steps", type=int, default=300, help="head training steps")
    emb.add_argument("--temperature", type=float, default=0.02,
                     help="InfoNCE temperature (default 0.02: the paper's logit scale 50)")
    emb.add_argument("--views-per-source", type=int, default=48, help="training views drawn per source")
    emb.add_argument("--k", type=int, default=5, help="k-NN neighbours in the evaluation (1..50)")
    emb.add_argument("--eval-lambda", type=int, default=1, help="QA pairs per evaluation view (1..80)")
    emb.add_argument("--unseen-sources", type=int, default=0,
                     help="hold the last N sources out of head training and evaluate them as unseen")
    emb.add_argument("--seed", type=int, default=0)
    pr = p.add_argument_group("projection")
    pr.add_argument("--projection", choices=["umap", "pca"], default="umap")
    pr.add_argument("--dims", type=int, choices=[2, 3], default=2)
    pr.add_argument("--n-neighbors", type=int, default=15)
    pr.add_argument("--min-dist", type=float, default=0.1)
    pr.add_argument("--metric", default="cosine")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="points table format")
    p.add_argument("--out", default=None, help="output folder (required)")
    add_common(p)
    p.set_defaults(func=run)
    sub_u = p.add_subparsers(dest="univar_command", metavar="replay", required=False)
    rp = sub_u.add_parser("replay", help="the value-space evaluation of recorded question-answer pairs, "
                                         "without calling a model (only the encoder runs)")
    add_replay_args(rp, "question-answer pairs per source")
    rp.add_argument("--encoder", default="", help="sentence-transformers id or path; empty or 'bundled' = "
                                                  "bundled all-MiniLM-L6-v2")
    rp.add_argument("--train-head", action="store_true", help="train the value head and evaluate it too")
    rp.add_argument("--k", type=int, default=5, help="k-NN neighbours in the evaluation (1..50)")
    rp.add_argument("--seed", type=int, default=0)
    rp.set_defaults(func=run_replay)


def run(args: argparse.Namespace) -> int:
    from .. import univar as U
    from ..core.runs import save_run
    from ..models import GenParams

    if not args.out:
        raise CLIError("--out FOLDER is required")
    if args.qa and args.questions:
        raise CLIError("give either --qa (ready QA pairs) or --questions, not both")
    if not args.qa and not args.questions:
        raise CLIError("--questions PATH (or 'bundled') is required unless --qa is given")
    head = U.HeadParams(lam=args.lam, steps=args.steps, seed=args.seed, temperature=args.temperature,
                        views_per_source=args.views_per_source, k=args.k, eval_lambda=args.eval_lambda,
                        unseen_sources=args.unseen_sources)
    proj = U.ProjectionParams(method=args.projection, dims=args.dims, n_neighbors=args.n_neighbors,
                              min_dist=args.min_dist, metric=args.metric)
    qa_pairs = questions = specs = None
    personas: list = []
    if args.qa:
        qa_pairs = U.load_qa_pairs(args.qa)
    else:
        specs = U.parse_model_list(args.models)
        questions = U.load_questions(args.questions)
        if args.limit:
            questions = U.pick_questions(questions, args.limit, args.seed)
        if args.personas:
            names = [n.strip() for n in args.persona_names.split(",") if n.strip()]
            personas = U.select_personas(names, U.load_personas(args.personas))
    params = GenParams(max_new_tokens=args.max_new_tokens)
    summary = U.run_pipeline(specs, questions, personas, encoder=args.encoder, train_head=args.train_head,
                             head_params=head, proj=proj, out_dir=args.out, qa_pairs=qa_pairs, params=params,
                             use_cache=not args.no_cache, progress=progress_printer, export_format=args.format)
    if summary["bundled_model"]:
        from ..models import BUNDLED_CAVEAT

        summary["caveat"] = BUNDLED_CAVEAT
    result = U.to_result(U.get_embedded(summary["embedding_set"]))
    result.params.update(personas=[p.name for p in personas], train_head=args.train_head,
                         projection=proj.__dict__, qa=args.qa)
    from ..core.owner import LOCAL_ID

    summary["run_id"] = save_run(result, owner=LOCAL_ID, source="cli")  # the local tools' owner, as the local app
    emit(summary, args.json, human=_human)
    return 0


def _human(s: dict) -> str:
    lines = [f"{s['n_points']} QA pairs from {len(s['sources'])} sources, encoder {s['encoder']}"]
    for src, n in s["points_per_source"].items():
        lines.append(f"  {src}: {n}")
    if s["empty_answers"]:
        lines.append(f"empty answers (left out): {s['empty_answers']}")
    if s["truncated_answers"]:
        lines.append(f"answers cut at the token limit (kept): {s['truncated_answers']}")
    for what, (cut, total) in s.get("over_encoder_limit", {}).items():
        if cut:
            lines.append(f"{what} cut at the encoder's input limit: {cut} of {total}")
    if s.get("note"):
        lines.append(s["note"])
    lines.append("Source identification on held-out questions (acc@r [95% Wilson interval], n test views, chance):")
    for r in s["identification"]:
        accs = "  ".join(f"acc@{k} {r[f'acc@{k} [95% CI]']} (chance {r[f'chance@{k}']})"
                         for k in (1, 3, 5, 10) if r[f"chance@{k}"] is not None)
        lines.append(f"  {r['group']} | {r['space']} | {r['classifier']} | n={r['n (test views)']}: {accs}")
    if s.get("languages"):
        lines.append("Per language (train language -> test language, held-out questions; this project's own table):")
        for r in s["languages"]:
            lines.append(f"  {r['train language']} -> {r['test language']} | {r['space']} | {r['classifier']} | "
                         f"n={r['n (test views)']}: acc@1 {r['acc@1 [95% CI]']} (chance {r['chance@1']})")
    for name, path in s.get("files", {}).items():
        lines.append(f"{name}: {path}")
    if s.get("caveat"):
        lines.append(s["caveat"])
    return "\n".join(lines)


def run_replay(args: argparse.Namespace) -> int:
    from .. import univar as U
    from ..univar.replay import replay_jsonl
    from ._replay import run_replay as run

    head = U.HeadParams(k=args.k, seed=args.seed)
    return run(args, lambda: replay_jsonl(args.jsonl, encoder=args.encoder, train_head=args.train_head,
                                          head_params=head, owner=args.owner)[0])
