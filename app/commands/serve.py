"""`ponder serve`: serve a local model over an OpenAI-compatible HTTP API (docs/serving.md)."""

from __future__ import annotations

import argparse
import os
import sys

from app.commands.local_model import add_model_arguments, chosen_model

BANNER = "!" * 78


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a model over an OpenAI-compatible API (/v1/chat/completions)")
    add_model_arguments(p, "serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", default=os.environ.get("PONDER_API_KEY") or None,
                   help="require 'Authorization: Bearer KEY' on every request (default: $PONDER_API_KEY, "
                        "which keeps the key out of the process list)")
    p.add_argument("--queue", type=int, default=8, metavar="N",
                   help="requests that may wait while one runs; more get 429 (default 8)")
    p.add_argument("--reasoning-format", choices=["separate", "raw"], default="separate",
                   help="separate: thinking in reasoning_content (default); raw: <think>...</think> in content")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.core.server.api import build_app, is_loopback, make_server
    from app.core.server.service import EngineService

    chosen = chosen_model(args, "serve")
    if chosen is None:
        return 2
    model, options = chosen
    if args.queue < 0:
        print("ponder: --queue must be 0 or more.", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not args.api_key:
        print(f"{BANNER}\nWARNING: serving on {args.host} WITHOUT an API key. Anyone who can reach this "
              f"address\ncan use the model. Pass --api-key KEY, or bind 127.0.0.1.\n{BANNER}", file=sys.stderr)
    service = EngineService(model, options, max_waiting=args.queue).start()
    try:
        info = service.info
        for note in (info.gpu_note, info.context_note):
            if note:
                print(f"ponder: {note}", file=sys.stderr)
        print(f"ponder: serving {service.model_id} ({info.backend}, {info.n_ctx}-token context) at "
              f"http://{args.host}:{args.port}/v1" + (" (API key required)" if args.api_key else ""),
              file=sys.stderr)
        app = build_app(service, api_key=args.api_key, reasoning_format=args.reasoning_format)
        make_server(app, args.host, args.port).run()
        return 0
    finally:
        service.close()
