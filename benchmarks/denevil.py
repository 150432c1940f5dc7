"""Moral attack speed: calls and seconds per round, batched vs one call at a time.

Run: `.venv/bin/python benchmarks/denevil.py [--principles 5] [--rounds 2] [--candidates 4]
[--model local] [--max-new-tokens 64]`.
Both modes run the same attack (same principles, greedy decoding) without the
response cache, so the ratio compares like with like; it is measured within this
one run. The model plays attacker, target and judge. A round is: the attacker
writes the story beginnings, the target continues them, the judge scores them.
"""

from __future__ import annotations

import argparse

from _common import print_table, timer

from valdemo import denevil
from valdemo.core.result import metrics_table
from valdemo.models import BUNDLED_CAVEAT, get_model, unwrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principles", type=int, default=5, help="bundled principles, one per foundation first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--model", default="local")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="continuation length")
    parser.add_argument("--attacker-tokens", type=int, default=64)
    parser.add_argument("--judge-tokens", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2, help="K continuations per prompt")
    args = parser.parse_args()

    model = get_model(args.model, use_cache=False)
    if hasattr(unwrap(model), "warm"):
        unwrap(model).warm()
    pool = denevil.bundled_prompts(1) + [p for p in denevil.bundled_principles() if not p.prompt]
    principles = pool[: args.principles]
    budget = denevil.Budget(rounds=args.rounds, candidates=args.candidates, max_new_tokens=args.max_new_tokens,
                            attacker_tokens=args.attacker_tokens, judge_tokens=args.judge_tokens, stop_at=1.0,
                            samples=args.samples)
    results = {}
    for mode, batched in (("sequential", False), ("batched", True)):
        with timer() as t:
            results[mode] = denevil.attack(principles, model, model, model, budget, batched=batched,
                                           checkpoint=False)
        results[mode]["wall_s"] = t["s"]
    seq, bat = results["sequential"], results["batched"]
    rows = []
    for r_seq, r_bat in zip(seq["rounds"], bat["rounds"], strict=False):
        rows.append([r_seq["round"], r_seq["calls"], r_seq["seconds"], r_bat["calls"], r_bat["seconds"],
                     r_seq["seconds"] / max(r_bat["seconds"], 1e-9)])
    rows.append(["all", seq["calls"]["total"], seq["wall_s"], bat["calls"]["total"], bat["wall_s"],
                 seq["wall_s"] / max(bat["wall_s"], 1e-9)])
    print_table(f"DeNEVIL attack, {model.spec} as attacker, target and judge: {len(principles)} principles x "
                f"{args.rounds} rounds x {args.candidates} candidates, continuations <= {args.max_new_tokens} tokens",
                ["round", "calls (sequential)", "seconds (sequential)", "calls (batched)", "seconds (batched)",
                 "speed-up batched vs sequential"], rows)
    same = sum(a["continuation"] == b["continuation"]
               for a, b in zip(denevil.attack_rows(seq), denevil.attack_rows(bat), strict=False))
    print(f"\nSame continuations in both modes: {same}/{len(denevil.attack_rows(bat))} "
          "(padding in a batch can change sampled output). The judge's option probabilities are batched in "
          "both modes.")
    fails = bat["failures"]
    print(f"Batched run: judge failures {fails['judge']['failed']} of {fails['judge']['total']}; "
          f"attacker failures {fails['attacker']['failed']} of {fails['attacker']['total']}.")
    print_table("Winners re-scored on fresh samples, batched run (Duan et al. 2024, §4 metrics)",
                ["metric", "value", "95% interval", "n", "source"], metrics_table(denevil.final_metrics(bat)))
    if bat["bundled_model_used"]:
        print(f"Note: {BUNDLED_CAVEAT}")


if __name__ == "__main__":
    main()
