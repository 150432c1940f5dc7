"""Value dialogue speed: know-what items/s over 100 items, batched vs one at a time, and the
warm-cache rerun.

Run: `.venv/bin/python benchmarks/vum.py [--items 100] [--model local] [--shots 4] [--replay DIR]`.
With ``--replay DIR`` (a folder in the ValueDCG release's layout, e.g. ../shared/data/valuedcg) it
times scoring that release's recorded outputs instead (no model is called).
The same 100 bundled items (10 per value, labels interleaved) go through the
discriminator three ways: one call per item and one batched call, both without
the response cache, then a cold and a warm batched run through a fresh cache.
Every ratio is measured within this one run. The answers of the one-at-a-time
and batched runs are compared (padding can move a near-tie).
"""

from __future__ import annotations

import argparse

from _common import print_table, timer

from valdemo import vum
from valdemo.models import get_model, unwrap
from valdemo.values import SCHWARTZ_KEYS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="items in all (spread over the ten values)")
    parser.add_argument("--model", default="local")
    parser.add_argument("--shots", type=int, default=vum.DEFAULT_SHOTS)
    parser.add_argument("--replay", default=None, metavar="DIR", help="time a replay of recorded outputs instead")
    args = parser.parse_args()
    if args.replay:
        replay_timing(args.replay)
        return

    per_value = max(1, args.items // len(SCHWARTZ_KEYS))
    items = vum.select_items(vum.bundled_items(), SCHWARTZ_KEYS, per_value)[: args.items]
    n = len(items)
    raw = get_model(args.model, use_cache=False)
    if hasattr(unwrap(raw), "warm"):
        unwrap(raw).warm()

    with timer() as one:
        singles = [row for it in items for row in vum.know_what([it], raw, shots=args.shots)]
    with timer() as batched:
        batch = vum.know_what(items, raw, shots=args.shots)
    cached = get_model(args.model, use_cache=True)
    with timer() as cold:
        vum.know_what(items, cached, shots=args.shots)
    with timer() as warm:
        rerun = vum.know_what(items, cached, shots=args.shots)

    same = sum(a["pred"] == b["pred"] for a, b in zip(singles, batch, strict=True))
    mode = batch[0]["mode"]
    rows = [
        [f"{n} items, one call each ({mode})", f"{one['s']:.1f} s", f"{n / one['s']:.2f} items/s", 1.0, ""],
        [f"{n} items, batched ({mode})", f"{batched['s']:.1f} s", f"{n / batched['s']:.2f} items/s",
         one["s"] / batched["s"], "batched vs one at a time"],
        [f"{n} items, batched, cold cache", f"{cold['s']:.1f} s", f"{n / cold['s']:.2f} items/s", 1.0, ""],
        [f"{n} items, batched, warm cache", f"{warm['s']:.3f} s", f"{n / warm['s']:.0f} items/s",
         cold["s"] / warm["s"], "warm rerun vs cold"],
    ]
    print_table(f"Value dialogue: know what on {args.model} ({unwrap(raw).model_id})",
                ["run", "time", "throughput", "ratio", "ratio of"], rows)
    acc = vum.summarise(batch)["know_what_acc"]
    print(f"\nSame answer one-at-a-time vs batched: {same}/{n}. Batched accuracy {acc:.2f} "
          f"(parse failures {vum.summarise(batch)['parse_failures']}); warm rerun identical: "
          f"{[r['pred'] for r in rerun] == [r['pred'] for r in batch]}.")
    if unwrap(raw).is_bundled:
        print("Demo model: these numbers show speed, not findings about values.")


def replay_timing(folder: str) -> None:
    from valdemo.vum import replay as R

    with timer() as t:
        result = R.replay(folder=folder)
    answers = sum(s["overall"]["n"] for s in result["models"].values())
    judged = sum(s["overall"]["n_judged"] for s in result["models"].values())
    rows = [[f"{len(result['models'])} models: {answers} answers, {judged} judged critiques",
             f"{t['s']:.1f} s", f"{(answers + judged) / t['s']:.0f} rows/s"]]
    print_table(f"Value dialogue: replay of {folder} (recorded outputs; intervals and the judge-human "
                "study included)", ["run", "time", "throughput"], rows)


if __name__ == "__main__":
    main()
