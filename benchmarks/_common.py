"""Shared helpers for the benchmarks: run by hand (`make bench`), print tables, never fail CI."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Benchmarks use their own response cache so cold numbers are really cold.
_tmp = Path(tempfile.mkdtemp(prefix="valdemo-bench-"))
os.environ["VALDEMO_CACHE_DB"] = str(_tmp / "responses.sqlite")
os.environ.setdefault("VALDEMO_DATA_DIR", str(_tmp / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextmanager
def timer():
    """Time a block, from cold: the local backend's prompt-prefix store is emptied first, so a run
    does not read prompts an earlier run already read (the response cache is separate)."""
    from valdemo.models.local import forget_prefixes

    forget_prefixes()
    box = {}
    start = time.perf_counter()
    yield box
    box["s"] = time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |")
    sys.stdout.flush()


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:.3g}" if abs(c) < 1000 else f"{c:,.0f}"
    return str(c)
