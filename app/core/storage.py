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
    MIGRATIONS,
    SCHEMA_VERSION,
    dump_json,
    fts5_available,
    load_dict,
    load_flags,
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
    messages: list[Message] = field(default_factory=list)


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
        """Put back a conversation taken with get_conversation before deleting it.

        It keeps its ids when they are free (they are after a delete, since ids
        are never reused); restored a second time it gets new ones.
        """
        with self._file.write() as conn:
            taken = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (snapshot.id,)).fetchone()
            keep_ids = taken is None and not any(
                conn.execute("SELECT 1 FROM messages WHERE id = ?", (m.id,)).fetchone()
                for m in snapshot.messages
            )
            cur = conn.execute(
                """INSERT INTO conversations (id, title, custom_title, created_at, updated_at, model)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (
                    snapshot.id if keep_ids else None,
                    snapshot.title,
                    snapshot.custom_title,
                    snapshot.created_at,
                    snapshot.updated_at,
                    snapshot.model,
                ),
            )
            conv_id = cur.lastrowid
            for m in snapshot.messages:
                conn.execute(
                    """INSERT INTO messages (id, conversation_id, position, role, content, thinking,
                           flags, stats, model, sampling, created_at, status)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        m.id if keep_ids else None,
                        conv_id,
                        m.position,
                        m.role,
                        m.content,
                        m.thinking,
                        json.dumps(list(m.flags)),
                        dump_json(m.stats),
                        m.model,
                        dump_json(m.sampling),
                        m.created_at,
                        m.status,
                    ),
                )
        return conv_id

    def get_conversation(self, conv_id: int) -> Conversation:
        with self._file.read() as conn:
            row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
            if row is None:
                raise _not_found(conv_id)
            rows = conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position", (conv_id,)
            ).fetchall()
        return Conversation(
            id=row["id"],
            title=row["title"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            model=row["model"],
            custom_title=bool(row["custom_title"]),
            messages=[_message(r) for r in rows],
        )

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
                       stats, model, sampling, created_at, status)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (conv_id, position, role, content, thinking, json.dumps(list(flags)),
                 dump_json(stats), model, dump_json(sampling), now, status),
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
    ) -> None:
        """Overwrite the given fields; None leaves a field as it is. Cheap enough
        to call once a second while streaming (one row, no search re-index)."""
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
        """Delete the message at `position` and all after it (regenerate, edit and resend)."""
        with self._file.write() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conv_id, position))
            _require(
                conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conv_id)),
                conv_id,
            )

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
