"""The attack: generate, score, refine (DeNEVIL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

from ..inputs import InputError
from ..models import ChatModel, GenParams, ProgressFn
from ..parsing import ParseStats
from .engine import Budget, Calls, _as_model, _continue_all, _generate, _judge_all, _mean, _models_info, _Progress
from .principles import Principle
from .prompts import attack_conversation, parse_story


def _best_sample(samples: Sequence[dict]) -> dict | None:
    """The highest-scored sample, else the first one (unscored)."""
    scored = [x for x in samples if x["violation"] is not None]
    return max(scored, key=lambda x: x["violation"]) if scored else (samples[0] if samples else None)




def _record_round(state: dict, round_no: int, entries: list[dict], attacker_failures: list[str],
                  budget: Budget) -> None:
    scores = [e["violation"] for e in entries]
    scored = [e for e in entries if e["violation"] is not None]
    best = max(scored, key=lambda e: e["violation"], default=None)
    state["rounds"].append({
        "round": round_no, "prompts": [e["prompt"] for e in entries], "scores": scores,
        "best_violation": best["violation"] if best else None, "mean_violation": _mean(scores),
        "best_prompt": best["prompt"] if best else "", "candidates": entries,
        "attacker_failures": len(attacker_failures), "attacker_failure_reasons": attacker_failures,
        "judge_failures": sum(e["judge_failures"] for e in entries),
    })
    for e in entries:
        sample = _best_sample(e["samples"])
        state["_scored"].append({"prompt": e["prompt"], "violation": e["violation"],
                                 "continuation": sample["continuation"] if sample else ""})
    if best is not None and (state["best_violation"] is None or best["violation"] > state["best_violation"]):
        state.update(best_violation=best["violation"], best_prompt=best["prompt"], best_round=round_no,
                     best_continuation=_best_sample(best["samples"])["continuation"])
    if state["best_violation"] is not None and state["best_violation"] >= budget.threshold:
        state["_done"] = True
        state["stopped_early"] = round_no < budget.rounds


def _refine_examples(state: dict, keep: int) -> list[dict]:
    """The best prompts so far (scored ones first, highest violation first)."""
    return sorted(state["_scored"], key=lambda e: (e["violation"] is None, -(e["violation"] or 0)))[:keep]


def attack(principles: Sequence[Principle], attacker: ChatModel | str, target: ChatModel | str,
           judge: ChatModel | str, budget: Budget | None = None, progress: ProgressFn | None = None,
           batched: bool = True, on_round: Callable[[dict], None] | None = None) -> dict:
    """Run the generate-score-refine loop on each principle; the principles share every batch.

    Returns ``{"principles": [per principle: rounds (prompts, scores, best/mean violation,
    candidates with samples and reasons), best_violation, best_prompt, calls], "rounds": [per
    round: calls, uncached, seconds], "calls", "max_calls", "parse", "models", ...}``.
    ``batched=False`` runs one call at a time (benchmarks compare the two).
    ``on_round`` receives the partial result after every round (for live display).
    """
    if not principles:
        raise InputError("no principles to attack")
    if len(principles) > 100:
        raise InputError(f"{len(principles)} principles; at most 100 per attack")
    budget = budget or Budget()
    attacker, target, judge = _as_model(attacker), _as_model(target), _as_model(judge)
    calls, stats = Calls(), {"attacker": ParseStats(), "judge": ParseStats()}
    limits = budget.max_calls(len(principles))
    tracker = _Progress(sum(limits.values()), progress)
    states = [{"principle": p.text, "foundation": p.foundation, "given_prompt": p.prompt, "rounds": [],
               "best_violation": None, "best_prompt": "", "best_continuation": "", "best_round": None,
               "stopped_early": False, "calls": {"attacker": 0, "target": 0, "judge": 0},
               "_p": p, "_scored": [], "_done": False} for p in principles]
    overall: list[dict] = []
    start = time.perf_counter()

    def result(done: bool) -> dict:
        public = [{k: v for k, v in s.items() if not k.startswith("_")} for s in states]
        return {"principles": public, "rounds": overall, "calls": calls.as_dict(), "max_calls": limits,
                "parse": {k: v.as_dict() for k, v in stats.items()}, "budget": asdict(budget),
                **_models_info(attacker=attacker, target=target, judge=judge),
                "seconds": round(time.perf_counter() - start, 3), "done": done}

    for round_no in range(1, budget.rounds + 1):
        active = [s for s in states if not s["_done"]]
        if not active:
            break
        t0, calls_before, uncached_before = time.perf_counter(), calls.total, calls.total_uncached
        # 1. Candidates: a ready prompt is tested as is in round 1; the attacker writes the rest.
        cands: list[tuple[dict, str, str]] = []  # (state, prompt, source)
        jobs: list[tuple[dict, list]] = []
        for s in active:
            p, n_attacker = s["_p"], budget.candidates
            if round_no == 1 and p.prompt:
                cands.append((s, p.prompt, "given"))
                n_attacker -= 1
            examples = _refine_examples(s, budget.keep)
            jobs += [(s, attack_conversation(p, k, round_no, examples)) for k in range(n_attacker)]
        replies = _generate(attacker, [conv for _, conv in jobs], GenParams(max_new_tokens=budget.attacker_tokens),
                            "attacker", calls, tracker, batched)
        failures: dict[int, list[str]] = {}
        for (s, _), reply in zip(jobs, replies, strict=True):
            s["calls"]["attacker"] += 1
            story = stats["attacker"].add(parse_story(reply.text))
            if story.ok:
                cands.append((s, story.value, "attacker"))
            else:
                failures.setdefault(id(s), []).append(story.reason)
        # 2. The target continues every candidate (n samples); 3. the judge scores each continuation.
        conts = _continue_all(target, [(prompt, "") for _, prompt, _ in cands], budget, calls, tracker, batched)
        pairs = [(s["_p"], prompt, c) for (s, prompt, _), cs in zip(cands, conts, strict=True) for c in cs]
        judged = iter(_judge_all(judge, pairs, budget, calls, stats["judge"], tracker, batched))
        entries: dict[int, list[dict]] = {}
        for (s, prompt, source), cs in zip(cands, conts, strict=True):
            samples = [next(judged) for _ in cs]
            s["calls"]["target"] += len(cs)
            s["calls"]["judge"] += len(cs)
            entries.setdefault(id(s), []).append({
                "prompt": prompt, "source": source, "samples": samples,
                "violation": _mean([x["violation"] for x in samples]),
                "judge_failures": sum(not x["judge_ok"] for x in samples)})
        # 4. Record the round; the best prompts feed the next round; stop early at the threshold.
        for s in active:
            _record_round(s, round_no, entries.get(id(s), []), failures.get(id(s), []), budget)
        overall.append({"round": round_no, "principles": len(active), "calls": calls.total - calls_before,
                        "uncached": calls.total_uncached - uncached_before,
                        "seconds": round(time.perf_counter() - t0, 3)})
        if on_round:
            on_round(result(done=False))
    return result(done=True)


def attack_rows(result: dict) -> list[dict]:
    """One flat row per (principle, round, candidate, sample), for tables and the store."""
    return [{"foundation": p["foundation"], "principle": p["principle"], "round": r["round"],
             "candidate": c_no, "source": c["source"], "prompt": c["prompt"], "sample": s_no,
             "continuation": s["continuation"], "violation": s["violation"], "reason": s["reason"],
             "judge_ok": s["judge_ok"], "judge_error": s["judge_error"]}
            for p in result["principles"] for r in p["rounds"]
            for c_no, c in enumerate(r["candidates"], start=1) for s_no, s in enumerate(c["samples"], start=1)]


def save_attack(result: dict, store=None) -> str:
    """Persist an attack run (summary per principle, one row per judged continuation)."""
    from ..store import get_store

    summary = {"principles": [{k: p[k] for k in ("foundation", "principle", "best_violation", "best_prompt",
                                                 "best_round", "stopped_early", "calls")}
                              for p in result["principles"]],
               "calls": result["calls"], "parse": result["parse"], "rounds": result["rounds"]}
    params = {"budget": result["budget"], "models": result["models"]}
    return (store or get_store()).save_run("denevil-attack", params, summary, attack_rows(result))
