"""Opening a search hit: the thinking pane opens, every occurrence is highlighted in the
pane and the answer, and F3 / Shift+F3 and the bar's buttons step through them
(a real window, a real SQLite file, answers from real llama.cpp on a scripted model)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.ui import theme
from tests.fixtures.scripted_gguf import STANDARD_THINKING
from tests.ui.test_window import last_assistant_view, send

HIT_ROLE = Qt.ItemDataRole.UserRole + 1


def open_first_hit(qtbot, window, query: str, field: str):
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(window.conversations.search_input, query)
    hits = window.conversations.hits
    qtbot.waitUntil(lambda: window.conversations._pages.currentWidget() is hits and hits.count() > 0)
    items = [hits.item(i) for i in range(hits.count()) if hits.item(i).data(HIT_ROLE) is not None]
    item = next(i for i in items if i.data(HIT_ROLE).field == field)
    qtbot.mouseClick(hits.viewport(), Qt.MouseButton.LeftButton, pos=hits.visualItemRect(item).center())
    return item.data(HIT_ROLE)


def marked(editor) -> list[tuple[str, str]]:
    """(text, background) of each highlight in an editor."""
    return [(s.cursor.selectedText(), s.format.background().color().name()) for s in editor.extraSelections()]


def test_a_hit_in_thinking_opens_the_pane_and_marks_every_occurrence(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    window.new_chat()
    assert STANDARD_THINKING.count("391") == 3

    hit = open_first_hit(qtbot, window, "391", "thinking")
    view = last_assistant_view(window)
    assert window.session.conversation_id == hit.conversation_id
    assert view.thinking_expanded  # the answer had folded it; the hit opens it
    # In the answer: the bold line and the code block (a typeset formula is an image, not text).
    in_answer = view.answer_view.toPlainText().count("391")
    assert in_answer >= 2
    total = 3 + in_answer
    colors = theme.colors_for(window.transcript)
    every, current = QColor(colors.warn_bg).name(), QColor(colors.accent).name()
    thinking_marks, answer_marks = marked(view.thinking_body), marked(view.answer_view)
    assert [t for t, _ in thinking_marks] == ["391"] * 3 and [t for t, _ in answer_marks] == ["391"] * in_answer
    assert [b for _, b in thinking_marks] == [current, every, every]  # the first in the thinking
    assert all(b == every for _, b in answer_marks)
    bar = window.chats.match_bar
    assert bar.isVisible() and bar.label.text() == f"1 of {total} for “391”"

    # F3 walks through the pane, then into the answer; Shift+F3 walks back and wraps around.
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_F3)
    assert bar.label.text() == f"4 of {total} for “391”"
    assert [b for _, b in marked(view.answer_view)] == [current] + [every] * (in_answer - 1)
    assert all(b == every for _, b in marked(view.thinking_body))
    qtbot.keyClick(window, Qt.Key.Key_F3, Qt.KeyboardModifier.ShiftModifier)
    assert bar.label.text() == f"3 of {total} for “391”"
    assert marked(view.thinking_body)[2][1] == current
    for _ in range(3):
        qtbot.mouseClick(bar.previous_button, Qt.MouseButton.LeftButton)
    assert bar.label.text() == f"{total} of {total} for “391”"  # wrapped past the first
    qtbot.mouseClick(bar.next_button, Qt.MouseButton.LeftButton)
    assert bar.label.text() == f"1 of {total} for “391”"


def test_stepping_to_a_match_in_a_folded_pane_opens_it_and_scrolls_it_into_view(
    qtbot, data_dir, open_app, scripted_model
):
    window = open_app(data_dir, scripted_model("standard_r1"))
    window.resize(900, 500)
    send(qtbot, window, "first")
    send(qtbot, window, "second")
    first, second = window.transcript.assistant_views()
    hit = open_first_hit(qtbot, window, "double-check", "thinking")
    assert hit.position == 1  # hits come in message order: the first answer's
    assert first.thinking_expanded
    second.set_thinking_expanded(False)
    qtbot.keyClick(window, Qt.Key.Key_F3)
    assert window.chats.match_bar.label.text() == "2 of 2 for “double-check”"
    assert second.thinking_expanded  # the current match is never hidden in a folded pane

    def current_match_on_screen() -> bool:
        body = second.thinking_body
        cursor = body.textCursor()
        point = body.viewport().mapTo(window.transcript.viewport(), body.cursorRect(cursor).center())
        return window.transcript.viewport().rect().contains(point)

    at = STANDARD_THINKING.strip().index("double-check")
    qtbot.waitUntil(lambda: second.thinking_body.textCursor().position() == at)  # after the layout pass
    qtbot.waitUntil(current_match_on_screen)


def test_escape_a_new_chat_or_clearing_the_search_removes_the_marks(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir, scripted_model("standard_r1"))
    send(qtbot, window)
    open_first_hit(qtbot, window, "391 17", "answer")
    view = last_assistant_view(window)
    bar = window.chats.match_bar
    # Both words, each occurrence marked once; the current one is the answer's first.
    assert marked(view.answer_view)[0] == ("17", QColor(theme.colors_for(window).accent).name())
    assert sorted({t for t, _ in marked(view.thinking_body)}) == ["17", "391"]
    assert bar.isVisible()

    window.transcript.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert marked(view.answer_view) == [] and marked(view.thinking_body) == [] and not bar.isVisible()

    window.conversations.search_input.clear()
    open_first_hit(qtbot, window, "print", "answer")
    assert bar.label.text() == "1 of 1 for “print”"
    window.conversations.clear_search()
    assert marked(view.answer_view) == [] and not bar.isVisible()

    open_first_hit(qtbot, window, "print", "answer")
    assert bar.isVisible()
    window.new_chat()
    assert not bar.isVisible() and window.chats.matches.matches == []
