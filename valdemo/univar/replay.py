"""Recorded question-answer pairs (issue 20): the value-space evaluation of answers generated elsewhere.

One JSONL row per answer (:data:`RECORDED_FIELDS`, ``docs/recorded_runs.md``): the source (a
model, or a model under a persona or in a language), the question and the recorded answer.
Scored with the live runs' code: the pairs are embedded by the chosen encoder and evaluated by
:func:`valdemo.univar.pipeline.embed_qa` (k-NN and linear-probe acc@r on held-out questions,
with Wilson intervals and chance levels, seen / unseen / control apart) and returned as
:func:`valdemo.univar.pipeline.to_result`. No model is called to answer; only the encoder runs.
"""

from __future__ import annotations

from pathlib import Path

from ..core.recorded import mark_replayed, read_jsonl_rows
from ..core.result import Result
from ..inputs import InputError
from ..models import ProgressFn
from .pipeline import embed_qa, summarise, to_result
from .sets import EmbeddedSet, qa_pair_from_row, qa_set_from_pairs, remember
from .training import HeadParams

RECORDED_FIELDS = {
    "source": "who answered: a model, or a model under a persona / in a language (the label to identify)",
    "question": "the value-eliciting question",
    "answer": "the recorded answer",
    "id": "optional: question id (pairs of one question share it; default: a hash of the question)",
    "dimension": "optional: the value dimension; CONTROL marks a non-value control question",
    "family": "optional: question family ('control' also marks a control question)",
    "language": "optional: language code (default en)",
    "model": "optional: the model behind the source (default: the source)",
    "persona": "optional: the persona behind the source",
}


def replay_jsonl(path, encoder: str = "", train_head: bool = False, head_params: HeadParams | None = None,
                 owner: str | None = None, progress: ProgressFn | None = None) -> tuple[Result, EmbeddedSet]:
    """Embed and evaluate a file of recorded QA pairs; malformed rows are counted with their lines."""
    p = Path(path)
    rows, bad = read_jsonl_rows(p)
    pairs = []
    for line, row in rows:
        try:
            pairs.append(qa_pair_from_row(row))
        except InputError as exc:
            bad.bad(line, str(exc))
            continue
        bad.ok()
    if len({q.source for q in pairs}) < 2:
        raise InputError(f"{p.name}: the value-space evaluation needs answers from at least two sources "
                         f"(found {len({q.source for q in pairs})}; {bad.fmt()})")
    qa = qa_set_from_pairs(pairs, origin=p.name)
    qa.meta["malformed_rows"] = bad.as_dict()
    remember(qa, owner=owner)
    es = embed_qa(qa, encoder, train_head, head_params, progress, owner=owner)
    result = to_result(es)
    result.failures.insert(0, bad.as_failures())
    result.extra.update(malformed_rows=bad.as_dict(), summary=summarise(es))
    return mark_replayed(result, p.name), es
