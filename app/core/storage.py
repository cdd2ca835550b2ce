"""Saved conversations: the data classes, and ChatStore with the conversation and message operations.

Where the rest lives: the file itself (opening, WAL, damage, the integrity check,
answers a crash cut off, SQLite errors -> StorageError) is StoreFile's, in
app/core/storage_file.py; the tables, numbered migrations and the search index
are in app/core/storage_schema.py. ChatStore runs every query through its
StoreFile's `read()` and `write()`, so every public method raises StorageError,
with a sentence saying what to do, for anything SQLite reports (locked file,
disk error, full disk, damaged file, a constraint the data breaks);
ConversationNotFound when an id is gone. Raw sqlite3 errors never leave it,
except ProgrammingError (a store used on the wrong thread or after close: a bug,
not the user's to fix). Every public write is its own short transaction.

Streaming. The UI calls `add_message(..., status="streaming")` when an answer
starts, `update_message` about once a second with the text so far, and once more
with the final status. Once `update_message` returns, the text survives the app
crashing or being killed (WAL, storage_file.py). A message still 'streaming' when
the file is next opened was cut off by a crash: it becomes 'stopped' with the flag
"interrupted". Only the app does that (`recover_interrupted=True`); a reader that
may run next to a live app, like `ponder export`, passes False so it cannot mark
the app's live answer as interrupted.

What an answer was made from (schema v3). Message.spans: the spans a person or
Ponder inserted, as dicts {"field": "thinking"|"content", "start", "end" (offsets
into that field), "by": "ponder"|"user", "kind": "wrap_up"|"close"|"nudge"|"edit"};
Message.prompt: the exact text the model was sent; Message.model_info: {"name",
"file", "quantization", "sha256", "source" (e.g. "local", "remote: host · model")}.
All three go in with `add_message(..., spans=, prompt=, model_info=)` and change with
`update_message` (None leaves a field; spans=() clears). Conversation.keep_thinking
(`set_keep_thinking(conv_id, bool)`): earlier thinking goes back into the prompt.

Versions of a turn (schema v3). A turn is a prompt and its answer; a version of it
is that prompt, its answer and everything after. `messages` holds exactly what is on
screen, so the conversation continues from the shown version and add_message,
search and the message count need no version logic. Versions not shown are rows of
`turn_versions` with their messages (ids kept) in `version_messages`; they may hold
versions of their own later turns. `Conversation.versions` has them all;
`versions_of(position)` lists a turn's versions (the shown one has id None) in the
order they were made (by their answer's id), `version_of(position)` says (n, of), `turn_start(answer_pos)`
finds a turn from its answer, and `answer_versions()` numbers every assistant message
for exports. Writes, each one transaction (a kill leaves the old or the new state):
  start_version(conv, position, prompt=None) -> the prompt on screen (regenerate keeps
    it, id and all; with `prompt`, edit and resend; the caller then adds the answer);
  switch_version(conv, version_id); delete_version(conv, position, version_id=None).
Search finds what is on screen; delete and restore_conversation carry the versions.

Search. An FTS5 index over message content and thinking (storage_schema.py);
streaming messages are left out of it until they finish. Without FTS5 in the
sqlite3 build, and for search terms shorter than 3 characters, search uses LIKE.

Threads. A ChatStore is one connection and may only be used on the thread that
opened it (sqlite3's check_same_thread). The UI writes from the GUI thread only;
any other thread (an export, a test) opens its own ChatStore on the same file.
`check_integrity` is the exception: it opens a connection of its own, so any
thread may run it while the store goes on being used.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StorageError
from app.core.storage_file import (
    BUSY_TIMEOUT_S,
    DAMAGE_NOTE_SUFFIX,
    DB_FILENAME,
    INTERRUPTED_FLAG,
    StoreDamaged,
    StoreFile,
    store_path,
)
from app.core.storage_schema import (
    MESSAGE_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    dump_json,
    dump_spans,
    fts5_available,
    load_dict,
    load_flags,
    load_spans,
)

# Names other modules import from here, though they live in storage_file / storage_schema.
__all__ = [
    "BUSY_TIMEOUT_S",
    "DAMAGE_NOTE_SUFFIX",
    "DB_FILENAME",
    "DEFAULT_TITLE",
    "FIELDS",
    "INTERRUPTED_FLAG",
    "MIGRATIONS",
    "ROLES",
    "SCHEMA_VERSION",
    "STATUSES",
    "TITLE_MAX_CHARS",
    "ChatStore",
    "Conversation",
    "ConversationNotFound",
    "ConversationSummary",
    "Message",
    "SearchHit",
    "StorageError",
    "TurnVersion",
    "StoreDamaged",
    "fts5_available",
    "store_path",
    "title_from_prompt",
]

DEFAULT_TITLE = "New chat"
TITLE_MAX_CHARS = 60
ROLES = ("system", "user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "error")
FIELDS = ("prompt", "answer", "thinking")  # what SearchHit.field can be


class ConversationNotFound(StorageError):
    """The conversation id does not exist (deleted, or never created)."""


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    position: int  # 0, 1, 2... in the conversation
    role: str  # 'system' | 'user' | 'assistant'
    content: str  # the prompt (user) or the answer (assistant)
    thinking: str
    status: str  # 'complete' | 'streaming' | 'stopped' | 'error'
    flags: tuple[str, ...] = ()
    stats: dict[str, Any] | None = None
    model: str | None = None
    sampling: dict[str, Any] | None = None
    created_at: float = 0.0  # Unix time, seconds
    # Spans a person or Ponder inserted: {"field": "thinking"|"content", "start": int, "end": int,
    # "by": "ponder"|"user", "kind": "wrap_up"|"close"|"nudge"|"edit"}; offsets into that field.
    spans: tuple[dict[str, Any], ...] = ()
    prompt: str | None = None  # the exact text the model was sent (chat template applied)
    model_info: dict[str, Any] | None = None  # name, file, quantization, sha256, source


@dataclass(frozen=True)
class TurnVersion:
    """One version of a turn: the prompt at `position`, its answer and everything after.

    Versions not on screen are stored (`id` set); the one on screen is the
    conversation's own messages from `position` on (`id` None). Versions are numbered
    in the order they were made: by their answer's id, which never changes.
    """

    id: int | None  # None: the version on screen
    conversation_id: int
    position: int  # of the turn's first message (its prompt; the answer where no prompt precedes)
    parent_id: int | None  # None: a turn of the conversation on screen; else inside that version
    created_at: float
    messages: tuple[Message, ...]

    @property
    def shown(self) -> bool:
        return self.id is None

    @property
    def answer(self) -> Message | None:
        """The turn's answer: its first assistant message."""
        return next((m for m in self.messages if m.role == "assistant"), None)

    @property
    def order_key(self) -> int:
        return _turn_key(self.messages, self.position)


@dataclass(frozen=True)
class AnswerVersion:
    """An assistant message anywhere in a conversation (shown or in a stored version),
    with its version number among the versions of its turn (for exports)."""

    message: Message
    version: int  # 1-based
    version_count: int
    shown: bool  # on screen (part of the conversation that continues)


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    created_at: float
    updated_at: float
    model: str | None
    message_count: int


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    model: str | None  # the model of the latest message that named one
    custom_title: bool  # renamed by the user: first prompts no longer retitle it
    messages: list[Message] = field(default_factory=list)  # on screen, in order
    keep_thinking: bool = False  # earlier thinking goes back into the prompt (DeepSeek: stripped)
    versions: list[TurnVersion] = field(default_factory=list)  # stored, not shown; by id

    def turn_start(self, answer_position: int) -> int:
        """The position of the turn an on-screen answer belongs to: its prompt's, if one precedes it."""
        before = next((m for m in self.messages if m.position == answer_position - 1), None)
        return answer_position - 1 if before is not None and before.role == "user" else answer_position

    def versions_of(self, position: int) -> list[TurnVersion]:
        """Every version of the on-screen turn starting at `position`, the shown one included, in order."""
        shown = TurnVersion(None, self.id, position, None, 0.0,
                            tuple(m for m in self.messages if m.position >= position))
        stored = [v for v in self.versions if v.parent_id is None and v.position == position]
        return sorted([shown, *stored], key=lambda v: v.order_key)

    def version_of(self, position: int) -> tuple[int, int]:
        """(1-based number of the shown version, how many) of the turn starting at `position`."""
        versions = self.versions_of(position)
        return next(i for i, v in enumerate(versions, 1) if v.shown), len(versions)

    def answer_versions(self) -> list[AnswerVersion]:
        """Every assistant message, shown or in a stored version, numbered within its turn."""
        lines: dict[int | None, tuple[Message, ...]] = {None: tuple(self.messages)}
        lines.update({v.id: v.messages for v in self.versions})
        starts = {v.id: v.position for v in self.versions}
        parents = {v.id: v.parent_id for v in self.versions}

        def first_id(line: int | None, position: int) -> int:
            return _turn_key(lines[line], position)

        result: list[AnswerVersion] = []
        for line, messages in lines.items():
            by_position = {m.position: m for m in messages}
            for m in messages:
                if m.role != "assistant":
                    continue
                prompt = by_position.get(m.position - 1)
                q = m.position - 1 if prompt is not None and prompt.role == "user" else m.position
                # The turn at q lives in `owner`'s line: this version's parent if the
                # version starts at q, else the line the message is in.
                owner = parents[line] if line is not None and starts[line] == q else line
                members = [first_id(owner, q)] if owner is None or starts[owner] < q else []
                members += [first_id(v.id, q) for v in self.versions if v.parent_id == owner and v.position == q]
                members.sort()
                mine = first_id(line, q)
                result.append(AnswerVersion(m, members.index(mine) + 1, len(members), line is None))
        return result


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    title: str
    message_id: int
    position: int
    field: str  # 'prompt' | 'answer' | 'thinking'
    snippet: str  # the text around the first matching term


def title_from_prompt(prompt: str, limit: int = TITLE_MAX_CHARS) -> str:
    """The prompt on one line, cut at a word boundary to at most `limit` chars."""
    text = " ".join(prompt.split())
    if not text:
        return DEFAULT_TITLE
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else cut mid-word (e.g. CJK)
        cut = cut[:space]
    return cut.rstrip(" .,;:-") + "…"


# --- the store --------------------------------------------------------------


class ChatStore:
    """Conversations and messages in one SQLite file. One thread per instance."""

    def __init__(self, path: Path, *, recover_interrupted: bool = True) -> None:
        self._file = StoreFile(path, recover_interrupted=recover_interrupted)
        if recover_interrupted:
            self._recover_unanswered_versions()

    def _recover_unanswered_versions(self) -> None:
        """A kill between start_version and saving the new answer's start leaves a prompt with no
        answer in front of the turn's earlier versions: the one shown before comes back (as the
        window does when that save fails). An index probe per stored version: cheap at start."""
        with self._file.read() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] < 3:  # no versions before schema v3
                return
            turns = conn.execute(
                """SELECT DISTINCT v.conversation_id, v.position FROM turn_versions v
                   JOIN messages m ON m.conversation_id = v.conversation_id AND m.position = v.position
                       AND m.role = 'user'
                   WHERE v.parent_id IS NULL AND NOT EXISTS (SELECT 1 FROM messages n
                       WHERE n.conversation_id = v.conversation_id AND n.position > v.position)"""
            ).fetchall()
        for conv_id, position in turns:
            self.delete_version(conv_id, position)

    # -- the file (app/core/storage_file.py)

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def recovered_from(self) -> Path | None:
        """Where a damaged file was moved at open, else None; the UI says so once."""
        return self._file.recovered_from

    @property
    def recovery_message(self) -> str | None:
        """The sentence to show once when a damaged file was moved aside, else None."""
        return self._file.recovery_message

    @property
    def has_fts(self) -> bool:
        """Whether search uses the FTS5 index (else LIKE)."""
        return self._file.has_fts

    @property
    def _conn(self) -> sqlite3.Connection:  # the raw connection, for tests that stage SQLite states
        return self._file.conn

    def check_integrity(self, cancel: threading.Event | None = None) -> bool:
        """Read every page of the file: True if sound, False if `cancel` was set first.
        Raises StoreDamaged on damage; any thread may call it (StoreFile.check_integrity)."""
        return self._file.check_integrity(cancel)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations

    def create_conversation(self, title: str = DEFAULT_TITLE) -> int:
        now = time.time()
        with self._file.write() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, custom_title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (title, title != DEFAULT_TITLE, now, now),
            )
        return cur.lastrowid

    def list_conversations(self) -> list[ConversationSummary]:
        with self._file.read() as conn:
            rows = conn.execute(
                """SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n
                   FROM conversations c ORDER BY c.updated_at DESC, c.id DESC"""
            ).fetchall()
        return [
            ConversationSummary(r["id"], r["title"], r["created_at"], r["updated_at"], r["model"], r["n"])
            for r in rows
        ]

    def rename_conversation(self, conv_id: int, title: str) -> None:
        title = " ".join(title.split()) or DEFAULT_TITLE
        with self._file.write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET title = ?, custom_title = 1 WHERE id = ?", (title, conv_id)
            )
            _require(cur, conv_id)

    def delete_conversation(self, conv_id: int) -> None:
        with self._file.write() as conn:
            _require(conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)), conv_id)

    def restore_conversation(self, snapshot: Conversation) -> int:
        """Put back a conversation taken with get_conversation before deleting it,
        with its stored versions.

        It keeps its ids when they are free (they are after a delete, since ids
        are never reused); restored a second time it gets new ones.
        """
        stored = [m for v in snapshot.versions for m in v.messages]
        with self._file.write() as conn:
            taken = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (snapshot.id,)).fetchone()
            keep_ids = taken is None and not any(
                conn.execute("SELECT 1 FROM messages WHERE id = ? UNION ALL "
                             "SELECT 1 FROM version_messages WHERE id = ?", (m.id, m.id)).fetchone()
                for m in [*snapshot.messages, *stored]
            ) and not any(
                conn.execute("SELECT 1 FROM turn_versions WHERE id = ?", (v.id,)).fetchone()
                for v in snapshot.versions
            )
            cur = conn.execute(
                """INSERT INTO conversations (id, title, custom_title, created_at, updated_at, model, keep_thinking)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (
                    snapshot.id if keep_ids else None,
                    snapshot.title,
                    snapshot.custom_title,
                    snapshot.created_at,
                    snapshot.updated_at,
                    snapshot.model,
                    snapshot.keep_thinking,
                ),
            )
            conv_id = cur.lastrowid
            # New ids keep the old ones' order: versions are numbered by their first message's id.
            ids = {m.id: m.id if keep_ids else _new_message_id(conn)
                   for m in sorted([*snapshot.messages, *stored], key=lambda m: m.id)}
            for m in snapshot.messages:
                _insert_message(conn, "messages", m, conv_id, ids[m.id])
            # Parents first would need an order the ids do not give (a version made later can
            # hold older ones), so every version goes in as top-level, then gets its parent.
            version_ids: dict[int, int] = {}
            for v in snapshot.versions:
                version_ids[v.id] = conn.execute(
                    "INSERT INTO turn_versions (id, conversation_id, parent_id, position, created_at) "
                    "VALUES (?, ?, NULL, ?, ?)",
                    (v.id if keep_ids else None, conv_id, v.position, v.created_at),
                ).lastrowid
                for m in v.messages:
                    _insert_message(conn, "version_messages", m, conv_id, ids[m.id], version_ids[v.id])
            for v in snapshot.versions:
                if v.parent_id is not None:
                    conn.execute("UPDATE turn_versions SET parent_id = ? WHERE id = ?",
                                 (version_ids[v.parent_id], version_ids[v.id]))
        return conv_id

    def get_conversation(self, conv_id: int) -> Conversation:
        with self._file.read() as conn:
            row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
            if row is None:
                raise _not_found(conv_id)
            rows = conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position", (conv_id,)
            ).fetchall()
            version_rows = conn.execute(
                "SELECT * FROM turn_versions WHERE conversation_id = ? ORDER BY id", (conv_id,)
            ).fetchall()
            stored: dict[int, list[Message]] = {}
            for r in conn.execute(
                "SELECT * FROM version_messages WHERE conversation_id = ? ORDER BY version_id, position", (conv_id,)
            ):
                stored.setdefault(r["version_id"], []).append(_message(r))
        return Conversation(
            id=row["id"],
            title=row["title"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            model=row["model"],
            custom_title=bool(row["custom_title"]),
            messages=[_message(r) for r in rows],
            keep_thinking=bool(row["keep_thinking"]),
            versions=[
                TurnVersion(v["id"], conv_id, v["position"], v["parent_id"], v["created_at"],
                            tuple(stored.get(v["id"], ())))
                for v in version_rows
            ],
        )

    def set_keep_thinking(self, conv_id: int, keep: bool) -> None:
        """Whether earlier thinking goes back into this conversation's prompts."""
        with self._file.write() as conn:
            _require(conn.execute("UPDATE conversations SET keep_thinking = ? WHERE id = ?",
                                  (bool(keep), conv_id)), conv_id)

    # -- messages

    def add_message(
        self,
        conv_id: int,
        role: str,
        content: str = "",
        thinking: str = "",
        *,
        status: str = "complete",
        flags: Iterable[str] = (),
        stats: dict[str, Any] | None = None,
        model: str | None = None,
        sampling: dict[str, Any] | None = None,
        spans: Iterable[dict[str, Any]] = (),
        prompt: str | None = None,
        model_info: dict[str, Any] | None = None,
    ) -> int:
        _check(role, ROLES, "role")
        _check(status, STATUSES, "status")
        now = time.time()
        with self._file.write() as conn:
            conv = conn.execute("SELECT custom_title FROM conversations WHERE id = ?", (conv_id,)).fetchone()
            if conv is None:
                raise _not_found(conv_id)
            first_prompt = role == "user" and not conn.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND role = 'user'", (conv_id,)
            ).fetchone()
            position = conn.execute(
                "SELECT coalesce(max(position) + 1, 0) FROM messages WHERE conversation_id = ?", (conv_id,)
            ).fetchone()[0]
            cur = conn.execute(
                """INSERT INTO messages (conversation_id, position, role, content, thinking, flags,
                       stats, model, sampling, created_at, status, spans, prompt, model_info)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (conv_id, position, role, content, thinking, json.dumps(list(flags)),
                 dump_json(stats), model, dump_json(sampling), now, status,
                 dump_spans(list(spans)), prompt, dump_json(model_info)),
            )
            conn.execute(
                "UPDATE conversations SET updated_at = ?, model = coalesce(?, model) WHERE id = ?",
                (now, model, conv_id),
            )
            if first_prompt and not conv["custom_title"]:
                conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ?", (title_from_prompt(content), conv_id)
                )
        return cur.lastrowid

    def update_message(
        self,
        msg_id: int,
        *,
        content: str | None = None,
        thinking: str | None = None,
        status: str | None = None,
        flags: Iterable[str] | None = None,
        stats: dict[str, Any] | None = None,
        spans: Iterable[dict[str, Any]] | None = None,
        prompt: str | None = None,
        model_info: dict[str, Any] | None = None,
    ) -> None:
        """Overwrite the given fields; None leaves a field as it is (spans=() clears the
        spans). Cheap enough to call once a second while streaming (one row, no search
        re-index)."""
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = content
        if thinking is not None:
            changes["thinking"] = thinking
        if status is not None:
            _check(status, STATUSES, "status")
            changes["status"] = status
        if flags is not None:
            changes["flags"] = json.dumps(list(flags))
        if stats is not None:
            changes["stats"] = dump_json(stats)
        if spans is not None:
            changes["spans"] = dump_spans(list(spans))
        if prompt is not None:
            changes["prompt"] = prompt
        if model_info is not None:
            changes["model_info"] = dump_json(model_info)
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)  # names from the fixed set above
        with self._file.write() as conn:
            row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (msg_id,)).fetchone()
            if row is None:
                raise StorageError(f"There is no message {msg_id}; it may have been deleted.")
            conn.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*changes.values(), msg_id))
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), row[0]))

    def delete_messages_from(self, conv_id: int, position: int) -> None:
        """Delete the message at `position` and all after it, with the stored versions of
        their turns."""
        with self._file.write() as conn:
            _delete_tail(conn, conv_id, position)
            _require(
                conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conv_id)),
                conv_id,
            )

    # -- versions of a turn (regenerate, edit and resend, edit the thinking)
    #
    # `messages` holds what is on screen; a version not on screen is a turn_versions row
    # with its messages in version_messages (storage_schema._migrate_v3). Each method is
    # one transaction that moves rows, ids and all, so a kill at any point leaves either
    # the old or the new arrangement and never loses a message.

    def start_version(self, conv_id: int, position: int, prompt: str | None = None) -> Message | None:
        """Begin a new version of the turn starting at `position` (its prompt). The turn's
        messages from `position` on, with everything after them, are kept as a version.
        Regenerate (`prompt` None): the prompt stays on screen, id and all (the version keeps
        a copy). Edit and resend: `prompt`, the edited text, becomes a new message there.
        Returns the prompt now on screen (None if the message at `position` is an answer:
        then the next answer goes there). The caller then adds the answer with add_message."""
        with self._file.write() as conn:
            first = conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? AND position = ?", (conv_id, position)
            ).fetchone()
            if first is None:
                if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)).fetchone() is None:
                    raise _not_found(conv_id)
                raise StorageError(f"There is no message at position {position}; it may have been deleted.")
            if first["role"] != "user" and prompt is not None:
                raise ValueError(f"the message at position {position} is not a prompt")
            version_id = _shelve(conn, conv_id, position)
            now = time.time()
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv_id))
            if first["role"] != "user":
                return None
            if prompt is None:  # the same prompt stays on screen, id and all; the version keeps a copy
                msg_id = first["id"]
                conn.execute(f"INSERT INTO messages ({_COLUMNS}) SELECT {_COLUMNS} FROM version_messages "
                             "WHERE version_id = ? AND position = ?", (version_id, position))
                conn.execute("UPDATE version_messages SET id = ? WHERE version_id = ? AND position = ?",
                             (_new_message_id(conn), version_id, position))
            else:
                msg_id = conn.execute(
                    "INSERT INTO messages (conversation_id, position, role, content, created_at) "
                    "VALUES (?, ?, 'user', ?, ?)",
                    (conv_id, position, prompt, now),
                ).lastrowid
            first_prompt = not conn.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND role = 'user' AND position < ?",
                (conv_id, position),
            ).fetchone()
            if first_prompt and prompt is not None:
                conn.execute("UPDATE conversations SET title = ? WHERE id = ? AND custom_title = 0",
                             (title_from_prompt(prompt), conv_id))
            return _message(conn.execute("SELECT * FROM messages WHERE id = ?", (msg_id,)).fetchone())

    def switch_version(self, conv_id: int, version_id: int) -> None:
        """Show the stored version `version_id` (from Conversation.versions_of) of a turn on
        screen; the one shown until now is kept as a version. The conversation continues
        from what is shown."""
        with self._file.write() as conn:
            version = _version_row(conn, conv_id, version_id)
            if version["parent_id"] is not None:
                raise StorageError("That version belongs to a version not on screen; show that one first.")
            _shelve(conn, conv_id, version["position"])
            _unshelve(conn, version_id)

    def delete_version(self, conv_id: int, position: int, version_id: int | None = None) -> None:
        """Delete one version of the turn starting at `position`: the stored `version_id`,
        or (None) the one on screen, which the version before it (else after it) replaces.
        Deleting a turn's only version deletes the turn and everything after it."""
        with self._file.write() as conn:
            if version_id is not None:
                _version_row(conn, conv_id, version_id)
                conn.execute("DELETE FROM turn_versions WHERE id = ?", (version_id,))
                return
            shown = _key_of(conn, "messages", "conversation_id", conv_id, position)
            if shown is None:
                raise StorageError(f"There is no message at position {position}; it may have been deleted.")
            if not conn.execute("SELECT 1 FROM messages WHERE conversation_id = ? AND position = ?",
                                (conv_id, position + 1)).fetchone():
                shown = _NEWEST  # a prompt still without its answer: the version made last
            others = sorted(
                (_key_of(conn, "version_messages", "version_id", r[0], position) or 0, r[0])
                for r in conn.execute(
                    "SELECT id FROM turn_versions WHERE conversation_id = ? AND parent_id IS NULL AND position = ?",
                    (conv_id, position),
                )
            )
            if not others:
                _delete_tail(conn, conv_id, position)
                return
            before = [version for key, version in others if key < shown]
            replacement = before[-1] if before else others[0][1]
            old = _shelve(conn, conv_id, position)
            _unshelve(conn, replacement)
            conn.execute("DELETE FROM turn_versions WHERE id = ?", (old,))

    # -- search

    def search(self, query: str, limit: int = 200) -> list[SearchHit]:
        """Messages whose prompt, answer or thinking contains every word of `query`
        (case-insensitive substrings), newest conversation first. One hit per
        matching field, so a word in both thinking and answer gives two."""
        terms = query.split()
        if not terms:
            return []
        hits: list[SearchHit] = []
        for column in ("content", "thinking"):
            for row in self._search_column(column, terms, limit):
                if column == "thinking":
                    field_name = "thinking"
                else:
                    field_name = "prompt" if row["role"] == "user" else "answer"
                hits.append(
                    SearchHit(
                        conversation_id=row["conversation_id"],
                        title=row["title"],
                        message_id=row["id"],
                        position=row["position"],
                        field=field_name,
                        snippet=_snippet(row[column], terms),
                    )
                )
        order = {r.id: i for i, r in enumerate(self.list_conversations())}
        hits.sort(key=lambda h: (order.get(h.conversation_id, 0), h.position, FIELDS.index(h.field)))
        return hits[:limit]

    def _search_column(self, column: str, terms: list[str], limit: int) -> list[sqlite3.Row]:
        where: list[str] = []
        params: list[Any] = []
        # Trigram FTS needs terms of 3+ characters; shorter ones filter with LIKE.
        long_terms = [t for t in terms if len(t) >= 3] if self.has_fts else []
        if long_terms:
            phrases = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
            where.append("m.id IN (SELECT rowid FROM message_fts WHERE message_fts MATCH ?)")
            params.append(f"{{{column}}} : ({phrases})")
        for term in terms:
            if term not in long_terms:
                where.append(f"m.{column} LIKE ? ESCAPE '\\'")
                params.append("%" + re.sub(r"([%_\\])", r"\\\1", term) + "%")
        sql = f"""SELECT m.id, m.conversation_id, m.position, m.role, m.{column}, c.title
                  FROM messages m JOIN conversations c ON c.id = m.conversation_id
                  WHERE {' AND '.join(where)}
                  ORDER BY c.updated_at DESC, c.id DESC, m.position LIMIT ?"""
        with self._file.read() as conn:
            return conn.execute(sql, (*params, limit)).fetchall()


# --- helpers ----------------------------------------------------------------

_COLUMNS = ", ".join(MESSAGE_COLUMNS)
_NEWEST = 1 << 62  # a turn key above every message id


def _turn_key(messages: Iterable[Message], position: int) -> int:
    """What orders the versions of the turn at `position`: its answer's id (the message after
    the prompt; the prompt's where there is none). Ids only grow, so this is creation order."""
    ids = {m.position: m.id for m in messages if position <= m.position <= position + 1}
    return ids.get(position + 1, ids.get(position, 0))


def _key_of(conn: sqlite3.Connection, table: str, owner: str, owner_id: int, position: int) -> int | None:
    """_turn_key in SQL, for the shown tail (table messages) or a stored version."""
    row = conn.execute(
        f"SELECT id FROM {table} WHERE {owner} = ? AND position IN (?, ?) ORDER BY position DESC LIMIT 1",
        (owner_id, position, position + 1),
    ).fetchone()
    return None if row is None else row[0]


def _shelve(conn: sqlite3.Connection, conv_id: int, position: int) -> int:
    """Move the on-screen messages from `position` on into a new stored version (with the
    stored versions of the turns after `position`, which hang off them); its id."""
    if conn.execute(
        "SELECT 1 FROM messages WHERE conversation_id = ? AND position >= ? AND status = 'streaming'",
        (conv_id, position),
    ).fetchone():
        raise StorageError("An answer is still being written there; stop it or let it finish first.")
    version_id = conn.execute(
        "INSERT INTO turn_versions (conversation_id, parent_id, position, created_at) VALUES (?, NULL, ?, ?)",
        (conv_id, position, time.time()),
    ).lastrowid
    conn.execute(
        "UPDATE turn_versions SET parent_id = ? WHERE conversation_id = ? AND parent_id IS NULL AND position > ?",
        (version_id, conv_id, position),
    )
    conn.execute(
        f"""INSERT INTO version_messages ({_COLUMNS}, version_id)
            SELECT {_COLUMNS}, ? FROM messages WHERE conversation_id = ? AND position >= ?""",
        (version_id, conv_id, position),
    )
    conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conv_id, position))
    return version_id


def _unshelve(conn: sqlite3.Connection, version_id: int) -> None:
    """Put a stored version's messages back on screen (ids kept) and drop the version row;
    the versions inside it become versions of on-screen turns."""
    conn.execute(f"INSERT INTO messages ({_COLUMNS}) SELECT {_COLUMNS} FROM version_messages WHERE version_id = ?",
                 (version_id,))
    conn.execute("UPDATE turn_versions SET parent_id = NULL WHERE parent_id = ?", (version_id,))
    conn.execute("DELETE FROM turn_versions WHERE id = ?", (version_id,))  # its version_messages go with it


def _delete_tail(conn: sqlite3.Connection, conv_id: int, position: int) -> None:
    conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conv_id, position))
    conn.execute("DELETE FROM turn_versions WHERE conversation_id = ? AND parent_id IS NULL AND position >= ?",
                 (conv_id, position))


def _version_row(conn: sqlite3.Connection, conv_id: int, version_id: int) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM turn_versions WHERE id = ? AND conversation_id = ?", (version_id, conv_id)
    ).fetchone()
    if row is None:
        raise StorageError(f"There is no version {version_id} of this conversation; it may have been deleted.")
    return row


def _new_message_id(conn: sqlite3.Connection) -> int:
    """A message id never used before (messages' AUTOINCREMENT counter, advanced by one)."""
    conn.execute("INSERT OR IGNORE INTO sqlite_sequence (name, seq) VALUES ('messages', 0)")
    conn.execute("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'messages'")
    return conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()[0]


def _insert_message(conn: sqlite3.Connection, table: str, m: Message, conv_id: int, msg_id: int,
                    version_id: int | None = None) -> None:
    values = (msg_id, conv_id, m.position, m.role, m.content, m.thinking, json.dumps(list(m.flags)),
              dump_json(m.stats), m.model, dump_json(m.sampling), m.created_at, m.status,
              dump_spans(m.spans), m.prompt, dump_json(m.model_info))
    if version_id is None:
        conn.execute(f"INSERT INTO {table} ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
    else:
        conn.execute(f"INSERT INTO {table} ({_COLUMNS}, version_id) VALUES ({', '.join('?' * (len(values) + 1))})",
                     (*values, version_id))


def _not_found(conv_id: int) -> ConversationNotFound:
    return ConversationNotFound(f"There is no conversation with id {conv_id}; it may have been deleted.")


def _require(cur: sqlite3.Cursor, conv_id: int) -> None:
    if cur.rowcount == 0:
        raise _not_found(conv_id)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        position=row["position"],
        role=row["role"],
        content=row["content"],
        thinking=row["thinking"],
        status=row["status"],
        flags=tuple(load_flags(row["flags"])),
        stats=load_dict(row["stats"]),
        model=row["model"],
        sampling=load_dict(row["sampling"]),
        created_at=row["created_at"],
        spans=load_spans(row["spans"]),
        prompt=row["prompt"],
        model_info=load_dict(row["model_info"]),
    )


def _snippet(text: str, terms: list[str], width: int = 80) -> str:
    """About `width` characters of `text` around the first term found, on one
    line, cut at word boundaries where one is near."""
    match = re.search("|".join(re.escape(t) for t in terms), text, re.IGNORECASE)
    start = 0 if match is None else max(0, match.start() - width // 3)
    end = min(len(text), start + width)
    if start > 0:
        space = text.find(" ", start, start + width // 6)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", end - width // 6, end)
        end = space if space > start else end
    piece = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")
