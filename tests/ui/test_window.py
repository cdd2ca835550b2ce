"""The main window, offscreen, driven like a user would, through real llama.cpp with scripted models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

import app.__main__ as cli
from app.core.engine import ModelInfo
from app.core.settings import load_settings
from app.core.storage import store_path
from app.ui import theme
from app.ui.main import open_window
from app.ui.message_view import AssistantMessageView, UserMessageView
from app.ui.settings_dialog import SettingsDialog
from app.ui.status_bar import LIVE_COUNT_INTERVAL_MS, device_details, device_summary
from app.ui.window import MainWindow
from tests.fixtures.scripted_gguf import (
    LONG_TRACE_THINKING_TOKENS,
    STANDARD_ANSWER,
    STANDARD_THINKING,
    Script,
    split_script,
)
from tests.ui.conftest import ANSWER_TIMEOUT_MS, LOAD_TIMEOUT_MS

PROMPT = "What is 17 times 23?"


def send(qtbot, window: MainWindow, text: str = PROMPT):
    """Type a prompt and press Enter; returns the stored assistant message once it is finished."""
    qtbot.keyClicks(window.prompt_input, text)
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    return blocker.args[0]


def last_assistant_view(window: MainWindow) -> AssistantMessageView:
    return window.transcript.assistant_views()[-1]


# --- startup and model loading -------------------------------------------------------------


def test_window_is_on_screen_before_the_model_loads_and_shows_a_busy_state(qtbot, data_dir, scripted_model):
    window = open_window(str(data_dir), str(scripted_model("standard_r1")))
    try:
        # open_window has returned but no event was processed: the model is still loading.
        assert window.isVisible()
        assert window.client.loading
        assert window.welcome.message.text().startswith("Loading ")
        assert not window.welcome.progress.isHidden() and not window.status.progress_bar.isHidden()
        assert not window.send_button.isEnabled()

        qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
        assert window.status.model_label.text() == "Scripted-standard_r1 · F32"
        assert window.status.device_label.text() == "CPU · KV f16"
        assert "Runs on the CPU" in window.status.device_label.toolTip() and "16-bit" in window.status.device_label.toolTip()
        assert window.status.context_label.text() == "Context 0 / 2,048"
        assert window.status.progress_bar.isHidden()
        assert "is ready" in window.welcome.message.text()
    finally:
        window.close()
        window.store.close()


def test_without_a_model_the_window_says_so_and_offers_to_choose_a_file(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    assert window.pages.currentWidget() is window.welcome
    assert "No model is loaded" in window.welcome.message.text()
    choose = window.findChild(QWidget, "chooseModelButton")
    assert choose.isVisible() and choose.text() == "Choose a GGUF file…"
    # With no model, the download flow (recommendation and its Download button) is on the page.
    assert window.welcome.download_area.isVisible()
    qtbot.waitUntil(lambda: window.library.survey is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.findChild(QWidget, "recommendationCard").isVisible()
    assert window.status.model_label.text() == "No model loaded"

    qtbot.keyClicks(window.prompt_input, "hello")
    assert not window.send_button.isEnabled()
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    assert window.session.messages == []
    assert "No model is loaded" in window.notice.label.text()


def test_a_malformed_model_file_shows_the_error_and_the_app_stays_usable(
    qtbot, data_dir, open_app, malformed_model, scripted_model
):
    bad = malformed_model("bad_magic")
    window = open_app(data_dir, wait_loaded=False)
    window.load_model(bad)
    qtbot.waitUntil(lambda: not window.client.loading, timeout=LOAD_TIMEOUT_MS)

    assert window.client.info is None
    shown = window.welcome.message.text()
    assert "bad_magic.gguf" in shown and "not a GGUF model file" in shown
    assert window.findChild(QWidget, "chooseModelButton").isVisible()
    assert window.status.model_label.text() == "No model loaded"
    assert load_settings(data_dir).last_model_path is None  # a file that failed is not remembered

    window.load_model(scripted_model("standard_r1"))
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert send(qtbot, window).status == "complete"

    # With a conversation on screen, the error comes as a notice above it.
    window.load_model(bad)
    qtbot.waitUntil(lambda: not window.client.loading, timeout=LOAD_TIMEOUT_MS)
    assert window.notice.isVisible() and window.notice.label.text() in shown
    assert window.notice.action_button.text() == "Choose a GGUF file…"
    assert window.transcript.isVisible() and len(window.transcript.views()) == 2


def test_python_m_app_with_model_opens_the_window_and_loads_it(qtbot, data_dir, scripted_model):
    loaded: list[str] = []

    def close_when_loaded() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.client.info is not None:
                loaded.append(widget.client.info.name)
                widget.close()  # the last window closing ends app.exec()
                return
        QTimer.singleShot(20, close_when_loaded)

    QTimer.singleShot(0, close_when_loaded)
    guard = QTimer(singleShot=True, interval=LOAD_TIMEOUT_MS)  # never hang the suite
    guard.timeout.connect(lambda: QApplication.exit(3))
    guard.start()
    try:
        code = cli.main(["--data-dir", str(data_dir), "--model", str(scripted_model("standard_r1"))])
    finally:
        guard.stop()

    assert code == 0 and loaded == ["Scripted-standard_r1"]
    assert load_settings(data_dir).last_model_path == str(scripted_model("standard_r1"))


# --- asking --------------------------------------------------------------------------------


def test_thinking_streams_live_then_collapses_when_the_answer_starts(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    seen: list[tuple] = []

    def look(kind: str, _text: str) -> None:  # runs after the transcript has applied the segment
        view = window.transcript.live_view
        seen.append((kind, view.thinking_expanded, view.thinking_body.toPlainText(), view.answer_text,
                     view.thinking_header.text()))

    window.session.stream_segment.connect(look)
    message = send(qtbot, window)

    kind, expanded, thinking, answer, header = seen[0]
    assert kind == "think" and expanded and thinking.startswith("Okay,") and answer == ""
    assert header.startswith("Thinking…")

    pane = window.findChild(QWidget, "thinkingPane")
    answer_view = window.findChild(QWidget, "answerView")
    view = last_assistant_view(window)
    assert pane is view.thinking_pane and answer_view is view.answer_view
    assert pane.isVisible() and not view.thinking_expanded  # collapsed once the answer started
    assert view.thinking_header.text().startswith("Thought for") and "44 tokens" in view.thinking_header.text()
    assert view.thinking_text == STANDARD_THINKING.strip()
    rendered = answer_view.toPlainText()
    assert "17 × 23 = 391" in rendered and "**" not in rendered  # markdown, rendered
    assert "<table" in answer_view.toHtml() and "print(17 * 23)" in rendered

    view.thinking_header.click()  # it can be expanded again
    assert view.thinking_expanded

    assert message.status == "complete" and message.content == STANDARD_ANSWER.strip()
    assert window.status.context_label.text() == f"Context {message.stats['context_used']} / 2,048"
    assert window.status.speed_label.text().endswith("tokens/s")
    assert window.prompt_input.toPlainText() == ""


def test_status_bar_counts_the_context_while_an_answer_streams(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))
    shown: list[int] = []

    def look() -> None:  # what a person would see: the label, looked at every few milliseconds
        n = int(window.status.context_label.text().split()[1].replace(",", ""))
        if window.session.live_context_used and (not shown or n != shown[-1]):  # from the prompt's size on
            shown.append(n)

    sampler = QTimer(window, interval=5)
    sampler.timeout.connect(look)
    sampler.start()
    try:
        message = send(qtbot, window)
    finally:
        sampler.stop()

    prompt, used = message.stats["prompt_tokens"], message.stats["context_used"]
    assert shown[0] == prompt > 0  # as soon as the prompt is read, before any text
    assert shown == sorted(shown) and shown[-1] <= used
    assert any(prompt < n < used for n in shown)  # it moved while the answer was being written
    assert window.status.context_label.text() == f"Context {used:,} / 2,048"
    # Drawn on a throttle: a few updates a second, not one per batch of tokens.
    seconds = message.stats["total_s"]
    assert len(shown) <= seconds * 1000 / LIVE_COUNT_INTERVAL_MS + 3


def test_status_bar_says_where_the_model_runs_and_its_kv_cache(qtbot):
    info = ModelInfo(path=Path("m.gguf"), name="M", architecture="qwen2", quantization="Q4_K_M", file_size=1,
                     n_ctx=16384, n_ctx_train=131072, n_layers=28, n_gpu_layers=29, kv_type="q8_0",
                     backend="CUDA", gpu_note=None, is_reasoning=True, template_note=None)
    assert device_summary(info) == "CUDA · 29/29 layers on GPU · KV q8_0"
    assert "all 29 layers" in device_details(info) and "8-bit" in device_details(info)
    partial = dataclasses.replace(info, n_gpu_layers=12, kv_type="f16", gpu_note="Not enough GPU memory for all.")
    assert device_summary(partial) == "CUDA · 12/29 layers on GPU · KV f16"
    assert "12 of 29 layers" in device_details(partial) and "Not enough GPU memory" in device_details(partial)
    fallback = dataclasses.replace(info, n_gpu_layers=0, backend="CPU", gpu_note="Loading on the CUDA GPU failed.")
    assert device_summary(fallback) == "CPU · KV q8_0"
    assert device_details(fallback).endswith("Loading on the CUDA GPU failed.")


def test_notice_bar_colours_follow_its_kind(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    colors = theme.colors_for(window)

    def text_color() -> str:
        return window.notice.label.palette().color(QPalette.ColorRole.WindowText).name()

    window.notice.show_notice("It failed.", error=True)
    assert text_color() == colors.error_text
    window.notice.show_notice("Deleted.", action=("Undo", lambda: None))
    assert text_color() == colors.text


def test_enter_sends_and_shift_enter_starts_a_new_line(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("non_reasoning"))
    qtbot.keyClicks(window.prompt_input, "first line")
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.prompt_input, "second line")
    assert window.prompt_input.toPlainText() == "first line\nsecond line"
    assert window.session.messages == []

    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)
    user, assistant = window.session.messages
    assert user.content == "first line\nsecond line"
    assert assistant.content.startswith("Paris") and assistant.thinking == ""
    view = last_assistant_view(window)
    assert view.thinking_pane.isHidden()  # a non-reasoning model has no thinking pane


def test_stop_and_escape_end_the_answer_and_keep_what_was_generated(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))

    def press_escape() -> None:
        window.session.stream_segment.disconnect(press_escape)
        assert window.stop_button.isEnabled() and not window.send_button.isEnabled()
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Escape)

    window.session.stream_segment.connect(press_escape)
    message = send(qtbot, window)

    assert message.status == "stopped" and message.stats["finish_reason"] == "cancelled"
    assert 0 < message.stats["thinking_tokens"] < LONG_TRACE_THINKING_TOKENS
    assert message.thinking and message.content == ""
    view = last_assistant_view(window)
    assert view.thinking_text == message.thinking
    assert view.status_chip.isVisible() and view.status_chip.text() == "Stopped"
    stored = window.store.get_conversation(message.conversation_id).messages[-1]
    assert (stored.status, stored.thinking) == ("stopped", message.thinking)
    assert not window.stop_button.isEnabled()

    # The Stop button does the same.
    window.session.stream_segment.connect(lambda *_: qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton))
    assert send(qtbot, window, "again").status == "stopped"


def test_regenerate_replaces_the_answer(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    user_view, view = window.transcript.views()

    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(view.regenerate_button, Qt.MouseButton.LeftButton)
    second = blocker.args[0]
    assert window.transcript.views()[0] is user_view  # only the views after the cut are rebuilt

    assert second.id != first.id and second.content == first.content
    stored = window.store.get_conversation(first.conversation_id).messages
    assert [(m.role, m.id) for m in stored] == [("user", stored[0].id), ("assistant", second.id)]
    assert len(window.transcript.views()) == 2


def test_edit_a_prompt_and_resend_replaces_it_and_its_answer(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    first = send(qtbot, window)
    user_view = next(v for v in window.transcript.views() if isinstance(v, UserMessageView))

    qtbot.mouseClick(user_view.edit_button, Qt.MouseButton.LeftButton)
    assert window.prompt_input.toPlainText() == PROMPT and window.editing.banner.isVisible()
    window.prompt_input.selectAll()
    qtbot.keyClicks(window.prompt_input, "What is 23 times 17?")
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)

    stored = window.store.get_conversation(first.conversation_id)
    assert [(m.role, m.content) for m in stored.messages][0] == ("user", "What is 23 times 17?")
    assert len(stored.messages) == 2 and stored.messages[1].id != first.id
    assert stored.title == "What is 23 times 17?"
    assert not window.editing.banner.isVisible()
    assert window.conversations.list.item(0).text() == "What is 23 times 17?"


def test_escape_cancels_an_edit(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    user_view = next(v for v in window.transcript.views() if isinstance(v, UserMessageView))
    qtbot.mouseClick(user_view.edit_button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Escape)
    assert not window.editing.banner.isVisible() and window.prompt_input.toPlainText() == ""
    assert len(window.session.messages) == 2


def test_html_and_script_in_an_answer_are_shown_as_text(qtbot, data_dir, open_app, scripted_model):
    answer = '<script>alert("x")</script> and <b>not bold</b> <img src="http://example.com/t.png">'
    script = Script("html_answer", tuple(split_script("Let me answer.\n</think>\n\n" + answer)))
    window = open_app(data_dir, scripted_model(script))
    message = send(qtbot, window)

    assert message.content == answer
    shown = last_assistant_view(window).answer_view
    assert '<script>alert("x")</script>' in shown.toPlainText()
    assert "<b>not bold</b>" in shown.toPlainText()
    assert "<img" not in shown.toHtml()


# --- conversations -------------------------------------------------------------------------


def test_a_conversation_survives_an_application_restart(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    window.resize(700, 500)  # the offscreen screen is 800 x 600
    message = send(qtbot, window)
    window.close()

    again = open_app(data_dir)  # no --model: the last model is loaded again
    assert again.client.info.name == "Scripted-standard_r1"
    assert again.size() == QSize(700, 500)
    conversations = again.conversations.list
    assert conversations.count() == 1 and conversations.item(0).text() == PROMPT
    conversations.setCurrentRow(0)

    assert [m.id for m in again.session.messages][-1] == message.id
    user_view, answer_view = again.transcript.views()
    assert user_view.text == PROMPT
    assert answer_view.thinking_text == STANDARD_THINKING.strip()
    assert answer_view.answer_text == STANDARD_ANSWER.strip()
    assert not answer_view.thinking_expanded and answer_view.thinking_header.text().startswith("Thought for")
    assert again.pages.currentWidget() is again.transcript


def test_conversations_are_listed_newest_first_and_new_chat_starts_empty(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("non_reasoning"))
    send(qtbot, window, "first question")
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.session.conversation_id is None and window.transcript.views() == []
    assert window.pages.currentWidget() is window.welcome
    send(qtbot, window, "second question")

    titles = [window.conversations.list.item(i).text() for i in range(window.conversations.list.count())]
    assert titles == ["second question", "first question"]
    assert window.conversations.list.currentItem().text() == "second question"

    window.conversations.list.setCurrentRow(1)
    assert [m.content for m in window.session.messages if m.role == "user"] == ["first question"]


def test_search_finds_text_inside_thinking_and_opens_it(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    window.new_chat()

    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(window.conversations.search_input, "double-check")
    hits = window.conversations.hits
    qtbot.waitUntil(lambda: window.conversations._pages.currentWidget() is hits and hits.count() > 0)
    assert not window.conversations.list.isVisible()
    item = hits.item(0)
    hit = item.data(Qt.ItemDataRole.UserRole + 1)
    assert hit.field == "thinking" and "double-check" in item.text()

    qtbot.mouseClick(hits.viewport(), Qt.MouseButton.LeftButton, pos=hits.visualItemRect(item).center())
    assert window.session.conversation_id == hit.conversation_id
    assert last_assistant_view(window).thinking_expanded  # the match is in view, not folded away

    window.conversations.clear_search()
    assert window.conversations._pages.currentWidget() is window.conversations.list


def test_delete_can_be_undone_and_rename_is_saved(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("non_reasoning"))
    message = send(qtbot, window, "capital of France?")
    conv_id = message.conversation_id
    lst = window.conversations.list

    lst.setCurrentRow(0)
    window.activateWindow()
    qtbot.waitActive(window)
    lst.setFocus()
    qtbot.keyClick(lst, Qt.Key.Key_Delete)
    assert lst.count() == 0 and window.transcript.views() == []
    assert window.notice.isVisible() and "Deleted “capital of France?”" in window.notice.label.text()

    qtbot.mouseClick(window.notice.action_button, Qt.MouseButton.LeftButton)  # Undo
    assert lst.count() == 1 and lst.item(0).text() == "capital of France?"
    assert window.session.conversation_id == conv_id
    assert [m.id for m in window.session.messages][-1] == message.id

    window.conversations.start_rename(conv_id)  # what F2 or the context menu's Rename do
    editor = lst.findChild(QLineEdit)
    editor.setText("Geography")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.store.get_conversation(conv_id).title == "Geography")
    stored = window.store.get_conversation(conv_id)
    assert stored.title == "Geography" and stored.custom_title
    assert lst.item(0).text() == "Geography"


def test_ctrl_shift_c_copies_the_last_answer(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    message = send(qtbot, window)
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(window, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert QGuiApplication.clipboard().text() == message.content


def test_a_damaged_database_is_moved_aside_and_the_window_says_so(qtbot, data_dir, open_app):
    store_path(data_dir).write_bytes(b"this is not a database" * 200)
    window = open_app(data_dir)
    assert window.notice.isVisible()
    text = window.notice.label.text()
    assert "damaged" in text and str(window.store.recovered_from) in text
    assert window.store.recovered_from.exists()
    assert window.conversations.list.count() == 0


def test_damage_deep_in_the_database_is_found_after_start_and_shown_without_moving_the_file(
    qtbot, data_dir, open_app
):
    from tests.core.test_storage import _filled_db, _overwrite_pages, _root_page

    db = store_path(data_dir)
    _filled_db(db)
    damaged = _overwrite_pages(db, (_root_page(db, "messages"),))  # listing the chats does not read it
    window = open_app(data_dir)
    assert window.conversations.list.count() == 40  # the start stays quick and shows what reads
    qtbot.waitUntil(lambda: window.notice.isVisible(), timeout=LOAD_TIMEOUT_MS)
    assert "is damaged" in window.notice.label.text() and window.notice.property("kind") == "error"
    assert db.read_bytes() == damaged  # nothing is moved while the app has the file open


# --- settings ------------------------------------------------------------------------------


def test_settings_dialog_edits_a_copy_and_reports_what_needs_a_reload(qtbot, data_dir):
    settings = load_settings(data_dir)
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.temperature.setValue(0.3)
    dialog.top_p.setValue(0.9)
    dialog.max_tokens.setValue(4096)
    assert not dialog.needs_reload()
    dialog.n_ctx.setValue(1024)
    dialog.gpu_auto.setChecked(True)
    dialog.thinking_expanded.setChecked(True)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))

    new = dialog.result_settings()
    assert (new.temperature, new.top_p, new.max_tokens, new.n_ctx) == (0.3, 0.9, 4096, 1024)
    assert new.n_gpu_layers == "auto" and new.thinking_expanded and new.theme == "dark"
    assert dialog.needs_reload()
    assert settings.temperature == 0.6  # the original is untouched until the window applies it


def test_applying_settings_saves_them_reloads_the_model_and_changes_the_theme(
    qtbot, data_dir, open_app, scripted_model
):
    window = open_app(data_dir, scripted_model("standard_r1"))
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.n_ctx.setValue(1024)
    dialog.temperature.setValue(0.0)
    dialog.thinking_expanded.setChecked(True)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    try:
        window.apply_settings(dialog.result_settings(), reload=dialog.needs_reload())
        qtbot.waitUntil(lambda: window.client.info is not None and window.client.info.n_ctx == 1024,
                        timeout=LOAD_TIMEOUT_MS)
        saved = load_settings(data_dir)
        assert (saved.n_ctx, saved.temperature, saved.thinking_expanded, saved.theme) == (1024, 0.0, True, "dark")
        assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128

        message = send(qtbot, window)
        assert message.sampling["temperature"] == 0.0
        assert last_assistant_view(window).thinking_expanded  # finished panes now start open
    finally:
        from app.ui.theme import apply_theme

        apply_theme(QApplication.instance(), "light")


def type_like_a_person(window: MainWindow, text: str) -> None:
    """Each key goes where the keyboard focus is (the window itself if nothing has it)."""
    from PySide6.QtTest import QTest

    for ch in text:
        QTest.keyClick(QApplication.focusWidget() or window, ch)


def test_keys_typed_as_soon_as_the_model_is_ready_all_reach_the_prompt_box(qtbot, data_dir, scripted_model):
    window = open_window(str(data_dir), str(scripted_model("standard_r1")))
    typed: list[str] = []
    try:
        def type_now(_info) -> None:  # the first moment a person sees "ready"
            type_like_a_person(window, "ABCDEFGHIJ typed before click")
            typed.append(window.prompt_input.toPlainText())

        window.client.loaded.connect(type_now)
        qtbot.waitUntil(lambda: bool(typed), timeout=LOAD_TIMEOUT_MS)
        assert typed == ["ABCDEFGHIJ typed before click"]
        assert QApplication.focusWidget() is window.prompt_input
    finally:
        window.close()
        window.store.close()


def test_typing_while_a_button_has_the_focus_goes_to_the_prompt_box(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    new_chat = window.findChild(QWidget, "newChatButton")
    new_chat.setFocus()
    assert QApplication.focusWidget() is new_chat
    type_like_a_person(window, "Why")
    assert window.prompt_input.toPlainText() == "Why" and QApplication.focusWidget() is window.prompt_input
    # A shortcut is not typing: Ctrl+N still starts a new chat instead of writing "n".
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert "n" not in window.prompt_input.toPlainText().lower().replace("why", "")


def test_a_model_loaded_at_8k_because_the_asked_context_does_not_fit_says_so(qtbot, data_dir, open_app,
                                                                            scripted_model, monkeypatch):
    from app.core import hardware, sizing
    from app.core.modelfile import inspect_gguf
    from app.core.settings import Settings, save_settings

    path = scripted_model("standard_r1")
    summary = inspect_gguf(path)
    need = {n: sizing.plan(summary, n_ctx=n, kv_type="f16", n_gpu_layers=0, hw=hardware.describe(ram_gb=64)).ram_bytes
            for n in (8192, 16384)}
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=(need[8192] + need[16384]) / 2 / 1024**3))
    save_settings(data_dir, Settings(n_ctx=16384, n_gpu_layers=0, theme="light", draft="off"))
    window = open_app(data_dir, path)
    assert window.client.info.n_ctx == 8192
    assert window.notice.isVisible()
    assert window.notice.label.text().startswith("Loaded with an 8k-token context: the model needs about ")
    assert "8,192" in window.status.context_label.text()
