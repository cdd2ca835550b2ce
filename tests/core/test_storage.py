"""ChatStore on real SQLite files: durability under SIGKILL, recovery from damaged
files, migrations, search over prompts/answers/thinking, delete and undo."""

from __future__ import annotations

import os
import sqlite3
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.errors import StorageError
from app.core.storage import (
    DAMAGE_NOTE_SUFFIX,
    DEFAULT_TITLE,
    INTERRUPTED_FLAG,
    MIGRATIONS,
    SCHEMA_VERSION,
    ChatStore,
    ConversationNotFound,
    StoreDamaged,
    fts5_available,
    title_from_prompt,
)
from app.core.storage_file import _storage_error
from tests.core.storage_helpers import fts_integrity_ok, integrity, kill_child_after


def chat(store: ChatStore, prompt: str, thinking: str, answer: str, **kw) -> tuple[int, int, int]:
    conv = store.create_conversation()
    user = store.add_message(conv, "user", prompt)
    reply = store.add_message(conv, "assistant", answer, thinking, **kw)
    return conv, user, reply


# --- schema and opening -------------------------------------------------------


def test_new_file_is_created_in_wal_mode_at_current_schema(db: Path):
    with ChatStore(db) as store:
        assert store.recovered_from is None
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert integrity(db) == "ok"


def test_empty_existing_file_is_migrated(db: Path):
    db.write_bytes(b"")  # SQLite treats a zero-byte file as an empty database
    with ChatStore(db) as store:
        assert store.recovered_from is None
        conv = store.create_conversation()
        assert store.get_conversation(conv).title == DEFAULT_TITLE


def test_reopening_keeps_data_and_does_not_migrate_again(db: Path):
    with ChatStore(db) as store:
        conv, _, reply = chat(store, "hello", "hmm", "hi there")
    schema_before = sqlite3.connect(db).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    for _ in range(2):
        with ChatStore(db) as store:
            c = store.get_conversation(conv)
            assert [m.content for m in c.messages] == ["hello", "hi there"]
            assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite3.connect(db).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema_before


def test_file_from_a_newer_version_is_refused_and_left_alone(db: Path):
    with ChatStore(db):
        pass
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StorageError, match="newer version of Ponder"):
        ChatStore(db)
    assert db.read_bytes() == before
    assert not list(db.parent.glob("*.corrupt-*"))


def test_unopenable_path_is_a_storage_error_not_a_recovery(tmp_path: Path):
    target = tmp_path / "conversations.db"
    target.mkdir()  # a directory where the file should be
    with pytest.raises(StorageError, match="conversation database .*cannot be opened; check that its folder"):
        ChatStore(target)
    assert target.is_dir() and not list(tmp_path.glob("*.corrupt-*"))


def _with_v2(monkeypatch, migrate_v2) -> None:
    monkeypatch.setattr("app.core.storage_schema.MIGRATIONS", [*MIGRATIONS, migrate_v2])
    monkeypatch.setattr("app.core.storage_schema.SCHEMA_VERSION", SCHEMA_VERSION + 1)


def test_a_new_migration_upgrades_an_old_file_and_keeps_its_data(db: Path, monkeypatch):
    with ChatStore(db) as store:
        conv, _, _ = chat(store, "before the upgrade", "t", "a")

    def migrate_v2(conn):
        conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    _with_v2(monkeypatch, migrate_v2)
    with ChatStore(db) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert store._conn.execute("SELECT pinned FROM conversations WHERE id = ?", (conv,)).fetchone()[0] == 0
        assert store.get_conversation(conv).messages[0].content == "before the upgrade"


def test_a_v1_file_gets_the_streaming_index_and_keeps_its_data(db: Path, monkeypatch):
    monkeypatch.setattr("app.core.storage_schema.MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr("app.core.storage_schema.SCHEMA_VERSION", 1)
    with ChatStore(db) as store:  # today's add_message writes v3 columns: the rows as v1 wrote them
        conn = store._conn
        conv = conn.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('c', 0, 0)").lastrowid
        for position, (role, status) in enumerate([("user", "complete"), ("assistant", "streaming")]):
            conn.execute("INSERT INTO messages (conversation_id, position, role, content, created_at, status) "
                         "VALUES (?, ?, ?, ?, 0, ?)", (conv, position, role, "from v1" if position == 0 else "", status))
    monkeypatch.undo()
    with ChatStore(db) as store:
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT id, flags FROM messages WHERE status = 'streaming'").fetchall()
        assert "messages_streaming" in plan[0]["detail"]  # the start's look-up does not read every message
        messages = store.get_conversation(conv).messages
        assert messages[0].content == "from v1"
        assert messages[1].status == "stopped" and INTERRUPTED_FLAG in messages[1].flags


def test_a_failing_migration_leaves_the_file_at_its_old_version(db: Path, monkeypatch):
    with ChatStore(db) as store:
        conv, _, _ = chat(store, "keep me", "t", "a")

    def broken_v2(conn):
        conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER")
        conn.execute("ALTER TABLE no_such_table ADD COLUMN x")

    _with_v2(monkeypatch, broken_v2)
    with pytest.raises(StorageError, match="Could not open the conversation database"):
        ChatStore(db)
    assert not list(db.parent.glob("*.corrupt-*"))
    monkeypatch.undo()
    with ChatStore(db) as store:  # still a sound v1 file, without the half-applied column
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [r[1] for r in store._conn.execute("PRAGMA table_info(conversations)")]
        assert "pinned" not in columns
        assert store.get_conversation(conv).messages[0].content == "keep me"


# --- damaged files ------------------------------------------------------------


def _assert_recovered(db: Path, original: bytes) -> None:
    with ChatStore(db) as store:
        assert store.recovered_from is not None
        assert store.recovered_from.name.startswith("conversations.db.corrupt-")
        assert store.recovered_from.read_bytes() == original  # nothing is lost: the old file is kept
        assert str(store.recovered_from) in store.recovery_message
        assert store.list_conversations() == []
        store.create_conversation()  # the fresh file works
    assert integrity(db) == "ok"
    with ChatStore(db) as store:  # and the next start is normal
        assert store.recovered_from is None and store.recovery_message is None
        assert len(store.list_conversations()) == 1


def test_random_bytes_file_is_moved_aside_and_replaced(db: Path):
    original = os.urandom(16384)
    db.write_bytes(original)
    _assert_recovered(db, original)


def _filled_db(db: Path, n: int = 40) -> None:
    with ChatStore(db) as store:
        for i in range(n):
            chat(store, f"prompt {i} " * 50, f"thinking {i} " * 200, f"answer {i} " * 100)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _root_page(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        conn.close()


def _overwrite_pages(db: Path, pages: tuple[int, ...]) -> bytes:
    """Random bytes over the given pages (numbered from 1), the header page left intact."""
    data = bytearray(db.read_bytes())
    size = 4096
    for n in pages:
        data[(n - 1) * size : n * size] = os.urandom(size)
    db.write_bytes(bytes(data))
    return bytes(data)


def _truncate(db: Path) -> bytes:
    data = db.read_bytes()
    assert len(data) > 64 * 1024
    db.write_bytes(data[: len(data) // 2])
    return data[: len(data) // 2]


def _damaged_after_start(db: Path, original: bytes) -> None:
    """Damage the start does not read: the background check finds it, the file stays as it is
    while the app runs, and the next start confirms it and moves the file aside."""
    with ChatStore(db) as store:
        assert store.recovered_from is None  # the start does not read every page
        with pytest.raises(StoreDamaged, match=r"is damaged, so some chats may not open; .* next start"):
            store.check_integrity()
        assert store.list_conversations()  # the readable part still reads
    assert db.read_bytes() == original
    assert db.with_name(db.name + DAMAGE_NOTE_SUFFIX).exists()
    _assert_recovered(db, original)
    assert not db.with_name(db.name + DAMAGE_NOTE_SUFFIX).exists()


def test_truncated_file_is_moved_aside_and_replaced(db: Path):
    _filled_db(db)
    _assert_recovered(db, _truncate(db))  # the start itself meets this damage


def test_file_with_overwritten_pages_is_found_by_the_check_and_moved_aside_at_the_next_start(db: Path):
    _filled_db(db)
    # Pages that listing the conversations does not read: the messages and the search index.
    _damaged_after_start(db, _overwrite_pages(db, (_root_page(db, "messages"), _root_page(db, "message_fts_idx"))))


def test_a_read_that_meets_damage_says_so_and_the_next_start_moves_the_file_aside(db: Path):
    _filled_db(db)
    original = _overwrite_pages(db, (_root_page(db, "messages"),))
    with ChatStore(db) as store:
        conv = store.list_conversations()[0].id
        with pytest.raises(StoreDamaged, match="copy out anything you still need"):
            store.get_conversation(conv)
    assert db.read_bytes() == original
    _assert_recovered(db, original)


def test_a_sound_file_passes_the_check_and_a_stale_note_is_dropped(db: Path):
    _filled_db(db, n=3)
    with ChatStore(db) as store:
        store.check_integrity()
    note = db.with_name(db.name + DAMAGE_NOTE_SUFFIX)
    note.write_text("left by a check before the file was restored from a backup")
    with ChatStore(db) as store:  # the next start checks again and finds nothing
        assert store.recovered_from is None
        assert len(store.list_conversations()) == 3
    assert not note.exists()


def test_check_integrity_runs_on_another_thread_while_the_store_is_used(db: Path):
    _filled_db(db, n=3)
    with ChatStore(db) as store:
        errors: list[BaseException] = []

        def check() -> None:
            try:
                assert store.check_integrity() is True
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        worker = threading.Thread(target=check)
        worker.start()
        store.create_conversation()
        worker.join(timeout=30)
        assert not worker.is_alive() and errors == []


def test_check_integrity_stops_when_cancelled(db: Path):
    _filled_db(db)
    cancel = threading.Event()
    with ChatStore(db) as store:
        assert store.check_integrity(cancel) is True
        cancel.set()  # the app is closing
        assert store.check_integrity(cancel) is False
    assert not db.with_name(db.name + DAMAGE_NOTE_SUFFIX).exists()


# --- failures the user can act on ----------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr("app.core.storage_file.BUSY_TIMEOUT_S", 0.1)


def test_a_file_locked_by_another_program_at_start_is_a_sentence(db: Path, short_busy_timeout):
    ChatStore(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode=EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="Could not open the conversation database .*: another program "
                                               "is using the file .*; close it and try again"):
            ChatStore(db)
    finally:
        other.close()
    assert not list(db.parent.glob("*.corrupt-*"))


def test_a_write_blocked_by_another_program_is_a_sentence(store: ChatStore, short_busy_timeout):
    conv = store.create_conversation()
    other = sqlite3.connect(store.path, timeout=0.1, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        for write in (lambda: store.add_message(conv, "user", "x"), lambda: store.rename_conversation(conv, "y"),
                      store.create_conversation, lambda: store.delete_conversation(conv)):
            with pytest.raises(StorageError, match="Could not save .*another program is using the file"):
                write()
    finally:
        other.close()
    assert store.get_conversation(conv).messages == []


def test_a_read_blocked_by_another_program_is_a_sentence(db: Path, short_busy_timeout):
    # Readers never wait in WAL mode; where the file system refuses WAL the store runs with a
    # rollback journal, and there another program's exclusive lock blocks reads as well.
    with ChatStore(db) as store:
        conv, _, _ = chat(store, "q", "t", "a")
        store._conn.execute("PRAGMA journal_mode=DELETE")
        other = sqlite3.connect(db, timeout=0.1, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            for read in (store.list_conversations, lambda: store.get_conversation(conv),
                         lambda: store.search("query")):
                with pytest.raises(StorageError, match="Could not read .*another program is using the file"):
                    read()
        finally:
            other.close()
        assert store.get_conversation(conv).messages[0].content == "q"


def test_a_full_disk_is_a_sentence_and_writes_nothing(store: ChatStore):
    conv = store.create_conversation()
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # what a full disk looks like to SQLite
    with pytest.raises(StorageError, match="the disk is full; free some space and try again"):
        store.add_message(conv, "assistant", "answer " * 20_000, "thinking " * 20_000)
    assert store.get_conversation(conv).messages == []


def test_a_constraint_the_data_breaks_is_a_sentence_not_a_raw_sqlite_error(store: ChatStore):
    conv, _, _ = chat(store, "q", "t", "a")
    snapshot = store.get_conversation(conv)
    clash = replace(snapshot, messages=[replace(m, position=0) for m in snapshot.messages])
    with pytest.raises(StorageError, match="conflicts with what is saved"):
        store.restore_conversation(clash)
    assert len(store.list_conversations()) == 1  # nothing half-restored


def test_a_disk_error_says_to_check_the_drive():
    error = sqlite3.OperationalError("disk I/O error")  # a failing drive cannot be staged on demand
    error.sqlite_errorcode = 10 | (4 << 8)  # SQLITE_IOERR_READ
    message = str(_storage_error("Could not read the conversation database", error))
    assert message == ("Could not read the conversation database: the disk reported a read or write error; "
                       "check that the drive is connected and healthy, then try again.")


# --- durability: SIGKILL mid-stream ---------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from app.core.storage import ChatStore

    def text(k):  # the text at checkpoint k; the parent recomputes it
        return "".join(f"token{i} " for i in range(k * 40))

    store = ChatStore(Path(sys.argv[1]))
    conv = store.create_conversation()
    store.add_message(conv, "user", "Explain the proof step by step")
    msg = store.add_message(conv, "assistant", status="streaming", model="scripted")
    print(conv, msg, flush=True)
    k = 0
    while True:  # checkpoint as fast as possible, so the kill lands mid-write
        k += 1
        store.update_message(msg, thinking=text(k), content=text(k // 2))
        print(k, flush=True)
    """
)


def _text(k: int) -> str:
    return "".join(f"token{i} " for i in range(k * 40))


@pytest.mark.parametrize("checkpoints", [3, 25, 120])
def test_sigkill_mid_stream_keeps_every_checkpoint_and_a_sound_file(db: Path, checkpoints: int):
    header, last = kill_child_after(CHILD, db, checkpoints)
    conv, msg = map(int, header.split())

    assert db.with_name(db.name + "-wal").exists()  # killed before any clean close
    with ChatStore(db) as store:
        c = store.get_conversation(conv)
        user, reply = c.messages
        assert user.content == "Explain the proof step by step"
        assert reply.id == msg
        # Everything up to the last checkpoint the child reported, maybe one or two more.
        k = len(reply.thinking.split()) // 40
        assert k >= last
        assert reply.thinking == _text(k) and reply.content == _text(k // 2)
        assert reply.status == "stopped" and INTERRUPTED_FLAG in reply.flags
        fts_integrity_ok(store)
        assert any(h.message_id == msg for h in store.search(f"token{last * 40 - 1}"))
    assert integrity(db) == "ok"


def test_interrupted_message_is_marked_only_once(db: Path):
    with ChatStore(db) as store:
        _, _, reply = chat(store, "q", "partial thought", "", status="streaming", flags=["unclosed"])
    # A clean close with a message still streaming looks like a crash to the next open.
    for _ in range(2):
        with ChatStore(db) as store:
            m = store.get_conversation(1).messages[1]
            assert m.status == "stopped"
            assert m.flags == ("unclosed", INTERRUPTED_FLAG)


# --- conversations and messages -------------------------------------------------


def test_title_comes_from_the_first_prompt_cut_at_a_word_boundary(store: ChatStore):
    conv = store.create_conversation()
    prompt = "Please   reason step by step about why the harmonic series diverges even though its terms go to zero"
    store.add_message(conv, "user", prompt)
    store.add_message(conv, "assistant", "It diverges.")
    store.add_message(conv, "user", "And the alternating one?")
    title = store.get_conversation(conv).title
    assert title == "Please reason step by step about why the harmonic series…"
    assert len(title) <= 60


def test_title_helper_handles_short_empty_and_unbroken_text():
    assert title_from_prompt("  Hi\nthere ") == "Hi there"
    assert title_from_prompt("   ") == DEFAULT_TITLE
    cjk = "请" * 100
    assert title_from_prompt(cjk) == "请" * 59 + "…"


def test_renamed_title_survives_new_first_prompt(store: ChatStore):
    conv = store.create_conversation()
    store.rename_conversation(conv, "  Series   questions ")
    store.add_message(conv, "user", "Why does it diverge?")
    assert store.get_conversation(conv).title == "Series questions"


def test_edit_and_resend_of_first_prompt_retitles(store: ChatStore):
    conv = store.create_conversation()
    store.add_message(conv, "user", "first version")
    store.add_message(conv, "assistant", "answer")
    store.delete_messages_from(conv, 0)
    store.add_message(conv, "user", "second version")
    c = store.get_conversation(conv)
    assert c.title == "second version"
    assert [(m.position, m.content) for m in c.messages] == [(0, "second version")]


def test_list_is_newest_activity_first(store: ChatStore):
    a = store.create_conversation()
    b = store.create_conversation()
    c = store.create_conversation()
    assert [s.id for s in store.list_conversations()] == [c, b, a]
    store.add_message(a, "user", "bump")
    summaries = store.list_conversations()
    assert [s.id for s in summaries] == [a, c, b]
    assert summaries[0].message_count == 1 and summaries[0].title == "bump"


def test_message_fields_round_trip(store: ChatStore):
    conv = store.create_conversation()
    stats = {"ttft_s": 0.21, "tokens_per_s": 41.5, "thinking_tokens": 812, "answer_tokens": 90}
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    msg = store.add_message(
        conv, "assistant", "answer", "thinking", flags=["orphan_close"], stats=stats,
        model="DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M", sampling=sampling,
    )
    m = store.get_conversation(conv).messages[0]
    assert (m.id, m.position, m.role, m.content, m.thinking, m.status) == (msg, 0, "assistant", "answer", "thinking", "complete")
    assert m.flags == ("orphan_close",) and m.stats == stats and m.sampling == sampling
    assert m.model == "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M"
    assert store.get_conversation(conv).model == m.model


def test_update_changes_only_the_given_fields(store: ChatStore):
    conv, _, msg = chat(store, "q", "", "", status="streaming", flags=["x"])
    store.update_message(msg, thinking="so far")
    store.update_message(msg, content="done", status="complete", stats={"tokens": 3})
    m = store.get_conversation(conv).messages[1]
    assert (m.thinking, m.content, m.status, m.flags, m.stats) == ("so far", "done", "complete", ("x",), {"tokens": 3})
    store.update_message(msg, flags=[])
    assert store.get_conversation(conv).messages[1].flags == ()


def test_bad_ids_and_values_are_clear_errors(store: ChatStore):
    with pytest.raises(ConversationNotFound, match="no conversation with id 99"):
        store.get_conversation(99)
    with pytest.raises(ConversationNotFound):
        store.add_message(99, "user", "x")
    with pytest.raises(ConversationNotFound):
        store.rename_conversation(99, "x")
    with pytest.raises(ConversationNotFound):
        store.delete_conversation(99)
    with pytest.raises(StorageError, match="no message 99"):
        store.update_message(99, content="x")
    conv = store.create_conversation()
    with pytest.raises(ValueError, match="role"):
        store.add_message(conv, "robot", "x")
    with pytest.raises(ValueError, match="status"):
        store.add_message(conv, "user", "x", status="done")
    assert store.get_conversation(conv).messages == []  # nothing half-written


def test_delete_messages_from_truncates_the_tail(store: ChatStore):
    conv = store.create_conversation()
    for i in range(4):
        store.add_message(conv, "user" if i % 2 == 0 else "assistant", f"m{i}")
    store.delete_messages_from(conv, 3)  # regenerate the last answer
    new = store.add_message(conv, "assistant", "m3 again")
    c = store.get_conversation(conv)
    assert [(m.position, m.content) for m in c.messages] == [(0, "m0"), (1, "m1"), (2, "m2"), (3, "m3 again")]
    assert c.messages[-1].id == new
    assert store.search("m3") == [h for h in store.search("m3") if h.message_id == new]


def test_delete_and_restore_round_trip(store: ChatStore):
    conv, _, reply = chat(
        store, "What is 2+2?", "Adding two and two gives four.", "4", flags=["skipped"],
        stats={"tokens": 9}, model="m", sampling={"temperature": 0.6},
    )
    other = store.create_conversation()
    store.rename_conversation(conv, "Arithmetic")
    snapshot = store.get_conversation(conv)
    store.delete_conversation(conv)
    assert [s.id for s in store.list_conversations()] == [other]
    assert store.search("four") == []
    with pytest.raises(ConversationNotFound):
        store.get_conversation(conv)
    newer = store.create_conversation()  # ids are not reused, so the undo keeps its ids

    assert store.restore_conversation(snapshot) == conv
    assert store.get_conversation(conv) == snapshot
    assert [h.message_id for h in store.search("four")] == [reply]
    assert [s.id for s in store.list_conversations()] == [newer, other, conv]  # back at its old place
    # Restoring the same snapshot again makes a copy with new ids.
    copy = store.restore_conversation(snapshot)
    assert copy not in (conv, other, newer)
    assert [m.content for m in store.get_conversation(copy).messages] == ["What is 2+2?", "4"]
    fts_integrity_ok(store)


# --- search ----------------------------------------------------------------------


@pytest.fixture
def searchable(store: ChatStore) -> ChatStore:
    chat(store, "Why is the sky blue?", "Rayleigh scattering goes as the inverse fourth power", "Because of scattering.")
    chat(store, "Write a haiku about autumn", "Five seven five syllables; maple leaves", "Crimson maple falls")
    chat(store, "用中文解释量子纠缠", "用户想了解量子纠缠的概念", "量子纠缠是一种关联")
    return store


def test_search_finds_words_inside_thinking(searchable: ChatStore):
    hits = searchable.search("rayleigh")
    assert [(h.field, h.title) for h in hits] == [("thinking", "Why is the sky blue?")]
    assert "Rayleigh scattering" in hits[0].snippet


def test_search_finds_prompts_and_answers_and_says_which(searchable: ChatStore):
    assert [h.field for h in searchable.search("haiku")] == ["prompt"]
    assert [h.field for h in searchable.search("crimson")] == ["answer"]
    assert sorted(h.field for h in searchable.search("maple")) == ["answer", "thinking"]
    assert sorted(h.field for h in searchable.search("scattering")) == ["answer", "thinking"]


def test_search_needs_every_word_in_one_field(searchable: ChatStore):
    assert [h.field for h in searchable.search("inverse rayleigh")] == ["thinking"]
    assert searchable.search("rayleigh haiku") == []
    assert searchable.search("") == [] and searchable.search("   ") == []


def test_search_matches_substrings_short_terms_and_cjk(searchable: ChatStore):
    assert [h.field for h in searchable.search("syllab")] == ["thinking"]
    assert {h.field for h in searchable.search("纠缠")} == {"prompt", "answer", "thinking"}  # 2 chars: LIKE
    assert [h.field for h in searchable.search("量子纠缠的")] == ["thinking"]  # 5 chars: FTS
    assert [h.field for h in searchable.search("sky bl")] == ["prompt"]


def test_search_treats_query_syntax_as_text(searchable: ChatStore):
    conv = searchable.create_conversation()
    searchable.add_message(conv, "user", 'what does "NEAR(a b)" OR 100% _mean_ here?')
    for q in ['"NEAR(a', "OR", "100%", "_mean_", "a*b", "{content}:"]:
        hits = searchable.search(q)  # never a syntax error
        if q != "a*b" and q != "{content}:":
            assert [h.conversation_id for h in hits] == [conv], q
    assert searchable.search("100x") == []  # % is not a wildcard


def test_streaming_message_is_indexed_when_it_finishes(store: ChatStore):
    conv, _, msg = chat(store, "q", "", "", status="streaming")
    for k in range(1, 4):
        store.update_message(msg, thinking="considering the eigenvalues " * k)
    store.update_message(msg, content="The eigenvalues are real.", status="complete")
    assert sorted(h.field for h in store.search("eigenvalues")) == ["answer", "thinking"]
    store.update_message(msg, content="Rewritten answer.")
    assert [h.field for h in store.search("eigenvalues")] == ["thinking"]
    fts_integrity_ok(store)


def test_index_rebuild_leaves_out_a_live_streaming_message(db: Path, monkeypatch):
    if not fts5_available():
        pytest.skip("this sqlite3 has no FTS5")
    monkeypatch.setattr("app.core.storage_schema.fts5_available", lambda: False)
    with ChatStore(db) as store:
        _, _, msg = chat(store, "q", "live thought", "", status="streaming")
    monkeypatch.undo()
    # A reader that leaves streaming messages alone, on a file whose index must be built.
    with ChatStore(db, recover_interrupted=False) as store:
        assert store.search("live thought") == []  # streaming: not indexed yet
        store.update_message(msg, thinking="live thought, finished", status="complete")
        assert [h.message_id for h in store.search("finished")] == [msg]
        fts_integrity_ok(store)


def test_search_without_fts5_falls_back_to_like(db: Path, monkeypatch):
    with ChatStore(db) as store:
        chat(store, "prompt", "the thinking mentions zebras", "answer")
    monkeypatch.setattr("app.core.storage_schema.fts5_available", lambda: False)
    with ChatStore(db) as store:
        assert not store.has_fts
        assert [h.field for h in store.search("zebras")] == ["thinking"]
        chat(store, "prompt", "", "giraffes written while the index was off")
    monkeypatch.undo()
    with ChatStore(db) as store:  # FTS5 back: the index is rebuilt and includes the new rows
        assert store.has_fts == fts5_available()
        assert [h.field for h in store.search("giraffes")] == ["answer"]
        fts_integrity_ok(store)


def test_two_stores_on_one_file_see_each_others_writes(db: Path):
    with ChatStore(db) as writer, ChatStore(db) as reader:
        conv, _, _ = chat(writer, "shared", "", "visible")
        assert [m.content for m in reader.get_conversation(conv).messages] == ["shared", "visible"]
