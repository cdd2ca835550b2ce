"""Shared by the ChatStore tests (test_storage.py, test_storage_versions.py; their `db` and
`store` fixtures are in tests/core/conftest.py): SQLite's and FTS5's own integrity checks,
and a child process that writes to the store until it is killed with SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from app.core.storage import ChatStore

REPO = Path(__file__).resolve().parents[2]


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def fts_integrity_ok(store: ChatStore) -> None:
    """FTS5's own check; rank 1 also compares the index with the messages table."""
    if store.has_fts:
        store._conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


def kill_child_after(code: str, db: Path, count: int) -> tuple[str, int]:
    """Run `code` with the database path as argv[1]; it prints one header line, then a rising
    counter per write. SIGKILL it once the counter reaches `count`: returns (header, last count)."""
    child = subprocess.Popen([sys.executable, "-c", code, str(db)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        header = child.stdout.readline()
        last = 0
        while last < count:
            line = child.stdout.readline()
            assert line, "the child died before it was killed"
            last = int(line)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    return header, last
