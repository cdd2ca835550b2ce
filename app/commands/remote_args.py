"""The options of a command that talks to a remote engine: `--endpoint URL [--api-key KEY]
[--remote-model NAME]` (app/core/remote.py). The key comes from --api-key, else the
PONDER_API_KEY environment variable, else the keychain entry saved for that server."""

from __future__ import annotations

import argparse
import os

from app.core.errors import PonderError


def add_remote_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", default=None,
                   help="an OpenAI-compatible server instead of a local GGUF (vLLM, SGLang, llama-server, "
                        "Ollama, LM Studio, DeepSeek's API, ponder serve), e.g. http://localhost:8000/v1")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="the server's API key (default: $PONDER_API_KEY, else the one saved in the keychain)")
    p.add_argument("--remote-model", default="", metavar="NAME",
                   help="the model on the server (default: the first one it lists)")
    p.add_argument("--remote-reasoning", choices=("auto", "yes", "no"), default="auto",
                   help="whether the remote model thinks before answering (default: guessed from its name "
                        "and its first answer)")


def api_key_for(args: argparse.Namespace) -> str | None:
    if args.api_key:
        return args.api_key
    if os.environ.get("PONDER_API_KEY"):
        return os.environ["PONDER_API_KEY"]
    from app.core.secrets import key_store

    return key_store().get(args.endpoint)


def remote_engine(args: argparse.Namespace, local_model: str | None):
    """The RemoteEngine that --endpoint names (connected: its models listed), or PonderError."""
    from app.core.remote import Endpoint, RemoteEngine

    if local_model:
        raise PonderError("Give either --model (a local GGUF) or --endpoint (a server), not both.")
    reasoning = {"yes": True, "no": False}.get(args.remote_reasoning)
    return RemoteEngine.connect(Endpoint(args.endpoint, args.remote_model, api_key_for(args), reasoning))
