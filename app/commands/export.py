"""`ponder export [--conversation ID] [--format json|markdown]`: saved conversations,
with their reasoning traces, flags, stats and sampling settings, to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from app.core.paths import data_dir
from app.core.storage import ChatStore, Conversation, Message, store_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write saved conversations to stdout",
        description="Write saved conversations, with their reasoning traces, to stdout.",
    )
    p.add_argument(
        "--data-dir", dest="data_dir", default=argparse.SUPPRESS, help="where conversations, models and logs live"
    )
    p.add_argument("--conversation", type=int, metavar="ID", help="export only this conversation")
    p.add_argument("--format", choices=("json", "markdown"), default="json", help="output format (default: json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = store_path(data_dir(getattr(args, "data_dir", None)))
    # A running app may be streaming into this file: leave its live message as it is.
    with ChatStore(path, recover_interrupted=False) as store:
        if store.recovery_message:
            print(f"ponder: {store.recovery_message}", file=sys.stderr)
        if args.conversation is not None:
            conversations = [store.get_conversation(args.conversation)]  # ConversationNotFound -> exit 2
        else:
            conversations = [store.get_conversation(s.id) for s in store.list_conversations()]
    if args.format == "json":
        text = json.dumps([conversation_to_dict(c) for c in conversations], indent=2, ensure_ascii=False) + "\n"
    else:
        text = "\n---\n\n".join(conversation_to_markdown(c) for c in conversations)
    _write_utf8(text)
    return 0


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")


def message_to_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "position": m.position,
        "role": m.role,
        "content": m.content,
        "thinking": m.thinking,
        "status": m.status,
        "flags": list(m.flags),
        "stats": m.stats,
        "model": m.model,
        "sampling": m.sampling,
        "created_at": _iso(m.created_at),
    }


def conversation_to_dict(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "created_at": _iso(c.created_at),
        "updated_at": _iso(c.updated_at),
        "model": c.model,
        "messages": [message_to_dict(m) for m in c.messages],
    }


def _quote(text: str) -> str:
    # Every line quoted: nothing in a model's trace can end the block early
    # (unlike a <details> element, which a stray "</details>" would close).
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _settings_line(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (values or {}).items())


def message_to_markdown(m: Message) -> str:
    heading = {"user": "You", "assistant": "Assistant", "system": "System"}[m.role]
    if m.model:
        heading += f" · {m.model}"
    parts = [f"### {heading}"]
    notes = []
    if m.status != "complete":
        notes.append(f"status: {m.status}")
    if m.flags:
        notes.append("flags: " + ", ".join(m.flags))
    if m.sampling:
        notes.append("sampling: " + _settings_line(m.sampling))
    if m.stats:
        notes.append("stats: " + _settings_line(m.stats))
    if notes:
        parts.append("*" + " · ".join(notes) + "*")
    if m.thinking:
        parts.append("> **Thinking**\n>\n" + _quote(m.thinking))
    if m.content:
        parts.append(m.content)
    return "\n\n".join(parts) + "\n"


def conversation_to_markdown(c: Conversation) -> str:
    header = f"# {c.title}\n\n*Conversation {c.id} · started {_iso(c.created_at)} · updated {_iso(c.updated_at)}*\n"
    return "\n".join([header, *(message_to_markdown(m) for m in c.messages)])


def _write_utf8(text: str) -> None:
    """Always UTF-8, whatever the console's code page (a trace may be Chinese)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()
