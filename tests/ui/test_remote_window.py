"""The window on a remote engine: the real window talks to Ponder's own `ponder serve` on loopback
(a scripted model behind it), through the RemoteEngine on the window's engine thread. Answer now
and the thinking budget on llama-server go to the loopback fake of tests/core/test_remote_failures.py,
which speaks llama-server's control protocol (no llama-server binary is built here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import openai
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.core.remote import Endpoint
from app.core.secrets import NO_KEYCHAIN, key_store
from app.core.settings import settings_path
from app.core.traces import trace_records
from app.ui.remote_dialog import ConnectDialog
from tests.core.serve_helpers import ponder_servers
from tests.core.test_remote_failures import fake_servers
from tests.fixtures.scripted_gguf import NON_REASONING_ANSWER, STANDARD_ANSWER, STANDARD_THINKING
from tests.ui.conftest import ANSWER_TIMEOUT_MS, LOAD_TIMEOUT_MS
from tests.ui.test_window import PROMPT, send


@pytest.fixture
def ponder_server(scripted_model):
    """ponder_server(script, **build_app options) -> `ponder serve`'s service and API in a thread of
    this process, on a free loopback port; stopped after the test."""
    with ponder_servers(scripted_model) as start:
        yield start


def connect(qtbot, window, endpoint: Endpoint) -> None:
    with qtbot.waitSignal(window.client.loaded, timeout=LOAD_TIMEOUT_MS):
        window.models.connect_remote(endpoint)


def test_the_dialog_lists_the_servers_models_and_the_window_chats_through_it(qtbot, open_app, data_dir,
                                                                            ponder_server, scripted_model):
    server = ponder_server("standard_r1")
    model_id = scripted_model("standard_r1").stem
    window = open_app(data_dir)
    steps: list[str] = []
    errors: list[BaseException] = []

    def guarded(step):  # a failed check inside the modal dialog closes it instead of leaving it open
        def run(*args):
            try:
                step(*args)
            except BaseException as exc:  # noqa: BLE001  (re-raised by the test below)
                errors.append(exc)
                QApplication.activeModalWidget().reject()
        return run

    @guarded
    def fill():  # inside the dialog's own event loop, as a user would
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ConnectDialog):
            QTimer.singleShot(20, fill)
            return
        dialog.preset.setCurrentIndex(dialog.preset.findText("SGLang"))
        assert dialog.base_url.text() == "http://localhost:30000/v1"  # the preset's default
        assert "--reasoning-parser" in dialog.preset_note.text()
        dialog.preset.setCurrentIndex(dialog.preset.findText("Other server"))  # Ponder names itself
        dialog.base_url.setText(server.base_url)
        qtbot.mouseClick(dialog.list_button, Qt.MouseButton.LeftButton)
        steps.append("listing")
        wait_for_list(dialog)

    @guarded
    def wait_for_list(dialog):
        if dialog.model.count() == 0 or dialog.model.itemText(0) != model_id:
            QTimer.singleShot(20, lambda: wait_for_list(dialog))
            return
        steps.append(dialog.message.text())
        dialog.model.setCurrentIndex(0)
        assert dialog.reasoning.isChecked()  # guessed: "…standard_r1" names an R1
        qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, fill)
    with qtbot.waitSignal(window.client.loaded, timeout=LOAD_TIMEOUT_MS, raising=False):
        window.menus.connect_server.trigger()
    if errors:
        raise errors[0]
    assert steps == ["listing", "1 model on this server."]

    label = f"remote: 127.0.0.1:{server.port} · {model_id}"
    assert window.client.is_remote and window.client.info.label == label
    assert window.status.model_label.text() == label
    assert window.status.model_label.property("remote") is True
    assert "Your prompts are sent there" in window.status.model_label.toolTip()
    assert window.windowTitle() == f"{label} — Ponder"  # also while a status message covers the label

    message = send(qtbot, window)
    assert (message.thinking, message.content, message.status) == (STANDARD_THINKING.strip(),
                                                                   STANDARD_ANSWER.strip(), "complete")
    assert message.model_info["source"] == label  # where the message came from
    assert message.stats["source"] == label and message.stats["counts_from"] == "server usage"
    assert message.stats["thinking_tokens"] > 0 and message.stats["answer_tokens"] > 0
    view = window.transcript.assistant_views()[-1]  # the same thinking pane and answer as a local model's
    assert view.thinking_text == STANDARD_THINKING.strip() and not view.thinking_expanded
    assert "17 × 23 = 391" in view.answer_view.toPlainText()
    conversation = window.store.get_conversation(message.conversation_id)
    stored = conversation.messages[-1]
    assert stored.model_info["source"] == label and stored.thinking == message.thinking
    record = list(trace_records(conversation))[-1]  # the JSONL export says where it came from
    assert record["model"]["source"] == label and record["thinking"] == message.thinking
    assert record["stats"]["source"] == label
    assert window.status.model_label.text() == label  # visibly remote throughout

    # Remembered for next time, without a key, with what the stream showed (it thinks); a server is
    # not reconnected at start.
    saved = json.loads(settings_path(data_dir).read_text())
    assert saved["remote_connections"][0] == {"base_url": server.base_url, "model": model_id, "reasoning": True,
                                              "server_kind": None}
    assert saved["last_model_path"] is None


def test_stop_closes_the_stream_and_keeps_the_partial_answer(qtbot, open_app, data_dir, ponder_server):
    server = ponder_server("long_trace")
    window = open_app(data_dir)
    connect(qtbot, window, Endpoint(server.base_url, reasoning=True))
    qtbot.keyClicks(window.prompt_input, PROMPT)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(window.session.live_trace.thinking) > 200, timeout=ANSWER_TIMEOUT_MS)
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as finished:
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    message = finished.args[0]
    assert message.status == "stopped" and len(message.thinking) > 200
    # The server saw the connection close and stopped generating.
    deadline = time.monotonic() + 10
    while not server.service.recent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.service.recent[-1].finish_reason == "cancelled"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_killed_mid_stream_keeps_the_partial_answer_and_says_so(qtbot, open_app, data_dir,
                                                                        scripted_model):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--model", str(scripted_model("long_trace")),
                             "--port", str(port), "--ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PONDER_API_KEY"})
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        probe = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                probe.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "ponder serve did not start"
                time.sleep(0.1)
        window = open_app(data_dir)
        connect(qtbot, window, Endpoint(base_url, reasoning=True))
        qtbot.keyClicks(window.prompt_input, PROMPT)
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(window.session.live_trace.thinking) > 200, timeout=ANSWER_TIMEOUT_MS)
        with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as finished:
            proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    message = finished.args[0]
    assert message.status == "error" and len(message.thinking) > 200  # what came is kept
    stored = window.store.get_conversation(message.conversation_id).messages[-1]
    assert stored.thinking == message.thinking and stored.status == "error"
    assert window.notice.isVisible()
    assert f"The connection to 127.0.0.1:{port} broke in the middle of the answer" in window.notice.label.text()
    assert "The part already received is kept" in window.notice.label.text()
    assert window.client.is_remote  # still connected: the next prompt can try again


def test_an_unreachable_server_is_a_notice_that_reopens_the_dialog(qtbot, open_app, data_dir, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))  # a chat open: the notice bar shows it
    window.session.send(PROMPT)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=ANSWER_TIMEOUT_MS)
    port = free_port()  # nothing listens there
    with qtbot.waitSignal(window.client.load_failed, timeout=LOAD_TIMEOUT_MS) as failed:
        window.models.connect_remote(Endpoint(f"http://127.0.0.1:{port}/v1", "m"))
    assert f"127.0.0.1:{port}" in failed.args[0]
    assert window.client.info is None and window.status.model_label.text() == "No model loaded"
    assert window.notice.isVisible() and window.notice.label.text() == failed.args[0]
    assert window.notice.action_button.text() == "Connect to a server…"
    seen: list[str] = []

    def look():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ConnectDialog):
            QTimer.singleShot(20, look)
            return
        seen.append(dialog.message.text())
        dialog.reject()

    QTimer.singleShot(0, look)
    window.notice.action_button.click()
    assert seen == [failed.args[0]]  # the dialog opens again, saying what went wrong


def test_the_key_goes_to_the_key_store_never_to_the_settings(qtbot, open_app, data_dir):
    window = open_app(data_dir)
    dialog = ConnectDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.preset.setCurrentIndex(dialog.preset.findText("DeepSeek API"))
    assert dialog.model.currentText() == "deepseek-reasoner" and dialog.reasoning.isChecked()
    assert dialog.key_note.text() == (key_store().note or dialog.key_note.text())
    if not key_store().persistent:  # this machine has no keychain: the dialog says so
        assert dialog.key_note.text() == NO_KEYCHAIN
    dialog.api_key.setText("sk-test-123")
    dialog.connect_button.click()
    assert dialog.result() == ConnectDialog.DialogCode.Accepted
    endpoint = dialog.endpoint()
    try:
        assert endpoint.base_url == "https://api.deepseek.com/v1" and endpoint.api_key == "sk-test-123"
        assert key_store().get("https://api.deepseek.com/v1") == "sk-test-123"
        from app.ui.remote_dialog import remember_connection

        remember_connection(window.settings, endpoint)
        window.save_settings()
        assert "sk-test-123" not in settings_path(data_dir).read_text()
        # The recent connection comes back first, with its key from the store.
        again = ConnectDialog(window.settings, window)
        qtbot.addWidget(again)
        assert again.preset.currentText() == "Recent: api.deepseek.com · deepseek-reasoner"
        assert again.api_key.text() == "sk-test-123"
    finally:
        key_store().delete("https://api.deepseek.com/v1")


def test_a_wrong_reasoning_guess_is_corrected_by_the_first_answer_and_remembered(qtbot, open_app, data_dir,
                                                                                ponder_server, scripted_model):
    # "…non_reasoning" has "reason" in its name, so it is guessed a reasoning model; its stream,
    # plain content with no closing tag, shows it is not.
    server = ponder_server("non_reasoning")
    model_id = scripted_model("non_reasoning").stem
    window = open_app(data_dir)
    connect(qtbot, window, Endpoint(server.base_url))
    assert window.client.info.is_reasoning and window.client.info.reasoning_source == "name"
    message = send(qtbot, window)
    assert (message.thinking, message.content) == ("", NON_REASONING_ANSWER)  # all answer, once it is known
    assert window.transcript.assistant_views()[-1].thinking_text == ""
    assert window.client.info.is_reasoning is False and window.client.info.reasoning_source == "stream"
    saved = json.loads(settings_path(data_dir).read_text())["remote_connections"]
    assert saved[0]["model"] == model_id and saved[0]["reasoning"] is False  # the model's setting, learned


def test_the_model_pickers_offer_connect_to_a_server(qtbot, open_app, data_dir):
    window = open_app(data_dir)  # no model: the welcome page offers it beside the local choices
    opened: list[str] = []

    def close_dialog():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ConnectDialog):
            QTimer.singleShot(20, close_dialog)
            return
        opened.append(dialog.windowTitle())
        dialog.reject()

    assert window.welcome.connect_button.isVisible()
    QTimer.singleShot(0, close_dialog)
    window.welcome.connect_button.click()
    manager = window.open_model_manager()
    QTimer.singleShot(0, close_dialog)
    manager.connect_button.click()
    assert opened == ["Connect to a server", "Connect to a server"]
    assert window.client.info is None and not window.client.loading  # cancelled: nothing happens


CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def test_a_server_without_the_controls_disables_them_and_says_why(qtbot, open_app, data_dir, ponder_server):
    server = ponder_server("long_trace")  # Ponder's own API: no thinking budget, no control to end a thought
    window = open_app(data_dir)
    bar, action = window.steering_bar, window.menus.answer_now
    bar.budget_box.setValue(512)  # the budget the user keeps for local models
    connect(qtbot, window, Endpoint(server.base_url, reasoning=True))
    caps = window.client.capabilities  # emitted by the engine thread with the connection
    assert caps is not None and not (caps.answer_now or caps.budget or caps.nudge)
    assert caps.answer_now_note.startswith("Ponder can't end the thinking early")
    assert not bar.budget_box.isEnabled() and bar.budget_box.toolTip() == caps.budget_note
    assert bar.budget_label.text() == "Thinking budget (not on this server)"
    qtbot.keyClicks(window.prompt_input, PROMPT)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bar.answer_now_button.isVisible(), timeout=ANSWER_TIMEOUT_MS)
    assert not bar.answer_now_button.isEnabled() and bar.answer_now_button.toolTip() == caps.answer_now_note
    assert not action.isEnabled() and action.statusTip() == caps.answer_now_note
    # The note box says a server can't take a note, instead of taking one and dropping it.
    assert bar.note_input.isVisible() and not bar.note_input.isEnabled() and not bar.nudge_button.isEnabled()
    assert bar.note_input.placeholderText() == caps.nudge_note
    # The shortcut, typed where the focus is: the note in the notice bar, not silence.
    assert not window.notice.isVisible()
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return, CTRL_SHIFT)
    assert window.notice.isVisible() and window.notice.label.text() == caps.answer_now_note
    assert window.prompt_input.toPlainText() == ""  # the keys did not type a new line
    assert not window.session.nudge("consider negative numbers too.")  # however a note gets there
    assert window.notice.label.text() == caps.nudge_note
    assert window.session.live_thinking  # it thinks on: nothing was ended
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as finished:
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)  # what the note offers instead
    message = finished.args[0]
    assert message.status == "stopped" and "answer_now" not in message.flags
    assert message.sampling["thinking_budget"] is None  # a budget the server ignores is not claimed
    assert window.store.get_conversation(message.conversation_id).messages[-1].sampling["thinking_budget"] is None
    assert bar.budget_box.value() == 512 and window.session.thinking_budget == 512  # kept for a local model
    # After a stopped thought a server has nothing to continue it with: no note box for that.
    assert bar.note_input.isHidden() and bar.answer_now_button.isHidden() and not action.isEnabled()


@pytest.fixture
def llama_server():
    with fake_servers() as start:
        yield start


def test_answer_now_and_the_budget_go_to_llama_servers_controls(qtbot, open_app, data_dir, llama_server):
    server = llama_server(owned_by="llamacpp")  # thinks in 2000 steps until its control ends the thought
    window = open_app(data_dir)
    bar, action = window.steering_bar, window.menus.answer_now
    bar.budget_box.setValue(512)
    connect(qtbot, window, Endpoint(server.base_url, "llama", reasoning=True))
    caps = window.client.capabilities
    assert caps.answer_now and caps.budget and not caps.nudge
    assert bar.budget_box.isEnabled() and "llama-server" in bar.budget_box.toolTip()
    assert bar.budget_label.text() == "Thinking budget"
    qtbot.keyClicks(window.prompt_input, PROMPT)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "step20" in window.session.live_trace.thinking, timeout=ANSWER_TIMEOUT_MS)
    assert bar.answer_now_button.isEnabled() and action.isEnabled()
    assert not bar.note_input.isEnabled()  # llama-server has no way to take a note either
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as finished:
        qtbot.mouseClick(bar.answer_now_button, Qt.MouseButton.LeftButton)
    message = finished.args[0]
    assert (message.content, message.status) == ("The answer.", "complete") and "answer_now" in message.flags
    assert "step1999" not in message.thinking  # the server ended the thought when asked
    assert server.controls == [{"id": "chatcmpl-llama", "action": "reasoning_end", "model": "llama"}]
    sent = server.requests[-1]
    assert sent["reasoning_budget_tokens"] == 512 and sent["reasoning_control"] is True
    assert message.sampling["thinking_budget"] == 512  # the server took it, so the message says so


def test_a_llama_server_without_the_control_endpoint_says_so_while_it_thinks(qtbot, open_app, data_dir,
                                                                             llama_server):
    # Remembered as llama-server, but its build has no control endpoint (404, as before llama.cpp #23944).
    server = llama_server(owned_by="vllm")
    window = open_app(data_dir)
    connect(qtbot, window, Endpoint(server.base_url, "llama", reasoning=True, server_kind="llama-server"))
    bar = window.steering_bar
    qtbot.keyClicks(window.prompt_input, PROMPT)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bar.answer_now_button.isVisible(), timeout=ANSWER_TIMEOUT_MS)
    qtbot.mouseClick(bar.answer_now_button, Qt.MouseButton.LeftButton)
    said = "can't end the thinking early: this llama-server has no control endpoint"
    qtbot.waitUntil(lambda: window.notice.isVisible() and said in window.notice.label.text(),
                    timeout=ANSWER_TIMEOUT_MS)
    assert window.session.live_thinking  # said while it still thinks
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
