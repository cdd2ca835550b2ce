"""`ponder export [--conversation ID] [--format json|markdown|jsonl] [--output FILE]`: saved
conversations, with their reasoning traces, flags, stats and sampling settings, to stdout or a
file. `jsonl` writes one record per assistant message version (app/core/traces.py)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from app.core.paths import data_dir
from app.core.storage import ChatStore, Conversation, Message, store_path
from app.core.traces import ExportError, iso_time, jsonl_text, read_conversations, write_text_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write saved conversations to stdout or a file",
        description="Write saved conversations, with their reasoning traces, to stdout or a file.",
    )
    p.add_argument(
        "--data-dir", dest="data_dir", default=argparse.SUPPRESS, help="where conversations, models and logs live"
    )
    p.add_argument("--conversation", type=int, metavar="ID", help="export only this conversation")
    p.add_argument("--format", choices=("json", "markdown", "jsonl"), default="json",
                   help="json (default), markdown, or jsonl: one line per assistant message version")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout (replaced only when complete)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = store_path(data_dir(getattr(args, "data_dir", None)))

    def warn(message: str) -> None:
        print(f"ponder: {message}", file=sys.stderr)

    # A running app may be streaming into this file: leave its live message as it is.
    with ChatStore(path, recover_interrupted=False) as store:
        if store.recovery_message:
            warn(store.recovery_message)
        # ConversationNotFound -> exit 2; a damaged chat among all of them is skipped with a warning.
        conversations = read_conversations(store, args.conversation, warn)
    if args.format == "json":
        text = json.dumps([conversation_to_dict(c) for c in conversations], indent=2, ensure_ascii=False) + "\n"
    elif args.format == "jsonl":
        text = jsonl_text(conversations)
    else:
        text = "\n---\n\n".join(conversation_to_markdown(c) for c in conversations)
    if args.output is None:
        _write_utf8(text)
        return 0
    try:
        write_text_file(args.output, text)
    except ExportError as exc:
        warn(str(exc))
        return 1
    return 0


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
        "created_at": iso_time(m.created_at),
    }


def conversation_to_dict(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "created_at": iso_time(c.created_at),
        "updated_at": iso_time(c.updated_at),
        "model": c.model,
        "messages": [message_to_dict(m) for m in c.messages],
    }


def _quote(text: str) -> str:
    # Every line quoted, and any "</details" written as an entity: nothing in a model's trace
    # can end the collapsible section early.
    text = re.sub(r"<(/?details)", r"&lt;\1", text, flags=re.IGNORECASE)
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _thinking_summary(m: Message) -> str:
    stats = m.stats or {}
    parts = []
    if stats.get("thinking_s") is not None:
        parts.append(f"{stats['thinking_s']:.0f} s")
    if stats.get("thinking_tokens"):
        parts.append(f"{stats['thinking_tokens']} tokens")
    return "Thinking" + (f" ({', '.join(parts)})" if parts else "")


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
    if m.thinking:  # collapsible: a long trace does not bury the answers
        parts.append(f"<details>\n<summary>{_thinking_summary(m)}</summary>\n\n{_quote(m.thinking)}\n\n</details>")
    if m.content:
        parts.append(m.content)
    return "\n\n".join(parts) + "\n"


def conversation_to_markdown(c: Conversation) -> str:
    header = f"# {c.title}\n\n*Conversation {c.id} · started {iso_time(c.created_at)} · updated {iso_time(c.updated_at)}*\n"
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
