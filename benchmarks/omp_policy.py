"""OpenMP wait policy for local generation: spinning (ACTIVE) against sleeping (PASSIVE).

Run on the machine you care about, idle or as loaded as it will be in use:
`.venv/bin/python benchmarks/omp_policy.py [--rounds 2]`. Each measurement is a fresh process
(the policy is read once, when torch loads OpenMP), alternating A B A B, with the response cache
off: 16 prompts x 32 tokens in one batch, then 4 prompts one at a time. Prints one table; the
ratio is measured in this run. valdemo sets PASSIVE unless the environment sets the policy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, print_table

CHILD = """
import json, time
from valdemo.models import GenParams, get_model, user
m = get_model("local")
prompts = [user(f"Write one sentence about the number {i}.") for i in range(16)]
p = GenParams(max_new_tokens=32)
m.chat_batch(prompts[:2], p)
t = time.perf_counter(); m.chat_batch(prompts, p); batch = time.perf_counter() - t
t = time.perf_counter()
for c in prompts[:4]:
    m.chat(c, p)
print(json.dumps({"batch": batch, "singles": time.perf_counter() - t}))
"""


def measure(policy: str) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "VALDEMO_CACHE": "0", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"ACTIVE": [], "PASSIVE": []}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for policy in runs:
            runs[policy].append(measure(policy))
    mean = {p: {k: sum(r[k] for r in rs) / len(rs) for k in ("batch", "singles")} for p, rs in runs.items()}
    rows = [[p, ", ".join(f"{r['batch']:.2f}" for r in rs), ", ".join(f"{r['singles']:.2f}" for r in rs)]
            for p, rs in runs.items()]
    rows.append(["PASSIVE / ACTIVE (mean time)", f"{mean['PASSIVE']['batch'] / mean['ACTIVE']['batch']:.2f}x",
                 f"{mean['PASSIVE']['singles'] / mean['ACTIVE']['singles']:.2f}x"])
    print_table(f"OpenMP wait policy (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)",
                ["policy", "batch of 16 x 32 tokens (s)", "4 single prompts (s)"], rows)


if __name__ == "__main__":
    main()
