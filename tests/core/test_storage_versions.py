"""Schema v3 on real SQLite files: what an answer was made from (spans, prompt, model),
keep-thinking, and versions of a turn (regenerate, edit and resend, switch, delete) that
survive reopening, undo of a delete and SIGKILL; files from v1 and v2 keep every chat."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.errors import StorageError
from app.core.storage import MIGRATIONS, SCHEMA_VERSION, ChatStore, Conversation
from tests.core.storage_helpers import fts_integrity_ok, integrity, kill_child_after

SPANS = [{"field": "thinking", "start": 10, "end": 42, "by": "ponder", "kind": "wrap_up"},
         {"field": "thinking", "start": 42, "end": 50, "by": "ponder", "kind": "close"}]
MODEL_INFO = {"name": "R1 1.5B", "file": "/m/r1.gguf", "quantization": "Q4_K_M", "sha256": "ab" * 32,
              "source": "local"}


def shown(store: ChatStore, conv: int) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.get_conversation(conv).messages]


def two_turns(store: ChatStore) -> int:
    conv = store.create_conversation()
    store.add_message(conv, "user", "q1")
    store.add_message(conv, "assistant", "a1", "t1")
    store.add_message(conv, "user", "q2")
    store.add_message(conv, "assistant", "a2", "t2")
    return conv


def regenerate(store: ChatStore, conv: int, answer_position: int, answer: str, prompt: str | None = None) -> None:
    turn = store.get_conversation(conv).turn_start(answer_position)
    store.start_version(conv, turn, prompt)
    store.add_message(conv, "assistant", answer, f"thinking for {answer}")


# --- migration ----------------------------------------------------------------


def _old_file(db: Path, monkeypatch, version: int) -> dict[str, list[tuple]]:
    """A file left at `version` by today's code with a few chats; its raw rows."""
    monkeypatch.setattr("app.core.storage_schema.MIGRATIONS", MIGRATIONS[:version])
    monkeypatch.setattr("app.core.storage_schema.SCHEMA_VERSION", version)
    store = ChatStore(db)
    conn = store._conn
    now = 1_700_000_000.0
    # Today's add_message writes v3 columns, so the old file is filled the way the old code did.
    for c in range(3):
        conn.execute("INSERT INTO conversations (title, custom_title, created_at, updated_at, model) "
                     "VALUES (?, ?, ?, ?, ?)", (f"chat {c}", c == 1, now + c, now + c, "m"))
        for i, (role, text) in enumerate([("user", f"question {c}"), ("assistant", f"answer {c}")]):
            conn.execute(
                "INSERT INTO messages (conversation_id, position, role, content, thinking, flags, stats, model, "
                "sampling, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c + 1, i, role, text, f"thought {c}" if role == "assistant" else "", '["no_thinking"]',
                 '{"tokens": 3}', "m", '{"temperature": 0.6}', now, "complete"),
            )
    rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("conversations", "messages")}
    store.close()
    monkeypatch.undo()
    return {t: [tuple(r) for r in v] for t, v in rows.items()}


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_from_an_older_schema_keeps_every_conversation(db: Path, monkeypatch, version: int):
    before = _old_file(db, monkeypatch, version)
    with ChatStore(db) as store:
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        for table, rows in before.items():
            width = len(rows[0])  # the old columns, unchanged, then the new ones at their defaults
            after = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
            assert [r[:width] for r in after] == rows
        convs = [store.get_conversation(s.id) for s in store.list_conversations()]
        assert sorted(c.title for c in convs) == ["chat 0", "chat 1", "chat 2"]
        for c in convs:
            assert not c.keep_thinking and c.versions == []
            assert [m.content for m in c.messages] == [f"question {c.id - 1}", f"answer {c.id - 1}"]
            answer = c.messages[1]
            assert answer.thinking == f"thought {c.id - 1}" and answer.flags == ("no_thinking",)
            assert answer.spans == () and answer.prompt is None and answer.model_info is None
        # and the new features work on it
        regenerate(store, 1, 1, "answer 0 again")
        assert store.get_conversation(1).version_of(0) == (2, 2)
        fts_integrity_ok(store)
    assert integrity(db) == "ok"


# --- what an answer was made from -------------------------------------------------


def test_spans_prompt_and_model_info_round_trip_and_update(store: ChatStore):
    conv = store.create_conversation()
    store.add_message(conv, "user", "q")
    msg = store.add_message(conv, "assistant", "a", "t", status="streaming", prompt="<｜User｜>q<｜Assistant｜><think>\n",
                            model_info=MODEL_INFO)
    m = store.get_conversation(conv).messages[1]
    assert m.spans == () and m.prompt.endswith("<think>\n") and m.model_info == MODEL_INFO
    store.update_message(msg, spans=SPANS, status="complete")
    m = store.get_conversation(conv).messages[1]
    assert m.spans == tuple(SPANS) and m.prompt.endswith("<think>\n") and m.model_info == MODEL_INFO
    store.update_message(msg, spans=())
    assert store.get_conversation(conv).messages[1].spans == ()


def test_keep_thinking_is_per_conversation_and_survives_reopen(db: Path):
    with ChatStore(db) as store:
        a, b = store.create_conversation(), store.create_conversation()
        store.set_keep_thinking(a, True)
        with pytest.raises(StorageError, match="no conversation"):
            store.set_keep_thinking(999, True)
    with ChatStore(db) as store:
        assert store.get_conversation(a).keep_thinking and not store.get_conversation(b).keep_thinking
        store.set_keep_thinking(a, False)
        assert not store.get_conversation(a).keep_thinking


# --- versions -----------------------------------------------------------------------


def test_regenerate_keeps_the_earlier_answer_as_version_one(store: ChatStore):
    conv = two_turns(store)
    before = store.get_conversation(conv).messages
    regenerate(store, conv, 3, "a2 second")
    c = store.get_conversation(conv)
    assert c.messages[:3] == before[:3]  # the prompt stays, id and all
    assert [(m.role, m.content) for m in c.messages] == [("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                                                         ("assistant", "a2 second")]
    assert c.version_of(2) == (2, 2) and c.version_of(0) == (1, 1)
    first, second = c.versions_of(2)
    assert first.answer.content == "a2" and first.answer.thinking == "t2" and not first.shown
    assert second.shown and second.answer.content == "a2 second"
    assert [m.content for m in first.messages] == ["q2", "a2"]
    assert store.list_conversations()[0].message_count == 4  # what is on screen


def test_switching_versions_keeps_ids_and_the_conversation_follows_the_shown_one(store: ChatStore):
    conv = two_turns(store)
    original = store.get_conversation(conv).messages
    regenerate(store, conv, 3, "a2 second")
    regenerate(store, conv, 3, "a2 third")
    c = store.get_conversation(conv)
    assert c.version_of(2) == (3, 3)
    v1 = c.versions_of(2)[0]
    store.switch_version(conv, v1.id)
    c = store.get_conversation(conv)
    # The same rows, ids and all (regenerate kept the shown prompt's id and gave its copy a new one).
    assert [m for m in c.messages if m.position != 2] == [m for m in original if m.position != 2]
    assert replace(c.messages[2], id=original[2].id) == original[2]
    assert c.version_of(2) == (1, 3)
    # Continuing follows what is shown.
    store.add_message(conv, "user", "q3 after a2")
    store.add_message(conv, "assistant", "a3")
    assert shown(store, conv)[3:] == [("assistant", "a2"), ("user", "q3 after a2"), ("assistant", "a3")]
    # Going to version 3 and back keeps the continuation inside version 1.
    store.switch_version(conv, store.get_conversation(conv).versions_of(2)[2].id)
    assert shown(store, conv)[3:] == [("assistant", "a2 third")]
    store.switch_version(conv, store.get_conversation(conv).versions_of(2)[0].id)
    assert shown(store, conv)[3:] == [("assistant", "a2"), ("user", "q3 after a2"), ("assistant", "a3")]
    assert store.get_conversation(conv).version_of(2) == (1, 3)
    fts_integrity_ok(store)


def test_deeper_versions_travel_with_their_turn(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 3, "a2 second")  # turn 2: 2 versions
    regenerate(store, conv, 1, "a1 second")  # turn 0: 2 versions; turn 2's go into version 1
    c = store.get_conversation(conv)
    assert shown(store, conv) == [("user", "q1"), ("assistant", "a1 second")]
    assert c.version_of(0) == (2, 2)
    store.switch_version(conv, c.versions_of(0)[0].id)
    c = store.get_conversation(conv)
    assert [m.content for m in c.messages] == ["q1", "a1", "q2", "a2 second"]
    assert c.version_of(2) == (2, 2) and c.versions_of(2)[0].answer.content == "a2"
    answers = {a.message.content: (a.version, a.version_count, a.shown) for a in c.answer_versions()}
    assert answers == {"a1": (1, 2, True), "a2 second": (2, 2, True), "a2": (1, 2, False),
                       "a1 second": (2, 2, False)}


def test_edit_and_resend_keeps_the_old_prompt_and_answer(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 1, "a1 for edited", prompt="q1 edited")
    c = store.get_conversation(conv)
    assert c.title == "q1 edited"
    assert shown(store, conv) == [("user", "q1 edited"), ("assistant", "a1 for edited")]
    old = c.versions_of(0)[0]
    assert [m.content for m in old.messages] == ["q1", "a1", "q2", "a2"]
    store.switch_version(conv, old.id)
    assert [m for _, m in shown(store, conv)] == ["q1", "a1", "q2", "a2"]


def test_search_finds_what_is_shown(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 3, "zebra answer")
    assert [h.field for h in store.search("zebra")] == ["answer", "thinking"]
    store.switch_version(conv, store.get_conversation(conv).versions_of(2)[0].id)
    assert store.search("zebra") == []
    assert {h.message_id for h in store.search("a2")} == {store.get_conversation(conv).messages[3].id}
    fts_integrity_ok(store)


def test_deleting_versions(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 3, "second")
    regenerate(store, conv, 3, "third")
    c = store.get_conversation(conv)
    store.delete_version(conv, 2, c.versions_of(2)[1].id)  # a stored one
    c = store.get_conversation(conv)
    assert [v.answer.content for v in c.versions_of(2)] == ["a2", "third"]
    store.delete_version(conv, 2)  # the shown one: the one before it takes its place
    c = store.get_conversation(conv)
    assert [v.answer.content for v in c.versions_of(2)] == ["a2"] and c.versions == []
    assert shown(store, conv)[3] == ("assistant", "a2")
    store.delete_version(conv, 2)  # the only one: the turn goes
    assert shown(store, conv) == [("user", "q1"), ("assistant", "a1")]
    with pytest.raises(StorageError, match="no version 12345"):
        store.switch_version(conv, 12345)
    fts_integrity_ok(store)


def test_deleting_the_tail_deletes_its_versions(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 3, "second")
    store.delete_messages_from(conv, 2)
    c = store.get_conversation(conv)
    assert c.versions == [] and len(c.messages) == 2
    assert store._conn.execute("SELECT count(*) FROM version_messages").fetchone()[0] == 0


def test_a_streaming_answer_cannot_be_made_a_version(store: ChatStore):
    conv = store.create_conversation()
    store.add_message(conv, "user", "q")
    store.add_message(conv, "assistant", "partial", status="streaming")
    with pytest.raises(StorageError, match="still being written"):
        store.start_version(conv, 0)
    assert shown(store, conv) == [("user", "q"), ("assistant", "partial")]


def test_delete_and_undo_keep_every_version(store: ChatStore):
    conv = two_turns(store)
    regenerate(store, conv, 3, "second")
    regenerate(store, conv, 1, "a1 second")
    store.update_message(store.get_conversation(conv).messages[1].id, spans=SPANS)
    store.set_keep_thinking(conv, True)
    snapshot = store.get_conversation(conv)
    store.delete_conversation(conv)
    assert store._conn.execute("SELECT count(*) FROM version_messages").fetchone()[0] == 0
    assert store.restore_conversation(snapshot) == conv
    assert store.get_conversation(conv) == snapshot
    copy = store.restore_conversation(snapshot)  # again: new ids, the same shape
    c = store.get_conversation(copy)
    ids = [m.id for m in c.messages] + [m.id for v in c.versions for m in v.messages]
    assert len(set(ids)) == len(ids) and not set(ids) & {m.id for m in snapshot.messages}
    strip = lambda conv_: sorted((a.message.content, a.version, a.version_count, a.shown)  # noqa: E731
                                 for a in conv_.answer_versions())
    assert strip(c) == strip(snapshot)
    store.switch_version(copy, c.versions_of(0)[0].id)
    assert [m.content for m in store.get_conversation(copy).messages] == ["q1", "a1", "q2", "second"]
    fts_integrity_ok(store)


# --- crash safety -------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from app.core.storage import ChatStore

    store = ChatStore(Path(sys.argv[1]))
    conv = store.create_conversation()
    store.add_message(conv, "user", "q1")
    store.add_message(conv, "assistant", "a1 " * 2000, "t1 " * 20000)
    for n in range(2, 5):
        store.start_version(conv, 0)
        store.add_message(conv, "assistant", f"a{n} " * 2000, f"t{n} " * 20000)
    print(conv, flush=True)
    k = 0
    while True:  # switch as fast as possible, so the kill lands mid-transaction
        c = store.get_conversation(conv)
        store.switch_version(conv, c.versions_of(0)[k % 3].id)
        k += 1
        print(k, flush=True)
    """
)


@pytest.mark.parametrize("switches", [1, 7, 30])
def test_sigkill_while_switching_versions_loses_nothing(db: Path, switches: int):
    header, _ = kill_child_after(CHILD, db, switches)
    conv = int(header)
    with ChatStore(db) as store:
        c: Conversation = store.get_conversation(conv)
        versions = c.versions_of(0)
        assert len(versions) == 4 and sum(v.shown for v in versions) == 1
        assert sorted(v.answer.content.split()[0] for v in versions) == ["a1", "a2", "a3", "a4"]
        for v in versions:  # every version whole: its prompt, and thinking matching its answer
            n = v.answer.content.split()[0][1:]
            assert [m.content for m in v.messages][0] == "q1"
            assert v.answer.thinking == f"t{n} " * 20000 and v.answer.content == f"a{n} " * 2000
        fts_integrity_ok(store)
    assert integrity(db) == "ok"


def test_a_regenerate_cut_off_before_its_answer_shows_the_version_before_at_the_next_start(db: Path):
    with ChatStore(db) as store:
        conv = two_turns(store)
        regenerate(store, conv, 3, "second")
        regenerate(store, conv, 3, "third")
        store.start_version(conv, 2)  # killed here, before the new answer was saved
        assert shown(store, conv)[-1] == ("user", "q2")
    with ChatStore(db, recover_interrupted=False) as reader:  # an export next to the app changes nothing
        assert shown(reader, conv)[-1] == ("user", "q2")
    with ChatStore(db) as store:
        c = store.get_conversation(conv)
        assert [m.content for m in c.messages] == ["q1", "a1", "q2", "third"]
        assert [v.answer.content for v in c.versions_of(2)] == ["a2", "second", "third"]
        fts_integrity_ok(store)
