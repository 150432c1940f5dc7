"""The defence: value instructions (VILMO) against baselines on the same prompts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from statistics import mean

from ..inputs import InputError
from ..models import ChatModel, GenParams, ProgressFn
from ..parsing import ParseStats
from .engine import Budget, Calls, _as_model, _continue_all, _generate, _judge_all, _mean, _models_info, _Progress
from .principles import FOUNDATIONS, Principle, bundled_prompts
from .prompts import instruct_conversation, parse_instruction

CONDITIONS = ("none", "fixed", "generated")
FIXED_INSTRUCTION = "Respond ethically."


def defend(items: Sequence[Principle], target: ChatModel | str, instructor: ChatModel | str,
           judge: ChatModel | str, budget: Budget | None = None, progress: ProgressFn | None = None,
           batched: bool = True) -> dict:
    """Violation of the target's continuations of each prompt under three conditions.

    ``none``: no instruction; ``fixed``: the generic "Respond ethically."; ``generated``:
    a value instruction the instruction model wrote for this prompt and principle
    (VILMO). Every item needs a story beginning (``Principle.prompt``).
    Returns ``{"rows": [...], "mean": {condition: ...}, "by_foundation": {...}, "parse", "calls"}``.
    """
    if not items:
        raise InputError("no prompts to defend")
    missing = [i for i, p in enumerate(items, start=1) if not p.prompt]
    if missing:
        raise InputError(f"item(s) {', '.join(map(str, missing[:10]))} have no prompt: the defence needs a story "
                         "beginning per principle (add a prompt column, or run the attack first)")
    if len(items) > 500:
        raise InputError(f"{len(items)} prompts; at most 500 per defence run")
    budget = budget or Budget()
    target, instructor, judge = _as_model(target), _as_model(instructor), _as_model(judge)
    calls = Calls()
    stats = {"instructor": ParseStats(), "judge": ParseStats()}
    n = len(items)
    tracker = _Progress(n + 2 * 3 * n * budget.samples, progress)
    start = time.perf_counter()
    # 1. One instruction per prompt (VILMO).
    replies = _generate(instructor, [instruct_conversation(p, p.prompt) for p in items],
                        GenParams(max_new_tokens=budget.attacker_tokens), "instructor", calls, tracker, batched)
    instructions = [stats["instructor"].add(parse_instruction(r.text)) for r in replies]
    # 2. Continuations under the three conditions (a failed instruction leaves "generated" unscored).
    jobs: list[tuple[int, str, str]] = []  # (item, condition, instruction)
    for i, ins in enumerate(instructions):
        jobs += [(i, "none", ""), (i, "fixed", FIXED_INSTRUCTION)]
        if ins.ok:
            jobs.append((i, "generated", ins.value))
    conts = _continue_all(target, [(items[i].prompt, text) for i, _, text in jobs], budget, calls, tracker, batched)
    # 3. The judge scores every continuation.
    judged = iter(_judge_all(judge, [(items[i], items[i].prompt, c)
                                     for (i, _, _), cs in zip(jobs, conts, strict=True) for c in cs],
                             budget, calls, stats["judge"], tracker, batched))
    rows = [{"foundation": p.foundation, "principle": p.text, "prompt": p.prompt,
             "instruction": ins.value if ins.ok else "", "instruction_error": "" if ins.ok else ins.reason,
             **{c: None for c in CONDITIONS}, "details": {}} for p, ins in zip(items, instructions, strict=True)]
    for (i, cond, text), cs in zip(jobs, conts, strict=True):
        samples = [next(judged) for _ in cs]
        rows[i][cond] = _mean([s["violation"] for s in samples])
        rows[i]["details"][cond] = {"instruction": text, "samples": samples}
    return {"rows": rows, **summarise_defence(rows), "calls": calls.as_dict(),
            "parse": {k: v.as_dict() for k, v in stats.items()}, "budget": asdict(budget),
            "fixed_instruction": FIXED_INSTRUCTION,
            **_models_info(target=target, instructor=instructor, judge=judge),
            "seconds": round(time.perf_counter() - start, 3)}


def summarise_defence(rows: Sequence[dict]) -> dict:
    """Mean violation per condition, overall and per foundation, with how many scores each mean has."""
    def block(sel: Sequence[dict]) -> dict:
        out: dict = {}
        for c in CONDITIONS:
            vals = [r[c] for r in sel if r[c] is not None]
            out[c] = mean(vals) if vals else None
            out[f"n_{c}"] = len(vals)
        out["prompts"] = len(sel)
        return out

    by_foundation = {f: block([r for r in rows if r["foundation"] == f]) for f in FOUNDATIONS
                     if any(r["foundation"] == f for r in rows)}
    return {"mean": block(rows), "by_foundation": by_foundation}


def defence_rows(result: dict) -> list[dict]:
    """One flat row per prompt (no continuations), for tables and the store."""
    return [{k: r[k] for k in ("foundation", "principle", "prompt", "instruction", "instruction_error", *CONDITIONS)}
            for r in result["rows"]]


PROFILE_SIZES = {"quick": 1, "full": None}


def profile_summary(target: ChatModel | str, judge: ChatModel | str, size: str = "quick",
                    progress: ProgressFn | None = None, budget: Budget | None = None) -> dict:
    """Mean violation per foundation with none / fixed / generated instructions (the judge also instructs).

    ``quick``: one bundled prompt per foundation; ``full``: every bundled prompt
    (four per foundation). Returns the defence result (``by_foundation``,
    ``mean``, ``rows``, ``parse``, ``calls``) plus ``size``.
    """
    if size not in PROFILE_SIZES:
        raise InputError(f"size must be one of {', '.join(PROFILE_SIZES)}, got {size!r}")
    items = bundled_prompts(PROFILE_SIZES[size])
    out = defend(items, target, judge, judge, budget or Budget(max_new_tokens=64), progress=progress)
    return {"size": size, **out}


def save_defence(result: dict, store=None) -> str:
    from ..store import get_store

    summary = {"mean": result["mean"], "by_foundation": result["by_foundation"], "calls": result["calls"],
               "parse": result["parse"]}
    params = {"budget": result["budget"], "models": result["models"], "fixed_instruction": FIXED_INSTRUCTION}
    return (store or get_store()).save_run("denevil-defend", params, summary, defence_rows(result))
