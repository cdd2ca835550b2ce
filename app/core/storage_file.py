"""The SQLite file behind a ChatStore: opening it, keeping it sound, and saying what went wrong.

`StoreFile` opens `<data_dir>/conversations.db` (WAL, pragmas, migrations from
app/core/storage_schema.py, the search index), marks answers a crash cut off,
finds and handles damage, runs the integrity check, and turns every SQLite error
into a StorageError with a sentence a person can act on. The conversation and
message queries are ChatStore's (app/core/storage.py), run through `read()` and
`write()`.

Durability. The file runs in WAL mode with `synchronous=NORMAL`: a commit is
appended to the WAL with write(), so once a write returns, the text survives
the app crashing or being killed (-9); only a power loss or OS crash can drop
the last commits, and even then the file is never corrupt. `FULL` would add an
fsync per commit, paid once a second by the streaming checkpoint for nothing an
app crash needs. Every `write()` is its own short transaction.

Interrupted answers. A message still 'streaming' when the file is opened was cut
off by a crash: it becomes 'stopped' with the flag "interrupted". Only the app
does that (`recover_interrupted=True`); a reader that may run next to a live
app, like `ponder export`, passes False so it cannot mark the app's live answer
as interrupted.

Threads. A StoreFile is one connection and may only be used on the thread that
opened it (sqlite3's check_same_thread). `check_integrity` is the exception: it
opens a connection of its own, so any thread may run it while the file goes on
being used.

Failures. `read()` and `write()` turn anything SQLite reports (locked file, disk
error, full disk, damaged file, a constraint the data breaks) into StorageError,
with a sentence saying what to do. Raw sqlite3 errors never leave them, except
ProgrammingError (a store used on the wrong thread or after close: a bug, not
the user's to fix).

Damaged files. Opening a file SQLite cannot read as a database moves it aside
(kept, renamed `conversations.db.corrupt-<time>`) and starts a new one. Damage
deeper in a file shows only when the page is read, and `PRAGMA quick_check`
reads every page: too slow for the start (1 GB: docs/architecture.md), so the
window runs `check_integrity` in the background after start. While the app
runs, a damaged file is never moved (the app still has it open, and the rest of
the chats in it still read): damage found by the check or by any read leaves a
note beside the file (`conversations.db.damaged`), and the next start runs
quick_check once and, if the damage is confirmed, moves the file aside.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core import storage_schema as schema
from app.core.errors import StorageError

log = logging.getLogger(__name__)

DB_FILENAME = "conversations.db"
INTERRUPTED_FLAG = "interrupted"  # added to a message a crash left 'streaming'
DAMAGE_NOTE_SUFFIX = ".damaged"  # beside the file: damage was found, the next start confirms it
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another connection's lock before failing

# SQLite result codes that mean "this file is damaged" (as opposed to locked,
# read-only, missing permissions...). Only these move the file aside.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_INTERRUPT = 9


class StoreDamaged(StorageError):
    """The conversation file is damaged (found by check_integrity or by a read)."""


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_FILENAME


class StoreFile:
    """One open connection to the conversation file. One thread per instance."""

    def __init__(self, path: Path, *, recover_interrupted: bool = True) -> None:
        self.path = Path(path)
        self._recover_interrupted = recover_interrupted
        # Set when the file was damaged and moved here; the UI says so once.
        self.recovered_from: Path | None = None
        self.has_fts = False  # whether search uses the FTS5 index (else LIKE); set by _open
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
            self.conn = self._open(quick_check=confirm_damage)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise _storage_error(f"Could not open the conversation database {self.path}", exc) from exc
            log.warning("conversation database %s is damaged (%s); moving it aside", self.path, exc)
            self.recovered_from = self._move_aside()
            try:
                self.conn = self._open(quick_check=False)
            except sqlite3.DatabaseError as exc2:
                raise _storage_error(f"Could not create a new conversation database {self.path}", exc2) from exc2
        if confirm_damage:
            self._damage_note.unlink(missing_ok=True)  # dealt with: moved aside, or not confirmed

    # -- opening

    def _open(self, *, quick_check: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; write() opens them.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            if quick_check:
                _raise_if_damaged(conn)
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                log.warning("could not switch %s to WAL mode", self.path)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            schema.migrate(conn, self.path)
            # Triggers naming a missing FTS5 module would fail the recovery update.
            self.has_fts = schema.fts5_available()
            if not self.has_fts:
                schema.drop_search_triggers(conn)
            if self._recover_interrupted:
                self._recover_streaming(conn)
            if self.has_fts:
                schema.build_search_index(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _recover_streaming(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT id, flags FROM messages WHERE status = 'streaming'").fetchall()
        if not rows:
            return
        conn.execute("BEGIN IMMEDIATE")
        for row in rows:
            flags = schema.load_flags(row["flags"])
            if INTERRUPTED_FLAG not in flags:
                flags.append(INTERRUPTED_FLAG)
            conn.execute(
                "UPDATE messages SET status = 'stopped', flags = ? WHERE id = ?",
                (json.dumps(flags), row["id"]),
            )
        conn.execute("COMMIT")
        log.warning("%d message(s) were cut off by a crash; marked as stopped", len(rows))

    # -- damage

    def check_integrity(self, cancel: threading.Event | None = None) -> bool:
        """Read every page of the file (SQLite's quick_check): True if it is sound, False if
        `cancel` was set before the check finished. Raises StoreDamaged if it is damaged.

        Seconds on a big file, so the window runs it in the background after start: it uses
        a read-only connection of its own, so any thread may call it while this file
        goes on being used. It changes nothing in the file; on damage it leaves the note that
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
            raise self.failure("Could not check the conversation database", exc) from exc
        return True

    @property
    def _damage_note(self) -> Path:
        return self.path.with_name(self.path.name + DAMAGE_NOTE_SUFFIX)

    def _note_damage(self, detail: str) -> None:
        try:
            self._damage_note.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {detail}\n", encoding="utf-8")
        except OSError as exc:  # the sentence still reaches the user; only the next start's check is lost
            log.error("could not write %s: %s", self._damage_note, exc)

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

    # -- using the connection

    def failure(self, what: str, exc: sqlite3.Error) -> StorageError:
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

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; SQLite failures become StorageError."""
        conn = self.conn
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
            raise self.failure("Could not save to the conversation database", exc) from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Queries outside a transaction; SQLite failures become StorageError."""
        try:
            yield self.conn
        except sqlite3.ProgrammingError:
            raise  # used on another thread or after close: a bug, not the user's to fix
        except sqlite3.Error as exc:
            raise self.failure("Could not read the conversation database", exc) from exc

    def close(self) -> None:
        self.conn.close()


# --- SQLite errors ----------------------------------------------------------


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    # Raised by _raise_if_damaged for a failed quick_check (no error code attached).
    return type(exc) is sqlite3.DatabaseError


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
