"""Value dialogue: VUM / ValueDCG's "know what" vs "know why" and their gap (DCG).

The package is split by concern: ``engine`` (items, prompts, the live and batch runs,
summaries, overrides, export; everything ``from valdemo import vum`` offered before the
split) and, added beside it, ``replay`` (scoring recorded outputs of a release without
calling a model). Every public name stays reachable as ``vum.<name>``.
"""

from __future__ import annotations

from .engine import *  # noqa: F401,F403  (the public API, unchanged by the split)
