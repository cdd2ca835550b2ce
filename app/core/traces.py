"""Reasoning traces as data: one JSON object per assistant message version (JSON Lines).

`ponder export --format jsonl` and the window's File menu both write this. A record holds
what a person studying traces needs without the app: ids, the version of its turn, the
model file, the exact prompt text, the sampling parameters with the seed used, the
thinking and the answer, the spans a person or Ponder inserted, the flags and the stats.
The schema is in README.md ("Traces as JSON Lines"); TRACE_FIELDS, PARAM_FIELDS,
MODEL_FIELDS and STATS_FIELDS name its keys, and every record has every one of them
(null where the message does not say, e.g. a seed from before seeds were recorded).

Writing goes through a temporary file in the target folder that replaces the target only
when complete, so a failed export (an unwritable folder, a full disk) leaves no half file
and no earlier file damaged.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.errors import PonderError
from app.core.storage import ChatStore, Conversation, Message, StoreDamaged

if TYPE_CHECKING:
    from app.core.engine import ModelInfo

TRACE_FIELDS = (
    "conversation_id", "message_id", "position", "version", "version_count", "shown", "created_at",
    "status", "model", "prompt", "keep_thinking", "params", "thinking", "answer", "spans", "flags", "stats",
)
PARAM_FIELDS = ("temperature", "top_p", "top_k", "min_p", "seed", "max_tokens", "thinking_budget")
MODEL_FIELDS = ("name", "file", "quantization", "sha256", "source")
# The stats every record has; other numbers a message kept (total_s, context_used, ...) follow them.
STATS_FIELDS = (
    "prompt_tokens", "thinking_tokens", "answer_tokens", "time_to_first_token_s", "thinking_s", "answer_s",
    "tokens_per_s", "thinking_tokens_per_s", "answer_tokens_per_s", "inserted_tokens", "finish_reason",
)


class ExportError(PonderError):
    """An export could not be written; the sentence says where and why."""


def iso_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")


def model_record(info: ModelInfo) -> dict[str, Any]:
    """What a message keeps about the model file that wrote it (messages.model_info): its name,
    file name, quantisation, SHA-256 when a download verified it, and where it came from."""
    from app.core.downloads import verified_sha256

    if info.path is None:  # a model on a server (app.core.remote.RemoteModelInfo): no file here
        return {"name": info.name, "file": None, "quantization": None, "sha256": None, "source": info.label}
    return {"name": info.name, "file": info.path.name, "quantization": info.quantization,
            "sha256": verified_sha256(info.path), "source": _source(info.path.name)}


@functools.lru_cache(maxsize=32)
def _source(file_name: str) -> str:
    """The Hugging Face repository the catalog names for a file, else "local file"."""
    from app.core.catalog import load_catalog

    try:
        found = load_catalog().find_file(file_name)
    except PonderError:  # a missing or broken catalog: the source is just not known
        found = None
    return f"huggingface.co/{found[0].repo}" if found is not None else "local file"


def _model(m: Message) -> dict[str, Any]:
    info = m.model_info or {}
    model = {key: info.get(key) for key in MODEL_FIELDS}
    if model["name"] is None:
        model["name"] = m.model
    return model


def _stats(m: Message) -> dict[str, Any]:
    stored = dict(m.stats or {})
    # The engine's Stats calls the generation rate decode_tokens_per_s.
    if "tokens_per_s" not in stored and "decode_tokens_per_s" in stored:
        stored["tokens_per_s"] = stored.pop("decode_tokens_per_s")
    stats = {key: stored.pop(key, None) for key in STATS_FIELDS}
    stats.update(stored)
    return stats


def trace_records(conversation: Conversation) -> Iterator[dict[str, Any]]:
    """One record per assistant message version of `conversation`, by position then version."""
    versions = sorted(conversation.answer_versions(), key=lambda v: (v.message.position, v.version))
    for v in versions:
        m = v.message
        sampling = m.sampling or {}
        yield {
            "conversation_id": conversation.id,
            "message_id": m.id,
            "position": m.position,
            "version": v.version,
            "version_count": v.version_count,
            "shown": v.shown,
            "created_at": iso_time(m.created_at),
            "status": m.status,
            "model": _model(m),
            "prompt": m.prompt,
            # Recorded with each answer since the choice exists; before, thinking was always left out.
            "keep_thinking": bool(sampling.get("keep_thinking", False)),
            "params": {key: sampling.get(key) for key in PARAM_FIELDS},
            "thinking": m.thinking,
            "answer": m.content,
            "spans": [dict(s) for s in m.spans],
            "flags": list(m.flags),
            "stats": _stats(m),
        }


def read_conversations(store: ChatStore, conversation_id: int | None = None,
                       warn: Callable[[str], None] = lambda _message: None) -> list[Conversation]:
    """The conversation `conversation_id` (ConversationNotFound if gone), or every one, newest first.

    A chat that a damaged file cannot give back is skipped with a warning, so one bad page
    does not keep every other chat from being exported.
    """
    if conversation_id is not None:
        return [store.get_conversation(conversation_id)]
    conversations = []
    for summary in store.list_conversations():
        try:
            conversations.append(store.get_conversation(summary.id))
        except StoreDamaged as exc:
            warn(f"Chat {summary.id} (“{summary.title}”) could not be read and was left out: {exc}")
    return conversations


def jsonl_text(conversations: Iterable[Conversation]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for c in conversations for r in trace_records(c))


def export_jsonl(db: str | os.PathLike, target: str | os.PathLike, conversation_id: int | None = None
                 ) -> tuple[int, list[str]]:
    """Every assistant message version (of one conversation, or all) from the conversation file
    `db` to `target`, on a connection of its own (any thread may call it, next to a running app).
    Returns (records written, warnings about chats left out). Raises ExportError or StorageError."""
    warnings: list[str] = []
    with ChatStore(Path(db), recover_interrupted=False) as store:  # leaves a live answer as it is
        conversations = read_conversations(store, conversation_id, warnings.append)
    text = jsonl_text(conversations)
    write_text_file(target, text)
    return text.count("\n"), warnings


def write_text_file(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 to `path`, all or nothing. Raises ExportError with a sentence."""
    path = Path(path)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise ExportError(_cannot_write(path, exc)) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(_cannot_write(path, exc)) from exc


def _cannot_write(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
        why = f"the folder {path.parent} does not exist"
    elif isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"Ponder may not write in {path.parent}"
    elif exc.errno == errno.ENOSPC:
        why = "the disk is full"
    elif isinstance(exc, IsADirectoryError):
        why = "a folder has that name"
    else:
        why = exc.strerror or str(exc)
    return (f"Could not export to {path}: {why}. Choose another folder; nothing was written "
            "there and your saved chats are unchanged.")
