"""The conversation file's tables: numbered migrations and the search index.

Schema versions. `PRAGMA user_version` holds the number of applied MIGRATIONS;
`migrate` applies the missing ones in order, each in its own transaction. Append
new migrations, never edit or reorder one: files in the wild are at every version.

Search index. An FTS5 index (trigram tokenizer, so substrings and text without
spaces, e.g. Chinese, match) over message content and thinking, kept in sync by
triggers. Streaming messages are left out of it until they finish, so the
once-a-second checkpoints do not re-index a growing trace each time. It is not
part of the versioned schema: whether it can exist depends on the sqlite3 build
that opens the file, not on the file.

Column encodings shared by the store and the file: `flags` is a JSON list of
strings; `stats`, `sampling` and `model_info` are JSON objects or NULL; `spans` is
a JSON list of objects or NULL.

Versions (v3). `turn_versions` + `version_messages` hold the versions of a turn
that are not on screen; `messages` holds exactly what is on screen. A migration
that adds a column to `messages` adds it to `version_messages` too, and to
MESSAGE_COLUMNS below.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.errors import StorageError

log = logging.getLogger(__name__)


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


def _migrate_v3(conn: sqlite3.Connection) -> None:
    # Issue 9: what each answer was made from, and versions of a turn.
    #   messages.spans: JSON list of the spans a person or Ponder inserted into the text
    #     ({"field": "thinking", "start", "end", "by": "ponder"|"user", "kind": ...}); NULL = none.
    #   messages.prompt: the exact text the model was sent (template applied); NULL = not kept.
    #   messages.model_info: JSON object (name, file, quantization, sha256, source); NULL = unknown.
    #   conversations.keep_thinking: 1 = earlier thinking goes back into the prompt.
    conn.execute("ALTER TABLE messages ADD COLUMN spans TEXT")
    conn.execute("ALTER TABLE messages ADD COLUMN prompt TEXT")
    conn.execute("ALTER TABLE messages ADD COLUMN model_info TEXT")
    conn.execute("ALTER TABLE conversations ADD COLUMN keep_thinking INTEGER NOT NULL DEFAULT 0")
    # A version of a turn is a tail of the conversation (the prompt at `position`, its answer
    # and everything after) that is not on screen. Its messages move, ids and all, from
    # `messages` to `version_messages` and back, each move one transaction (storage.py).
    # parent_id NULL: a version of a turn of the conversation on screen; else a version of a
    # turn inside that (not shown) version's tail.
    conn.execute(
        """CREATE TABLE turn_versions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES turn_versions(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            created_at REAL NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX turn_versions_by_turn ON turn_versions (conversation_id, parent_id, position)")
    conn.execute("CREATE INDEX turn_versions_by_parent ON turn_versions (parent_id)")
    # The same columns as `messages` (a later migration that adds a column to one adds it to
    # both), plus the version holding the row. Not in the search index: search finds what is
    # on screen.
    conn.execute(
        """CREATE TABLE version_messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            thinking TEXT NOT NULL DEFAULT '',
            flags TEXT NOT NULL DEFAULT '[]',
            stats TEXT,
            model TEXT,
            sampling TEXT,
            created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            spans TEXT,
            prompt TEXT,
            model_info TEXT,
            version_id INTEGER NOT NULL REFERENCES turn_versions(id) ON DELETE CASCADE,
            UNIQUE (version_id, position)
        )"""
    )


# MIGRATIONS[i] brings a file from version i to i + 1. Append, never edit or
# reorder: files in the wild are at every version. A new column, for example:
#
#   def _migrate_v3(conn):
#       conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
#
# plus the new column in the dataclasses and queries (app/core/storage.py), and a test
# that opens a file left at the version before (made with MIGRATIONS[:n]) and finds its
# data and the column.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2, _migrate_v3]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file open on `conn` to SCHEMA_VERSION; StorageError if a newer Ponder wrote it."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"The conversation database {path} was written by a newer version of Ponder "
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
        log.info("conversation database %s migrated to schema %d", path, target)


# The columns `messages` and `version_messages` share, in one order: moving a message
# between them is INSERT ... SELECT of these.
MESSAGE_COLUMNS = ("id", "conversation_id", "position", "role", "content", "thinking", "flags", "stats",
                   "model", "sampling", "created_at", "status", "spans", "prompt", "model_info")


# --- the search index -------------------------------------------------------

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


def drop_search_triggers(conn: sqlite3.Connection) -> None:
    """Without FTS5 the triggers would fail every write; search falls back to LIKE."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for name in sorted(_FTS_TRIGGERS.keys() & have):
        conn.execute(f"DROP TRIGGER {name}")


def build_search_index(conn: sqlite3.Connection) -> None:
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


# --- column encodings -------------------------------------------------------


def dump_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def load_flags(text: str) -> list[str]:
    try:
        flags = json.loads(text)
    except (TypeError, ValueError):
        return []
    return [str(f) for f in flags] if isinstance(flags, list) else []


def load_spans(text: str | None) -> tuple[dict[str, Any], ...]:
    if text is None:
        return ()
    try:
        spans = json.loads(text)
    except ValueError:
        return ()
    return tuple(s for s in spans if isinstance(s, dict)) if isinstance(spans, list) else ()


def dump_spans(spans: Any) -> str | None:
    return json.dumps([dict(s) for s in spans]) if spans else None


def load_dict(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
