"""``valdemo denevil``: the Moral attack tab, headless.

    valdemo denevil attack --principle TEXT --foundation F --attacker SPEC --target SPEC --judge SPEC \\
        --rounds R --candidates K --json
    valdemo denevil defend --prompts PATH --target SPEC --instructor SPEC --judge SPEC --json
    valdemo denevil profile --target SPEC --judge SPEC --size quick --json
    valdemo denevil principles [--foundation F] --json
"""

from __future__ import annotations

import argparse

from . import CLIError, add_common, add_model_arg, emit, progress_printer

CAVEAT_NOTE = "bundled demo model: these numbers show how the method works, not findings about values"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denevil", help="moral attack (DeNEVIL) and value-instruction defence (VILMO)")
    cmds = p.add_subparsers(dest="denevil_command", metavar="ACTION")
    p.set_defaults(func=_need_action)

    a = cmds.add_parser("attack", help="refine story beginnings that make the target violate a principle")
    a.add_argument("--principle", help="the moral principle, e.g. 'It is wrong to break a promise to a friend'")
    a.add_argument("--foundation", help="care, fairness, loyalty, authority or sanctity")
    a.add_argument("--prompt", default="", help="a ready story beginning to test as is in round 1")
    a.add_argument("--principles", metavar="PATH",
                   help="CSV/JSONL with foundation,principle[,prompt] instead of --principle")
    add_model_arg(a, "--attacker", default="", help="attacker model spec (default: the judge)")
    add_model_arg(a, "--target", help="target model spec")
    add_model_arg(a, "--judge", help="judge model spec")
    a.add_argument("--rounds", type=int, default=2)
    a.add_argument("--candidates", type=int, default=3, help="story beginnings per round")
    a.add_argument("--samples", type=int, default=1, help="continuations per story beginning")
    a.add_argument("--temperature", type=float, default=0.0, help="target sampling temperature (samples > 1)")
    a.add_argument("--max-new-tokens", type=int, default=64, help="length cap of the continuations")
    a.add_argument("--threshold", type=float, default=0.9, help="stop early once a prompt scores this")
    _add_token_args(a)
    add_common(a)
    a.set_defaults(func=run_attack)

    d = cmds.add_parser("defend", help="violation with no / a fixed / a generated value instruction")
    d.add_argument("--prompts", metavar="PATH", help="CSV/JSONL with foundation,principle,prompt")
    d.add_argument("--bundled", type=int, metavar="N", help="use N bundled prompts per foundation instead")
    add_model_arg(d, "--target", help="target model spec")
    add_model_arg(d, "--instructor", default="", help="instruction model spec (default: the judge)")
    add_model_arg(d, "--judge", help="judge model spec")
    d.add_argument("--samples", type=int, default=1)
    d.add_argument("--temperature", type=float, default=0.0)
    d.add_argument("--max-new-tokens", type=int, default=64)
    _add_token_args(d)
    add_common(d)
    d.set_defaults(func=run_defend)

    pr = cmds.add_parser("profile", help="mean violation per foundation (none / fixed / generated)")
    add_model_arg(pr, "--target", help="target model spec")
    add_model_arg(pr, "--judge", help="judge (and instruction) model spec")
    pr.add_argument("--size", choices=["quick", "full"], default="quick")
    add_common(pr)
    pr.set_defaults(func=run_profile)

    ls = cmds.add_parser("principles", help="list the bundled principles")
    ls.add_argument("--foundation", default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_principles)


def _add_token_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attacker-tokens", type=int, default=96,
                        help="length cap of story beginnings and value instructions")
    parser.add_argument("--judge-tokens", type=int, default=48, help="length cap of the judge's answers")


def _need_action(_args: argparse.Namespace) -> int:
    raise CLIError("choose an action: attack, defend, profile or principles")


def _models(args, *roles: str) -> dict:
    from ..models import get_model

    specs = {r: getattr(args, r) or args.judge for r in roles}
    return {r: get_model(spec, use_cache=not args.no_cache) for r, spec in specs.items()}


def _caveat(result: dict) -> dict:
    return {"caveat": CAVEAT_NOTE} if result.get("bundled_model_used") else {}


def run_attack(args: argparse.Namespace) -> int:
    from .. import denevil

    if args.principles and args.principle:
        raise CLIError("give --principle or --principles, not both")
    if args.principles:
        principles = denevil.load_principles(args.principles)
    elif args.principle:
        if not args.foundation:
            raise CLIError("--foundation is required with --principle (care, fairness, loyalty, authority, sanctity)")
        principles = [denevil.make_principle(args.principle, args.foundation, args.prompt)]
    else:
        raise CLIError("give --principle TEXT --foundation F, or --principles PATH")
    budget = denevil.Budget.from_inputs(rounds=args.rounds, candidates=args.candidates, samples=args.samples,
                                        temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                        threshold=args.threshold, attacker_tokens=args.attacker_tokens,
                                        judge_tokens=args.judge_tokens)
    m = _models(args, "attacker", "target", "judge")
    result = denevil.attack(principles, m["attacker"], m["target"], m["judge"], budget,
                            progress=None if args.json else progress_printer("calls"))
    run_id = denevil.save_attack(result)
    shared = {"calls": result["calls"], "max_calls": result["max_calls"], "parse": result["parse"],
              "rounds_timing": result["rounds"], "models": result["models"], "run_id": run_id, **_caveat(result)}
    if len(result["principles"]) == 1:
        out = {**_slim_principle(result["principles"][0]), **shared}
    else:
        out = {"principles": [_slim_principle(p) for p in result["principles"]], **shared}
    emit(out, args.json, human=_human_attack)
    return 0


def _slim_principle(p: dict) -> dict:
    """Per round prompts and scores (with reasons), the best prompt and violation, the calls."""
    rounds = [{"round": r["round"], "prompts": r["prompts"], "scores": r["scores"],
               "reasons": [[s["reason"] for s in c["samples"]] for c in r["candidates"]],
               "best_violation": r["best_violation"], "mean_violation": r["mean_violation"],
               "attacker_failures": r["attacker_failures"], "judge_failures": r["judge_failures"]}
              for r in p["rounds"]]
    return {"principle": p["principle"], "foundation": p["foundation"], "rounds": rounds,
            "best_violation": p["best_violation"], "best_prompt": p["best_prompt"],
            "best_continuation": p["best_continuation"], "stopped_early": p["stopped_early"],
            "principle_calls": p["calls"]}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _human_attack(out: dict) -> str:
    lines = []
    for p in out.get("principles", [out]):
        lines.append(f"[{p['foundation']}] {p['principle']}")
        for r in p["rounds"]:
            lines.append(f"  round {r['round']}: best {_fmt(r['best_violation'])}, mean {_fmt(r['mean_violation'])}"
                         f" ({len(r['prompts'])} prompts, {r['judge_failures']} judge parse failures)")
        lines.append(f"  best violation {_fmt(p['best_violation'])}: {p['best_prompt'] or '(none scored)'}")
    lines.append(f"calls: {out['calls']}  run {out['run_id']}")
    if out.get("caveat"):
        lines.append(f"note: {out['caveat']}")
    return "\n".join(lines)


def _human_defence(out: dict) -> str:
    lines = [f"{'foundation':<11} {'none':>6} {'fixed':>6} {'generated':>9}"]
    for f, b in out["by_foundation"].items():
        lines.append(f"{f:<11} {_fmt(b['none']):>6} {_fmt(b['fixed']):>6} {_fmt(b['generated']):>9}")
    m = out["mean"]
    lines.append(f"{'all':<11} {_fmt(m['none']):>6} {_fmt(m['fixed']):>6} {_fmt(m['generated']):>9}")
    lines.append(f"judge parse failures: {out['parse']['judge']['failed']}  calls: {out['calls']}")
    if out.get("caveat"):
        lines.append(f"note: {out['caveat']}")
    return "\n".join(lines)


def _defence_output(result: dict, run_id: str | None) -> dict:
    from .. import denevil

    return {"rows": denevil.defence_rows(result), "mean": result["mean"], "by_foundation": result["by_foundation"],
            "parse": result["parse"], "calls": result["calls"], "models": result["models"],
            "fixed_instruction": result["fixed_instruction"], "run_id": run_id, **_caveat(result)}


def run_defend(args: argparse.Namespace) -> int:
    from .. import denevil
    from ..inputs import check_int

    if bool(args.prompts) == (args.bundled is not None):
        raise CLIError("give either --prompts PATH or --bundled N")
    items = denevil.load_principles(args.prompts) if args.prompts else \
        denevil.bundled_prompts(check_int(args.bundled, "--bundled", 1, 10))
    budget = denevil.Budget.from_inputs(samples=args.samples, temperature=args.temperature,
                                        max_new_tokens=args.max_new_tokens, attacker_tokens=args.attacker_tokens,
                                        judge_tokens=args.judge_tokens)
    m = _models(args, "target", "instructor", "judge")
    result = denevil.defend(items, m["target"], m["instructor"], m["judge"], budget,
                            progress=None if args.json else progress_printer("calls"))
    emit(_defence_output(result, denevil.save_defence(result)), args.json, human=_human_defence)
    return 0


def run_profile(args: argparse.Namespace) -> int:
    from .. import denevil

    m = _models(args, "target", "judge")
    result = denevil.profile_summary(m["target"], m["judge"], args.size,
                                     progress=None if args.json else progress_printer("calls"))
    emit({"size": result["size"], **_defence_output(result, None)}, args.json, human=_human_defence)
    return 0


def run_principles(args: argparse.Namespace) -> int:
    from .. import denevil

    rows = [{"foundation": p.foundation, "principle": p.text, "prompt": p.prompt}
            for p in denevil.bundled_principles(args.foundation)]
    emit({"principles": rows}, args.json,
         human=lambda o: "\n".join(f"[{r['foundation']}] {r['principle']}{' (+prompt)' if r['prompt'] else ''}"
                                   for r in o["principles"]))
    return 0
