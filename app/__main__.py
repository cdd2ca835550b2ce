"""Command line: `ponder [--model PATH] [--data-dir DIR]` starts the window (wired in
app/ui/main.py); `ponder ask|hardware|recommend|download|export ...` are the commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import app  # noqa: F401  (loads llama_cpp before numpy; see app/__init__.py)
from app.core.errors import PonderError

# Subcommand modules under app.commands, each with add_parser(subparsers).
COMMANDS = ["ask", "hardware", "recommend", "download", "export", "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Chat with reasoning models, offline.")
    parser.add_argument("--model", help="GGUF file to load at start")
    parser.add_argument("--data-dir", help="where conversations, models and logs live")
    parser.add_argument("-v", "--verbose", action="store_true", help="log llama.cpp and debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"app.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the window logs to a file and reports crashes; commands print to the terminal
        from app.core.logs import setup_gui_logging

        setup_gui_logging(args.data_dir, args.verbose)
    else:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
    try:
        if args.command is None:
            from app.ui.main import run_gui

            return run_gui(args)
        return args.func(args)
    except PonderError as exc:
        print(f"ponder: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ponder export | head`: the reader left; not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
