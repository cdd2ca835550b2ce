"""The options every command that loads a local GGUF shares: which file, context size, GPU layers."""

from __future__ import annotations

import argparse
import sys

from app.core.engine import DEFAULT_N_CTX, LoadOptions


def add_model_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """--model (also accepted before the command), --ctx and --gpu-layers."""
    p.add_argument("--model", dest=f"{command}_model", metavar="PATH",
                   help=f"GGUF file (or give --model before '{command}')")
    p.add_argument("--ctx", type=int, default=DEFAULT_N_CTX, help="context size in tokens")
    p.add_argument("--gpu-layers", type=int, default=None, help="layers to offload (default: all the build allows)")


def chosen_model(args: argparse.Namespace, command: str) -> tuple[str, LoadOptions] | None:
    """The GGUF to load and how; None (after saying why on stderr) if no --model was given."""
    model = getattr(args, f"{command}_model") or args.model
    if not model:
        print(f"ponder: {command} needs --model PATH (a GGUF file).", file=sys.stderr)
        return None
    return model, LoadOptions(n_ctx=args.ctx, n_gpu_layers=args.gpu_layers)
