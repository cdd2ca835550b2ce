"""Saved conversations: one SQLite file (`<data_dir>/conversations.db`).

Durability. The file runs in WAL mode with `synchronous=NORMAL`: a commit is
appended to the WAL with write(), so once `update_message` returns, the text
survives the app crashing or being killed (-9); only a power loss or OS crash can
drop the last commits, and even then the file is never corrupt. `FULL` would add
an fsync per commit, paid once a second by the streaming checkpoint for nothing
an app crash needs. Every public write is its own short transaction.

Streaming. The UI calls `add_message(..., status="streaming")` when an answer
starts, `update_message` about once a second with the text so far, and once more
with the final status. A message still 'streaming' when the file is next opened
was cut off by a crash: it becomes 'stopped' with the flag "interrupted".
Only the app does that (`recover_interrupted=True`); a reader that may run next
to a live app, like `ponder export`, passes False so it cannot mark the app's
live answer as interrupted.

Search. An FTS5 index (trigram tokenizer, so substrings and text without spaces,
e.g. Chinese, match) over message content and thinking, kept in sync by triggers.
Streaming messages are left out of it until they finish, so the once-a-second
checkpoints do not re-index a growing trace each time. Without FTS5 in the
sqlite3 build, and for search terms shorter than 3 characters, search uses LIKE.

Threads. A ChatStore is one connection and may only be used on the thread that
opened it (sqlite3's check_same_thread). The UI writes from the GUI thread only;
any other thread (an export, a test) opens its own ChatStore on the same file.
`check_integrity` is the exception: it opens a connection of its own, so any
thread may run it while the store goes on being used.

Failures. Every public method raises StorageError, with a sentence saying what
to do, for anything SQLite reports (locked file, disk error, full disk, damaged
file, a constraint the data breaks); ConversationNotFound when an id is gone.
Raw sqlite3 errors never leave this module, except ProgrammingError (a store
used on the wrong thread or after close: a bug, not the user's to fix).

Damaged files. Opening a file SQLite cannot read as a database moves it aside
(kept, renamed `conversations.db.corrupt-<time>`) and starts a new one. Damage
deeper in a file shows only when the page is read, and `PRAGMA quick_check`
reads every page: too slow for the start (1 GB: docs/architecture.md), so the
window runs `check_integrity` in the background after start. While the app
runs, a damaged file is never moved (the app still has it open, and the rest of
the chats in it still read): damage found by the check or by any read leaves a
note beside the file (`conversations.db.damaged`), and the next start runs
quick_check once and, if the damage is confirmed, moves the file aside.

Schema versions. `PRAGMA user_version` holds the number of applied MIGRATIONS;
opening a file applies the missing ones in order, each in its own transaction.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StorageError

log = logging.getLogger(__name__)

DB_FILENAME = "conversations.db"
DEFAULT_TITLE = "New chat"
TITLE_MAX_CHARS = 60
ROLES = ("system", "user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "error")
INTERRUPTED_FLAG = "interrupted"  # added to a message a crash left 'streaming'
FIELDS = ("prompt", "answer", "thinking")  # what SearchHit.field can be

DAMAGE_NOTE_SUFFIX = ".damaged"  # beside the file: damage was found, the next start confirms it
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another connection's lock before failing

# SQLite result codes that mean "this file is damaged" (as opposed to locked,
# read-only, missing permissions...). Only these move the file aside.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_INTERRUPT = 9


class ConversationNotFound(StorageError):
    """The conversation id does not exist (deleted, or never created)."""


class StoreDamaged(StorageError):
    """The conversation file is damaged (found by check_integrity or by a read)."""


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


# --- schema -----------------------------------------------------------------


def _migrate_v1(conn: sqlite3.Connection) -> None:
    # AUTOINCREMENT: ids are never reused, so an undone delete gets its old ids
    # back and `export --conversation ID` can never name a different chat later.
    conn.execute(
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            custom_title INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT
        )"""
    )
    conn.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            thinking TEXT NOT NULL DEFAULT '',
            flags TEXT NOT NULL DEFAULT '[]',
            stats TEXT,
            model TEXT,
            sampling TEXT,
            created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('complete', 'streaming', 'stopped', 'error')),
            UNIQUE (conversation_id, position)
        )"""
    )
    conn.execute("CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC)")


def _migrate_v2(conn: sqlite3.Connection) -> None:
    # Every start looks for messages a crash left 'streaming'. Without an index that reads
    # the whole file (status is stored after the long thinking text); this one holds only
    # the rare streaming rows, so the look-up costs nothing however big the file grows.
    conn.execute("CREATE INDEX messages_streaming ON messages (id) WHERE status = 'streaming'")


# MIGRATIONS[i] brings a file from version i to i + 1. Append, never edit or
# reorder: files in the wild are at every version. A new column, for example:
#
#   def _migrate_v3(conn):
#       conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
#
# plus the new column in the dataclasses and queries, and a test that opens a
# file left at the version before (made with MIGRATIONS[:n]) and finds its data and the column.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2]
SCHEMA_VERSION = len(MIGRATIONS)

# The search index is not part of the versioned schema: whether it can exist
# depends on the sqlite3 build that opens the file, not on the file.
_FTS_TABLE = """CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(
    content, thinking, content='messages', content_rowid='id', tokenize='trigram')"""
# External-content FTS: a delete must repeat exactly the indexed values, so the
# triggers index a row only while it is not streaming and unindex it likewise.
_FTS_TRIGGERS = {
    "message_fts_insert": """CREATE TRIGGER message_fts_insert AFTER INSERT ON messages
        WHEN new.status != 'streaming' BEGIN
        INSERT INTO message_fts (rowid, content, thinking) VALUES (new.id, new.content, new.thinking);
        END""",
    "message_fts_delete": """CREATE TRIGGER message_fts_delete AFTER DELETE ON messages
        WHEN old.status != 'streaming' BEGIN
        INSERT INTO message_fts (message_fts, rowid, content, thinking)
            VALUES ('delete', old.id, old.content, old.thinking);
        END""",
    # One trigger, two statements in order: separate triggers would run in an
    # unspecified order (SQLite runs the newest first) and could unindex the
    # row just indexed.
    "message_fts_update": """CREATE TRIGGER message_fts_update
        AFTER UPDATE OF content, thinking, status ON messages BEGIN
        INSERT INTO message_fts (message_fts, rowid, content, thinking)
            SELECT 'delete', old.id, old.content, old.thinking WHERE old.status != 'streaming';
        INSERT INTO message_fts (rowid, content, thinking)
            SELECT new.id, new.content, new.thinking WHERE new.status != 'streaming';
        END""",
}


def fts5_available() -> bool:
    """Whether this Python's sqlite3 has FTS5 with the trigram tokenizer (3.34+)."""
    try:
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
        finally:
            probe.close()
    except sqlite3.Error:
        return False
    return True


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_FILENAME


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
        self.path = Path(path)
        self._recover_interrupted = recover_interrupted
        # Set when the file was damaged and moved here; the UI says so once.
        self.recovered_from: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Could not create the folder {self.path.parent} for saved conversations "
                f"({exc.strerror or exc}); check that it can be written, or choose another data folder."
            ) from exc
        # Only the app acts on a damage note; a reader next to it (export) must not move its file.
        confirm_damage = recover_interrupted and self._damage_note.exists()
        try:
            self._conn = self._open(quick_check=confirm_damage)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise _storage_error(f"Could not open the conversation database {self.path}", exc) from exc
            log.warning("conversation database %s is damaged (%s); moving it aside", self.path, exc)
            self.recovered_from = self._move_aside()
            try:
                self._conn = self._open(quick_check=False)
            except sqlite3.DatabaseError as exc2:
                raise _storage_error(f"Could not create a new conversation database {self.path}", exc2) from exc2
        if confirm_damage:
            self._damage_note.unlink(missing_ok=True)  # dealt with: moved aside, or not confirmed

    # -- opening

    def _open(self, *, quick_check: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; _write() opens them.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            if quick_check:
                _raise_if_damaged(conn)
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                log.warning("could not switch %s to WAL mode", self.path)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
            # Triggers naming a missing FTS5 module would fail the recovery update.
            self.has_fts = fts5_available()
            if not self.has_fts:
                _drop_search_triggers(conn)
            if self._recover_interrupted:
                self._recover_streaming(conn)
            if self.has_fts:
                _build_search_index(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def check_integrity(self, cancel: threading.Event | None = None) -> bool:
        """Read every page of the file (SQLite's quick_check): True if it is sound, False if
        `cancel` was set before the check finished. Raises StoreDamaged if it is damaged.

        Seconds on a big file, so the window runs it in the background after start: it uses
        a read-only connection of its own, so any thread may call it while this store goes
        on being used. It changes nothing in the file; on damage it leaves the note that
        makes the next start confirm the damage and move the file aside.
        Raises StorageError if the file cannot be read at all (locked, disk error).
        """
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                if cancel is not None:  # SQLite calls it every 1000 steps; True interrupts the check
                    conn.set_progress_handler(cancel.is_set, 1000)
                _raise_if_damaged(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if cancel is not None and cancel.is_set() and _result_code(exc) == _SQLITE_INTERRUPT:
                return False
            raise self._failure("Could not check the conversation database", exc) from exc
        return True

    @property
    def _damage_note(self) -> Path:
        return self.path.with_name(self.path.name + DAMAGE_NOTE_SUFFIX)

    def _note_damage(self, detail: str) -> None:
        try:
            self._damage_note.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {detail}\n", encoding="utf-8")
        except OSError as exc:  # the sentence still reaches the user; only the next start's check is lost
            log.error("could not write %s: %s", self._damage_note, exc)

    def _failure(self, what: str, exc: sqlite3.Error) -> StorageError:
        """The StorageError for a failed SQLite call; damage also leaves the note for the next start."""
        if _is_corruption(exc):
            log.error("conversation database %s is damaged: %s", self.path, exc)
            self._note_damage(str(exc))
            return StoreDamaged(
                f"The conversation database {self.path} is damaged, so some chats may not open; "
                "copy out anything you still need, because the next start keeps the damaged file "
                "under a new name and begins a new, empty one."
            )
        if isinstance(exc, sqlite3.IntegrityError):
            log.error("constraint failed in %s", self.path, exc_info=exc)
        return _storage_error(what, exc)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"The conversation database {self.path} was written by a newer version of Ponder "
                f"(schema {version}, this version knows {SCHEMA_VERSION}). Update Ponder, "
                "or start it with --data-dir pointing to another folder."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[target - 1](conn)
                conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("conversation database %s migrated to schema %d", self.path, target)

    def _recover_streaming(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT id, flags FROM messages WHERE status = 'streaming'").fetchall()
        if not rows:
            return
        conn.execute("BEGIN IMMEDIATE")
        for row in rows:
            flags = _load_flags(row["flags"])
            if INTERRUPTED_FLAG not in flags:
                flags.append(INTERRUPTED_FLAG)
            conn.execute(
                "UPDATE messages SET status = 'stopped', flags = ? WHERE id = ?",
                (json.dumps(flags), row["id"]),
            )
        conn.execute("COMMIT")
        log.warning("%d message(s) were cut off by a crash; marked as stopped", len(rows))

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            self.path.replace(target)
            # SQLite usually deletes a damaged file's WAL on close; one left over
            # must not be replayed into the fresh file, so it goes along, named
            # so that SQLite pairs it with the moved file.
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(target.with_name(target.name + suffix))
        except OSError as exc:
            raise StorageError(
                f"The conversation database {self.path} is damaged and could not be moved aside "
                f"({exc.strerror or exc}). Move or delete it, then start Ponder again."
            ) from exc
        return target

    @property
    def recovery_message(self) -> str | None:
        """The sentence to show once when a damaged file was moved aside, else None."""
        if self.recovered_from is None:
            return None
        return (
            f"The conversation database was damaged, so it was moved to {self.recovered_from} "
            "and a new, empty one was started. The old file is kept as it was."
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; SQLite failures become StorageError."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.ProgrammingError:
            raise  # used on another thread or after close: a bug, not the user's to fix
        except sqlite3.Error as exc:
            raise self._failure("Could not save to the conversation database", exc) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Queries outside a transaction; SQLite failures become StorageError."""
        try:
            yield self._conn
        except sqlite3.ProgrammingError:
            raise  # used on another thread or after close: a bug, not the user's to fix
        except sqlite3.Error as exc:
            raise self._failure("Could not read the conversation database", exc) from exc

    # -- conversations

    def create_conversation(self, title: str = DEFAULT_TITLE) -> int:
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, custom_title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (title, title != DEFAULT_TITLE, now, now),
            )
        return cur.lastrowid

    def list_conversations(self) -> list[ConversationSummary]:
        with self._read() as conn:
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
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET title = ?, custom_title = 1 WHERE id = ?", (title, conv_id)
            )
            _require(cur, conv_id)

    def delete_conversation(self, conv_id: int) -> None:
        with self._write() as conn:
            _require(conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)), conv_id)

    def restore_conversation(self, snapshot: Conversation) -> int:
        """Put back a conversation taken with get_conversation before deleting it.

        It keeps its ids when they are free (they are after a delete, since ids
        are never reused); restored a second time it gets new ones.
        """
        with self._write() as conn:
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
                        _dump(m.stats),
                        m.model,
                        _dump(m.sampling),
                        m.created_at,
                        m.status,
                    ),
                )
        return conv_id

    def get_conversation(self, conv_id: int) -> Conversation:
        with self._read() as conn:
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
        with self._write() as conn:
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
                 _dump(stats), model, _dump(sampling), now, status),
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
            changes["stats"] = _dump(stats)
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)  # names from the fixed set above
        with self._write() as conn:
            row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (msg_id,)).fetchone()
            if row is None:
                raise StorageError(f"There is no message {msg_id}; it may have been deleted.")
            conn.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*changes.values(), msg_id))
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), row[0]))

    def delete_messages_from(self, conv_id: int, position: int) -> None:
        """Delete the message at `position` and all after it (regenerate, edit and resend)."""
        with self._write() as conn:
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
        with self._read() as conn:
            return conn.execute(sql, (*params, limit)).fetchall()


# --- helpers ----------------------------------------------------------------


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    # Raised by _open itself for a failed quick_check (no error code attached).
    return type(exc) is sqlite3.DatabaseError


def _drop_search_triggers(conn: sqlite3.Connection) -> None:
    """Without FTS5 the triggers would fail every write; search falls back to LIKE."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for name in sorted(_FTS_TRIGGERS.keys() & have):
        conn.execute(f"DROP TRIGGER {name}")


def _build_search_index(conn: sqlite3.Connection) -> None:
    """Create and fill the index for a new file, or one last written without FTS5
    (its index, if any, missed those writes)."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    if have >= _FTS_TRIGGERS.keys():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_FTS_TABLE)
        for name, sql in _FTS_TRIGGERS.items():
            if name not in have:
                conn.execute(sql)
        conn.execute("INSERT INTO message_fts (message_fts) VALUES ('rebuild')")
        # 'rebuild' takes every row; the triggers expect streaming ones left out.
        conn.execute(
            """INSERT INTO message_fts (message_fts, rowid, content, thinking)
               SELECT 'delete', id, content, thinking FROM messages WHERE status = 'streaming'"""
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _raise_if_damaged(conn: sqlite3.Connection) -> None:
    result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]  # (1): stop at the first problem
    if result != "ok":
        raise sqlite3.DatabaseError(f"database disk image is malformed: {result}")


# What a person can do about each primary SQLite result code (the low byte of the extended code).
_REMEDIES = {
    5: "another program is using the file (another Ponder, or a backup or sync tool); close it and try again",  # BUSY
    6: "another program is using the file (another Ponder, or a backup or sync tool); close it and try again",  # LOCKED
    7: "the computer ran out of memory; close some programs and try again",  # NOMEM
    8: "the file is read-only; check the permissions of the file and its folder",  # READONLY
    10: "the disk reported a read or write error; check that the drive is connected and healthy, then try again",  # IOERR
    13: "the disk is full; free some space and try again",  # FULL
    14: "the file cannot be opened; check that its folder exists and can be written",  # CANTOPEN
    19: "the change conflicts with what is saved (a bug in Ponder; please report it)",  # CONSTRAINT
    23: "access to the file was denied; check its permissions",  # AUTH
}


def _result_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code (the low byte of the extended one); 0 if none is attached."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _storage_error(what: str, exc: sqlite3.Error) -> StorageError:
    return StorageError(f"{what}: {_REMEDIES.get(_result_code(exc)) or str(exc)}.")


def _not_found(conv_id: int) -> ConversationNotFound:
    return ConversationNotFound(f"There is no conversation with id {conv_id}; it may have been deleted.")


def _require(cur: sqlite3.Cursor, conv_id: int) -> None:
    if cur.rowcount == 0:
        raise _not_found(conv_id)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _load_flags(text: str) -> list[str]:
    try:
        flags = json.loads(text)
    except (TypeError, ValueError):
        return []
    return [str(f) for f in flags] if isinstance(flags, list) else []


def _load_dict(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        position=row["position"],
        role=row["role"],
        content=row["content"],
        thinking=row["thinking"],
        status=row["status"],
        flags=tuple(_load_flags(row["flags"])),
        stats=_load_dict(row["stats"]),
        model=row["model"],
        sampling=_load_dict(row["sampling"]),
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
