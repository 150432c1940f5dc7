"""``valdemo svo``: the SVO slider measure headless (score a person's choices; let a model play)."""

from __future__ import annotations

import argparse

from . import add_common, add_model_arg, emit, progress_printer


def register(sub: argparse._SubParsersAction) -> None:
    from . import OneLineParser

    p = sub.add_parser("svo", help="Social Value Orientation slider measure (HVAE)")
    ssub = p.add_subparsers(dest="svo_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    p.set_defaults(func=lambda args: p.error("choose a subcommand: score or play"))

    score = ssub.add_parser("score", help="angle and category of six choices")
    score.add_argument("--choices", required=True, help="six letters A-I, comma separated, e.g. A,B,C,D,E,F")
    add_common(score)
    score.set_defaults(func=run_score)

    play = ssub.add_parser("play", help="induce an orientation in a model and let it play n trials")
    play.add_argument("--orientation", required=True, help="altruistic, prosocial, individualistic or competitive")
    add_model_arg(play)
    play.add_argument("--trials", type=int, default=1, help="number of trials (seed + t for trial t)")
    play.add_argument("--temperature", type=float, default=0.7)
    play.add_argument("--seed", type=int, default=0, help="seed of the first trial")
    play.add_argument("--max-new-tokens", type=int, default=48, help="length cap of the stated goal")
    add_common(play)
    play.set_defaults(func=run_play)


def run_score(args: argparse.Namespace) -> int:
    from ..svo import score_choices

    result = score_choices(args.choices)
    emit(result.as_dict(), args.json, human=lambda o: f"angle {o['angle']:.2f} degrees: {o['category']}")
    return 0


def run_play(args: argparse.Namespace) -> int:
    from ..models import get_model
    from ..svo import play_result, play_trials
    from ..values import get_orientation

    orientation = get_orientation(args.orientation).key
    model = get_model(args.model, use_cache=not args.no_cache)
    trials = play_trials(model, [orientation], args.trials, args.temperature, args.seed,
                         max_new_tokens=args.max_new_tokens, progress=progress_printer("svo play"))
    result = play_result(model, orientation, trials, args.temperature)
    emit(result, args.json, human=_human_play)
    return 0


def _human_play(o: dict) -> str:
    lines = [f"{o['model']} as {o['orientation']} (target {o['target_angle']:.2f} degrees)"]
    for t in o["per_trial"]:
        angle = f"{t['angle']:.2f}" if t["angle"] is not None else "n/a"
        lines.append(f"  trial {t['trial'] + 1}: {' '.join(c or '?' for c in t['choices'])}  angle {angle}"
                     f"  {t['category'] or 'unreadable'}")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines.append(f"angle mean {fmt(o['angle_mean'])}, category hit rate {fmt(o['category_hit_rate'])}, "
                 f"value rationality {fmt(o['value_rationality'])}, parse failures {o['parse_failures']}")
    if o["bundled_model"]:
        from ..models import BUNDLED_CAVEAT

        lines.append(BUNDLED_CAVEAT)
    return "\n".join(lines)
