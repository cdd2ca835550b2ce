"""The window's server switch: the real window with a scripted model, the real server on loopback,
the official `openai` client in front of it. Server requests run on the window's engine thread,
in one FIFO with the window's own chats."""

from __future__ import annotations

import socket
import threading

import openai
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from app.core.engine import Sampling
from app.core.settings import load_settings
from app.core.server.service import ChatRequest
from tests.fixtures.scripted_gguf import STANDARD_ANSWER, STANDARD_THINKING
from tests.ui.conftest import ANSWER_TIMEOUT_MS, LOAD_TIMEOUT_MS

QUESTION = [{"role": "user", "content": "What is 17 × 23?"}]
TIMEOUT_MS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(window, api_key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=window.server.address + "/v1", api_key=api_key, max_retries=0, timeout=30)


def serving_window(open_app, data_dir, model, **settings):
    window = open_app(data_dir, model)
    window.settings.server_port = free_port()
    for name, value in settings.items():
        setattr(window.settings, name, value)
    return window


class InThread:
    """Runs a blocking call (an HTTP request) on a thread, so the GUI's event loop keeps running."""

    def __init__(self, call) -> None:
        self.result = self.error = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            self.error = exc
        finally:
            self.done.set()


def one_request_waiting(qtbot, window) -> tuple[threading.Event, InThread]:
    """A server job holds the engine (as a long chat of the window's would) until `hold` is set,
    and one client request waits behind it: returns (hold, the waiting request)."""
    hold, holding = threading.Event(), threading.Event()
    window.server.jobs.submit(ChatRequest(QUESTION), lambda kind, _p: kind == "started" and (holding.set(),
                                                                                              hold.wait(20)))
    assert holding.wait(10)
    waiting = InThread(lambda: client(window).chat.completions.create(model="m", messages=QUESTION))
    qtbot.waitUntil(lambda: window.server.jobs.room.count == 1, timeout=TIMEOUT_MS)
    return hold, waiting


def test_a_request_is_answered_while_the_window_is_idle(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.menus.model_menu  # the switch lives in the Model menu
    window.server.toggle_action.trigger()
    assert window.server.serving and window.server.toggle_action.isChecked()

    reply = client(window).chat.completions.create(model="anything", messages=QUESTION)
    assert reply.choices[0].message.reasoning_content == STANDARD_THINKING.strip()
    assert reply.choices[0].message.content == STANDARD_ANSWER.strip()
    assert reply.model == scripted_model("standard_r1").stem
    assert [m.id for m in client(window).models.list().data] == [scripted_model("standard_r1").stem]
    # The window's own conversation is untouched by it.
    assert window.session.messages == []


def test_the_indicator_shows_the_address_copies_it_and_turns_serving_off(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    indicator = window.status.server_indicator
    assert not indicator.isVisible()
    window.server.start()
    port = window.settings.server_port
    assert indicator.isVisible()
    assert indicator.text() == f"●  Serving on http://127.0.0.1:{port}"
    assert "Scripted-standard_r1" in indicator.toolTip() or scripted_model("standard_r1").stem in indicator.toolTip()
    actions = {a.text(): a for a in indicator.menu().actions()}
    actions["Copy address"].trigger()
    assert QGuiApplication.clipboard().text() == f"http://127.0.0.1:{port}/v1"
    actions["Turn serving off"].trigger()
    assert not window.server.serving and not indicator.isVisible()
    assert not window.server.toggle_action.isChecked()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=5).models.list()


def test_a_window_chat_and_a_server_request_take_turns_on_one_engine(qtbot, open_app, data_dir, scripted_model,
                                                                     monkeypatch):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.start()
    events: list[tuple[str, str]] = []  # in the order the engine thread produced them
    worker = window.client._worker
    worker.started.connect(lambda *_: events.append(("window", "started")), Qt.ConnectionType.DirectConnection)
    worker.finished.connect(lambda *_: events.append(("window", "finished")), Qt.ConnectionType.DirectConnection)
    submit = window.client.submit_job

    def watched(job):  # every server job reports its events here too, on the engine thread
        listener = job.on_event
        job.on_event = lambda kind, payload: (events.append(("server", kind)), listener(kind, payload))
        submit(job)

    monkeypatch.setattr(window.client, "submit_job", watched)

    # A server job holds the engine (its listener waits at "started"), so what follows must queue.
    hold, holding = threading.Event(), threading.Event()

    def holder(kind, _payload):
        if kind == "started":
            holding.set()
            hold.wait(20)

    window.server.jobs.submit(ChatRequest(QUESTION, Sampling(max_tokens=3)), holder)
    assert holding.wait(10)
    # The window's chat goes first in the queue, then a request from the server.
    qtbot.keyClicks(window.prompt_input, "What is 17 times 23?")
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    assert window.session.busy
    request = InThread(lambda: client(window).chat.completions.create(model="m", messages=QUESTION))
    qtbot.waitUntil(lambda: window.server.jobs.room.count == 1, timeout=TIMEOUT_MS)  # the request waits
    assert window.session.live_trace.thinking == ""  # the window's chat waits too, and the window says why
    assert window.status.currentMessage() == "Your answer starts when the server's 1 request is done…"
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as finished:
        hold.set()
    qtbot.waitUntil(request.done.is_set, timeout=TIMEOUT_MS)
    assert window.status.currentMessage() == ""

    assert request.error is None, request.error
    assert request.result.choices[0].message.content == STANDARD_ANSWER.strip()
    answer = finished.args[0]
    assert (answer.thinking, answer.content, answer.status) == (STANDARD_THINKING.strip(), STANDARD_ANSWER.strip(),
                                                                "complete")
    # One after the other, never interleaved: the holder, the window's chat, then the request.
    runs = [e for e in events if e[1] in ("started", "finished", "done")]
    assert runs == [("server", "started"), ("server", "done"), ("window", "started"), ("window", "finished"),
                    ("server", "started"), ("server", "done")]


def test_a_full_queue_answers_429(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.max_waiting = 1
    window.server.start()
    hold, waiting = one_request_waiting(qtbot, window)
    with pytest.raises(openai.RateLimitError) as refused:
        client(window).chat.completions.create(model="m", messages=QUESTION)
    assert refused.value.body["code"] == "queue_full"
    hold.set()
    assert waiting.done.wait(20) and waiting.error is None


def test_after_unload_requests_get_503_no_model_loaded(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.start()
    with qtbot.waitSignal(window.client.unloaded, timeout=LOAD_TIMEOUT_MS):
        window.client.unload()
    with pytest.raises(openai.InternalServerError) as unavailable:
        client(window).chat.completions.create(model="m", messages=QUESTION)
    assert unavailable.value.status_code == 503
    assert unavailable.value.body["code"] == "model_not_loaded"
    assert "No model is loaded" in unavailable.value.body["message"]
    assert client(window).models.list().data == []
    assert "No model is loaded" in window.status.server_indicator.toolTip()
    # Loading a model again serves it.
    with qtbot.waitSignal(window.client.loaded, timeout=LOAD_TIMEOUT_MS):
        window.load_model(scripted_model("non_reasoning"))
    reply = client(window).chat.completions.create(model="m", messages=QUESTION)
    assert reply.model == scripted_model("non_reasoning").stem and reply.choices[0].message.content


def test_switching_models_ends_a_running_request_with_503(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("long_trace"))
    window.server.start()
    chunks: list = []

    def stream():
        for chunk in client(window).chat.completions.create(model="m", messages=QUESTION, stream=True):
            chunks.append(chunk)

    request = InThread(stream)
    qtbot.waitUntil(lambda: len(chunks) > 2, timeout=TIMEOUT_MS)  # it is generating
    window.load_model(scripted_model("standard_r1"))
    qtbot.waitUntil(request.done.is_set, timeout=TIMEOUT_MS)
    assert isinstance(request.error, openai.APIError)
    assert "switching models" in str(request.error)
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.server.serving  # still on, now serving the new model
    assert client(window).models.list().data[0].id == scripted_model("standard_r1").stem


def test_a_port_in_use_is_a_notice_saying_what_to_do(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        window.settings.server_port = taken.getsockname()[1]
        window.server.toggle_action.trigger()
        assert not window.server.serving
        assert not window.server.toggle_action.isChecked()
        assert not window.status.server_indicator.isVisible()
        assert window.notice.isVisible()
        text = window.notice.label.text()
        assert f"Port {window.settings.server_port} on 127.0.0.1 is already in use" in text
        assert "Choose another port in Server settings" in text
        assert window.notice.action_button.text() == "Server settings…"


def _answer_next_box(qtbot, button_text: str) -> list[str]:
    """Click `button_text` in the next modal message box; returns its text once shown."""
    seen: list[str] = []

    def click():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        for button in box.buttons():
            if button.text().replace("&", "") == button_text:
                button.click()
                return
        raise AssertionError(f"no button {button_text!r} in {[b.text() for b in box.buttons()]}")

    QTimer.singleShot(0, click)
    return seen


def test_serving_beyond_loopback_without_a_key_asks_first(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"), server_host="0.0.0.0")
    seen = _answer_next_box(qtbot, "Cancel")
    window.server.toggle_action.trigger()
    assert seen and "without an API key" in seen[0]
    assert not window.server.serving and not window.server.toggle_action.isChecked()

    seen = _answer_next_box(qtbot, "Serve without a key")
    window.server.toggle_action.trigger()
    assert seen and window.server.serving
    assert window.status.server_indicator.text().endswith(f"http://0.0.0.0:{window.settings.server_port}")
    window.server.stop()

    # With a key, no question: requests need the key.
    window.server.keys.set("s3cret")
    try:
        window.server.start()
        assert window.server.serving
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{window.settings.server_port}/v1", api_key="wrong",
                          max_retries=0, timeout=10).models.list()
        models = openai.OpenAI(base_url=f"http://127.0.0.1:{window.settings.server_port}/v1", api_key="s3cret",
                               max_retries=0, timeout=10).models.list()
        assert len(models.data) == 1
    finally:
        window.server.keys.set(None)  # the key store lives as long as the process


def test_closing_the_window_ends_a_waiting_request_and_the_server(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.start()
    port = window.settings.server_port
    hold, waiting = one_request_waiting(qtbot, window)
    threading.Timer(0.3, hold.set).start()  # the holder lets go while the window is closing (GUI blocked)
    window.close()
    assert waiting.done.wait(20)
    assert isinstance(waiting.error, openai.APIError)
    assert "closing" in str(waiting.error) or isinstance(waiting.error, openai.APIConnectionError)
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=5).models.list()


def test_server_settings_restart_the_server_with_the_new_port_and_raw_thinking(qtbot, open_app, data_dir,
                                                                               scripted_model):
    from app.ui.server_switch import ServerSettingsDialog

    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.start()
    old_address = window.server.address
    dialog = ServerSettingsDialog(window.server.current_config(), window.server.keys.note, window)
    qtbot.addWidget(dialog)
    assert dialog.host.text() == "127.0.0.1" and not dialog.raw_think.isChecked()
    assert "session" in dialog.findChild(QLabel, "serverKeyNote").text() or window.server.keys.note is None
    new_port = free_port()
    dialog.port.setValue(new_port)
    dialog.raw_think.setChecked(True)
    window.server.apply(dialog.result_config())
    assert window.server.serving and window.server.address == f"http://127.0.0.1:{new_port}" != old_address
    assert window.status.server_indicator.text().endswith(f":{new_port}")
    reply = client(window).chat.completions.create(model="m", messages=QUESTION)
    assert reply.choices[0].message.content.startswith("<think>\n") and "</think>" in reply.choices[0].message.content
    saved = load_settings(data_dir)
    assert (saved.server_port, saved.server_reasoning_format) == (new_port, "raw")


def test_turning_serving_off_answers_a_waiting_request_at_once(qtbot, open_app, data_dir, scripted_model):
    window = serving_window(open_app, data_dir, scripted_model("standard_r1"))
    window.server.start()
    hold, waiting = one_request_waiting(qtbot, window)
    jobs = window.server.jobs
    try:
        window.server.stop()  # does not wait for the engine to get to the request
        assert waiting.done.wait(5)
        assert isinstance(waiting.error, openai.InternalServerError) and waiting.error.status_code == 503
        assert "Serving was turned off" in waiting.error.body["message"]
        assert jobs.room.count == 0 and jobs.active == 1  # only the holder, still running
    finally:
        hold.set()
    qtbot.waitUntil(lambda: jobs.active == 0, timeout=TIMEOUT_MS)
