"""Import recorded runs of any method: one entry point over each method's ``replay_jsonl``.

The shapes are documented in ``docs/recorded_runs.md``; each method scores its file with the
code its live runs use (VUM: :mod:`valdemo.vum.replay`; SVO: :func:`valdemo.svo.replay_jsonl`;
DeNEVIL: :mod:`valdemo.denevil.replay`; UniVaR: :mod:`valdemo.univar.replay`). The CLI's
``valdemo <method> replay --jsonl FILE`` and the app's ``/replay_recorded`` endpoint both come here.
"""

from __future__ import annotations

from pathlib import Path

from .core.recorded import LABEL, save
from .core.result import Result
from .inputs import InputError
from .models import ChatModel

METHODS = ("vum", "svo", "denevil", "univar")


def fields(method: str) -> dict[str, str]:
    """The documented fields of a method's recorded rows."""
    if method == "vum":
        from .vum.replay import JSONL_FIELDS

        return JSONL_FIELDS
    if method == "svo":
        from .svo import RECORDED_FIELDS

        return RECORDED_FIELDS
    if method == "denevil":
        from .denevil.replay import RECORDED_FIELDS as DF

        return DF
    if method == "univar":
        from .univar.replay import RECORDED_FIELDS as UF

        return UF
    raise InputError(f"unknown method {method!r}; recorded runs can be imported for {', '.join(METHODS)}")


def import_file(method: str, path: str | Path, *, judge: ChatModel | None = None, threshold: float = 0.5,
                encoder: str = "", owner: str | None = None) -> list[Result]:
    """Score a recorded file: one Result per model for VUM, one Result otherwise; each marked
    as :data:`~valdemo.core.recorded.LABEL`. ``judge``: DeNEVIL rows without a recorded p."""
    method = (method or "").strip().lower()
    fields(method)  # refuses an unknown method
    p = Path(path)
    if method == "vum":
        from .vum import replay as R

        res = R.replay(jsonl=p)
        recs = res["_recorded"]
        return [R.to_result(m, scored, recs[m], p.name, res["caveat"]) for m, scored in res["models"].items()]
    if method == "svo":
        from .svo import replay_jsonl

        return [replay_jsonl(p)]
    if method == "denevil":
        from .denevil.replay import replay_jsonl as dj

        return [dj(p, judge=judge, threshold=threshold)]
    from .univar.replay import replay_jsonl as uj

    return [uj(p, encoder=encoder, owner=owner)[0]]


def save_all(results: list[Result], owner: str = "", source: str = "ui", store=None) -> list[str]:
    return [save(r, owner=owner, source=source, store=store) for r in results]


__all__ = ["LABEL", "METHODS", "fields", "import_file", "save_all"]
