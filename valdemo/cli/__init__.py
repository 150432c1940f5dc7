"""``python -m valdemo``: everything the tabs do, headless.

Each module in this package that defines ``register(subparsers)`` adds one
subcommand. Conventions for every subcommand:

* ``--json`` prints exactly one JSON object on stdout;
* bad arguments or input exit 2 with one line on stderr (no traceback);
* model failures (unreachable endpoint, refused key...) exit 2 the same way;
* progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class CLIError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def emit(obj: dict, as_json: bool, human: Callable[[dict], str] | None = None) -> None:
    """Print a result: one JSON object with ``--json``, else a readable rendering."""
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n")
    else:
        sys.stdout.write((human(obj) if human else json.dumps(obj, indent=2, ensure_ascii=False,
                                                                 default=_json_default)) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A progress callback that writes ``label: done/total`` to stderr."""

    def report(done: int, total: int) -> None:
        sys.stderr.write(f"\r{label}: {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


def add_model_arg(parser: argparse.ArgumentParser, name: str = "--model", default: str = "local",
                  help: str = "model spec") -> None:
    parser.add_argument(name, default=default,
                        help=f"{help} (local, local:<id or path>, openai:<model>[@<base_url>]); default {default}")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--no-cache", action="store_true", help="bypass the response cache")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="valdemo", description="Evaluate the human values of language models.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from ..models import ModelError

    try:
        return int(args.func(args) or 0)
    except (CLIError, ModelError, ValueError, KeyError, FileNotFoundError, UnicodeDecodeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        sys.stderr.write(f"valdemo {args.command}: error: {' '.join(str(message).split())}\n")
        return 2


def _quiet_libraries() -> None:
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
