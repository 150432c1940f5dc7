"""Build the bundled Value space demo set (assets/univar/demo/) from the bundled model.

Sources: one model (the bundled SmolLM2-135M-Instruct) under four personas with clearly different
value priorities (assets/univar/personas.json: caring, traditional, ambitious, free-spirit), each
asked for two or three short sentences. Generation goes through the real code path
(``univar.generate_qa`` -> the local backend's batched ``chat_batch``, response cache on, so an
interrupted build resumes).

No answer in the set is cut short: the first pass decodes greedily; every answer that stops at the
token limit (finish_reason "length", usually a 135M repetition loop) is asked again with seeded
sampling (``--retries`` times, seeds 1, 2, ...); what is still cut after that is dropped, and
counted per source in meta.json (``dropped_at_token_limit``), never hidden. Each attempt's counts
are in meta.json (``attempts``).

Reproducible: a fixed question pick (seed 0), greedy then seeded sampling, the bundled encoder,
seeded head training and UMAP. Run it niced (the CPU may be shared):

    nice -n 10 .venv/bin/python scripts/univar_build_demo.py [--questions 60] [--max-new-tokens 128]
    .venv/bin/python scripts/univar_build_demo.py --reuse-answers   # re-embed, retrain, re-evaluate only

It writes qa.jsonl (the QA pairs), embeddings.npy and embeddings_head.npy
(float16), projection.npy (2-D UMAP of the value head's space), head.npz (the trained value
head's weights, float16) and meta.json
(with the source-identification results, their n and intervals, and how many
answers stopped at the token limit: finish_reason "length", counted, never hidden).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valdemo import univar as U  # noqa: E402
from valdemo.cli import progress_printer  # noqa: E402
from valdemo.models import GenParams, get_model  # noqa: E402

PERSONAS = ("caring", "traditional", "ambitious", "free-spirit")


def generate(args) -> U.QASet:
    """Every persona x question, greedy first; answers cut at the token limit asked again (sampled,
    seeded), then dropped and counted. Empty answers are re-asked the same way."""
    questions = U.pick_questions(U.load_questions(), args.questions, seed=0)
    personas = U.select_personas(list(PERSONAS))
    model = get_model("local", use_cache=True)  # an interrupted build resumes from the response cache
    attempts = [GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)]
    attempts += [GenParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=i)
                 for i in range(1, args.retries + 1)]
    got: dict[tuple[str, str], U.QAPair] = {}
    pending = {(p.name, q.qid) for p in personas for q in questions}
    log = []
    for n, params in enumerate(attempts):
        asked = cut = empty = 0
        for persona in personas:  # one persona at a time, so each finished part is cached
            qs = [q for q in questions if (persona.name, q.qid) in pending]
            if not qs:
                continue
            part = U.generate_qa([model], qs, [persona], params,
                                 progress_printer(f"attempt {n} ({persona.name})"), keep_truncated=False)
            asked += len(qs)
            cut += part.meta["truncated_answers"]
            empty += part.meta["empty_answers"]
            for pair in part.pairs:
                got[(persona.name, pair.qid)] = pair
                pending.discard((persona.name, pair.qid))
        log.append({"params": params.as_dict(), "asked": asked, "complete": asked - cut - empty,
                    "cut_at_token_limit": cut, "empty": empty})
        print(json.dumps(log[-1]), flush=True)
    dropped = Counter(U.source_name("local", name) for name, _ in pending)
    pairs = [got[(p.name, q.qid)] for p in personas for q in questions if (p.name, q.qid) in got]
    meta = {"models": ["local"], "personas": [p.name for p in personas],
            "persona_prompts": {p.name: p.system for p in personas}, "n_questions": len(questions),
            "params": attempts[0].as_dict(), "attempts": log, "bundled": True,
            "empty_answers": 0, "empty_by_source": {}, "truncated_answers": 0,
            "dropped_at_token_limit": sum(dropped.values()), "dropped_by_source": dict(dropped),
            "n_asked": len(personas) * len(questions)}
    return U.QASet(pairs, meta)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--retries", type=int, default=2, help="sampled re-asks of answers cut at the token limit")
    ap.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the re-asks")
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
        qa = generate(args)
    head_params = U.HeadParams(seed=0)
    es = U.embed_qa(qa, "", train_head=True, head_params=head_params, progress=progress_printer("embeddings"),
                    owner="demo-build", fresh=True)
    proj = U.ProjectionParams(method="umap", dims=2, seed=42)
    coords = U.project_set(es, es.default_space, proj)
    out.mkdir(parents=True, exist_ok=True)
    U.write_qa_jsonl(es.pairs, out / "qa.jsonl")
    np.save(out / "embeddings.npy", es.raw.astype(np.float16))
    np.save(out / "embeddings_head.npy", es.head.astype(np.float16))
    np.save(out / "projection.npy", coords.astype(np.float16))
    # the head's weights, so the profile can place new answers in this value space (U.load_demo_head)
    np.savez_compressed(out / "head.npz", **{k: v.astype(np.float16) for k, v in es.head_model.arrays().items()})
    meta = {
        "built_by": "scripts/univar_build_demo.py",
        "model": "local (bundled SmolLM2-135M-Instruct)",
        "label": "one model under personas: the bundled SmolLM2-135M-Instruct answering under four system prompts "
                 "with different value priorities (caring, traditional, ambitious, free-spirit)",
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
                      "dropped_at_token_limit": qa.meta.get("dropped_at_token_limit"),
                      "identification": U.summarise(es)["identification"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
