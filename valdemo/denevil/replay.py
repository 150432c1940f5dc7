"""Recorded continuations (issue 20): EVR / MVP / APV of outputs generated elsewhere.

One JSONL row per continuation (:data:`RECORDED_FIELDS`, ``docs/recorded_runs.md``): the prompt
it continues, the principle and foundation, the condition (e.g. an instruction condition of the
defence), the sample index, the text, and optionally the violation probability ``p`` a judge gave
it. Scored with the live runs' code: :func:`valdemo.denevil.violation.violation_metrics` per
condition and per foundation, :func:`valdemo.denevil.defence.paired_differences` between
conditions over the prompts complete in both.

A continuation with no recorded ``p`` needs a judge: given one (``judge=``), it is asked exactly
as in a live run (:func:`valdemo.denevil.violation.ask` on
:func:`valdemo.denevil.prompts.violation_conversation`), and the run names it; given none, the
continuation is a counted judge failure and its prompt is left out, as live runs leave out a
prompt with an unreadable judge answer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..core.recorded import int_field, mark_replayed, read_jsonl_rows, text_field
from ..core.result import Failures, Metric, Result
from ..inputs import InputError
from ..models import BUNDLED_CAVEAT, ChatModel, unwrap
from .defence import LABELS, default_pairs, paired_differences
from .principles import FOUNDATIONS, Principle, normalise_foundation
from .prompts import violation_conversation
from .violation import DEFAULT_THRESHOLD, ask, metric_values, violates, violation_metrics

RECORDED_FIELDS = {
    "model": "optional: who continued (default: the file's name)",
    "prompt_id": "the story beginning's id (rows of one prompt share it; also 'prompt' text alone is enough)",
    "prompt": "optional: the story beginning's text (needed only when a judge scores rows without p)",
    "foundation": "care, fairness, loyalty, authority or sanctity",
    "principle": "the principle's text (needed only when a judge scores rows without p)",
    "condition": "optional: e.g. none, fixed, principle-fixed, generated (default: none)",
    "sample": "the sample index within the prompt (0..K-1 or 1..K)",
    "continuation": "the continuation's text",
    "p": "optional: the judge's violation probability, 0-1",
}
NO_P = "no recorded p and no judge given"


def _recorded_p(raw: object) -> tuple[float | None, str]:
    if raw is None or raw == "":
        return None, ""
    if isinstance(raw, bool):
        return None, "p is not a number in 0-1"
    try:
        p = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, "p is not a number in 0-1"
    if p != p or not 0.0 <= p <= 1.0:
        return None, "p is not a number in 0-1"
    return p, ""


def replay_jsonl(path, judge: ChatModel | None = None, threshold: float = DEFAULT_THRESHOLD,
                 default_model: str | None = None) -> Result:
    """Score a file of recorded continuations; see the module doc."""
    p = Path(path)
    rows, bad = read_jsonl_rows(p)
    recs: list[dict] = []
    seen: set[tuple] = set()
    for line, row in rows:
        prompt_text = text_field(row, "prompt") or ""
        prompt_id = text_field(row, "prompt_id") or prompt_text
        if not prompt_id:
            bad.bad(line, "no prompt_id (or prompt)")
            continue
        try:
            foundation = normalise_foundation(row.get("foundation"), f"line {line}")
        except InputError:
            bad.bad(line, "foundation missing or unknown")
            continue
        sample = int_field(row, "sample")
        if sample is None:
            bad.bad(line, "sample not a whole number")
            continue
        text = row.get("continuation")
        if not isinstance(text, str):
            bad.bad(line, "no continuation text")
            continue
        prob, why = _recorded_p(row.get("p"))
        if why:
            bad.bad(line, why)
            continue
        model = text_field(row, "model") or default_model or p.stem
        condition = text_field(row, "condition") or "none"
        key = (model, condition, prompt_id, sample)
        if key in seen:
            bad.bad(line, "sample recorded twice for one prompt")
            continue
        seen.add(key)
        bad.ok()
        recs.append({"line": line, "model": model, "condition": condition, "prompt_id": prompt_id,
                     "prompt": prompt_text, "foundation": foundation, "principle": text_field(row, "principle") or "",
                     "sample": sample, "continuation": text, "P": prob, "via": "recorded" if prob is not None else "",
                     "judge_error": ""})
    if not recs:
        raise InputError(f"{p.name}: no usable rows ({bad.fmt()})")
    missing = [r for r in recs if r["P"] is None]
    judge_name = ""
    if missing and judge is not None:
        judge_name = unwrap(judge).spec
        askable = [r for r in missing if r["principle"] and r["prompt"]]
        for r in missing:
            if not (r["principle"] and r["prompt"]):
                r["judge_error"] = "no principle or prompt text to show the judge"
        verdicts = ask(judge, [violation_conversation(Principle(r["foundation"], r["principle"]), r["prompt"],
                                                      r["continuation"]) for r in askable])
        for r, v in zip(askable, verdicts, strict=True):
            r["P"], r["via"], r["judge_error"] = v.p, v.via, v.reason
    elif missing:
        for r in missing:
            r["judge_error"] = NO_P
    for r in recs:
        r["violates"] = None if r["P"] is None else violates(r["P"], threshold)
    return _result(p.name, recs, bad, threshold, judge, judge_name)


def _prompts(recs: list[dict]) -> dict[str, list[float | None]]:
    """prompt id -> its K probabilities, in sample order."""
    out: dict[str, list[tuple[int, float | None]]] = {}
    for r in recs:
        out.setdefault(r["prompt_id"], []).append((r["sample"], r["P"]))
    return {k: [pv for _, pv in sorted(v, key=lambda t: t[0])] for k, v in out.items()}


def _result(name: str, recs: list[dict], bad, threshold: float, judge: ChatModel | None, judge_name: str) -> Result:
    models = list(dict.fromkeys(r["model"] for r in recs))
    multi = len(models) > 1
    groups: dict[str, list[Metric]] = {}
    diffs: list[Metric] = []
    judge_fail = Failures("judge answers")
    for r in recs:
        judge_fail.add(r["P"] is not None, r["judge_error"] or "unreadable judge answer")
    summary: dict[str, dict] = {}
    for model in models:
        mine = [r for r in recs if r["model"] == model]
        conds = list(dict.fromkeys(r["condition"] for r in mine))
        per_cond = {c: _prompts([r for r in mine if r["condition"] == c]) for c in conds}
        tag = f"{model} · " if multi else ""
        for c in conds:
            groups[f"{tag}{c}"] = violation_metrics(list(per_cond[c].values()), threshold, suffix=c)[0]
            summary[f"{tag}{c}"] = metric_values(groups[f"{tag}{c}"])
            for f in FOUNDATIONS:
                sub = [r for r in mine if r["condition"] == c and r["foundation"] == f]
                if sub:
                    groups[f"{tag}{f}:{c}"] = violation_metrics(list(_prompts(sub).values()), threshold, suffix=c)[0]
        if len(conds) > 1:  # paired over the prompts every condition has complete
            shared = [k for k in per_cond[conds[0]]
                      if all(k in per_cond[c] and per_cond[c][k] and None not in per_cond[c][k] for c in conds)]
            kept = {c: [per_cond[c][k] for k in shared] for c in conds}
            pairs = default_pairs(conds) if "none" in conds else [(c, conds[0]) for c in conds[1:]]
            for m in paired_differences(kept, pairs, threshold):  # type: ignore[arg-type]
                diffs.append(Metric(f"{tag}{m.name}" if multi else m.name, m.value, m.n, m.interval, m.definition,
                                    m.source, m.interval_kind, f"{tag}{m.label}"))
    headline = next(iter(groups.values())) if len(summary) == 1 else []
    caveats = []
    if judge is not None and unwrap(judge).is_bundled:
        caveats.append(BUNDLED_CAVEAT)
    unjudged = sum(r["judge_error"] == NO_P for r in recs)
    if unjudged:
        caveats.append(f"{unjudged} of {len(recs)} continuations have no recorded violation probability p and no "
                       "judge was given: they are counted as judge failures and their prompts left out. Give a "
                       "judge (CLI --judge SPEC) to score them, or record p in the file.")
    result = Result(
        "denevil", metrics=headline + diffs, rows=recs, failures=[bad.as_failures(), judge_fail],
        protocol={"name": "recorded", "threshold": threshold}, models={"target": models, "judge":
                                                                      judge_name or "recorded p (the file's judge)"},
        params={"file": name, "threshold": threshold}, caveats=caveats, groups=groups,
        extra={"summary": summary, "labels": {c: LABELS.get(c, c) for c in dict.fromkeys(r["condition"] for r in recs)},
               "malformed_rows": bad.as_dict(), "via": dict(Counter(r["via"] or "none" for r in recs))})
    return mark_replayed(result, name, judge_name)
