"""Backend speed on this machine: batching, concurrency, cache, start-up.

Run: `.venv/bin/python benchmarks/backends.py` (or `make bench`). Prints one
table; every ratio is measured within this one run. Targets (issue 2):
batched >= 4x tokens/s; concurrent >= 0.8 x the concurrency limit against a
latency-bound endpoint; warm cache >= 50x; first page <= 5 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from _common import ROOT, free_port, print_table, timer

from tests.fault_server import FaultServer
from valdemo.models import GenParams, ResponseCache, get_model, user
from valdemo.models.cache import CachedModel
from valdemo.models.local import converted_bundled_dir
from valdemo.models.openai_api import OpenAIChatModel

PROMPTS = [user(f"Write one sentence about the number {i}.") for i in range(16)]
PARAMS = GenParams(max_new_tokens=32)


def tokens(model, replies) -> int:
    tok = model._get().tokenizer
    return sum(len(tok.encode(r.text, add_special_tokens=False)) for r in replies)


def bench_local(rows):
    model = get_model("local", use_cache=False)
    model.warm()
    with timer() as one:
        singles = [model.chat(p, PARAMS) for p in PROMPTS]
    with timer() as batched:
        batch = model.chat_batch(PROMPTS, PARAMS)
    tps_one = tokens(model, singles) / one["s"]
    tps_batch = tokens(model, batch) / batched["s"]
    rows.append(["bundled model, 16 prompts x 32 tokens", f"one at a time {tps_one:.1f} tok/s",
                 f"batch 16 {tps_batch:.1f} tok/s", tps_batch / tps_one, ">= 4x"])
    return model


def bench_latency_bound(rows, concurrency=8, n=64):
    with FaultServer(["delay:0.2"]) as server:
        seq = OpenAIChatModel("m", base_url=server.base_url, concurrency=1)
        conc = OpenAIChatModel("m", base_url=server.base_url, concurrency=concurrency)
        convs = [user(str(i)) for i in range(n)]
        with timer() as t_seq:
            seq.chat_batch(convs)
        with timer() as t_conc:
            conc.chat_batch(convs)
    ratio = t_seq["s"] / t_conc["s"]
    rows.append([f"{n} requests, 200 ms endpoint", f"sequential {t_seq['s']:.1f} s",
                 f"concurrency {concurrency}: {t_conc['s']:.1f} s", ratio, f">= {0.8 * concurrency:.1f}x"])


def bench_transformers_serve(rows, n=8):
    folder = converted_bundled_dir()
    exe = os.path.join(os.path.dirname(sys.executable), "transformers")
    for flag in ("--no-continuous-batching", "--continuous-batching"):
        port = free_port()
        proc = subprocess.Popen([exe, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", flag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            base = f"http://127.0.0.1:{port}/v1"
            seq = OpenAIChatModel(str(folder), base_url=base, concurrency=1, timeout_s=300)
            conc = OpenAIChatModel(str(folder), base_url=base, concurrency=8, timeout_s=300)
            convs = PROMPTS[:n]
            seq.chat(convs[0], PARAMS)  # warm
            with timer() as t_seq:
                seq.chat_batch(convs, PARAMS)
            with timer() as t_conc:
                conc.chat_batch(convs, PARAMS)
            rows.append([f"transformers serve {flag}, {n} x 32 tokens", f"sequential {t_seq['s']:.1f} s",
                         f"concurrency 8: {t_conc['s']:.1f} s", t_seq["s"] / t_conc["s"], "report (compute-bound)"])
        except Exception as exc:  # report, never fail
            rows.append([f"transformers serve {flag}", f"failed: {type(exc).__name__}: {exc}"[:80], "", "", ""])
        finally:
            proc.terminate()
            proc.wait(20)


def bench_cache(rows, inner):
    import tempfile
    from pathlib import Path

    cache = ResponseCache(Path(tempfile.mkdtemp()) / "c.sqlite")
    model = CachedModel(inner, cache)
    with timer() as cold:
        model.chat_batch(PROMPTS, PARAMS)
    with timer() as warm:
        model.chat_batch(PROMPTS, PARAMS)
    rows.append(["rerun of 16 prompts", f"cold {cold['s']:.2f} s", f"warm {warm['s'] * 1000:.1f} ms",
                 cold["s"] / warm["s"], ">= 50x"])


def bench_startup(rows):
    from startup import first_page  # benchmarks/startup.py: the stages apart, interleaved with a baseline

    rows.append(["app start to first page", f"{first_page(ROOT):.2f} s", "", "", "<= 4 s (issue 19)"])


def main() -> None:
    rows: list[list] = []
    bench_startup(rows)
    model = bench_local(rows)
    bench_cache(rows, model)
    bench_latency_bound(rows)
    bench_transformers_serve(rows)
    print_table("valdemo backends", ["what", "baseline", "measured", "ratio", "target"], rows)


if __name__ == "__main__":
    main()
