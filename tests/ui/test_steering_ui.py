"""Steering from the window (issue 9): the budget beside the prompt box, Answer now (only while
the model thinks), the note box (mid-thought, or after a stopped thought), Edit thinking, and how
the pane shows inserted text. Real window, real llama.cpp, scripted models."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from app.core.settings import Settings, save_settings
from app.core.steering import ANSWER_NOW_WRAP_UP, BUDGET_WRAP_UP
from app.ui.message_view import AssistantMessageView
from app.ui.steering_editor import ThinkingEditor
from app.ui.steering_spans import CLOSE_MARK
from tests.fixtures.scripted_gguf import STANDARD_ANSWER
from tests.ui.conftest import ANSWER_TIMEOUT_MS

LONG_ANSWER = "After long thought: the answer is **42**."
THINKING_TIMEOUT_MS = 20_000


def start(qtbot, window, text: str = "What is 17 times 23?") -> None:
    qtbot.keyClicks(window.prompt_input, text)
    qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return)


def wait_thinking(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.steering_bar.answer_now_button.isVisible(), timeout=THINKING_TIMEOUT_MS)


def last_view(window) -> AssistantMessageView:
    return window.transcript.assistant_views()[-1]


def format_at(view: AssistantMessageView, text: str):
    """The character format in the thinking pane at the middle of `text`."""
    body = view.thinking_body
    at = body.toPlainText().index(text) + len(text) // 2
    cursor = QTextCursor(body.document())
    cursor.setPosition(at + 1)
    return cursor.charFormat()


def test_budget_control_starts_from_the_settings_and_ends_the_thought(qtbot, data_dir, open_app, scripted_model):
    save_settings(data_dir, Settings(n_ctx=2048, n_gpu_layers=0, theme="light", draft="off", thinking_budget=40))
    window = open_app(data_dir, scripted_model("long_trace"))
    bar = window.steering_bar
    assert bar.budget_box.value() == 40 and window.session.thinking_budget == 40
    assert bar.budget_box.isEnabled() and bar.answer_now_button.isHidden() and bar.note_input.isHidden()
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        start(qtbot, window)
    message = done.args[0]
    assert "budget_reached" in message.flags and message.content == LONG_ANSWER
    assert message.sampling["thinking_budget"] == 40
    assert message.stats["thinking_tokens"] - message.stats["inserted_tokens"] == 40
    assert [s["kind"] for s in message.spans] == ["wrap_up", "close"]
    stored = window.store.get_conversation(window.session.conversation_id).messages[-1]
    assert stored.spans == message.spans  # kept as data
    view = last_view(window)
    shown = view.thinking_body.toPlainText()
    assert shown.endswith(BUDGET_WRAP_UP.strip() + "\n" + CLOSE_MARK)  # Ponder's </think> is shown too
    fmt = format_at(view, "out of thinking budget")
    assert fmt.fontItalic() and "Inserted by Ponder" in fmt.toolTip()
    assert not format_at(view, shown[:20]).fontItalic()  # the model's own text keeps the plain look
    qtbot.waitUntil(lambda: "budget" in [b.text() for b in view.badges()])  # laid out on the next pass
    stats = view.stats_label.text()
    assert "thinking: " in stats and "answer: " in stats and "tokens/s" in stats  # each with its own numbers
    # Off again: the next answers think freely, and the settings remember it.
    bar.budget_box.setValue(0)
    assert bar.budget is None and window.session.thinking_budget is None and window.settings.thinking_budget is None


def test_answer_now_is_there_only_while_the_model_thinks(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))
    bar, action = window.steering_bar, window.menus.answer_now
    assert bar.answer_now_button.isHidden() and not action.isEnabled()
    assert action in window.menus.chat_menu.actions()
    start(qtbot, window)
    wait_thinking(qtbot, window)
    assert action.isEnabled() and bar.note_input.isVisible()
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        # The shortcut, typed where the focus is (the prompt box).
        qtbot.keyClick(window.prompt_input, Qt.Key.Key_Return,
                       Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    message = done.args[0]
    assert "answer_now" in message.flags and message.content == LONG_ANSWER
    assert message.thinking.endswith(ANSWER_NOW_WRAP_UP.strip())
    assert window.prompt_input.toPlainText() == ""  # the shortcut did not type a new line
    assert bar.answer_now_button.isHidden() and not action.isEnabled() and bar.note_input.isHidden()


def test_a_nudge_mid_thought_goes_into_the_trace_marked_as_yours(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))
    bar = window.steering_bar
    start(qtbot, window)
    wait_thinking(qtbot, window)
    assert bar.nudge_button.text() == "Nudge"
    qtbot.keyClicks(bar.note_input, "consider negative numbers too.")
    qtbot.keyClick(bar.note_input, Qt.Key.Key_Return)
    assert bar.note_input.text() == ""  # taken
    view = last_view(window)
    qtbot.waitUntil(lambda: "Wait, the user adds: consider negative numbers too." in view.thinking_body.toPlainText(),
                    timeout=THINKING_TIMEOUT_MS)
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        bar.answer_now_button.click()  # the script would think on for thousands of tokens
    message = done.args[0]
    assert {"nudged", "answer_now"} <= set(message.flags)
    nudge = [s for s in message.spans if s["kind"] == "nudge"]
    assert len(nudge) == 1 and nudge[0]["by"] == "user"
    assert message.thinking[nudge[0]["start"]:nudge[0]["end"]].strip() == (
        "Wait, the user adds: consider negative numbers too.")
    fmt = format_at(view, "consider negative numbers")
    assert fmt.fontItalic() and "Inserted by you" in fmt.toolTip()


def test_a_stopped_thought_continues_with_a_note_as_a_new_version(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))
    bar, session = window.steering_bar, window.session
    start(qtbot, window)
    wait_thinking(qtbot, window)
    with qtbot.waitSignal(session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        window.stop_button.click()
    stopped = done.args[0]
    assert stopped.status == "stopped" and stopped.thinking and not stopped.content
    assert bar.note_input.isVisible() and bar.nudge_button.text() == "Continue with note"
    assert bar.answer_now_button.isHidden()
    in_context = stopped.stats["context_used"]
    qtbot.keyClicks(bar.note_input, "check the units")
    qtbot.keyClick(bar.note_input, Qt.Key.Key_Return)
    wait_thinking(qtbot, window)
    with qtbot.waitSignal(session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        bar.answer_now_button.click()
    again = done.args[0]
    assert again.thinking.startswith(stopped.thinking + "\n\nWait, the user adds: check the units")
    assert {"continued", "nudged", "answer_now"} <= set(again.flags)
    assert again.stats["prompt_reused_tokens"] == in_context  # the stopped thought stayed in the KV cache
    assert session.version_of(again.position) == (2, 2)  # the stopped answer is kept as version 1
    assert bar.note_input.isHidden()


def test_nudges_and_budgets_on_a_model_that_does_not_think(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("non_reasoning"))
    errors = []
    window.session.error_occurred.connect(errors.append)
    assert not window.steering_bar.budget_box.isEnabled()
    assert not window.session.nudge("think harder")
    assert "not a reasoning model" in errors[-1]


def test_a_note_with_a_think_tag_is_refused_with_a_sentence(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("long_trace"))
    errors = []
    window.session.error_occurred.connect(errors.append)
    start(qtbot, window)
    wait_thinking(qtbot, window)
    qtbot.keyClicks(window.steering_bar.note_input, "end it </think> now")
    qtbot.keyClick(window.steering_bar.note_input, Qt.Key.Key_Return)
    assert "cannot contain </think>" in errors[-1]
    assert window.steering_bar.note_input.text() == "end it </think> now"  # kept, to fix it
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        window.steering_bar.answer_now_button.click()


def test_edit_the_thinking_and_continue_from_it(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        start(qtbot, window)
    first = done.args[0]
    view = last_view(window)
    assert view.thinking_pane.edit_button.isVisible()
    seen = []

    def edit_in_dialog() -> None:
        editor = QApplication.activeModalWidget()
        assert isinstance(editor, ThinkingEditor)
        seen.append(editor.text())
        editor.editor.setPlainText(first.thinking + " </think>")
        editor.continue_button.click()  # refused: the dialog stays, saying why
        seen.append(editor.error_label.text())
        editor.editor.setPlainText(first.thinking)
        cursor = editor.editor.textCursor()
        cursor.setPosition(33)  # "Okay, the user wants 17 times 23." | ...
        editor.editor.setTextCursor(cursor)
        editor.cut_button.click()
        editor.editor.insertPlainText("\nOr is it 400?")
        editor.continue_button.click()

    QTimer.singleShot(0, edit_in_dialog)
    with qtbot.waitSignal(window.session.answer_finished, timeout=ANSWER_TIMEOUT_MS) as done:
        view.thinking_pane.edit_button.click()
    again = done.args[0]
    assert seen[0] == first.thinking and "</think>" in seen[1]
    edited = first.thinking[:33] + "\nOr is it 400?"
    assert again.thinking.startswith(edited) and again.content == STANDARD_ANSWER.strip()
    assert again.flags == ("continued",)
    assert again.spans[0] == {"field": "thinking", "start": 33, "end": len(edited), "by": "user", "kind": "edit"}
    assert window.session.version_of(again.position) == (2, 2)
    fmt = format_at(last_view(window), "Or is it 400")
    assert fmt.fontItalic() and "Written by you" in fmt.toolTip()


def test_a_stored_trace_shows_its_inserted_spans(qtbot):
    thinking = "Model text.\n\nWait, the user adds: hi.\n\nMore.\n\nOkay, I'm out of thinking budget."
    nudge_at = thinking.index("Wait")
    wrap_at = thinking.index("Okay, I'm out")
    spans = [
        {"field": "thinking", "start": nudge_at, "end": nudge_at + 24, "by": "user", "kind": "nudge"},
        {"field": "thinking", "start": wrap_at, "end": len(thinking), "by": "ponder", "kind": "wrap_up"},
        {"field": "thinking", "start": len(thinking), "end": len(thinking), "by": "ponder", "kind": "close"},
    ]
    view = AssistantMessageView()
    qtbot.addWidget(view)
    view.finish(thinking, "Answer.", ["budget_reached", "nudged"], None, "complete", spans=spans)
    assert view.thinking_body.toPlainText() == thinking + "\n" + CLOSE_MARK
    assert "Inserted by you" in format_at(view, "the user adds").toolTip()
    assert "Inserted by Ponder" in format_at(view, "thinking budget").toolTip()
    assert "</think> that ended" in format_at(view, CLOSE_MARK).toolTip()
    assert not format_at(view, "More.").fontItalic() and not format_at(view, "Model text").fontItalic()
    assert view.thinking_text == thinking  # the data keeps no display mark
