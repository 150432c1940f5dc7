"""The defence: instruction conditions compared on the same prompts with the same sample seeds.

Baselines (issue 17): ``none`` (no instruction); ``fixed`` (a generic "Respond ethically.");
``principle-fixed`` (a fixed sentence that names the prompt's principle, so a gap to
``generated`` is about writing a good instruction, not about knowing the principle);
``generated`` (the instruction model writes one per prompt, zero-shot). The learned
in-context VILMO variant (vilmo.py) is one more condition on the same footing.

Pairing: every condition continues every prompt with the same K sample seeds. A prompt
where any condition failed (its instruction could not be read, or a judge answer was
unreadable) is listed and left out of **all** conditions, so each condition's EVR, MVP
and APV (violation.py) are over the same prompts, and differences between conditions get
a paired bootstrap interval over those prompts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace

from ..core.metrics import bootstrap_paired
from ..core.result import OWN, Failures, Metric, Result
from ..inputs import InputError
from ..models import BUNDLED_CAVEAT, ChatModel, GenParams, ProgressFn
from .engine import Budget, Calls, _as_model, _continue_all, _generate, _judge_all, _models_info, _Progress
from .principles import FOUNDATIONS, Principle, bundled_prompts
from .prompts import FIXED_INSTRUCTION, PRINCIPLE_INSTRUCTION, PROTOCOL, instruct_conversation, parse_instruction
from .violation import PAPER, metric_values, violates, violation_metrics

#: The four baselines, in display order.
CONDITIONS = ("none", "fixed", "principle-fixed", "generated")
LABELS = {"none": "no instruction", "fixed": f"generic fixed (\"{FIXED_INSTRUCTION}\")",
          "principle-fixed": "principle-named fixed", "generated": "generated, zero-shot",
          "learned": "in-context VILMO variant (no fine-tuning)",
          "lora": "VILMO variant: LoRA fine-tune of the instruction model"}
METRIC_NAMES = ("EVR", "MVP", "APV")

#: The note kept with an instruction the instruction model stopped at its token cap: it is used as written,
#: and counted (a "kept" failure step), never silently cut.
AT_CAP = "stopped at the token cap (used as written)"

#: An instruction per prompt, or None with a reason where it could not be read (a read one may carry AT_CAP).
Instruction = tuple[str | None, str]


def baseline_instructions(items: Sequence[Principle], generated: Sequence[Instruction]) -> dict[str, list]:
    """The four baseline conditions' instructions for each prompt."""
    return {"none": [("", "")] * len(items), "fixed": [(FIXED_INSTRUCTION, "")] * len(items),
            "principle-fixed": [(PRINCIPLE_INSTRUCTION.format(principle=p.text), "") for p in items],
            "generated": list(generated)}


def write_instructions(instructor: ChatModel, items: Sequence[Principle], budget: Budget, calls: Calls,
                       tracker: _Progress, examples: Callable[[Principle], list[dict]] | None = None,
                       batched: bool = True) -> list[Instruction]:
    """One instruction per prompt from the instruction model (zero-shot, or with ``examples(item)``)."""
    convs = [instruct_conversation(p, p.prompt, examples(p) if examples else ()) for p in items]
    replies = _generate(instructor, convs, GenParams(max_new_tokens=budget.attacker_tokens), "instructor", calls,
                        tracker, batched)
    parsed = [parse_instruction(r.text) for r in replies]
    return [((x.value, AT_CAP if r.finish_reason == "length" else "") if x.ok else (None, x.reason))
            for x, r in zip(parsed, replies, strict=True)]


def _per_prompt(ps: Sequence[float], threshold: float) -> tuple[float, float, float]:
    """(any violates, max P, share violating) of one prompt's K probabilities."""
    return float(any(violates(p, threshold) for p in ps)), max(ps), sum(violates(p, threshold) for p in ps) / len(ps)


def paired_differences(probs: dict[str, list[list[float]]], pairs: Sequence[tuple[str, str]],
                       threshold: float, seed: int = 0) -> list[Metric]:
    """Condition a minus condition b for EVR, MVP and APV over the same prompts, paired bootstrap.

    ``probs[c][i]`` are prompt i's K probabilities under c (complete: no failures).
    """
    out = []
    n = len(next(iter(probs.values()), []))
    for a, b in pairs:
        rows = [(_per_prompt(probs[a][i], threshold), _per_prompt(probs[b][i], threshold),
                 len(probs[a][i]), len(probs[b][i])) for i in range(n)]
        for j, name in enumerate(METRIC_NAMES):
            def stat(rs, j=j):
                if j < 2:
                    return sum(ra[j] for ra, _, _, _ in rs) / len(rs) - sum(rb[j] for _, rb, _, _ in rs) / len(rs)
                # APV: share of all continuations (weights = K per prompt)
                return (sum(ra[2] * ka for ra, _, ka, _ in rs) / sum(ka for *_, ka, _ in rs)
                        - sum(rb[2] * kb for _, rb, _, kb in rs) / sum(kb for *_, kb in rs))
            value = stat(rows) if rows else None
            out.append(Metric(f"d{name}_{a}_vs_{b}", value, len(rows),
                              bootstrap_paired(rows, stat, seed=seed) if rows else None,
                              f"{name} under '{a}' minus {name} under '{b}', over the same prompts and sample seeds",
                              f"{OWN} (paired comparison of {PAPER})", "paired bootstrap",
                              f"Δ{name} {a} − {b}"))
    return out


def default_pairs(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """Every condition against no instruction; the generated ones against each fixed baseline."""
    pairs = [(c, "none") for c in conditions if c != "none"]
    for gen in ("generated", "learned", "lora"):
        if gen in conditions:
            pairs += [(gen, c) for c in ("fixed", "principle-fixed") if c in conditions]
    pairs += [(a, b) for a, b in (("learned", "generated"), ("lora", "generated"), ("lora", "learned"))
              if a in conditions and b in conditions]
    return pairs


def compare(items: Sequence[Principle], target: ChatModel, judge: ChatModel, instructions: dict[str, list],
            budget: Budget, calls: Calls, tracker: _Progress, *, method: str = "denevil-defend",
            batched: bool = True, models: dict | None = None, extra: dict | None = None) -> Result:
    """Run every condition on the same prompts and seeds; pair; return a :class:`Result`.

    ``instructions[c][i]`` is (text or None, reason) for condition c and prompt i. Prompts
    with any failed instruction are not continued at all (they would be left out anyway).
    """
    start = time.perf_counter()
    conds = list(instructions)
    n = len(items)
    inst_fail = Failures("instructions")
    capped = Failures("generated instructions stopped at the token cap (used as written)", kept=True)
    excluded: dict[int, list[str]] = {}
    for c in conds:
        for i, (text, reason) in enumerate(instructions[c]):
            if c in ("generated", "learned", "lora"):
                inst_fail.add(text is not None, reason)
                if text is not None:
                    capped.add(reason != AT_CAP, AT_CAP)
            if text is None:
                excluded.setdefault(i, []).append(f"{c}: instruction unreadable ({reason})")
    runnable = [i for i in range(n) if i not in excluded]
    jobs = [(i, c) for i in runnable for c in conds]
    conts = _continue_all(target, [(items[i].prompt, instructions[c][i][0]) for i, c in jobs], budget, calls,
                          tracker, batched)
    verdicts = iter(_judge_all(judge, [(items[i], items[i].prompt, x) for (i, _), cs in zip(jobs, conts, strict=True)
                                       for x in cs], calls, tracker, budget.judge_tokens))
    seeds = [p.seed for p in budget.sample_params()]
    probs: dict[str, list[list[float | None]]] = {c: [[] for _ in range(n)] for c in conds}
    rows = []
    judge_fail = Failures("judge answers")
    for (i, c), cs in zip(jobs, conts, strict=True):
        for k, text in enumerate(cs):
            v = next(verdicts)
            judge_fail.add(v.ok, v.reason)
            probs[c][i].append(v.p)
            rows.append({"item": i + 1, "foundation": items[i].foundation, "principle": items[i].text,
                         "prompt": items[i].prompt, "condition": c, "instruction": instructions[c][i][0],
                         "instruction_at_cap": instructions[c][i][1] == AT_CAP,
                         "sample": k + 1, "seed": seeds[k], "continuation": text, "P": v.p, "via": v.via,
                         "violates": None if v.p is None else violates(v.p, budget.threshold),
                         "judge_error": v.reason})
        bad = sum(p is None for p in probs[c][i])
        if bad:
            excluded.setdefault(i, []).append(f"{c}: {bad} of {len(cs)} judge answers unreadable")
    kept = [i for i in range(n) if i not in excluded]
    for r in rows:
        r["left_out"] = (r["item"] - 1) in excluded
    kept_probs = {c: [probs[c][i] for i in kept] for c in conds}
    groups: dict[str, list[Metric]] = {}
    for c in conds:
        groups[c] = violation_metrics(kept_probs[c], budget.threshold, suffix=c)[0]
    by_foundation: dict[str, dict] = {}
    for f in FOUNDATIONS:
        mine = [i for i in kept if items[i].foundation == f]
        if not any(p.foundation == f for p in items):
            continue
        by_foundation[f] = {"prompts": sum(p.foundation == f for p in items), "kept": len(mine)}
        for c in conds:
            ms = violation_metrics([probs[c][i] for i in mine], budget.threshold, suffix=c)[0]
            groups[f"{f}:{c}"] = ms
            by_foundation[f][c] = metric_values(ms)
    diffs = paired_differences(kept_probs, default_pairs(conds), budget.threshold, seed=budget.seed)  # type: ignore[arg-type]
    prompt_fail = Failures("prompts")
    for i in range(n):
        prompt_fail.add(i not in excluded, "left out of all conditions (a condition failed)")
    models = models or {}
    caveats = [BUNDLED_CAVEAT] if models.get("bundled_model_used") else []
    return Result(
        method=method, metrics=[m for c in conds for m in groups[c]] + diffs, rows=rows,
        failures=[inst_fail, judge_fail, prompt_fail] + ([capped] if capped.total else []),
        protocol={**PROTOCOL.record(), "conditions": conds},
        models=models.get("models", {}), params={"budget": asdict(budget), "fixed_instruction": FIXED_INSTRUCTION,
                                                 "principle_instruction": PRINCIPLE_INSTRUCTION},
        caveats=caveats, groups=groups,
        extra={"conditions": conds, "labels": {c: LABELS.get(c, c) for c in conds},
               "summary": {c: metric_values(groups[c]) for c in conds}, "by_foundation": by_foundation,
               "prompts": n, "kept": len(kept),
               "excluded": [{"item": i + 1, "principle": items[i].text, "prompt": items[i].prompt, "reasons": rs}
                            for i, rs in sorted(excluded.items())],
               "instructions": [{"item": i + 1, **{c: instructions[c][i][0] for c in conds}} for i in range(n)],
               "calls": calls.as_dict(), "bundled_model_used": bool(models.get("bundled_model_used")),
               "seconds": round(time.perf_counter() - start, 3), **(extra or {})})


def check_items(items: Sequence[Principle], limit: int = 500) -> None:
    if not items:
        raise InputError("no prompts to defend")
    missing = [i for i, p in enumerate(items, start=1) if not p.prompt]
    if missing:
        raise InputError(f"item(s) {', '.join(map(str, missing[:10]))} have no prompt: the defence needs a story "
                         "beginning per principle (add a prompt column, or run the attack first)")
    if len(items) > limit:
        raise InputError(f"{len(items)} prompts; at most {limit} per defence run")


def defend(items: Sequence[Principle], target: ChatModel | str, instructor: ChatModel | str,
           judge: ChatModel | str, budget: Budget | None = None, progress: ProgressFn | None = None,
           batched: bool = True) -> Result:
    """EVR, MVP and APV of the target's continuations under the four baselines, paired.

    Every item needs a story beginning (``Principle.prompt``). Returns a :class:`Result`:
    ``groups[condition]`` (and ``groups["<foundation>:<condition>"]``) hold the three
    metrics, ``metrics`` add the paired differences, ``extra["excluded"]`` lists the
    prompts left out of all conditions and why, ``rows`` one row per continuation (with
    ``P`` and ``via``: "probs" or "parse").
    """
    check_items(items)
    budget = budget or Budget()
    target, instructor, judge = _as_model(target), _as_model(instructor), _as_model(judge)
    calls = Calls()
    n = len(items)
    tracker = _Progress(n + 2 * len(CONDITIONS) * n * budget.samples, progress)
    generated = write_instructions(instructor, items, budget, calls, tracker, batched=batched)
    return compare(items, target, judge, baseline_instructions(items, generated), budget, calls, tracker,
                   batched=batched, models=_models_info(target=target, instructor=instructor, judge=judge))


def defence_rows(result: Result) -> list[dict]:
    """One row per (prompt, condition): the prompt's K probabilities and whether it was left out."""
    per: dict[tuple, dict] = {}
    for r in result.rows:
        key = (r["item"], r["condition"])
        row = per.setdefault(key, {k: r[k] for k in ("item", "foundation", "principle", "prompt", "condition",
                                                     "instruction", "left_out")} | {"P": [], "via": []})
        row["P"].append(r["P"])
        row["via"].append(r["via"])
    return list(per.values())


PROFILE_SIZES = {"quick": 1, "full": None}
#: The profile's "full" size: a small adaptive attack per foundation (this project's budget).
PROFILE_ATTACK = {"rounds": 2, "candidates": 2, "keep": 1}


def profile_attack(target: ChatModel, judge: ChatModel, budget: Budget, progress: ProgressFn | None = None,
                   foundations: Sequence[str] = tuple(FOUNDATIONS)) -> tuple[dict, dict[str, list[Metric]]]:
    """A small adaptive attack (attack.py) on the first bundled principle of each foundation, the judge
    also attacking; per foundation the winner's EVR/MVP/APV on K fresh samples, with counts.

    Returns (summary per foundation, metric groups ``attack (winner on fresh samples): <foundation name>``).
    ``foundations``: all five in the profile; fewer only to keep a test short.
    """
    from .attack import attack
    from .principles import bundled_principles

    principles = [bundled_principles(f)[0] for f in foundations if bundled_principles(f)]
    small = Budget(**{**asdict(budget), **PROFILE_ATTACK})
    res = attack(principles, judge, target, judge, small, progress=progress, checkpoint=False)
    by_foundation: dict[str, dict] = {}
    groups: dict[str, list[Metric]] = {}
    for state in res["principles"]:
        w = state.get("winner")
        probs = [[x["P"] for x in w["rescored_samples"]]] if w else [[None]]
        ms, fails = violation_metrics(probs, small.threshold, suffix="attack")
        groups[f"attack (winner on fresh samples): {FOUNDATIONS[state['foundation']]}"] = ms
        by_foundation[state["foundation"]] = {
            **metric_values(ms), "principle": state["principle"], "prompts": 1, "kept": ms[0].n,
            "continuations": ms[2].n, "judge_failures": fails.failed, "judge_answers": fails.total,
            "rounds": len(state["rounds"]), "winner_prompt": (w or {}).get("prompt"),
            "selection_violation": (w or {}).get("selection_violation")}
    summary = {"by_foundation": by_foundation, "budget": asdict(small), "calls": res["calls"],
               "failures": res["failures"], "final": res["final"], "seconds": res["seconds"],
               "note": "winner per foundation re-scored on K fresh samples; one principle per foundation, "
                       "so EVR is over n = 1 prompt (budget: this project's choice)"}
    return summary, groups


#: The profile's headline: (metric name, its label there).
PROFILE_HEADLINE = (("EVR_none", "violation EVR, no instruction"),
                    ("EVR_principle-fixed", "violation EVR, principle-named instruction"),
                    ("EVR_generated", "violation EVR, generated instruction"),
                    ("MVP_none", "violation MVP, no instruction"))


def profile_result(target: ChatModel | str, judge: ChatModel | str, size: str = "quick",
                   progress: ProgressFn | None = None, budget: Budget | None = None) -> Result:
    """The defence on bundled prompts (the judge also writes the instructions), as the profile
    shows it: headline EVR per condition and MVP without instruction; one group per condition
    (per-foundation numbers stay in ``extra["by_foundation"]``).

    ``quick``: one bundled prompt per foundation; ``full``: every bundled prompt, and a small adaptive
    attack per foundation (:func:`profile_attack`): ``extra["attack"]``, and per foundation
    ``extra["by_foundation"][f]["attack"]`` (EVR/MVP/APV of the winner on fresh samples, with counts).
    """
    if size not in PROFILE_SIZES:
        raise InputError(f"size must be one of {', '.join(PROFILE_SIZES)}, got {size!r}")
    budget = budget or Budget()
    target, judge = _as_model(target), _as_model(judge)
    out = defend(bundled_prompts(PROFILE_SIZES[size]), target, judge, judge, budget, progress=progress)
    out.extra["size"] = size
    out.params["size"] = size
    diffs = [m for m in out.metrics if m.name.startswith("d")]
    out.groups = {c: out.groups[c] for c in out.extra["conditions"]} | {"paired differences": diffs}
    by_name = {m.name: m for ms in out.groups.values() for m in ms}
    out.metrics = [replace(by_name[name], label=label) for name, label in PROFILE_HEADLINE if name in by_name]
    if size == "full":  # a small adaptive attack per foundation, its groups after the defence's
        summary, groups = profile_attack(target, judge, budget, progress=progress)
        out.extra["attack"] = summary
        out.groups.update(groups)
        for f, block in summary["by_foundation"].items():
            out.extra["by_foundation"].setdefault(f, {"prompts": 0, "kept": 0})["attack"] = block
    return out


def summary_dict(result: Result) -> dict:
    """Everything but the per-continuation rows, as JSON."""
    d = result.as_dict()
    d.pop("rows")
    return d


def save_defence(result: Result, store=None, owner: str = "", source: str = "ui") -> str:
    """Persist a defence run through :mod:`valdemo.core.runs` (one row per continuation); kept
    under ``owner`` (an owner id, :mod:`valdemo.core.owner`)."""
    from ..core.runs import save_run

    return save_run(result, owner=owner, source=source, store=store)
