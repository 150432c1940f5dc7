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
    with pytest.raises(InputError, match="item 2"):
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
    assert size < 600_000
    es = U.load_demo()
    assert len(es.qa.sources) >= 3
    assert es.raw.shape == (len(es.pairs), 384)
    assert np.allclose(np.linalg.norm(es.raw, axis=1), 1.0, atol=1e-2)
    qids = {q.qid for q in U.load_questions()}
    assert all(p.qid in qids and p.answer for p in es.pairs)
    assert ("raw", U.demo_projection_params()) in es.projections  # the tab opens without computing
    assert es.qa.bundled and "raw" in es.metrics


# ----------------------------------------------------------------------------- generation
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


# ----------------------------------------------------------------------------- kNN and the head
def test_knn_accuracy_on_hand_built_vectors():
    ref = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    query = np.array([[0.95, 0.05], [0.05, 0.95], [0.8, 0.2]], dtype=np.float32)
    acc = U.knn_accuracy(ref, [0, 0, 1, 1], query, [0, 1, 1])
    assert acc[1] == pytest.approx(2 / 3)
    assert acc[3] == pytest.approx(2 / 3)  # 3-NN: two votes for the nearer cluster
    split = U.split_questions(_pairs(10), 0.3, seed=0)
    assert split.sum() == 6  # 3 of 10 questions, both sources
    qs_test = {p.qid for p, t in zip(_pairs(10), split, strict=True) if t}
    assert not qs_test & {p.qid for p, t in zip(_pairs(10), split, strict=True) if not t}


@pytest.mark.slow
def test_value_head_beats_raw_encoder_on_constructed_set():
    pairs = constructed_pairs()
    raw = U.resolve_encoder("").encode([p.text() for p in pairs])
    head, emb, m = U.evaluate_head(pairs, raw, U.HeadParams(steps=150, seed=0))
    assert m["n_sources"] == 3 and m["n_test"] > 100
    assert m["final_loss"] < m["first_loss"] / 2
    assert emb.shape == (len(pairs), 128)
    assert m["head"][1] >= m["raw"][1] + 0.08, m
    assert m["head"][1] > 0.6


def test_head_needs_two_sources():
    pairs = _pairs(6, sources=("only",))
    raw = np.random.default_rng(0).normal(size=(len(pairs), 16)).astype(np.float32)
    head, emb, m = U.evaluate_head(pairs, raw, U.HeadParams(steps=5))
    assert head is None and "two sources" in m["note"]


# ----------------------------------------------------------------------------- explorer
def _embedded(n_per_source=12, sources=("a", "b", "c"), dim=16) -> U.EmbeddedSet:
    pairs = _pairs(n_per_source, sources)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(len(sources), dim)) * 3
    x = np.vstack([centres[i // n_per_source] + rng.normal(size=dim) for i in range(len(pairs))])
    x = U._normalise(x)
    return U.EmbeddedSet(U.QASet(pairs), "test", x, None, U.raw_knn_metrics(pairs, x), "emb-test-" + str(dim))


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
def test_profile_summary_and_source_answers(local_model):
    params = GenParams(max_new_tokens=16)
    answers = U.source_answers([local_model], "quick", params=params)
    assert list(answers) == ["local"] and 1 <= len(answers["local"]) <= U.QUICK_SIZE
    assert all(q and a for q, a in answers["local"])
    prof = U.profile_summary([local_model], "quick", params=params)
    assert prof["n_questions"] == U.QUICK_SIZE and prof["bundled_model"]
    me = prof["sources"]["local"]
    assert len(me["centroid"]) == 2 and not me["reference"]
    assert me["nearest"] and all(n["source"].startswith("reference: ") for n in me["nearest"])
    with pytest.raises(InputError, match="quick or full"):
        U.profile_summary([local_model], "huge")


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
    for k in (1, 3, 5):
        assert 0 <= s[f"knn_acc_at_{k}"]["raw"] <= 1 and 0 <= s[f"knn_acc_at_{k}"]["head"] <= 1
    assert s["knn_acc_at_1"]["raw"] == 1.0  # the two sources' answers differ completely
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
    emb_id, md, metrics, _ = client.predict(qa_id2, "bundled", True, 3, 40, api_name="/univar_embed")
    assert emb_id.startswith("emb-") and "held-out" in md
    assert [row[0] for row in metrics["data"]] == [1, 3, 5]
    plot, note = client.predict(emb_id, "head", "pca", 2, 15, 0.1, "cosine", "source", "profit",
                                api_name="/univar_project")
    assert "matches" in json.dumps(plot) and "acc@1" in note and "Demo model" not in note
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
        assert "Demo model" in page.locator("#univar-note").inner_text()
    finally:
        page.close()
