"""CLAVE speed: calibration time for 100 / 500 labels, and predictions per second.

Run by hand (`.venv/bin/python benchmarks/clave.py`); never run by CI. Uses the real
ValueNet files in ../shared/data/valuenet when present, else the bundled samples
(repeated with a suffix to reach 500). All numbers in one table come from one run on
one machine, so compare them as ratios.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VALDEMO_DATA_DIR", tempfile.mkdtemp(prefix="valdemo-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from valdemo import clave  # noqa: E402


def load_samples(n: int) -> tuple[list[clave.Sample], str]:
    valuenet = ROOT.parent / "shared" / "data" / "valuenet"
    if valuenet.is_dir():
        pool = [s for f in sorted(valuenet.glob("*.csv")) for s in clave.read_samples(f)]
        source = "ValueNet (../shared/data/valuenet)"
    else:
        base = clave.bundled_samples()
        pool = [clave.Sample(f"{s.text} ({i})" if i else s.text, s.value, s.label)
                for i in range(1 + n // len(base)) for s in base]
        source = "bundled samples (repeated)"
    random.Random(0).shuffle(pool)
    return pool[: n + 500], source


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    samples, source = load_samples(500)
    train_pool, fresh = samples[:500], samples[500:]
    emb = clave._Embeddings("")
    t0 = time.perf_counter()
    emb([s.text for s in train_pool])
    embed_s = time.perf_counter() - t0
    rows = [("embed 500 texts (bundled MiniLM, first time)", embed_s, 500 / embed_s, "texts/s")]
    base_fit = None
    for n in (100, 500):
        part = train_pool[:n]
        fit_s, rec = timed(lambda part=part: clave.train_recognizer(part, _emb=emb))
        base_fit = base_fit or fit_s
        rows.append((f"train recognizer on {n} labels (embeddings cached)", fit_s, fit_s / base_fit, "x of 100"))
        cal_s, _ = timed(lambda part=part: clave.calibrate(part, folds=5, learning_curve=False), repeat=1)
        rows.append((f"calibrate + 5-fold evaluation on {n} labels", cal_s, cal_s / base_fit, "x of train@100"))
    texts, values = [s.text for s in fresh], [s.value for s in fresh]
    t0 = time.perf_counter()
    rec.predict(texts, values)
    pred_s = time.perf_counter() - t0
    rows.append((f"predict {len(texts)} new texts (embedding included)", pred_s, len(texts) / pred_s, "texts/s"))
    head_s, _ = timed(lambda: rec.proba_from_emb(emb(texts), values))
    rows.append((f"predict {len(texts)} texts, embeddings cached (head only)", head_s, len(texts) / head_s, "texts/s"))

    print(f"CLAVE benchmark · data: {source} · cpu count {os.cpu_count()}")
    print(f"{'measure':<58}{'seconds':>10}{'rate/ratio':>14}  unit")
    for name, secs, rate, unit in rows:
        print(f"{name:<58}{secs:>10.3f}{rate:>14.1f}  {unit}")


if __name__ == "__main__":
    main()
