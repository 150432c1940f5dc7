"""Quick value profile of one model with a COLD response cache: per-stage seconds and the total (issue 19).

Run: `.venv/bin/python benchmarks/profile_quick.py [--models local] [--judge local] [--size quick]`.

The response cache and the database are fresh temporary files, so every model call is made
(a cold cache); the converted model folder is reused (loading it is timed apart, as "model load").
Stages are the profile's own sections (each method's ``profile_result``), in the order they ran.
The machine may be shared: the load average before and after is printed beside the times, and a
time measured under load is an upper bound for an idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# This file is named like the standard library's `profile` (which torch and transformers import):
# its folder goes to the END of the path, so `import profile` still finds the standard one.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="local")
    parser.add_argument("--judge", default="local")
    parser.add_argument("--size", default="quick", choices=["quick", "full"])
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--values", default="", help="VUM values (comma separated; default all ten)")
    parser.add_argument("--calls", action="store_true",
                        help="also print every local-model call: rows, tokens read and reused, seconds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="valdemo-bench-profile-"))
    os.environ["VALDEMO_CACHE_DB"] = str(tmp / "responses.sqlite")  # cold: nothing answered from a cache
    os.environ["VALDEMO_DATA_DIR"] = str(tmp / "data")
    sys.path.insert(0, str(HERE.parent))
    from _common import print_table

    from valdemo.config import reload_settings
    from valdemo.models import get_model, unwrap
    from valdemo.profile import ProfileConfig, run_profile

    reload_settings()
    if args.calls:
        _time_calls()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    for spec in dict.fromkeys([*args.models.split(","), args.judge]):
        inner = unwrap(get_model(spec.strip()))
        if hasattr(inner, "warm"):
            inner.warm()
    load_s = time.perf_counter() - t0
    values = tuple(v.strip() for v in args.values.split(",") if v.strip())
    config = ProfileConfig(size=args.size, max_new_tokens=args.max_new_tokens, values=values)
    t1 = time.perf_counter()
    profile = run_profile(args.models, args.judge, config, save=False)
    total = time.perf_counter() - t1
    load1 = os.getloadavg()
    rows = [["model load (not in the profile)", round(load_s, 1), ""]]
    for spec, p in profile["profiles"].items():
        for method, sec in sorted(p["methods"].items(), key=lambda kv: -kv[1]["seconds"]):
            rows.append([f"{spec} · {method}", round(sec["seconds"], 1), sec["status"] + (
                f": {sec['error'][:60]}" if sec["error"] else "")])
    rows.append(["total (profile, cold cache)", round(total, 1),
                 f"cache misses {profile['cache']['misses']}, hits {profile['cache']['hits']}"])
    print_table("Quick profile, cold cache", ["stage", "seconds", "note"], rows)
    print(f"size {args.size}; load average (1, 5, 15 min) before {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, "
          f"after {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}; {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def _time_calls() -> None:
    """Wrap the local backend's two batch entry points to print one line per call (timing only)."""
    from valdemo.models import local

    def wrap(name: str, describe):
        original = getattr(local.LocalChatModel, name)

        def timed(self, convs, *args, **kwargs):
            loaded = self._get()
            read, reused = loaded.read_tokens, loaded.reused_tokens
            start = time.perf_counter()
            out = original(self, convs, *args, **kwargs)
            print(f"  {describe(convs, args, kwargs, out)}: {time.perf_counter() - start:.2f} s, prompt tokens read "
                  f"{loaded.read_tokens - read}, reused {loaded.reused_tokens - reused}", flush=True)
            return out

        setattr(local.LocalChatModel, name, timed)

    from valdemo.models import GenParams

    def generation(convs, a, k, out) -> str:
        params = (a[0] if a else k.get("params")) or GenParams()
        return (f"generate {len(convs)} x <= {params.max_new_tokens} tokens, T={params.temperature}, "
                f"{sum(r.finish_reason == 'length' for r in out)} at the cap")

    wrap("chat_batch", generation)
    wrap("answer_probs_batch", lambda convs, a, k, out: f"score {len(convs)} prompts x {len(a[0] if a else k['options'])} answers")


if __name__ == "__main__":
    main()
