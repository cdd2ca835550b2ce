"""The engine thread, through real llama.cpp with scripted GGUF models."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Qt, QThread, Slot

from app.core.engine import LoadOptions, ModelInfo, Sampling
from app.core.reasoning import Segment, TraceText
from app.ui.worker import NO_MODEL_MESSAGE, EngineClient
from tests.fixtures.scripted_gguf import LONG_TRACE_THINKING_TOKENS, STANDARD_ANSWER, STANDARD_THINKING

OPTIONS = LoadOptions(n_ctx=2048, n_gpu_layers=0)
HELLO = [{"role": "user", "content": "What is 17 times 23?"}]
TIMEOUT_MS = 20_000


class Recorder(QObject):
    """Collects what the client emits, on the GUI thread, and which thread emitted it."""

    def __init__(self, client: EngineClient):
        super().__init__()
        self.started: list[tuple[int, int]] = []
        self.segments: list[tuple[int, str, str]] = []
        self.traces: dict[int, TraceText] = {}
        self.counts: list[tuple[int, int, int]] = []
        self.finished: list[tuple[int, dict]] = []
        self.failed: list[tuple[int, str]] = []
        self.threads: set[QThread] = set()
        client.started.connect(self.on_started)
        client.segment.connect(self.on_segment)
        client.counts.connect(self.on_counts)
        client.finished.connect(self.on_finished)
        client.failed.connect(self.on_failed)

    @Slot(int, int)
    def on_started(self, req_id, prompt_tokens):
        self.started.append((req_id, prompt_tokens))

    @Slot(int, object)
    def on_segment(self, req_id, segment: Segment):
        self.threads.add(QThread.currentThread())
        self.segments.append((req_id, segment.kind, segment.text))
        self.traces.setdefault(req_id, TraceText()).add(segment)

    @Slot(int, int, int)
    def on_counts(self, req_id, thinking, answer):
        self.counts.append((req_id, thinking, answer))

    @Slot(int, object)
    def on_finished(self, req_id, result):
        self.finished.append((req_id, result))

    @Slot(int, str)
    def on_failed(self, req_id, message):
        self.failed.append((req_id, message))

    def text(self, kind: str, req_id: int | None = None) -> str:
        return "".join(t for r, k, t in self.segments if k == kind and (req_id is None or r == req_id))


@pytest.fixture
def client(qtbot):
    c = EngineClient()
    yield c
    c.shutdown()


def load(qtbot, client: EngineClient, path, options: LoadOptions = OPTIONS) -> ModelInfo:
    with qtbot.waitSignal(client.loaded, timeout=TIMEOUT_MS) as blocker:
        client.load(path, options)
    return blocker.args[0]


def test_model_loads_on_the_engine_thread_and_reports_its_info(qtbot, client, scripted_model):
    path = scripted_model("standard_r1")
    progress: list[float] = []
    client.load_progress.connect(progress.append)
    assert client._worker.thread() is not QThread.currentThread()

    info = load(qtbot, client, path)

    assert info.path == path and info.n_ctx == 2048 and info.is_reasoning
    assert client.info is info and not client.loading
    assert progress and progress[-1] == pytest.approx(1.0)


def test_chat_streams_thinking_then_answer_and_finishes_with_the_full_result(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("standard_r1"))
    rec = Recorder(client)

    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        req_id = client.chat(HELLO, Sampling(max_tokens=1000))

    kinds = [k for _, k, _ in rec.segments]
    assert kinds[0] == "think" and kinds[-1] == "answer"
    assert kinds == sorted(kinds, key=lambda k: k == "answer")  # no thinking after the answer began
    assert rec.text("think").strip() == STANDARD_THINKING.strip()
    assert rec.text("answer").strip() == STANDARD_ANSWER.strip()
    assert rec.threads == {QThread.currentThread()}  # delivered on the GUI thread
    [(done_id, result)] = rec.finished
    assert done_id == req_id and not client.busy
    trace = rec.traces[req_id]  # the segments rebuild the message in its saved shape
    assert trace.thinking == STANDARD_THINKING.strip() and trace.answer == STANDARD_ANSWER.strip()
    assert result["stats"]["finish_reason"] == "stop" and result["flags"] == []
    assert rec.counts[-1] == (req_id, result["stats"]["thinking_tokens"], result["stats"]["answer_tokens"])


def test_the_prompt_size_arrives_before_any_text_and_adds_up_to_the_context_used(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("standard_r1"))
    rec = Recorder(client)
    first_text_seen_after_start: list[bool] = []
    client.segment.connect(lambda *_: first_text_seen_after_start.append(bool(rec.started)))

    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        req_id = client.chat(HELLO, Sampling(max_tokens=1000))

    [(started_id, prompt_tokens)] = rec.started
    stats = rec.finished[0][1]["stats"]
    assert started_id == req_id and prompt_tokens == stats["prompt_tokens"] > 0
    assert first_text_seen_after_start and all(first_text_seen_after_start)
    _, thinking, answer = rec.counts[-1]
    assert prompt_tokens + thinking + answer == stats["context_used"]  # what a status bar can show live


def test_stop_ends_the_answer_within_a_token_and_keeps_the_text(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("long_trace"))
    rec = Recorder(client)
    client.segment.connect(client.stop)  # stop as soon as the first text arrives

    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        client.chat(HELLO, Sampling())
    client.segment.disconnect(client.stop)

    [(req_id, result)] = rec.finished
    assert result["stats"]["finish_reason"] == "cancelled"
    assert 0 < result["stats"]["thinking_tokens"] < LONG_TRACE_THINKING_TOKENS
    assert rec.traces[req_id].thinking and rec.traces[req_id].answer == ""
    assert "unclosed_thinking" in result["flags"]

    # The engine stays usable after a stop.
    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        client.chat(HELLO, Sampling(max_tokens=5))
    assert rec.finished[-1][1]["stats"]["finish_reason"] == "length"


def test_a_new_request_makes_the_running_one_stale_and_its_results_are_dropped(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("long_trace"))
    rec = Recorder(client)

    first = client.chat(HELLO, Sampling())
    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        second = client.chat(HELLO, Sampling(max_tokens=50))

    assert second != first
    assert {r for r, _, _ in rec.segments} == {second}
    assert {r for r, _ in rec.started} == {second}
    assert [r for r, _ in rec.finished] == [second]
    assert rec.finished[0][1]["stats"]["thinking_tokens"] == 50


def test_a_stop_set_while_the_engine_thread_generates_ends_the_run_within_one_token(qtbot, client, scripted_model):
    # stop() sets an Event the token loop reads; a queued call could not run until the loop ended.
    # It is called here from the engine thread itself, between two tokens, so the count at that
    # moment is exact.
    load(qtbot, client, scripted_model("long_trace"))
    rec = Recorder(client)
    at_stop: list[int] = []

    def stop_mid_thought(_req_id: int, thinking: int, _answer: int) -> None:
        if not at_stop and thinking >= 5:
            at_stop.append(thinking)
            client.stop()

    client._worker.counts.connect(stop_mid_thought, Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        client.chat(HELLO, Sampling())

    [(_, result)] = rec.finished
    assert result["stats"]["finish_reason"] == "cancelled"
    assert at_stop[0] <= result["stats"]["thinking_tokens"] <= at_stop[0] + 1 < LONG_TRACE_THINKING_TOKENS


def test_chat_without_a_model_fails_with_a_plain_sentence(qtbot, client):
    rec = Recorder(client)
    with qtbot.waitSignal(client.failed, timeout=TIMEOUT_MS):
        req_id = client.chat(HELLO, Sampling())
    assert rec.failed == [(req_id, NO_MODEL_MESSAGE)]
    assert not client.busy


def test_a_prompt_longer_than_the_context_fails_with_the_engines_message(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("standard_r1"), LoadOptions(n_ctx=512, n_gpu_layers=0))
    rec = Recorder(client)
    long_prompt = [{"role": "user", "content": "word " * 2000}]
    with qtbot.waitSignal(client.failed, timeout=TIMEOUT_MS):
        client.chat(long_prompt, Sampling())
    [(_, message)] = rec.failed
    assert "context" in message and "512" in message


def test_a_malformed_file_fails_to_load_with_a_sentence_and_the_thread_stays_usable(
    qtbot, client, scripted_model, malformed_model
):
    with qtbot.waitSignal(client.load_failed, timeout=TIMEOUT_MS) as blocker:
        client.load(malformed_model("bad_magic"), OPTIONS)
    message = blocker.args[0]
    assert "bad_magic.gguf" in message and "not a GGUF model file" in message
    assert client.info is None and not client.loading

    info = load(qtbot, client, scripted_model("standard_r1"))
    assert info.name == "Scripted-standard_r1"


def test_loading_another_model_replaces_the_first(qtbot, client, scripted_model):
    load(qtbot, client, scripted_model("standard_r1"))
    info = load(qtbot, client, scripted_model("non_reasoning"))
    assert info.name == "Scripted-non_reasoning" and not info.is_reasoning
    rec = Recorder(client)
    with qtbot.waitSignal(client.finished, timeout=TIMEOUT_MS):
        client.chat(HELLO, Sampling())
    assert rec.text("think") == "" and rec.text("answer").startswith("Paris")


def test_shutdown_closes_the_engine_and_ends_the_thread(qtbot, scripted_model):
    client = EngineClient()
    load(qtbot, client, scripted_model("long_trace"))
    client.chat(HELLO, Sampling())  # shutdown stops a running answer too
    client.shutdown()
    assert not client._thread.isRunning()


def test_shutdown_during_a_load_does_not_hang(qtbot, scripted_model):
    client = EngineClient()
    client.load(scripted_model("standard_r1"), OPTIONS)
    # The load is abandoned or finishes; either way the thread ends, well inside the bound.
    assert client.shutdown(timeout_s=10.0)
    assert not client._thread.isRunning()


def test_a_second_load_cancels_the_first_and_only_its_result_counts(qtbot, client, scripted_model):
    first, second = scripted_model("standard_r1"), scripted_model("non_reasoning")
    loaded: list[ModelInfo] = []
    client.loaded.connect(loaded.append)
    client.load(first, OPTIONS)
    assert client.uses_file(first)
    with qtbot.waitSignal(client.loaded, timeout=TIMEOUT_MS):
        client.load(second, OPTIONS)
        # Until the engine thread has answered the first load, its file may still be open.
        assert client.uses_file(first) and client.uses_file(second) and client.loading_path == second
    qtbot.wait(100)  # anything still queued from the first load would arrive now

    assert [info.path for info in loaded] == [second]
    assert client.info.path == second and not client.loading
    assert client.uses_file(second) and not client.uses_file(first)


def test_a_loads_progress_and_failure_after_a_newer_load_started_are_dropped(qtbot, client, scripted_model,
                                                                             malformed_model):
    failures: list[str] = []
    client.load_failed.connect(failures.append)
    client.load(malformed_model("bad_magic"), OPTIONS)
    with qtbot.waitSignal(client.loaded, timeout=TIMEOUT_MS):
        client.load(scripted_model("standard_r1"), OPTIONS)
    assert failures == [] and client.info.name == "Scripted-standard_r1"
