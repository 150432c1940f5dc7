"""``valdemo chat``: one message to a model; the Models panel's "test model", headless."""

from __future__ import annotations

import argparse

from . import add_common, add_model_arg, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="send one message to a model and print the reply")
    add_model_arg(p)
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    add_common(p)
    p.add_argument("message", help="the user message")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inputs import check_text
    from ..models import GenParams, get_model, user

    message = check_text(args.message, "message")
    model = get_model(args.model, use_cache=not args.no_cache)
    reply = model.chat(user(message, args.system), GenParams(max_new_tokens=args.max_new_tokens,
                                                              temperature=args.temperature))
    emit(
        {"reply": reply.text, "backend": reply.backend, "model": reply.model,
         "latency_s": round(reply.latency_s, 4), "cached": reply.cached},
        args.json,
        human=lambda o: o["reply"],
    )
    return 0
