"""Build the example value profile that the Profile tab opens with (assets/profile/example/).

It runs the real quick profile (valdemo.profile.run_profile) on the bundled 135M demo model as
target and judge, and writes what the tab and the report need:

    profile.json   the profile without its rows (what the tab renders)
    rows.jsonl     every row behind every number
    meta.json      how it was made (command, date, seconds, library versions)

The report (report.html, 5 MB with plotly inline) is not stored: the app draws it from these two
files with today's report code (valdemo.ui.example_report.write_example_report).

Nothing here is typed by hand: rerun it after a change to the profile's shape. Run:

    .venv/bin/python scripts/build_example_report.py [--size quick]

The store it writes to is a fresh temporary folder, so no saved run of yours is touched; the
response cache is the usual one (cached answers are the same model's answers to the same prompts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "profile" / "example"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["quick", "full"], default="quick")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="valdemo-example-")
    os.environ["VALDEMO_DATA_DIR"] = work  # a clean store: the example is saved in no one's runs
    sys.path.insert(0, str(ROOT))

    import transformers

    from valdemo import profile as prof
    from valdemo.store import get_store

    def progress(fraction: float, label: str) -> None:
        sys.stderr.write(f"\r{fraction * 100:5.1f}% {label[:60]:<60}")
        sys.stderr.flush()

    start = time.perf_counter()
    profile = prof.run_profile("local", "local", prof.ProfileConfig(size=args.size), progress=progress,
                               store=get_store(), save=False)
    sys.stderr.write("\n")
    profile["run_id"] = "example"
    paths = prof.write_report(profile, args.out)
    paths.pop("html").unlink()  # drawn by the app from the two data files (see the docstring)
    meta = {"what": "example, bundled 135M demo model", "command": f"scripts/build_example_report.py --size {args.size}",
            "created": profile["created"], "seconds": round(time.perf_counter() - start, 1),
            "cache": profile["cache"],  # answers served from the response cache (a rerun) vs asked
            "python": platform.python_version(), "transformers": transformers.__version__,
            "files": sorted(p.name for p in paths.values())}
    (Path(args.out) / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
