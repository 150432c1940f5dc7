"""``valdemo svo``: the SVO slider measure headless (score a person's choices; let a model play;
HVAE's goal / no-goal ablation)."""

from __future__ import annotations

import argparse

from . import add_common, add_model_arg, emit, progress_printer
from ._replay import add_replay_args


def register(sub: argparse._SubParsersAction) -> None:
    from . import OneLineParser

    p = sub.add_parser("svo", help="Social Value Orientation slider measure (HVAE)")
    ssub = p.add_subparsers(dest="svo_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    p.set_defaults(func=lambda args: p.error("choose a subcommand: score, play, ablation or replay"))

    score = ssub.add_parser("score", help="angle and category of six choices")
    score.add_argument("--choices", required=True, help="six letters A-I, comma separated, e.g. A,B,C,D,E,F")
    add_common(score)
    score.set_defaults(func=run_score)

    play = ssub.add_parser("play", help="induce an orientation in a model and let it play n trials")
    play.add_argument("--orientation", required=True, help="altruistic, prosocial, individualistic or competitive")
    _model_args(play)
    play.add_argument("--no-goal", action="store_true",
                      help="do not ask for a goal or quote one (HVAE's ablation condition)")
    add_common(play)
    play.set_defaults(func=run_play)

    rp = ssub.add_parser("replay", help="angle, category and value rationality of recorded play, "
                                        "without calling a model")
    add_replay_args(rp, "SVO item answers")
    rp.set_defaults(func=run_replay)

    abl = ssub.add_parser("ablation", help="HVAE's comparison: the same trials with and without the "
                                           "self-generated goal, per orientation, with intervals")
    abl.add_argument("--orientations", default="altruistic,prosocial,individualistic,competitive",
                     help="comma separated")
    _model_args(abl)
    add_common(abl)
    abl.set_defaults(func=run_ablation)


def _model_args(p: argparse.ArgumentParser) -> None:
    add_model_arg(p)
    p.add_argument("--trials", type=int, default=1, help="trials per orientation (seed + t for trial t)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0, help="seed of the first trial")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length cap of the stated goal")
    p.add_argument("--protocol", default="hvae_sequential",
                   help="hvae_sequential (six items in one conversation), per_item, or a .toml file")


def run_score(args: argparse.Namespace) -> int:
    from ..svo import score_choices

    result = score_choices(args.choices)
    emit(result.as_dict(), args.json, human=lambda o: f"angle {o['angle']:.2f} degrees: {o['category']}")
    return 0


def run_play(args: argparse.Namespace) -> int:
    from ..models import get_model
    from ..svo import load_protocol, play_result, play_trials
    from ..values import get_orientation

    orientation = get_orientation(args.orientation).key
    protocol = load_protocol(args.protocol)
    model = get_model(args.model, use_cache=not args.no_cache)
    trials = play_trials(model, [orientation], args.trials, args.temperature, args.seed,
                         max_new_tokens=args.max_new_tokens, progress=progress_printer("svo play"),
                         protocol=protocol, conditions=["no_goal" if args.no_goal else "goal"])
    result = play_result(model, orientation, trials, args.temperature)
    result["protocol"] = protocol.as_dict()
    from ..core.owner import LOCAL_ID
    from ..core.runs import save_run
    from ..svo import trials_result

    params = {"orientations": [orientation], "trials": args.trials, "temperature": args.temperature,
              "seed": args.seed, "max_new_tokens": args.max_new_tokens,
              "condition": "no_goal" if args.no_goal else "goal"}
    result["run_id"] = save_run(trials_result([model], trials, params, protocol), owner=LOCAL_ID, source="cli")
    emit(result, args.json, human=_human_play)
    return 0


def run_ablation(args: argparse.Namespace) -> int:
    from ..models import get_model
    from ..svo import ablation_rows, paired_rows
    from ..svo import run_ablation as ablation
    from ..values import get_orientation

    orientations = [get_orientation(o.strip()).key for o in args.orientations.split(",") if o.strip()]
    model = get_model(args.model, use_cache=not args.no_cache)
    result = ablation(model, orientations, args.trials, args.temperature, args.seed,
                      max_new_tokens=args.max_new_tokens, protocol=args.protocol,
                      progress=progress_printer("svo ablation"))
    from ..core.owner import LOCAL_ID
    from ..core.runs import save_run

    result.params["kind"] = "ablation"
    out = result.as_dict()
    out["run_id"] = save_run(result, owner=LOCAL_ID, source="cli")  # the local tools' owner, as the local app
    out["table"] = ablation_rows(result)
    out["paired"] = result.extra["paired"]  # per orientation: goal − no goal over paired trials, n and interval
    out["paired_table"] = paired_rows(result.extra["paired"])
    emit(out, args.json, human=_human_ablation)
    return 0


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _human_play(o: dict) -> str:
    targets = ", ".join(f"{a:.2f}" for a in o["target_angles"])
    lines = [f"{o['model']} as {o['orientation']} ({o['condition']}, protocol {o['protocol']['name']}; "
             f"target angles {targets} degrees)"]
    for t in o["per_trial"]:
        angle = f"{t['angle']:.2f}" if t["angle"] is not None else "n/a"
        lines.append(f"  trial {t['trial'] + 1}: {' '.join(c or '?' for c in t['choices'])}  angle {angle}"
                     f"  {t['category'] or 'unreadable'}")
    lines.append(f"value rationality D {_fmt(o['vr_distance'])} degrees (n={o['valid_trials']}), "
                 f"category hits {o['category_hits']}/{o['valid_trials']}, "
                 f"unreadable answers {o['parse_failures']}/{o['answers']}")
    lines.append(f"D: {o['vr_source']}.")
    if o["caveat"]:
        lines.append(o["caveat"])
    lines.append(f"run {o['run_id']}")
    return "\n".join(lines)


def _human_ablation(o: dict) -> str:
    cols = list(o["table"][0]) if o["table"] else []
    lines = [f"SVO goal / no-goal ablation, protocol {o['protocol']['name']}", " | ".join(cols)]
    lines += [" | ".join(str(r[c]) for c in cols) for r in o["table"]]
    pcols = list(o["paired_table"][0]) if o["paired_table"] else []
    lines += ["", "Paired differences, with goal − no goal (same seeds; both trials valid):", " | ".join(pcols)]
    lines += [" | ".join(str(r[c]) for c in pcols) for r in o["paired_table"]]
    lines.append(f"D: {o['extra']['vr_source']}.")
    lines += o["caveats"]
    lines.append(f"run {o['run_id']}")
    return "\n".join(lines)


def run_replay(args: argparse.Namespace) -> int:
    from ..svo import replay_jsonl
    from ._replay import run_replay as run

    return run(args, lambda: replay_jsonl(args.jsonl))
