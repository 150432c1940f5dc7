"""SVO game speed: trials/s for 4 orientations x 10 trials, batched vs one call per conversation.

Run: `.venv/bin/python benchmarks/svo.py [--trials 10] [--model local] [--max-new-tokens 48]`.
Both modes play the same trials (same seeds) without the response cache, so the
ratio compares like with like; it is measured within this one run. A trial is
one stated goal plus six item answers.
"""

from __future__ import annotations

import argparse

from _common import print_table, timer

from valdemo import svo
from valdemo.models import get_model, unwrap
from valdemo.values import ORIENTATION_KEYS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per orientation")
    parser.add_argument("--model", default="local")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--protocol", default=svo.DEFAULT_PROTOCOL, help="hvae_sequential or per_item")
    args = parser.parse_args()

    model = get_model(args.model, use_cache=False)
    if hasattr(unwrap(model), "warm"):
        unwrap(model).warm()
    n = len(ORIENTATION_KEYS) * args.trials
    results = {}
    for mode, batched in (("sequential", False), ("batched", True)):
        with timer() as t:
            trials = svo.play_trials(model, ORIENTATION_KEYS, args.trials, args.temperature, seed=0,
                                     max_new_tokens=args.max_new_tokens, batched=batched, protocol=args.protocol)
        results[mode] = (t["s"], trials)
    seq_s, seq_trials = results["sequential"]
    bat_s, bat_trials = results["batched"]
    same = sum(a.choices == b.choices for a, b in zip(seq_trials, bat_trials, strict=True))
    rows = [
        ["sequential (one call per conversation)", n, seq_s, n / seq_s, 1.0],
        ["batched (chat_batch / answer_probs_batch)", n, bat_s, n / bat_s, seq_s / bat_s],
    ]
    print_table(f"SVO play ({args.protocol}), {model.spec}: {len(ORIENTATION_KEYS)} orientations x {args.trials} trials, "
                f"goal <= {args.max_new_tokens} tokens, T={args.temperature}",
                ["mode", "trials", "seconds", "trials/s", "speed-up vs sequential"], rows)
    print(f"\nSame choices in both modes: {same}/{n} trials (sampled goals may differ with padding).")
    summary = svo.summarise(bat_trials)
    print(f"Batched run: unreadable answers {summary['parse_failures']}/{summary['answers']}, "
          f"valid trials {summary['valid_trials']}/{n}.")


if __name__ == "__main__":
    main()
