"""ChatSession without a window: real store, real engine thread, scripted models."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Slot

from app.core.engine import LoadOptions
from app.core.settings import Settings
from app.core.storage import INTERRUPTED_FLAG, ChatStore, store_path
from app.ui.session import ChatSession
from app.ui.worker import NO_MODEL_MESSAGE, EngineClient
from tests.fixtures.scripted_gguf import LONG_TRACE, LONG_TRACE_THINKING_TOKENS, STANDARD_ANSWER, STANDARD_THINKING
from tests.ui.conftest import ANSWER_TIMEOUT_MS, LOAD_TIMEOUT_MS

REPO = Path(__file__).resolve().parents[2]


class RecordingClient(EngineClient):
    """The real client; remembers the history each request sent to the engine."""

    def __init__(self):
        super().__init__()
        self.sent: list[list[dict]] = []

    def chat(self, messages, sampling, **options):
        self.sent.append([dict(m) for m in messages])
        return super().chat(messages, sampling, **options)


class CountingStore(ChatStore):
    """The real store; counts writes to messages."""

    updates = 0

    def update_message(self, msg_id, **fields):
        self.updates += 1
        return super().update_message(msg_id, **fields)


class Errors(QObject):
    def __init__(self, session: ChatSession):
        super().__init__()
        self.messages: list[str] = []
        session.error_occurred.connect(self.on_error)

    @Slot(str)
    def on_error(self, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def make_session(qtbot, tmp_path):
    made: list[tuple[ChatSession, EngineClient, ChatStore]] = []

    def make(model: Path | None, *, n_ctx: int = 4096, checkpoint_ms: int = 1000) -> ChatSession:
        client = RecordingClient()
        store = CountingStore(store_path(tmp_path))
        session = ChatSession(store, client, Settings(n_ctx=n_ctx), checkpoint_ms=checkpoint_ms)
        made.append((session, client, store))
        if model is not None:
            with qtbot.waitSignal(client.loaded, timeout=LOAD_TIMEOUT_MS):
                client.load(model, LoadOptions(n_ctx=n_ctx, n_gpu_layers=0))
        return session

    yield make
    for session, client, store in made:
        session.close()
        client.shutdown()
        store.close()


def ask(qtbot, session: ChatSession, text: str):
    with qtbot.waitSignal(session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        assert session.send(text)
    return blocker.args[0]


def test_each_prompt_is_sent_with_the_conversation_so_far(qtbot, make_session, scripted_model):
    session = make_session(scripted_model("standard_r1"))
    ask(qtbot, session, "first")
    ask(qtbot, session, "second")

    first, second = session.client.sent
    assert first == [{"role": "user", "content": "first", "thinking": ""}]
    assert second == [
        {"role": "user", "content": "first", "thinking": ""},
        # The thinking goes along; the prompt builder leaves it out unless the chat keeps it.
        {"role": "assistant", "content": STANDARD_ANSWER.strip(), "thinking": STANDARD_THINKING.strip()},
        {"role": "user", "content": "second", "thinking": ""},
    ]
    stored = session.store.get_conversation(session.conversation_id)
    assert [m.role for m in stored.messages] == ["user", "assistant", "user", "assistant"]
    assert all(m.status == "complete" and m.model == "Scripted-standard_r1" for m in stored.messages[1::2])
    assert stored.messages[1].sampling["temperature"] == 0.6


def test_live_answer_is_checkpointed_on_a_timer_not_per_token(qtbot, make_session, scripted_model):
    session = make_session(scripted_model("long_trace"), checkpoint_ms=50)
    seen_by_another_reader: list[tuple[str, int]] = []
    segments: list[str] = []

    def peek(_kind: str, text: str) -> None:
        segments.append(text)
        # What a crash right now would leave: read the file through another connection.
        reader = sqlite3.connect(f"file:{session.store.path}?mode=ro", uri=True)
        try:
            row = reader.execute("SELECT status, thinking FROM messages WHERE id = ?",
                                 (session.messages[-1].id,)).fetchone()
        finally:
            reader.close()
        seen_by_another_reader.append((row[0], len(row[1])))

    session.stream_segment.connect(peek)
    before = session.store.updates
    message = ask(qtbot, session, "think long")

    assert message.stats["thinking_tokens"] >= LONG_TRACE_THINKING_TOKENS
    checkpoints = [n for status, n in seen_by_another_reader if status == "streaming" and n > 0]
    assert checkpoints, "no checkpoint reached the file while streaming"
    assert checkpoints == sorted(checkpoints)
    writes = session.store.updates - before
    elapsed_s = message.stats["total_s"]
    assert writes <= elapsed_s / 0.05 + 3  # one per interval (plus the final write), not one per token
    assert writes < message.stats["thinking_tokens"] / 10


def test_a_killed_app_keeps_the_answer_up_to_the_last_checkpoint(tmp_path, scripted_model):
    # The child process streams a long trace and kills itself (SIGKILL) partway.
    model = scripted_model("long_trace")
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        sys.path.insert(0, {str(REPO)!r})
        import app
        from PySide6.QtCore import QCoreApplication
        from app.core.engine import LoadOptions
        from app.core.settings import Settings
        from app.core.storage import ChatStore
        from app.ui.session import ChatSession
        from app.ui.worker import EngineClient

        qapp = QCoreApplication([])
        store = ChatStore({str(tmp_path / "chat.db")!r})
        client = EngineClient()
        session = ChatSession(store, client, Settings(), checkpoint_ms=20)
        def on_counts(thinking, answer):
            if thinking >= 1500:
                os.kill(os.getpid(), signal.SIGKILL)
        session.stream_counts.connect(on_counts)
        client.loaded.connect(lambda info: session.send("think long"))
        client.load_failed.connect(lambda message: sys.exit(message))
        client.load({str(model)!r}, LoadOptions(n_ctx=4096, n_gpu_layers=0))
        qapp.exec()
        """
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -9, result.stderr[-2000:]

    with ChatStore(tmp_path / "chat.db") as store:
        [conv] = store.list_conversations()
        user, answer = store.get_conversation(conv.id).messages
    assert user.content == "think long"
    assert answer.status == "stopped" and INTERRUPTED_FLAG in answer.flags
    expected = LONG_TRACE.text
    assert answer.thinking and expected.startswith(answer.thinking)
    assert len(answer.thinking.split()) > 200  # not just the first second's worth


def test_sending_without_a_model_is_refused_with_a_sentence(qtbot, make_session):
    session = make_session(None)
    errors = Errors(session)
    assert not session.send("hello")
    assert errors.messages == [NO_MODEL_MESSAGE]
    assert session.conversation_id is None and session.store.list_conversations() == []


def test_a_prompt_too_long_for_the_context_is_saved_as_an_error_with_the_reason(qtbot, make_session, scripted_model):
    session = make_session(scripted_model("standard_r1"), n_ctx=512)
    errors = Errors(session)
    message = ask(qtbot, session, "word " * 2000)

    assert message.status == "error" and "context holds 512" in message.stats["error"]
    assert errors.messages == [message.stats["error"]]
    stored = session.store.get_conversation(session.conversation_id).messages[-1]
    assert stored.status == "error" and stored.stats == {"error": message.stats["error"]}
    assert not session.busy


def test_opening_another_conversation_stops_the_answer_and_still_saves_it(qtbot, make_session, scripted_model):
    session = make_session(scripted_model("long_trace"))
    other = session.store.create_conversation("older chat")
    finished: list = []
    session.answer_finished.connect(finished.append)
    session.stream_segment.connect(lambda *_: session.open_conversation(other))

    assert session.send("think long")
    first_conv = session.messages[0].conversation_id
    qtbot.waitUntil(lambda: not session.busy, timeout=ANSWER_TIMEOUT_MS)

    assert session.conversation_id == other and finished == []  # not shown in the other chat
    stopped = session.store.get_conversation(first_conv).messages[-1]
    assert stopped.status == "stopped" and stopped.stats["finish_reason"] == "cancelled" and stopped.thinking


def test_deleting_the_chat_being_answered_stops_it_and_undo_brings_back_the_partial_answer(
    qtbot, make_session, scripted_model
):
    session = make_session(scripted_model("long_trace"))
    snapshots = []

    def delete_once(*_):
        session.stream_segment.disconnect(delete_once)
        snapshots.append(session.delete_conversation(session.conversation_id))

    session.stream_segment.connect(delete_once)
    assert session.send("think long")
    qtbot.waitUntil(lambda: not session.busy, timeout=ANSWER_TIMEOUT_MS)
    assert session.store.list_conversations() == []

    conv_id = session.restore_conversation(snapshots[0])
    user, answer = session.store.get_conversation(conv_id).messages
    assert user.content == "think long" and answer.status == "stopped" and answer.thinking


def test_nothing_starts_while_an_answer_is_running(qtbot, make_session, scripted_model):
    session = make_session(scripted_model("long_trace"))
    assert session.send("one")
    assert not session.send("two")
    assert not session.regenerate(session.messages[-1].id)
    session.stop()
    qtbot.waitUntil(lambda: not session.busy, timeout=ANSWER_TIMEOUT_MS)
    assert [m.content for m in session.messages if m.role == "user"] == ["one"]


def test_every_way_an_answer_ends_saves_its_text_in_the_same_shape(qtbot, make_session, scripted_model):
    # Two think blocks with answer text between them: the saved shape strips each block and
    # joins them with a blank line. Finishing, a checkpoint and closing the app mid-answer
    # must all save that same text.
    session = make_session(scripted_model("repeated_think"), checkpoint_ms=60_000)
    finished = ask(qtbot, session, "first")
    assert finished.thinking == "First idea: try 6.\n\nWait, check again"
    assert finished.content == "Maybe 6.\n\nIt is 7, final answer."
    assert "multiple_think_blocks" in finished.flags

    total = finished.stats["thinking_tokens"] + finished.stats["answer_tokens"]
    saved: list[tuple[str, str, str]] = []

    def read_back() -> None:
        stored = session.store.get_conversation(session.conversation_id).messages[-1]
        saved.append((stored.status, stored.thinking, stored.content))

    def end_early(_req_id: int, thinking: int, answer: int) -> None:
        if thinking + answer >= total and session.busy:  # every segment is in; `finished` is not
            session._on_checkpoint()
            read_back()
            session.close()  # the app closes: what the answer has is saved as stopped
            read_back()

    session.client.counts.connect(end_early)  # after the session's own handler
    assert session.send("second")
    qtbot.waitUntil(lambda: len(saved) == 2, timeout=ANSWER_TIMEOUT_MS)
    checkpointed, closed = saved
    assert checkpointed == ("streaming", finished.thinking, finished.content)
    assert closed == ("stopped", finished.thinking, finished.content)
