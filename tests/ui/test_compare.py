"""The compare view: two versions of a turn side by side, a word-level diff, both stats
rows, scrolling together; the diff runs off the GUI thread. Versions are made in the real
store (a scripted model says the same thing each time, so its versions would not differ)."""

from __future__ import annotations

import random
import threading

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QTextCursor

from app.core.storage import ChatStore
from app.ui import compare_view
from app.ui.compare_view import ADDED, REMOVED, SAME, CompareDialog, compare_texts, stats_row, word_diff
from app.ui.window import MainWindow
from tests.fixtures.scripted_gguf import words_script

STATS = {"thinking_tokens": 812, "answer_tokens": 90, "thinking_s": 9.5, "answer_s": 1.2, "total_s": 10.9,
         "time_to_first_token_s": 0.21, "decode_tokens_per_s": 82.4, "finish_reason": "stop"}


def versioned_chat(store: ChatStore, answers: list[tuple[str, str]], **fields) -> int:
    """A chat whose one turn has a version per (thinking, answer); the last is shown."""
    conv = store.create_conversation()
    store.add_message(conv, "user", "What is 17 times 23?")
    for n, (thinking, answer) in enumerate(answers):
        if n:
            store.start_version(conv, 0)
        store.add_message(conv, "assistant", answer, thinking, stats={**STATS, "thinking_tokens": 800 + n},
                          sampling={"temperature": 0.6, "top_p": 0.95, "seed": 1000 + n}, model="R1-test", **fields)
    return conv


def open_compare(qtbot, window: MainWindow, conv: int) -> CompareDialog:
    window.session.open_conversation(conv)
    nav = window.transcript.assistant_views()[0].version_nav
    qtbot.waitUntil(nav.compare_button.isVisible)
    qtbot.mouseClick(nav.compare_button, Qt.MouseButton.LeftButton)
    dialog = window.versions.compare_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.comparison is not None)
    return dialog


def marked_words(dialog: CompareDialog, side: int) -> list[str]:
    """The text of each highlighted run on one side, as the user sees it."""
    document = dialog.browsers[side].document()
    runs, block = [], document.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().background().color() in (QColor(c) for c in compare_view._diff_colors(False)):
                runs.append(fragment.text().strip())
            it += 1
        block = block.next()
    return runs


# --- the diff ----------------------------------------------------------------------------


def test_word_diff_marks_only_the_words_that_differ():
    left, right = word_diff("So 17 times 23 is 391.", "So 17 times 23 is 392, I think.")
    assert left == [(SAME, "So 17 times 23 is"), (REMOVED, " 391.")]
    assert right == [(SAME, "So 17 times 23 is"), (ADDED, " 392, I think.")]
    # Whitespace alone is no difference; each side keeps its own.
    left, right = word_diff("a  b\nc", "a b c")
    assert left == [(SAME, "a  b\nc")] and right == [(SAME, "a b c")]


def test_word_diff_keeps_every_character_of_both_sides():
    rng = random.Random(7)
    words = ["Wait,", "so", "17", "times", "23.", "Hmm!", "is", "391?", "\n\n", "  ", "\n", "x"]
    for _ in range(300):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        left, right = word_diff(a, b)
        assert "".join(t for _, t in left) == a and "".join(t for _, t in right) == b
        assert len(left) == len(right)  # aligned, piece by piece
        assert all(k in (SAME, REMOVED) for k, _ in left) and all(k in (SAME, ADDED) for k, _ in right)


def test_comparison_summary_counts_shared_words():
    same = {"prompt": "p", "thinking": "one two", "answer": "three"}
    assert compare_texts(same, dict(same)).identical
    assert compare_texts(same, dict(same)).summary() == "The two versions are identical."
    other = compare_texts(same, {**same, "answer": "four"})
    assert not other.identical and other.summary().startswith("75% of the words in common")


def test_stats_row_has_tokens_time_speed_flags_sampling_and_seed(tmp_path):
    with ChatStore(tmp_path / "c.db") as store:
        conv = versioned_chat(store, [("t", "a")], flags=["multiple_think_blocks", "no_thinking"])
        message = store.get_conversation(conv).messages[1]
    first, second = stats_row(message).split("\n")
    assert first == ("800 thinking + 90 answer tokens · thought 9.5 s · answered 1.2 s · 10.9 s in all · "
                     "first token 0.2 s · 82.4 tokens/s · done")
    assert second == "flags: multiple think blocks · temperature 0.6 · top-p 0.95 · seed 1000 · R1-test"
    assert stats_row(None) == "No answer in this version."


# --- the dialog -------------------------------------------------------------------------


def test_compare_shows_both_versions_with_the_differences_marked(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    conv = versioned_chat(window.store, [
        ("Multiply 17 by 20 to get 340, then add 51.", "The answer is 391."),
        ("Multiply 17 by 20 to get 340, then add 52.", "The answer is 392."),
        ("Let me think differently.", "391"),
    ])
    dialog = open_compare(qtbot, window, conv)
    assert dialog.picked == (1, 2)  # the version before the shown one, and the shown one
    dialog.pickers[1].setCurrentIndex(1)
    dialog.pickers[0].setCurrentIndex(0)
    qtbot.waitUntil(lambda: dialog.picked == (0, 1) and "Comparing" not in dialog.summary.text())

    left, right = (b.toPlainText() for b in dialog.browsers)
    assert left.startswith("Prompt\nWhat is 17 times 23?\n\nThinking\nMultiply 17 by 20 to get 340, then add 51.")
    assert left.endswith("Answer\nThe answer is 391.")
    assert "add 52." in right and right.endswith("The answer is 392.")
    assert marked_words(dialog, 0) == ["51.", "391."]
    assert marked_words(dialog, 1) == ["52.", "392."]
    assert "seed 1000" in dialog.stats_labels[0].text() and "seed 1001" in dialog.stats_labels[1].text()
    assert "800 thinking" in dialog.stats_labels[0].text() and "801 thinking" in dialog.stats_labels[1].text()
    assert dialog.summary.text() == "89% of the words in common (19 words left, 19 right)"  # 17 of 19

    dialog.pickers[1].setCurrentIndex(0)  # the same version twice
    qtbot.waitUntil(lambda: "identical" in dialog.summary.text())
    assert "Pick two different versions" in dialog.summary.text()


def test_model_output_is_shown_as_text_not_html(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    conv = versioned_chat(window.store, [("<b>bold</b>", "<img src=x>"), ("<i>it</i>", "&amp;")])
    dialog = open_compare(qtbot, window, conv)
    left, right = (b.toPlainText() for b in dialog.browsers)
    assert "<b>bold</b>" in left and "<img src=x>" in left and "&amp;" in right


def top_line(browser) -> str:
    """The first line of text a user sees in the view."""
    cursor = browser.cursorForPosition(QPoint(8, 12))
    cursor.select(QTextCursor.SelectionType.LineUnderCursor)
    return cursor.selectedText()


def test_scrolling_one_side_shows_the_same_place_on_the_other(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    paragraphs = "".join(words_script(4000)).split("\n\n")
    inserted = "Something else entirely, said at length. " * 60
    long_a = "\n\n".join(paragraphs)
    long_b = "\n\n".join([*paragraphs[:3], inserted, *paragraphs[3:30], *paragraphs[36:]])
    conv = versioned_chat(window.store, [(long_a, "A."), (long_b, "B.")])
    dialog = open_compare(qtbot, window, conv)
    qtbot.waitExposed(dialog)
    left, right = (b.verticalScrollBar() for b in dialog.browsers)
    qtbot.waitUntil(lambda: left.maximum() > 0 and right.maximum() > 0)

    # Paragraph 20 is in both, lower on the right (a long paragraph was inserted before it):
    # scrolled to it on the left, the right shows it at the top too.
    start = dialog.browsers[0].document().find(paragraphs[20][:40]).blockNumber()
    left.setValue(dialog.browsers[0].document().findBlockByNumber(start).firstLineNumber())
    assert top_line(dialog.browsers[0]).startswith(paragraphs[20][:30])
    assert top_line(dialog.browsers[1]) == top_line(dialog.browsers[0])
    assert right.value() > left.value()
    # Scrolled on the right, the left follows; the ends meet.
    right.setValue(right.value() + 7)
    assert top_line(dialog.browsers[0]) == top_line(dialog.browsers[1])
    right.setValue(right.maximum())
    assert left.value() == left.maximum()
    dialog.browsers[1].moveCursor(QTextCursor.MoveOperation.Start)  # the keyboard moves both too
    assert left.value() == right.value() == 0


def test_the_diff_runs_off_the_gui_thread(qtbot, data_dir, open_app, monkeypatch):
    threads: list[threading.Thread] = []
    real = compare_view.compare_texts

    def recording(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(compare_view, "compare_texts", recording)
    window = open_app(data_dir)
    conv = versioned_chat(window.store, [("x y", "1"), ("x z", "2")])
    open_compare(qtbot, window, conv)
    assert threads and threads[0] is not threading.main_thread()


def test_a_turn_with_one_version_says_there_is_nothing_to_compare(qtbot, data_dir, open_app):
    window = open_app(data_dir)
    conv = versioned_chat(window.store, [("t", "only one")])
    window.session.open_conversation(conv)
    assert window.transcript.assistant_views()[0].version_nav.isHidden()
    window.menus.compare.trigger()
    assert window.versions.compare_dialog is None
    assert window.notice.label.text().startswith("This answer has only one version")
