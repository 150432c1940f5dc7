"""OpenMP wait policy for local generation: brief spin (valdemo's default), PASSIVE, ACTIVE; alone and shared.

Run on the machine you care about: `.venv/bin/python benchmarks/omp_policy.py [--rounds 2]`. Each
measurement is a fresh process (the policy is read once, when torch loads OpenMP), policies
alternating in every round, with the response cache off: 16 prompts x 32 tokens in one batch, then
4 prompts one at a time. "alone": one process; "shared": two such processes at once on the same CPU
(each one's time, averaged), as when the test suite's app and CLI processes, or two apps, share it.
Prints one table; every ratio is measured in this run.
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
from valdemo.models.local import forget_prefixes
forget_prefixes()
t = time.perf_counter(); m.chat_batch(prompts, p); batch = time.perf_counter() - t
forget_prefixes()
t = time.perf_counter()
for c in prompts[:4]:
    m.chat(c, p)
print(json.dumps({"batch": batch, "singles": time.perf_counter() - t}))
"""


#: What each policy sets (valdemo's default is what valdemo/__init__.py sets when nothing is given).
POLICIES = {
    "brief spin (default: ACTIVE, GOMP_SPINCOUNT=10000)": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "10000"},
    "PASSIVE (sleep at once)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "ACTIVE (spin for good)": {"OMP_WAIT_POLICY": "ACTIVE"},
}


def measure(policy: dict, together: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= {**policy, "VALDEMO_CACHE": "0", "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(together)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a measurement process failed")
    return {k: sum(o[k] for o in outs) / len(outs) for k in ("batch", "singles")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for together, label in ((1, "alone"), (2, "shared (2 at once)")):
        runs: dict[str, list[dict]] = {p: [] for p in POLICIES}
        for _ in range(args.rounds):
            for name, policy in POLICIES.items():
                runs[name].append(measure(policy, together))
        mean = {p: {k: sum(r[k] for r in rs) / len(rs) for k in ("batch", "singles")} for p, rs in runs.items()}
        base = mean["PASSIVE (sleep at once)"]
        for name, rs in runs.items():
            rows.append([label, name, ", ".join(f"{r['batch']:.2f}" for r in rs),
                         ", ".join(f"{r['singles']:.2f}" for r in rs),
                         f"{base['batch'] / mean[name]['batch']:.2f}x", f"{base['singles'] / mean[name]['singles']:.2f}x"])
    print_table(f"OpenMP wait policy (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
                f"{os.cpu_count()} CPUs)",
                ["CPU", "policy", "batch of 16 x 32 tokens (s)", "4 single prompts (s)",
                 "speed vs PASSIVE (batch)", "speed vs PASSIVE (singles)"], rows)


if __name__ == "__main__":
    main()
