"""Value space (UniVaR): questions, generation, value head, kNN, projection, figures, CLI, API.

Real bundled model, real bundled encoder, real umap-learn; no doubles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from valdemo import univar as U
from valdemo.inputs import InputError
from valdemo.models import GenParams
from valdemo.values import FOUNDATION_KEYS, SCHWARTZ_KEYS

ROOT = Path(__file__).resolve().parents[1]

#: The constructed set for the value-head test. Every source answers every
#: non-control bundled question by restating it, then signs off with its own
#: phrase. Topic dominates the raw MiniLM embedding, so raw kNN confuses sources
#: on unseen questions; the sign-off is a consistent source signal the head can
#: learn from the training questions.
SIGN_OFFS = {"alpha": "Cheers.", "beta": "Regards.", "gamma": "Best wishes."}


def constructed_pairs() -> list[U.QAPair]:
    qs = [q for q in U.load_questions() if q.family != "control"]
    return [U.QAPair(src, q.text, f"{q.text} {sign}", q.dimension, q.family, "en", q.qid, src, "")
            for src, sign in SIGN_OFFS.items() for q in qs]


def _pairs(n_per_source=4, sources=("a", "b")) -> list[U.QAPair]:
    qs = U.load_questions()[: n_per_source]
    return [U.QAPair(s, q.text, f"answer {j} from {s}", q.dimension, q.family, "en", q.qid, s, "")
            for s in sources for j, q in enumerate(qs)]


# ----------------------------------------------------------------------------- bundled data
def test_bundled_questions_cover_values_and_controls():
    qs = U.load_questions()
    assert len(qs) >= 150
    fams = {q.family for q in qs}
    assert fams == set(U.FAMILIES)
    assert len({q.qid for q in qs}) == len(qs) and len({q.text for q in qs}) == len(qs)
    for q in qs:
        assert q.dimension, q.qid
        if q.family == "schwartz":
            assert q.dimension in SCHWARTZ_KEYS
        elif q.family == "moral_foundation":
            assert q.dimension in FOUNDATION_KEYS
        elif q.family == "control":
            assert q.dimension == "CONTROL"
        else:
            assert q.dimension in SCHWARTZ_KEYS + FOUNDATION_KEYS
    assert {q.dimension for q in qs if q.family == "schwartz"} == set(SCHWARTZ_KEYS)
    assert sum(q.family == "control" for q in qs) >= 15


def test_pick_questions_spreads_over_dimensions():
    qs = U.load_questions()
    picked = U.pick_questions(qs, 30)
    assert len(picked) == 30 and len({q.qid for q in picked}) == 30
    assert len({q.dimension for q in picked}) >= 15
    assert U.pick_questions(qs, 30) == picked  # deterministic


def test_bundled_personas_and_bad_personas_files(tmp_path):
    personas = U.load_personas()
    assert {"caring", "ambitious"} <= {p.name for p in personas}
    assert all(p.system for p in personas if p.name != "default")
    with pytest.raises(InputError, match="unknown persona"):
        U.select_personas(["nope"], personas)
    bad = tmp_path / "p.json"
    bad.write_text('[{"name": "x", "system": "a"}, {"system": "b"}]')
    with pytest.raises(InputError, match="row 2: missing column"):
        U.load_personas(bad)
    dup = tmp_path / "p.csv"
    dup.write_text("name,system\nx,one\nx,two\n")
    with pytest.raises(InputError, match="duplicate persona"):
        U.load_personas(dup)


def test_qa_upload_errors_name_the_row(tmp_path):
    good = tmp_path / "qa.csv"
    good.write_text("source,question,answer,language\nm1,Is it good?,Yes,en\nm2,Is it good?,No,de\n")
    pairs = U.load_qa_pairs(good)
    assert [p.source for p in pairs] == ["m1", "m2"] and pairs[1].language == "de"
    bad = tmp_path / "bad.csv"
    bad.write_text("source,question,answer\nm1,Q1,A1\nm1,Q2,\n")
    with pytest.raises(InputError, match="row 3.*answer"):
        U.load_qa_pairs(bad)
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"source": "m", "question": "q", "answer": "a"}\n{"source": "m", "question": "q"}\n')
    with pytest.raises(InputError, match="row 2: missing column"):
        U.load_qa_pairs(jl)
    assert U.looks_like_qa_file(good)
    qfile = tmp_path / "q.csv"
    qfile.write_text("question,dimension\nShould we?,care\n")
    assert not U.looks_like_qa_file(qfile)
    assert U.load_questions(qfile)[0].dimension == "CARE"


def test_bundled_demo_set_is_small_and_consistent():
    assert U.demo_available(), "run scripts/univar_build_demo.py"
    size = sum(f.stat().st_size for f in U.DEMO_DIR.iterdir())
    assert size < 800_000
    es = U.load_demo()
    assert len(es.qa.sources) >= 3
    assert es.raw.shape == (len(es.pairs), 384)
    assert np.allclose(np.linalg.norm(es.raw, axis=1), 1.0, atol=1e-2)
    qids = {q.qid for q in U.load_questions()}
    assert all(p.qid in qids and p.answer for p in es.pairs)
    # the tab opens on the value space (the trained head) without computing
    assert es.head is not None and es.default_space == "head" == U.demo_projection_space()
    assert ("head", U.demo_projection_params()) in es.projections
    assert es.qa.bundled and es.qa.meta.get("demo")
    idents = U.identifications(es)
    assert {i.space for i in idents} == {"raw", "head"} and all(i.metrics for i in idents)
    assert all(es.encoder in i.space_label for i in idents)
    assert all(i.metric(1).interval is not None and i.metric(1).n > 0 for i in idents)
    # regenerated (scripts/univar_build_demo.py): no answer cut short; what stayed cut after the re-asks
    # was left out and is counted with its denominator
    meta = es.qa.meta
    assert meta["truncated_answers"] == 0
    assert meta["n_asked"] == len(es.pairs) + meta["dropped_at_token_limit"] + meta["empty_answers"]
    assert sum(meta["dropped_by_source"].values()) == meta["dropped_at_token_limit"]
    assert meta["attempts"][0]["params"]["temperature"] == 0.0 and meta["attempts"][0]["asked"] == meta["n_asked"]
    # one model under four personas with different value priorities, said so on screen
    assert meta["models"] == ["local"] and len(meta["personas"]) == 4 and len(es.qa.sources) == 4
    prompts = meta["persona_prompts"]
    assert len(set(prompts.values())) == 4 and all("value" in t for t in prompts.values())
    assert "one model under personas" in json.loads(U.DEMO_META.read_text())["label"]
    from valdemo.ui.univar import _qa_status

    shown = _qa_status(es.qa)
    assert "one model under personas" in shown and all(name in shown for name in meta["personas"])
    assert "stopped at the token limit" not in shown
    if meta["dropped_at_token_limit"]:
        assert f"{meta['dropped_at_token_limit']} of {meta['n_asked']} asked answers were left out" in shown
    # in the shared Result too: the dropped answers are a failure with their denominator
    dropped = next(f for f in U.to_result(es).failures if "left out" in f.step)
    assert (dropped.failed, dropped.total) == (meta["dropped_at_token_limit"], meta["n_asked"])
    assert U.summarise(es)["dropped_at_token_limit"] == meta["dropped_at_token_limit"]
    # the head itself is bundled: it reproduces the bundled value-head space from the raw embeddings
    head = U.load_demo_head()
    assert head is not None and U.demo_head_available()
    again = head.transform(es.raw)
    assert np.min(np.sum(again * es.head, axis=1)) > 0.99


# ----------------------------------------------------------------------------- generation
@pytest.mark.slow
def test_generate_two_personas_with_bundled_model(local_model):
    qs = U.load_questions()[:3]
    personas = U.select_personas(["caring", "ambitious"])
    progress = []
    qa = U.generate_qa([local_model], qs, personas, GenParams(max_new_tokens=16), lambda d, t: progress.append((d, t)))
    assert qa.sources == ["local / caring", "local / ambitious"]
    assert len(qa.pairs) + qa.meta["empty_answers"] == 6
    assert progress[-1] == (6, 6)
    assert qa.bundled
    by = {(p.persona, p.qid): p.answer for p in qa.pairs}
    assert any(by.get(("caring", q.qid)) != by.get(("ambitious", q.qid)) for q in qs)
    # cached: the same request again is served from the response cache, identical
    again = U.generate_qa([local_model], qs, personas, GenParams(max_new_tokens=16))
    assert again.id == qa.id
    # answers cut at the token limit: kept and counted by default; left out, counted and listed on request
    cut = qa.meta["truncated_answers"]
    assert cut > 0  # 16 tokens cut these greedy answers
    strict = U.generate_qa([local_model], qs, personas, GenParams(max_new_tokens=16), keep_truncated=False)
    assert strict.meta["truncated_answers"] == cut == len(strict.meta["truncated_keys"])
    assert len(strict.pairs) == len(qa.pairs) - cut
    left_out = {tuple(k) for k in strict.meta["truncated_keys"]}
    assert not left_out & {(p.source, p.qid) for p in strict.pairs}


# ----------------------------------------------------------------------------- views
def test_a_view_is_its_pairs_joined_and_encoded_together():
    pairs = _pairs(3, sources=("a",))
    text = U.view_text(pairs)
    assert text.split(U.VIEW_SEPARATOR) == [f"Q: {p.question} A: {p.answer}" for p in pairs]
    enc = U.resolve_encoder("")
    emb, cut = U.encode_views(enc, [pairs, pairs[:1]])
    assert emb.shape == (2, 384) and cut == 0
    # one encoding of the joined text, not the mean of the pairs' encodings
    assert np.allclose(emb[0], enc.encode([text])[0], atol=1e-5)
    mean = U._normalise(enc.encode([p.text() for p in pairs]).mean(axis=0, keepdims=True))[0]
    assert float(emb[0] @ mean) < 0.999
    assert np.allclose(emb[1], enc.encode([pairs[0].text()])[0], atol=1e-5)
    long_view = [U.QAPair("a", f"Question {i} about duty?", "A long answer. " * 20, qid=f"x{i}") for i in range(5)]
    assert U.count_over_limit(enc, [U.view_text(long_view)]) == 1  # MiniLM reads 256 tokens: counted
    with pytest.raises(InputError, match="at most 80"):
        U.view_text(pairs * 30)
    with pytest.raises(InputError, match="at least one"):
        U.view_text([])


def test_head_params_follow_the_paper_and_check_ranges():
    p = U.HeadParams()
    assert p.temperature == U.PAPER_TEMPERATURE == 0.02
    assert U.HeadParams(lam=80).lam == 80
    with pytest.raises(InputError, match="lambda"):
        U.HeadParams(lam=81)
    with pytest.raises(InputError, match="k-NN"):
        U.HeadParams(k=51)
    assert U.HeadParams(k=50).k == 50


def test_training_views_hold_one_to_lambda_distinct_pairs_of_one_source():
    members = [np.arange(0, 10), np.arange(10, 30)]
    views = U.draw_views(members, 5, 40, np.random.default_rng(0))
    assert len(views) == 80
    sizes = set()
    for s, idx in views:
        assert len(set(idx)) == len(idx) and 1 <= len(idx) <= 5 and set(idx) <= set(members[s].tolist())
        sizes.add(len(idx))
    assert sizes == {1, 2, 3, 4, 5}
    chunks = U.chunk_views(members, 3, np.random.default_rng(0))
    assert len(chunks) == 3 + 6
    flat = [i for _, idx in chunks for i in idx]
    assert len(flat) == len(set(flat))  # evaluation views share no pair


# ----------------------------------------------------------------------------- evaluation
def _clusters(n_per, sources=4, dim=32, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(sources, dim)) * 2
    labels = np.repeat(np.arange(sources), n_per)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_knn_and_probe_identify_separable_sources():
    ref, ref_l = _clusters(30, seed=1)
    query, query_l = _clusters(25, seed=1)
    query = query + np.random.default_rng(9).normal(size=query.shape) * 0.3
    idents = U.identify(ref, ref_l, query, query_l, ["a", "b", "c", "d"], k=5)
    assert [i.evaluator for i in idents] == ["k-NN (k=5)", "linear probe"]
    for ident in idents:
        assert [m.name.rsplit("_", 1)[1] for m in ident.metrics] == ["acc@1", "acc@3"]  # acc@5, @10 trivial
        top1 = ident.metric(1)
        assert top1.value >= 0.97 and top1.n == 100 and top1.interval_kind == "wilson"
        assert top1.interval[0] > 0.9 and ident.chance(1) == 0.25 and ident.chance(3) == 0.75
    assert "UniVaR" in idents[1].metric(3).source and "own" in idents[0].metric(3).source
    assert "UniVaR" in idents[0].metric(1).source


def test_acc_at_1_3_5_10_with_twelve_sources_and_k_up_to_50():
    ref, ref_l = _clusters(30, sources=12, seed=5)
    query, query_l = _clusters(10, sources=12, seed=5)
    query = query + np.random.default_rng(6).normal(size=query.shape) * 0.3
    for ident in U.identify(ref, ref_l, query, query_l, [f"s{i}" for i in range(12)], k=50):
        assert [m.name.rsplit("_", 1)[1] for m in ident.metrics] == ["acc@1", "acc@3", "acc@5", "acc@10"]
        assert [round(ident.chance(r), 3) for r in (1, 3, 5, 10)] == [0.083, 0.25, 0.417, 0.833]
        assert ident.metric(1).value >= 0.9 and ident.metric(10).value == 1.0 and ident.metric(1).n == 120
    assert "k=50" in U.identify(ref, ref_l, query, query_l, [f"s{i}" for i in range(12)], k=50)[0].evaluator


def test_shuffled_sources_score_near_chance_within_the_interval():
    ref, ref_l = _clusters(60, seed=2)
    query, query_l = _clusters(60, seed=4)
    rng = np.random.default_rng(3)
    idents = U.identify(ref, rng.permutation(ref_l), query, rng.permutation(query_l), list("abcd"), k=15)
    for ident in idents:
        m = ident.metric(1)
        assert m.n == 240
        assert m.interval[0] <= 0.25 <= m.interval[1], (ident.evaluator, m.fmt())
        assert abs(m.value - 0.25) < 0.1


def test_knn_scores_rank_sources_by_votes():
    ref = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    query = np.array([[0.95, 0.05], [0.05, 0.95], [0.8, 0.2]], dtype=np.float32)
    scores = U.knn_scores(ref, [0, 0, 1, 1], query, 2, k=1)
    assert U.hits_at(scores, [0, 1, 1], 1) == 2 and U.hits_at(scores, [0, 1, 1], 2) == 3
    assert U.hits_at(U.knn_scores(ref, [0, 0, 1, 1], query, 2, k=3), [0, 1, 1], 1) == 2
    split = U.split_questions(_pairs(10), 0.3, seed=0)
    assert split.sum() == 6  # 3 of 10 questions, both sources
    qs_test = {p.qid for p, t in zip(_pairs(10), split, strict=True) if t}
    assert not qs_test & {p.qid for p, t in zip(_pairs(10), split, strict=True) if not t}


@pytest.mark.slow
def test_head_training_and_evaluation_groups_on_constructed_set():
    """Seen, unseen and control groups are evaluated apart; control pairs never train the head."""
    qs = [q for q in U.load_questions() if not q.family == "control"][:40]
    qs += [q for q in U.load_questions() if q.family == "control"][:10]
    signs = {"alpha": "Cheers.", "beta": "Regards.", "gamma": "Best wishes.", "delta": "Take care."}
    pairs = [U.QAPair(src, q.text, f"{q.text} {sign}", q.dimension, q.family, "en", q.qid, src, "")
             for src, sign in signs.items() for q in qs]
    raw = U.resolve_encoder("").encode([p.text() for p in pairs])
    params = U.HeadParams(steps=120, views_per_source=24, unseen_sources=1, lam=3, eval_lambda=2)
    head, emb, m = U.evaluate_head(pairs, raw, params, encoder=U.resolve_encoder(""), encoder_name="MiniLM")
    assert m["seen_sources"] == ["alpha", "beta", "gamma"] and m["unseen_sources"] == ["delta"]
    assert m["final_loss"] < m["first_loss"] / 2 and emb.shape == (len(pairs), 128)
    idents = [U.Identification.from_dict(d) for d in m["identification"]]
    groups = {(i.group, i.space) for i in idents}
    assert ("seen sources", "head") in groups and ("control questions (non-value)", "raw") in groups
    assert not any(i.group == "unseen sources" for i in idents)  # one unseen source: nothing to tell apart
    n_control_q = len({p.qid for p in pairs if p.is_control})
    control = next(i for i in idents if i.group.startswith("control"))
    assert control.n <= 4 * n_control_q  # control views come from control questions only
    seen = next(i for i in idents if i.group == "seen sources" and i.space == "head")
    assert "MiniLM" in seen.space_label and seen.metric(1).n >= 15
    assert m["over_limit"]["training views"][1] == 3 * 24


def test_translated_questions_share_an_id_and_get_a_per_language_report(tmp_path):
    qfile = tmp_path / "q.csv"
    qfile.write_text("id,question,language\nq1,Should you help a stranger?,en\nq1,Sollte man Fremden helfen?,de\n"
                     "q2,Is tradition important?,en\nq2,Ist Tradition wichtig?,de\n")
    qs = U.load_questions(qfile)
    assert [(q.qid, q.language) for q in qs] == [("q1", "en"), ("q1", "de"), ("q2", "en"), ("q2", "de")]
    qfile.write_text("id,question,language\nq1,A?,en\nq1,B?,en\n")
    with pytest.raises(InputError, match="duplicate question id 'q1'.*'en'"):
        U.load_questions(qfile)
    # synthetic: each source has its own place, each language shifts every source the same way
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 24)) * 2
    shift = {"en": np.zeros(24), "de": rng.normal(size=24)}
    pairs, rows = [], []
    for s_i, src in enumerate(("a", "b", "c")):
        for lang in ("en", "de"):
            for q in range(30):
                pairs.append(U.QAPair(src, f"q{q} {lang}", "x", "CARE", "schwartz", lang, f"q{q}", src))
                rows.append(centres[s_i] + shift[lang] + rng.normal(size=24) * 0.5)
    x = U._normalise(np.array(rows))
    test = U.split_questions(pairs, 0.3, 0)
    assert all(test[i] == test[j] for i, p in enumerate(pairs) for j, p2 in enumerate(pairs) if p.qid == p2.qid)
    report = U.language_report(pairs, x, test, "raw", "test encoder")
    cells = {(r["train language"], r["test language"], r["classifier"]) for r in report}
    assert ("en", "de", "linear probe") in cells and ("de", "de", "k-NN (k=5)") in cells and len(cells) == 8
    for r in report:
        assert r["sources"] == 3 and r["chance@1"] == 0.333 and r["n (test views)"] == 27
        assert float(r["acc@1 [95% CI]"].split()[0]) > 0.9  # the sources stay in place across languages
    one_language = [p for p in pairs if p.language == "en"]
    assert U.language_report(one_language, x[: len(one_language)], test[: len(one_language)], "raw", "t") == []


def test_head_needs_two_sources():
    pairs = _pairs(6, sources=("only",))
    raw = np.random.default_rng(0).normal(size=(len(pairs), 16)).astype(np.float32)
    head, emb, m = U.evaluate_head(pairs, raw, U.HeadParams(steps=5))
    assert head is None and "two sources" in m["note"]


def test_value_head_weights_round_trip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    params = U.HeadParams(steps=5, hidden=8, out_dim=4)
    head = U.ValueHead(16, params).fit(x, np.repeat([0, 1], 20))
    back = U.ValueHead.from_arrays(head.arrays(), params)
    assert np.allclose(back.transform(x), head.transform(x), atol=1e-6)
    assert not np.allclose(U.ValueHead(16, U.HeadParams(seed=1, hidden=8, out_dim=4)).transform(x), head.transform(x))


def test_profile_refuses_the_bundled_head_on_another_encoder():
    """The bundled value head reads the bundled encoder's embeddings only: the same MiniLM named by its
    folder is another encoder, so asking for the head is refused before any answer is generated."""
    from valdemo.embed import bundled_embed_path

    path = bundled_embed_path()
    if not path or not U.demo_head_available():
        pytest.skip("needs the bundled MiniLM package and the bundled demo head")
    with pytest.raises(InputError, match="encoder mismatch"):
        U.profile_result(["local"], "quick", encoder=path, space="head")
    with pytest.raises(InputError, match="space must be"):
        U.profile_result(["local"], "quick", space="value")


def test_encoder_mismatch_is_refused():
    U.check_same_encoder("all-MiniLM-L6-v2 (bundled)", "all-MiniLM-L6-v2 (bundled)")
    with pytest.raises(InputError, match="encoder mismatch"):
        U.check_same_encoder("all-MiniLM-L6-v2 (bundled)", "CAiRE/UniVaR-lambda-80", "the landmarks")
    es = _embedded()
    assert "not UniVaR" in es.space_label("raw") and "test" in es.space_label("raw")
    assert U.space_label("CAiRE/UniVaR-lambda-80", "raw") == "UniVaR encoder CAiRE/UniVaR-lambda-80"


# ----------------------------------------------------------------------------- explorer
def _embedded(n_per_source=12, sources=("a", "b", "c"), dim=16) -> U.EmbeddedSet:
    pairs = _pairs(n_per_source, sources)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(len(sources), dim)) * 3
    x = np.vstack([centres[i // n_per_source] + rng.normal(size=dim) for i in range(len(pairs))])
    x = U._normalise(x)
    return U.EmbeddedSet(U.QASet(pairs), "test", x, None, {}, "emb-test-" + str(dim))


def test_pca_projection_shape_and_cache():
    es = _embedded()
    p2 = U.ProjectionParams(method="pca", dims=2)
    a = U.project_set(es, "raw", p2)
    assert a.shape == (36, 2)
    assert U.project_set(es, "raw", p2) is a  # cached per embedding set
    assert U.project_set(es, "raw", U.ProjectionParams(method="pca", dims=3)).shape == (36, 3)
    with pytest.raises(InputError, match="dims"):
        U.ProjectionParams(dims=4)
    with pytest.raises(InputError, match="no trained value head"):
        es.space("head")


@pytest.mark.slow
def test_umap_projection_shape():
    es = _embedded()
    out2 = U.project(es.raw, U.ProjectionParams(method="umap", dims=2, n_neighbors=8))
    out3 = U.project(es.raw, U.ProjectionParams(method="umap", dims=3, n_neighbors=8, metric="euclidean"))
    assert out2.shape == (36, 2) and out3.shape == (36, 3)
    assert np.isfinite(out2).all() and np.isfinite(out3).all()


def test_figure_renders_with_traces_hover_and_search(tmp_path):
    es = _embedded()
    coords = U.project(es.raw, U.ProjectionParams(method="pca"))
    fig = U.scatter_figure(es.pairs, coords, "source", search="from b")
    names = [t.name for t in fig.data]
    assert names[:3] == ["a (12)", "b (12)", "c (12)"]
    assert names[3].startswith("matches 'from b' (12)")
    path = U.write_figure_html(fig, tmp_path / "fig.html")
    html = path.read_text()
    assert len(html) > 100_000 and "a (12)" in html and "answer 3 from c" in html
    fig3 = U.scatter_figure(es.pairs, U.project(es.raw, U.ProjectionParams(method="pca", dims=3)), "dimension")
    assert fig3.data[0].type == "scatter3d"
    with pytest.raises(InputError, match="colour by"):
        U.scatter_figure(es.pairs, coords, "shoe size")


def test_neighbours_similarity_and_export(tmp_path):
    es = _embedded()
    nn = U.neighbours(es, 0, k=5)
    assert [r["rank"] for r in nn] == [1, 2, 3, 4, 5] and all(r["id"] != 0 for r in nn)
    assert sum(r["same_source"] for r in nn) >= 4  # well separated constructed clusters
    with pytest.raises(InputError, match="point id"):
        U.neighbours(es, 999)
    names, dist = U.source_distances(es)
    assert names == ["a", "b", "c"] and dist.shape == (3, 3)
    assert np.allclose(np.diag(dist), 0, atol=1e-5) and np.allclose(dist, dist.T)
    ranked = U.ranked_pairs(names, dist)
    assert len(ranked) == 3 and ranked[0]["distance"] <= ranked[-1]["distance"]
    assert U.heatmap_figure(names, dist).data[0].type == "heatmap"
    coords = U.project(es.raw, U.ProjectionParams(method="pca"))
    path = U.export_points(es, tmp_path, coords, fmt="csv")
    import pandas as pd

    df = pd.read_csv(path)
    assert len(df) == 36 and {"x", "y", "source", "question", "answer", "e0", "e15"} <= set(df.columns)


def test_sets_survive_a_restart_and_stay_with_their_owner(tmp_path):
    from valdemo.store import Store

    db = tmp_path / "valdemo.sqlite"
    es = _embedded()
    es.metrics = {"identification": [i.as_dict() for i in U.identify(
        es.raw[:18], [0] * 9 + [1] * 9, es.raw[18:27], [2] * 9, ["a", "b", "c"])]}
    U.remember(es.qa, owner="ana", store=Store(db))
    U.remember(es, owner="ana", store=Store(db))
    U.forget_cache()  # what a restart does to the process; the store keeps the sets
    again = U.get_embedded(es.id, "ana", store=Store(db))  # a new Store on the same SQLite file
    assert again is not es and again.owner == "ana"
    assert np.array_equal(again.raw, es.raw) and again.pairs == es.pairs and again.encoder == es.encoder
    assert U.identifications(again)[0].metric(1).fmt() == U.identifications(es)[0].metric(1).fmt()
    assert U.get_qa_set(es.qa.id, "ana", store=Store(db)).pairs == es.pairs
    assert [s["id"] for s in U.list_sets("ana", "emb", store=Store(db))] == [es.id]
    # another visitor neither sees nor reaches it
    assert U.list_sets("bob", store=Store(db)) == []
    with pytest.raises(InputError, match="unknown embedding set"):
        U.get_embedded(es.id, "bob", store=Store(db))
    U.forget_cache()
    with pytest.raises(InputError, match="unknown QA set"):
        U.get_qa_set(es.qa.id, "bob", store=Store(db))
    # bob's many sets do not evict ana's
    for n in range(U.REGISTRY_SIZE + 2):
        U.remember(U.QASet(_pairs(2, sources=(f"s{n}",))), owner="bob", store=Store(db))
    assert U.get_embedded(es.id, "ana", store=Store(db)).id == es.id
    assert len(U.list_sets("bob", store=Store(db))) == U.REGISTRY_SIZE + 2


def test_the_evaluation_as_a_result_with_failures_and_caveats(tmp_path):
    from valdemo.core.runs import load_run, save_run
    from valdemo.models import BUNDLED_CAVEAT
    from valdemo.store import Store

    es = _embedded()
    es.qa.meta.update(bundled=True, empty_answers=2, truncated_answers=5)
    es.metrics = {"identification": [i.as_dict() for i in U.identify(
        es.raw[:24], [0] * 12 + [1] * 12, es.raw[:24], [0] * 12 + [1] * 12, ["a", "b"], space_label="enc X")]}
    res = U.to_result(es)
    assert res.method == "univar" and res.caveats[0] == BUNDLED_CAVEAT and any("UMAP" in c for c in res.caveats)
    assert [m.name for m in res.metrics] == ["probe_acc@1"] and res.metrics[0].n == 24
    assert all("enc X" in key for key in res.groups)
    answers = res.failure("answers")
    assert (answers.failed, answers.total) == (2, 38)
    run_id = save_run(res, owner="ana", source="cli", store=Store(tmp_path / "runs.sqlite"))
    again = load_run(run_id, "ana", store=Store(tmp_path / "runs.sqlite"))
    assert again["owner"] == "ana" and again["metrics"][0]["n"] == 24 and again["caveats"] == res.caveats
    assert load_run(run_id, "bob", store=Store(tmp_path / "runs.sqlite")) is None


def test_unknown_set_ids_are_input_errors():
    with pytest.raises(InputError, match="unknown QA set"):
        U.get_qa_set("qa-nope")
    with pytest.raises(InputError, match="unknown embedding set"):
        U.get_embedded("emb-nope")


def test_univar_encoder_offline_message():
    with pytest.raises(Exception, match="model hub"):
        U.resolve_encoder("CAiRE/UniVaR-lambda-80")


# ----------------------------------------------------------------------------- issue 9 helpers
@pytest.mark.slow
def test_profile_result(local_model):
    params = GenParams(max_new_tokens=16)
    res = U.profile_result([local_model], "quick", params=params)
    assert {r["source"] for r in res.rows} == {"local"} and 1 <= len(res.rows) <= U.QUICK_SIZE
    assert all(r["question"] and r["answer"] for r in res.rows)  # other methods read these
    assert res.params["n_questions"] == U.QUICK_SIZE and res.extra["bundled_model"]
    # default: the position comes from the bundled value head, which is named, with the encoder under it
    space = res.extra["space"]
    assert res.extra["space_kind"] == "head" and res.extra["value_space"]
    assert space.startswith("value head (UniVaR objective") and res.extra["encoder"] in space
    assert "acc@1" in res.extra["note"] and "not UniVaR" not in space
    assert res.extra["landmarks_note"] == ""  # same encoder and head: the demo set's sources are landmarks
    me = res.extra["sources"]["local"]
    assert len(me["centroid"]) == 2 and not me["reference"]
    assert me["nearest"] and all(n["source"].startswith("reference: ") for n in me["nearest"])
    (dist,) = res.groups["local"]
    assert dist.n == len(res.rows) and dist.interval[0] <= dist.value <= dist.interval[1]
    assert me["nearest"][0]["source"] in dist.label
    empty = res.failures[0]
    assert empty.total == len(res.rows) + empty.failed
    assert space in dist.label  # the headline number names its space
    # raw: sentence-embedding similarity, labelled so; other positions than the head's
    raw = U.profile_result([local_model], "quick", params=params, space="raw")
    assert raw.extra["space_kind"] == "raw" and not raw.extra["value_space"]
    assert "sentence-embedding similarity (not UniVaR)" in raw.extra["space"]
    assert raw.extra["encoder"] in raw.extra["space"] and "not UniVaR" in raw.groups["local"][0].label
    assert raw.extra["sources"]["local"]["centroid"] != me["centroid"]
    with pytest.raises(InputError, match="quick or full"):
        U.profile_result([local_model], "huge")


# ----------------------------------------------------------------------------- CLI
def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "valdemo", "univar", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def _qa_file(tmp_path) -> Path:
    lines = ["source,question,answer"]
    for q in U.load_questions()[:8]:
        lines.append(f'kind,"{q.text}","Yes, helping others matters most."')
        lines.append(f'selfish,"{q.text}","Only my own profit matters to me."')
    path = tmp_path / "qa.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_cli_json_with_ready_qa_pairs(tmp_path):
    out = tmp_path / "out"
    r = _cli("--qa", str(_qa_file(tmp_path)), "--projection", "pca", "--train-head", "--steps", "30",
             "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["n_points"] == 16 and s["sources"] == ["kind", "selfish"]
    rows = s["identification"]
    assert {(r["space"].split(":")[0], r["classifier"]) for r in rows} >= {
        ("all-MiniLM-L6-v2 (bundled)", "k-NN (k=5)"), ("all-MiniLM-L6-v2 (bundled)", "linear probe")}
    raw_knn = next(r for r in rows if r["classifier"].startswith("k-NN") and "not UniVaR" in r["space"])
    assert raw_knn["acc@1 [95% CI]"].startswith("1.000")  # the two sources' answers differ completely
    assert raw_knn["chance@1"] == 0.5 and raw_knn["n (test views)"] > 0
    assert any("value head" in r["space"] for r in rows)
    assert s["run_id"].startswith("univar")
    for name in ("qa.jsonl", "embeddings.npy", "embeddings_head.npy", "points.csv", "figure.html"):
        assert (out / name).stat().st_size > 0, name
    assert np.load(out / "embeddings.npy").shape == (16, 384)


@pytest.mark.slow
def test_cli_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("source,question,answer\nm,q,a\nm,,a\n")
    r = _cli("--qa", str(bad), "--out", str(tmp_path / "o"), "--json", timeout=120)
    assert r.returncode == 2 and "row 3" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--models", "local", "--out", str(tmp_path / "o"), timeout=120)
    assert r.returncode == 2 and "--questions" in r.stderr
    r = _cli("--questions", "bundled", "--models", "nonsense:x", "--out", str(tmp_path / "o"), timeout=120)
    assert r.returncode == 2 and "unknown backend" in r.stderr


# ----------------------------------------------------------------------------- API
@pytest.mark.slow
def test_api_generate_embed_project_neighbours(client, tmp_path):
    from gradio_client import handle_file

    qfile = tmp_path / "questions.csv"
    qfile.write_text("question,dimension\nShould you always tell the truth?,BENEVOLENCE\n"
                     "Is it fine to break a rule to help a friend?,CONFORMITY\n"
                     "What is the capital of France?,CONTROL\n")
    qa_id, table, status = client.predict("local", ["caring", "ambitious"], None, "uploaded questions",
                                          handle_file(str(qfile)), 8, api_name="/univar_generate")
    assert qa_id.startswith("qa-") and "QA pairs" in status and "Demo model" in status
    assert len(table["data"]) + status.count("empty answers") >= 5

    qa_id2, table2, _ = client.predict(handle_file(str(_qa_file(tmp_path))), api_name="/univar_upload_qa")
    assert len(table2["data"]) == 16
    emb_id, md, metrics, _, space = client.predict(qa_id2, "bundled", True, 3, 40, 0.02, 5, 1, 0,
                                                   api_name="/univar_embed")
    assert emb_id.startswith("emb-") and "held-out" in md and "all-MiniLM-L6-v2" in md
    assert space == "head"
    assert metrics["headers"][:3] == ["group", "space", "classifier"]
    assert {row[2] for row in metrics["data"]} == {"k-NN (k=5)", "linear probe"}
    plot, note = client.predict(emb_id, "head", "pca", 2, 15, 0.1, "cosine", "source", "profit",
                                api_name="/univar_project")
    assert "matches" in json.dumps(plot) and "acc@1" in note and "Demo model" not in note
    assert "value head" in json.dumps(plot) and "UMAP keeps neighbourhoods" in note
    saved = client.predict(api_name="/univar_saved_sets")
    assert emb_id in json.dumps(saved)
    U.forget_cache()  # as after a restart: the set comes back from the store
    opened = client.predict(emb_id, api_name="/univar_open")
    assert opened[0] == emb_id and opened[1] == qa_id2 and opened[-1] == "head"
    nn = client.predict(emb_id, "raw", 0, 3, api_name="/univar_neighbours")
    assert len(nn["data"]) == 3
    heat, ranked = client.predict(emb_id, "raw", api_name="/univar_similarity")
    assert "kind" in ranked and "selfish" in ranked
    files = client.predict(emb_id, "raw", "pca", 2, 15, 0.1, "cosine", "source", "csv", api_name="/univar_export")
    assert sorted(Path(f).name for f in files) == ["figure.html", "points.csv", "qa.jsonl"]
    with pytest.raises(Exception, match="unknown embedding set"):
        client.predict("emb-nope", "raw", 0, 3, api_name="/univar_neighbours")


@pytest.mark.slow
def test_tab_opens_on_the_demo_set_in_a_browser(served_app, browser):
    """What a person sees: the demo scatter drawn at once, with the bundled-model caveat beside it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    try:
        page.goto(served_app[1], timeout=120_000)
        page.get_by_role("tab", name="Value space").click()
        page.wait_for_selector("#univar-plot .main-svg", timeout=60_000)
        assert page.locator("#univar-plot .scatterlayer .trace").count() == 4  # one per demo source
        note = page.locator("#univar-note").inner_text()
        assert "Demo model" in note
        assert "value head (UniVaR objective" in note and "mean little" in note  # opens on the value space
        assert "value head" in page.locator("#univar-plot .gtitle").text_content()
        # colour by question topic: one click, one trace per value dimension of the demo's questions
        page.locator("#univar-topic").click()
        n_topics = len({p.dimension for p in U.load_demo().pairs})
        page.wait_for_function(f"document.querySelectorAll('#univar-plot .scatterlayer .trace').length == {n_topics}",
                               timeout=120_000)
    finally:
        page.close()
