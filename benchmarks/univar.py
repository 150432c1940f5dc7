"""Value space (UniVaR) speed on this machine: embedding, projection, value head.

Run: `.venv/bin/python benchmarks/univar.py [--quick]` (or `make bench`). Prints
tables; every ratio is measured within this one run. Measures:

* embedding throughput of the bundled MiniLM on QA texts ("Q: ... A: ...") at
  two batch sizes (first call includes loading the encoder, reported apart);
* joint view encoding (lambda = 1, 5, 20, 80 pairs joined into one text) and how
  many views the encoder cuts at its input limit;
* UMAP time for 500 and 2,000 points (first UMAP call pays numba's JIT compile,
  reported apart) vs PCA on the same points;
* value-head training time (UniVaR objective) for 300 steps on 500 and 2,000 points.

Synthetic points are clustered unit vectors (one cluster per source) in 384-D,
the encoder's size, so projection and head timings do not depend on generation.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import print_table, timer

from valdemo import univar as U


def qa_texts(n: int) -> list[U.QAPair]:
    qs = U.load_questions()
    styles = ["I think so, because it helps people.", "No. Rules and duty come first.",
              "Only if it makes me richer or more successful.", "Yes! Freedom and fun matter most."]
    return [U.QAPair(f"s{i % 4}", qs[i % len(qs)].text, styles[i % 4], qid=qs[i % len(qs)].qid)
            for i in range(n)]


def clustered(n: int, n_sources: int = 4, dim: int = 384, seed: int = 0) -> tuple[np.ndarray, list[U.QAPair]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_sources, dim))
    labels = np.arange(n) % n_sources
    x = U._normalise(centres[labels] + rng.normal(size=(n, dim)) * 2.0)
    qs = U.load_questions()
    pairs = [U.QAPair(f"s{labels[i]}", qs[(i // n_sources) % len(qs)].text, "a",
                      qid=f"{qs[(i // n_sources) % len(qs)].qid}-{i // (n_sources * len(qs))}") for i in range(n)]
    return x, pairs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    n_embed = 128 if args.quick else 512
    sizes = (200, 500) if args.quick else (500, 2000)
    steps = 60 if args.quick else 300

    enc = U.resolve_encoder("")
    texts = [p.text() for p in qa_texts(n_embed)]
    with timer() as t_load:
        enc.encode(texts[:8])
    rows = []
    for bs in (16, 64):
        with timer() as t:
            enc.encode(texts, batch_size=bs)
        rows.append([f"MiniLM, batch {bs}", n_embed, round(t["s"], 2), round(n_embed / t["s"], 1)])
    base = rows[0][3]
    for r in rows:
        r.append(round(r[3] / base, 2))
    print_table(f"Embedding throughput (first call with load: {t_load['s']:.1f} s)",
                ["encoder", "texts", "seconds", "texts/s", "vs batch 16"], rows)

    # Joint views: lambda QA pairs joined into one text, encoded once (UniVaR's views).
    pairs = qa_texts(n_embed)
    n_views = 32 if args.quick else 96
    rows = []
    for lam in (1, 5, 20, 80):
        views = [[pairs[(v * lam + j) % len(pairs)] for j in range(lam)] for v in range(n_views)]
        with timer() as t:
            _, cut = U.encode_views(enc, views)
        rows.append([lam, n_views, round(t["s"], 2), round(n_views / t["s"], 1), f"{cut} of {n_views}"])
    print_table(f"Joint view encoding (MiniLM reads {U.token_limit(enc)} tokens; longer views are cut, counted)",
                ["lambda (pairs per view)", "views", "seconds", "views/s", "views cut by the encoder"], rows)

    x_small, _ = clustered(100)
    with timer() as t_jit:
        U.project(x_small, U.ProjectionParams(method="umap", n_neighbors=10))
    rows = []
    for n in sizes:
        x, _ = clustered(n)
        with timer() as tu:
            U.project(x, U.ProjectionParams(method="umap"))
        with timer() as tu3:
            U.project(x, U.ProjectionParams(method="umap", dims=3))
        with timer() as tp:
            U.project(x, U.ProjectionParams(method="pca"))
        rows.append([n, round(tu["s"], 2), round(tu3["s"], 2), round(tp["s"], 4), round(tu["s"] / max(tp["s"], 1e-9))])
    print_table(f"Projection (first UMAP call, JIT compile, 100 points: {t_jit['s']:.1f} s)",
                ["points", "UMAP 2-D s", "UMAP 3-D s", "PCA 2-D s", "UMAP/PCA"], rows)

    rows = []
    for n in sizes:
        x, pairs = clustered(n)
        with timer() as th:
            _, _, m = U.evaluate_head(pairs, x, U.HeadParams(steps=steps, lam=1))  # single-pair views: no encoder
        acc = {(i.space, i.evaluator.split(" ")[0]): i.metric(1).fmt(2)
               for i in (U.Identification.from_dict(d) for d in m["identification"])}
        rows.append([n, steps, round(th["s"], 2), round(th["s"] / steps * 1000, 1), acc.get(("raw", "k-NN")),
                     acc.get(("head", "k-NN")), acc.get(("head", "linear"))])
    print_table("Value head training on single-pair views (4 sources, 8 replicas per step; incl. k-NN and probe "
                "evaluation; acc@1 [95% Wilson] (n test views); synthetic clusters, not model answers)",
                ["points", "steps", "seconds", "ms/step", "raw k-NN acc@1", "head k-NN acc@1", "head probe acc@1"],
                rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
