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
    # Speculative decoding (app/core/speculative.py): same output, faster on big models.
    p.add_argument("--draft-model", default=None, metavar="PATH|auto|off",
                   help="a small model with the same tokenizer drafts tokens the model checks in one batch; "
                        "auto: the catalog's pair for this model if downloaded, else n-gram drafting (default: off)")
    p.add_argument("--draft", choices=["ngram"], default=None,
                   help="ngram: draft by looking up the prompt and the text so far (no second model)")


def chosen_model(args: argparse.Namespace, command: str) -> tuple[str, LoadOptions] | None:
    """The GGUF to load and how; None (after saying why on stderr) if no --model was given."""
    model = getattr(args, f"{command}_model") or args.model
    if not model:
        print(f"ponder: {command} needs --model PATH (a GGUF file).", file=sys.stderr)
        return None
    draft_model, draft = getattr(args, "draft_model", None), getattr(args, "draft", None)
    if draft and draft_model not in (None, "off"):
        print("ponder: choose either --draft ngram or --draft-model, not both.", file=sys.stderr)
        return None
    return model, LoadOptions(n_ctx=args.ctx, n_gpu_layers=args.gpu_layers, draft=draft or draft_model or "off")
