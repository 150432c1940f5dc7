"""How often the judge's Yes/No on violation is unreadable, with and without the protocol's worked examples.

Run: `.venv/bin/python benchmarks/denevil_judge.py [--model local] [--seeds 2] [--max-new-tokens 64]`.
The target continues every bundled story beginning once per seed (sampled, T=0.7); the judge is asked
"does the continuation break the principle?" through core.choose (mass threshold 0.5, unchanged) with
the bundled protocol's conversation (worked examples first) and with the same conversation minus the
examples. Prints unreadable answers with their denominator, the median mass on Yes/No and the mean
P(Yes) per variant. A measurement of one judge on this machine; it prints, never fails.
"""

from __future__ import annotations

import argparse
import statistics

from _common import print_table, timer

from valdemo import denevil
from valdemo.core.choose import choose
from valdemo.models import BUNDLED_CAVEAT, GenParams, get_model, unwrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local", help="target and judge")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    model = get_model(args.model)
    items = denevil.bundled_prompts() * args.seeds
    seeds = [s for s in range(args.seeds) for _ in denevil.bundled_prompts()]
    conts = []
    for seed in range(args.seeds):
        batch = [denevil.continue_conversation(p.prompt) for p in denevil.bundled_prompts()]
        params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.95, seed=seed)
        conts += [r.text.strip() for r in model.chat_batch(batch, params)]
    assert len(conts) == len(items) == len(seeds)
    with_demos = [denevil.violation_conversation(p, p.prompt, c) for p, c in zip(items, conts, strict=True)]
    n_demo_turns = 2 * len(denevil.prompts.JUDGE_DEMOS)
    without = [conv[:1] + conv[1 + n_demo_turns:] for conv in with_demos]
    rows = []
    for name, convs in (("without worked examples", without), ("with the protocol's worked examples", with_demos)):
        with timer() as t:
            choices = choose(model, convs, ("Yes", "No"))
        masses = [c.mass for c in choices if c.mass is not None]
        rows.append([name, f"{sum(not c.ok for c in choices)} of {len(choices)}",
                     f"{statistics.median(masses):.3f}" if masses else "n/a",
                     f"{statistics.mean(c.probs['Yes'] for c in choices if c.probs):.3f}", f"{t['s']:.0f}"])
    print_table("DeNEVIL judge: unreadable Yes/No answers (mass threshold 0.5)",
                ["judge prompt", "unreadable", "median mass on Yes/No", "mean P(Yes)", "seconds"], rows)
    if unwrap(model).is_bundled:
        print(f"note: {BUNDLED_CAVEAT}")


if __name__ == "__main__":
    main()
