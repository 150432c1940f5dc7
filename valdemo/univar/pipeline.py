"""One-call pipeline (CLI), embedding a set, and helpers for the value profile."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core.result import Failures, Result
from ..inputs import InputError
from ..models import ChatModel, GenParams, get_model
from .demo import DEMO_QA, demo_available, load_demo, load_demo_head
from .encoding import count_over_limit, resolve_encoder
from .evaluation import Identification, identification_rows
from .projection import (
    ProjectionParams,
    export_points,
    project,
    project_set,
    scatter_figure,
    source_centroids,
    write_figure_html,
    write_qa_jsonl,
)
from .sets import (
    EmbeddedSet,
    Persona,
    ProgressFn,
    QAPair,
    QASet,
    Question,
    _digest,
    _normalise,
    _registry_get,
    check_same_encoder,
    generate_qa,
    is_univar_encoder,
    load_questions,
    pick_questions,
    qa_set_from_pairs,
    remember,
    space_label,
    uncache,
)
from .training import HeadParams, evaluate_head


def embed_qa(qa: QASet, encoder: str = "", train_head: bool = False, head_params: HeadParams | None = None,
             progress: ProgressFn | None = None, owner: str | None = None, fresh: bool = False) -> EmbeddedSet:
    """Embed every QA pair with a frozen encoder (each pair a view of one); with ``train_head``
    train the value head on joined views; evaluate source identification (raw and head) on
    held-out questions (:func:`valdemo.univar.training.evaluate_head`).

    Kept in the store under ``owner`` (default: the local owner); the same QA set, encoder and
    settings give the same set, reopened instead of recomputed (``fresh``: computed again, so the
    trained head itself is at hand as ``head_model``).
    """
    head_params = head_params or HeadParams()
    set_id = "emb-" + _digest(qa.id, encoder or "bundled", train_head, asdict(head_params))
    existing = None if fresh else _registry_get(set_id, owner)
    if existing is not None:
        return existing
    enc = resolve_encoder(encoder)
    texts = [p.text() for p in qa.pairs]
    raw = enc.encode(texts, progress=progress)
    head, head_emb, metrics = evaluate_head(qa.pairs, raw, head_params, encoder=enc, train_head=train_head,
                                            encoder_name=enc.name)
    metrics["over_limit"]["single QA pairs"] = [count_over_limit(enc, texts), len(texts)]
    es = EmbeddedSet(qa, enc.name, raw, head_emb, metrics, set_id, head_model=head)
    if fresh:
        uncache(set_id, owner)
    return remember(es, owner=owner)




# ----------------------------------------------------------------------------- one-call pipeline (CLI)
def run_pipeline(specs: Sequence[str] | None, questions: Sequence[Question] | None, personas: Sequence[Persona],
                 encoder: str = "", train_head: bool = False, head_params: HeadParams | None = None,
                 proj: ProjectionParams | None = None, out_dir: str | Path | None = None,
                 qa_pairs: list[QAPair] | None = None, params: GenParams | None = None, creds=None,
                 use_cache: bool | None = None, progress: Callable[[str], ProgressFn] | None = None,
                 export_format: str = "csv") -> dict:
    """Generate (or take) QA pairs, embed, optionally train the head, project, write files."""
    if qa_pairs is not None:
        qa = qa_set_from_pairs(qa_pairs)
    else:
        models = [get_model(s, creds, use_cache=use_cache) for s in (specs or [])]
        qa = generate_qa(models, questions or [], personas, params, progress("answers") if progress else None)
    remember(qa)
    es = embed_qa(qa, encoder, train_head, head_params, progress("embeddings") if progress else None)
    space = es.default_space
    proj = proj or ProjectionParams()
    coords = project_set(es, space, proj)
    summary = summarise(es)
    summary.update(space=space, projection=proj.__dict__)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"qa": write_qa_jsonl(es.pairs, out / "qa.jsonl"),
                 "embeddings": _save_npy(out / "embeddings.npy", es.raw)}
        if es.head is not None:
            files["embeddings_head"] = _save_npy(out / "embeddings_head.npy", es.head)
        files["points"] = export_points(es, out, coords, space, export_format)
        fig = scatter_figure(es.pairs, coords, "source", title=f"{es.space_label(space)} · {proj.method.upper()}")
        files["figure"] = write_figure_html(fig, out / "figure.html")
        summary["files"] = {k: str(v) for k, v in files.items()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return summary


def _save_npy(path: Path, x: np.ndarray) -> Path:
    np.save(path, x)
    return path


def identifications(es: EmbeddedSet) -> list[Identification]:
    """The set's source-identification results (k-NN and probe per space and group)."""
    return [Identification.from_dict(d) for d in (es.metrics or {}).get("identification", [])]


def to_result(es: EmbeddedSet) -> Result:
    """The set's evaluation as the shared :class:`~valdemo.core.result.Result`: every acc@r metric
    (grouped by group · space · classifier), failures with their denominators, params, caveats."""
    from ..models import BUNDLED_CAVEAT

    m = es.metrics or {}
    groups = {f"{i.group} · {i.space_label} · {i.evaluator}": list(i.metrics) for i in identifications(es)}
    headline = [ms[0] for key, ms in groups.items() if "linear probe" in key and ms]
    meta = es.qa.meta
    n_asked = len(es.pairs) + int(meta.get("empty_answers") or 0)
    answers = Failures("answers", n_asked, int(meta.get("empty_answers") or 0),
                       Counter({"empty answer": int(meta.get("empty_answers") or 0)}))
    cut = Failures("answers at the token limit (kept, cut short)", len(es.pairs), int(meta.get("truncated_answers") or 0),
                   Counter({"finish_reason=length": int(meta.get("truncated_answers") or 0)}), kept=True)
    caveats = [UMAP_NOTE]
    if es.qa.bundled:
        caveats.insert(0, BUNDLED_CAVEAT)
    if es.head is None and not is_univar_encoder(es.encoder):
        caveats.append("no value head: the raw space is sentence-embedding similarity, not UniVaR")
    failures = [answers, cut]
    if meta.get("dropped_at_token_limit") is not None:  # re-asked, then left out (the demo build)
        dropped = int(meta["dropped_at_token_limit"])
        failures.append(Failures("answers still cut at the token limit after re-asks (left out)",
                                 int(meta.get("n_asked") or len(es.pairs) + dropped), dropped,
                                 Counter({"finish_reason=length": dropped})))
    return Result("univar", metrics=headline, groups=groups, failures=failures,
                  models={"sources": es.qa.sources, "encoder": es.encoder, "models": meta.get("models", [])},
                  params={"head": m.get("params", {}), "split": m.get("split"), "set": es.id,
                          "spaces": {s: es.space_label(s) for s in (["raw", "head"] if es.head is not None
                                                                    else ["raw"])}},
                  caveats=caveats,
                  extra={"languages": m.get("languages", []), "over_limit": m.get("over_limit", {}),
                         "training": {k: m.get(k) for k in ("first_loss", "final_loss", "train_s",
                                                              "n_training_views") if k in m}})


UMAP_NOTE = ("UMAP keeps neighbourhoods, not distances: gaps and sizes of clusters on the map mean little; "
             "read the held-out evaluation instead.")


def summarise(es: EmbeddedSet) -> dict:
    """What a run reports: counts, failures, the encoder, and every acc@r with n and interval."""
    m = es.metrics or {}
    counts = Counter(p.source for p in es.pairs)
    out = {"n_points": len(es.pairs), "sources": list(counts), "points_per_source": dict(counts),
           "encoder": es.encoder, "embedding_set": es.id, "qa_set": es.qa.id,
           "spaces": {s: es.space_label(s) for s in (["raw", "head"] if es.head is not None else ["raw"])},
           "empty_answers": es.qa.meta.get("empty_answers", 0),
           "empty_by_source": es.qa.meta.get("empty_by_source", {}),
           "truncated_answers": es.qa.meta.get("truncated_answers", 0),
           "dropped_at_token_limit": es.qa.meta.get("dropped_at_token_limit", 0),
           "over_encoder_limit": m.get("over_limit", {}),
           "bundled_model": es.qa.bundled, "head_trained": es.head is not None,
           "split": {k: m.get(k) for k in ("split", "n_train_pairs", "n_test_pairs", "n_control_pairs",
                                           "seen_sources", "unseen_sources")},
           "training": {k: m.get(k) for k in ("first_loss", "final_loss", "train_s", "n_training_views")
                        if k in m},
           "params": m.get("params", {}),
           "identification": identification_rows(identifications(es)),
           "languages": m.get("languages", [])}
    if m.get("note"):
        out["note"] = m["note"]
    return out


# ----------------------------------------------------------------------------- for other methods (issue 9)
QUICK_SIZE = 10


def _as_models(models: Sequence[ChatModel | str], creds=None) -> list[ChatModel]:
    if not models:
        raise InputError("name at least one model")
    return [get_model(m, creds) if isinstance(m, str) else m for m in models]


def profile_questions(size: str = "quick") -> list[Question]:
    """quick: ~10 questions spread over the value dimensions (from the demo set when bundled); full: all."""
    if size not in ("quick", "full"):
        raise InputError(f"size must be quick or full, got {size!r}")
    questions = load_questions()
    if size == "full":
        return questions
    pool = questions
    if DEMO_QA.is_file():
        demo_qids = {json.loads(line)["qid"] for line in DEMO_QA.read_text(encoding="utf-8").splitlines() if line}
        pool = [q for q in questions if q.qid in demo_qids] or questions
    return pick_questions([q for q in pool if q.family != "control"], QUICK_SIZE)


PROFILE_SPACES = ("auto", "head", "raw")


def profile_result(models: Sequence[ChatModel | str], size: str = "quick", progress: ProgressFn | None = None,
                   creds=None, with_reference: bool = True, neighbours_k: int = 3,
                   params: GenParams | None = None, encoder: str = "", space: str = "auto") -> Result:
    """Where each model's answers sit, in a value space where one exists and named, as a Result.

    ``space``: ``head`` places every answer in the bundled demo set's trained value head (UniVaR's
    objective, trained here on the bundled model under four personas; it reads the demo's encoder
    only, another is refused); ``raw`` uses the encoder itself: a published UniVaR encoder is a value
    space, any other is sentence-embedding similarity (not UniVaR) and is labelled so; ``auto`` takes
    the head where it applies (the bundled encoder and a bundled head), else ``raw``.
    ``extra["space"]`` names what was used, ``extra["value_space"]`` says whether it is one.

    One group per profiled model (its spec): the cosine distance from its answers to the nearest
    other source's centroid in that space, with a bootstrap interval over its answers. Rows: every
    model's QA pairs (``source``, ``question``, ``answer``), which other methods may read.
    ``extra["sources"]``: each source's centroid in a 2-D PCA projection and its nearest sources.
    With ``with_reference`` the bundled demo set's sources (the bundled model under personas)
    answering the same questions are placed alongside, as landmarks, only when they come from
    the same encoder (and the same head); otherwise ``extra["landmarks_note"]`` says why.
    """
    from ..core.result import OWN, Metric

    if space not in PROFILE_SPACES:
        raise InputError(f"space must be one of {', '.join(PROFILE_SPACES)}, got {space!r}")
    models = _as_models(models, creds)
    enc = resolve_encoder(encoder)
    demo = load_demo() if demo_available() else None
    head, head_note = None, ""
    if space != "raw":
        head = load_demo_head()
        if head is None:
            head_note = "no bundled value head (run scripts/univar_build_demo.py)"
        else:
            try:
                check_same_encoder(enc.name, demo.encoder, "the bundled value head")
            except InputError as exc:  # a head reads only its own encoder's embeddings
                head, head_note = None, str(exc)
        if space == "head" and head is None:
            raise InputError(f"cannot place answers in the value head: {head_note}")
    questions = profile_questions(size)
    qa = generate_qa(models, questions, [Persona("default")], params, progress)
    pairs = list(qa.pairs)
    own = len(pairs)
    raw = enc.encode([p.text() for p in pairs])
    reference: list[str] = []
    landmarks_note = ""
    if with_reference and demo is not None:
        try:
            check_same_encoder(enc.name, demo.encoder, "the reference landmarks (bundled demo set)")
        except InputError as exc:  # landmarks from another encoder are left out, never stacked
            landmarks_note = str(exc)
        else:
            qids = {q.qid for q in questions}
            keep = [i for i, p in enumerate(demo.pairs) if p.qid in qids]
            if keep:
                ref_pairs = [QAPair(**{**demo.pairs[i].as_dict(), "source": "reference: " + demo.pairs[i].source})
                             for i in keep]
                reference = list(dict.fromkeys(p.source for p in ref_pairs))
                pairs += ref_pairs
                raw = np.vstack([raw, demo.raw[keep]])
    kind = "head" if head is not None else "raw"
    vecs = head.transform(raw) if head is not None else raw
    value_space = kind == "head" or is_univar_encoder(enc.name)
    label = space_label(enc.name, kind) + (" on the bundled demo set" if kind == "head" else "")
    names, cents = source_centroids(vecs, pairs)
    coords = project(vecs, ProjectionParams(method="pca", dims=2))
    _, cent_xy = source_centroids(coords, pairs)
    c = _normalise(cents)
    dist = np.clip(1.0 - c @ c.T, 0.0, 2.0)
    sources, groups = {}, {}
    for i, name in enumerate(names):
        order = [j for j in np.argsort(dist[i]) if j != i][:neighbours_k]
        sources[name] = {
            "centroid": [round(float(v), 4) for v in cent_xy[i]],
            "n_answers": int(sum(p.source == name for p in pairs)),
            "reference": name in reference,
            "nearest": [{"source": names[j], "distance": round(float(dist[i, j]), 4)} for j in order],
        }
        if name in reference or not order:
            continue
        other = c[order[0]]
        mine = _normalise(vecs[[k for k in range(own) if pairs[k].source == name]])
        groups[name] = [Metric.mean(
            "nearest_distance", [float(np.clip(1.0 - v @ other, 0.0, 2.0)) for v in mine],
            "mean cosine distance (1 - cosine similarity) from each of this model's answer embeddings to the "
            "centroid of the nearest other source (nearest by centroid distance, in the list beside it); "
            "interval: bootstrap over its answers", OWN,
            f"answers' distance to the nearest other source ({names[order[0]]}; {label})")]
    asked = own + int(qa.meta.get("empty_answers") or 0)
    empty = Failures("answers (all profiled models)", asked, asked - own,
                     Counter({"empty answer": asked - own}) if asked > own else Counter())
    n_cut = int(qa.meta.get("truncated_answers") or 0)  # kept (embedded as written), and counted
    cut = Failures("answers stopped at the token cap (all profiled models; kept, cut short)", own, n_cut,
                   Counter({"finish_reason=length": n_cut}) if n_cut else Counter(), kept=True)
    rows = [{"source": p.source, "question": p.question, "answer": p.answer} for p in pairs[:own]]
    if kind == "head":
        note = ("centroids of each source's answers (one QA pair each) in the value head trained here with "
                "UniVaR's objective on the bundled demo set (one 135M model under four personas), over the encoder "
                f"named here; {_head_accuracy(demo)} A head trained on so few sources is a small value space: "
                "read positions as closeness to those personas' answers.")
    elif value_space:
        note = "centroids of each source's answers (one QA pair each) in the published UniVaR encoder named here"
    else:
        note = ("centroids of each source's single-QA-pair embeddings from the encoder named here; no value head or "
                "UniVaR encoder is applied, so distances are sentence-embedding similarity, not UniVaR value "
                "positions")
    return Result("univar", metrics=[], rows=rows, failures=[empty, cut],
                  models={"sources": [m.spec for m in models], "encoder": enc.name},
                  params={"size": size, "n_questions": len(questions), "neighbours_k": neighbours_k,
                          "space": space},
                  caveats=[note], groups=groups,
                  extra={"encoder": enc.name, "projection": "pca-2d", "space": label, "space_kind": kind,
                         "value_space": value_space, "head_note": head_note,
                         "landmarks_note": landmarks_note, "note": note, "sources": sources,
                         "bundled_model": qa.bundled or bool(reference) or kind == "head"})


def _head_accuracy(demo: EmbeddedSet) -> str:
    """The head's held-out source identification on the demo set, next to the raw encoder's (one sentence)."""
    found = {i.space: i for i in identifications(demo) if i.evaluator == "linear probe" and "control" not in i.group}
    if "head" not in found or "raw" not in found or not found["head"].metric(1):
        return "its held-out evaluation is in the Value space tab."
    h, r = found["head"], found["raw"]
    return (f"on held-out demo questions its linear-probe acc@1 is {h.metric(1).fmt()} against "
            f"{r.metric(1).fmt()} for the raw encoder (chance {h.chance(1):.2f}).")
