"""Build the bundled Value space demo set (assets/univar/demo/) from the bundled model.

Reproducible: greedy decoding (temperature 0), a fixed question pick (seed 0),
fixed personas, the bundled encoder, seeded head training and UMAP. Run:

    .venv/bin/python scripts/univar_build_demo.py [--questions 60] [--max-new-tokens 256]
    .venv/bin/python scripts/univar_build_demo.py --reuse-answers   # re-embed, retrain, re-evaluate only

It writes qa.jsonl (the QA pairs), embeddings.npy and embeddings_head.npy
(float16), projection.npy (2-D UMAP of the value head's space) and meta.json
(with the source-identification results, their n and intervals, and how many
answers stopped at the token limit: finish_reason "length", counted, never hidden).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valdemo import univar as U  # noqa: E402
from valdemo.cli import progress_printer  # noqa: E402
from valdemo.models import GenParams, get_model  # noqa: E402

PERSONAS = ("caring", "traditional", "ambitious", "free-spirit")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--reuse-answers", action="store_true",
                    help="keep the QA pairs in --out/qa.jsonl (and their meta); re-embed, retrain and re-evaluate")
    ap.add_argument("--out", default=str(U.DEMO_DIR))
    args = ap.parse_args()
    start = time.perf_counter()
    out = Path(args.out)
    if args.reuse_answers:
        old = json.loads((out / "meta.json").read_text())
        pairs = [U.QAPair(**json.loads(line)) for line in (out / "qa.jsonl").read_text(encoding="utf-8").splitlines()
                 if line]
        qa = U.QASet(pairs, old["qa_meta"])
    else:
        questions = U.pick_questions(U.load_questions(), args.questions, seed=0)
        personas = U.select_personas(list(PERSONAS))
        model = get_model("local", use_cache=True)  # an interrupted build resumes from the response cache
        params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
        for persona in personas:  # one persona at a time, so each finished part is cached
            U.generate_qa([model], questions, [persona], params, progress_printer(f"answers ({persona.name})"))
        qa = U.generate_qa([model], questions, personas, params, progress_printer("answers"))
    head_params = U.HeadParams(seed=0)
    es = U.embed_qa(qa, "", train_head=True, head_params=head_params, progress=progress_printer("embeddings"),
                    owner="demo-build")
    proj = U.ProjectionParams(method="umap", dims=2, seed=42)
    coords = U.project_set(es, es.default_space, proj)
    out.mkdir(parents=True, exist_ok=True)
    U.write_qa_jsonl(es.pairs, out / "qa.jsonl")
    np.save(out / "embeddings.npy", es.raw.astype(np.float16))
    np.save(out / "embeddings_head.npy", es.head.astype(np.float16))
    np.save(out / "projection.npy", coords.astype(np.float16))
    meta = {
        "built_by": "scripts/univar_build_demo.py",
        "model": "local (bundled SmolLM2-135M-Instruct)",
        "label": "one model under personas: the bundled SmolLM2-135M-Instruct answering under four system prompts",
        "encoder": es.encoder,
        "digest": qa.id,
        "qa_meta": qa.meta,
        "head_params": head_params.__dict__,
        "metrics": es.metrics,
        "projection": proj.__dict__,
        "projection_space": es.default_space,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"n_points": len(es.pairs), "sources": qa.sources,
                      "truncated_answers": qa.meta.get("truncated_answers"),
                      "identification": U.summarise(es)["identification"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
