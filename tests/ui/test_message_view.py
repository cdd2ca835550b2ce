"""Message views, offscreen with real widgets: live thinking, streamed markdown, safety, actions."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest
from PySide6 import QtGui
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QImage,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QApplication, QScrollArea, QToolTip, QVBoxLayout, QWidget

from app.core.reasoning import Segment, TraceText
from app.ui import theme
from app.ui.answer_document import SYNC_RENDER_MAX_CHARS
from app.ui.message_view import AssistantMessageView, UserMessageView
from app.ui.throttle import Throttle

STATS = {
    "prompt_tokens": 21,
    "thinking_tokens": 812,
    "answer_tokens": 240,
    "time_to_first_token_s": 0.42,
    "thinking_s": 14.23,
    "decode_tokens_per_s": 38.2,
    "total_s": 21.5,
    "finish_reason": "stop",
    "context_used": 1073,
}


@dataclass(frozen=True)
class StoredMessage:  # the fields of app.core.storage.Message that views read
    content: str
    thinking: str = ""
    flags: tuple[str, ...] = ()
    stats: dict | None = None
    status: str = "complete"
    position: int = 1
    role: str = "assistant"


@pytest.fixture
def transcript(qtbot):
    """A scroll area like the window's transcript; add(view) puts a message in it."""
    theme.apply_theme(QApplication.instance(), "light")
    area = QScrollArea()
    area.setWidgetResizable(True)
    inner = QWidget()
    layout = QVBoxLayout(inner)
    layout.addStretch(1)
    area.setWidget(inner)
    area.resize(700, 900)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)

    def add(view: QWidget) -> QWidget:
        layout.insertWidget(layout.count() - 1, view)
        qtbot.waitUntil(view.isVisible)  # a layout shows new children on the next event loop pass
        qtbot.wait(1)
        return view

    yield add  # (the fixture frame keeps the top-level scroll area alive)


def streaming_view(transcript, **kwargs) -> AssistantMessageView:
    return transcript(AssistantMessageView(1, **kwargs))


def settle(qtbot, view: AssistantMessageView) -> None:
    """Let the throttled update and the layout run."""
    view._throttle.flush()
    qtbot.wait(5)


def click_text(qtbot, view, text: str) -> None:
    """Click the middle of the first occurrence of `text` in a QTextBrowser."""
    found = view.document().find(text)
    assert not found.isNull(), f"{text!r} not in the document"
    middle = QTextCursor(view.document())
    middle.setPosition((found.selectionStart() + found.selectionEnd()) // 2)
    point = view.cursorRect(middle).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


class UrlCatcher(QObject):
    """Stands in for the system browser: QDesktopServices hands it the URLs it would open."""

    def __init__(self):
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


# --- thinking pane ---------------------------------------------------------------------


def test_thinking_streams_live_then_collapses_when_the_answer_starts(qtbot, transcript):
    view = streaming_view(transcript)
    pane = view.findChild(QWidget, "thinkingPane")
    assert pane.isHidden()  # nothing yet

    view.append("think", "\nOkay, the user asks ")
    view.append("think", "about primes.")
    view.set_live_counts(7, 0)
    settle(qtbot, view)
    assert pane.isVisible() and view.thinking_expanded
    assert view.thinking_body.toPlainText() == "Okay, the user asks about primes."
    assert view.thinking_header.text().startswith("Thinking… 0 s · 7 tokens")

    view.append("think", " 7 is prime.\n\n")
    view.append("answer", "\n\n**Yes**")
    view.set_live_counts(12, 1)
    settle(qtbot, view)
    assert not view.thinking_expanded
    assert re.fullmatch(r"Thought for (\d+ ms|\d\.\d s) · 12 tokens", view.thinking_header.text())
    assert view.thinking_body.toPlainText().startswith("Okay, the user asks about primes. 7 is prime.")


def test_thinking_body_is_appended_not_reset(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_thinking("first part")
    settle(qtbot, view)
    resets = []
    view.thinking_body.document().contentsChange.connect(lambda pos, removed, added: resets.append(removed))
    for word in [" second", " third", " fourth"]:
        view.append_thinking(word)
        settle(qtbot, view)
    assert view.thinking_body.toPlainText() == "first part second third fourth"
    assert resets and all(removed == 0 for removed in resets)  # only insertions at the end


def test_thinking_header_ticks_seconds_while_thinking(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_thinking("Hmm, let me think.")
    view.set_live_counts(480, 0)
    settle(qtbot, view)
    qtbot.waitUntil(lambda: view.thinking_header.text() == "Thinking… 1 s · 480 tokens", timeout=2500)


def test_finished_header_shows_thinking_time_and_tokens(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_thinking("Reasoning...")
    view.append_answer("42")
    view.finish("Reasoning...", "42", [], STATS, "complete")
    assert view.thinking_header.text() == "Thought for 14.2 s · 812 tokens"


def test_collapsed_thinking_expands_again_on_click(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("The answer.", thinking="Because.", stats=STATS)))
    assert not view.thinking_expanded
    qtbot.mouseClick(view.thinking_header, Qt.MouseButton.LeftButton)
    assert view.thinking_expanded and view.thinking_body.isVisible()
    assert view.thinking_body.toPlainText() == "Because."
    qtbot.mouseClick(view.thinking_header, Qt.MouseButton.LeftButton)
    assert not view.thinking_expanded


def test_setting_can_start_thinking_collapsed_or_finished_panes_expanded(qtbot, transcript):
    quiet = streaming_view(transcript, expand_while_thinking=False)
    quiet.append_thinking("thinking quietly")
    settle(qtbot, quiet)
    assert quiet.thinking_pane.isVisible() and not quiet.thinking_expanded

    stored = StoredMessage("Answer.", thinking="Trace.")
    open_view = transcript(AssistantMessageView.from_message(stored, expand_when_done=True))
    assert open_view.thinking_expanded


def test_user_choice_during_streaming_is_kept_when_the_answer_starts(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_thinking("trace")
    settle(qtbot, view)
    qtbot.mouseClick(view.thinking_header, Qt.MouseButton.LeftButton)  # collapse by hand
    qtbot.mouseClick(view.thinking_header, Qt.MouseButton.LeftButton)  # and open again
    view.append_answer("Answer")
    settle(qtbot, view)
    assert view.thinking_expanded


def test_trace_flag_shows_a_badge_with_an_explaining_tooltip(qtbot, transcript):
    stored = StoredMessage("", thinking="I keep thinking and thinking", flags=("unclosed_thinking",), stats=STATS)
    view = transcript(AssistantMessageView.from_message(stored))
    badges = view.badges()
    assert [b.text() for b in badges] == ["unclosed"]
    assert view.thinking_pane.isAncestorOf(badges[0])
    assert "</think>" in badges[0].toolTip() and "Max tokens" in badges[0].toolTip()
    assert view.thinking_expanded  # no answer: the trace stays open


def test_no_thinking_flag_is_not_a_warning(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("Plain answer.", flags=("no_thinking",))))
    assert view.badges() == []


def test_thinking_that_starts_after_answer_text_still_shows_its_pane(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_answer("Sure. ")
    view.append_thinking("Wait, let me think after all.")
    settle(qtbot, view)
    assert view.thinking_pane.isVisible()
    assert view.thinking_body.toPlainText() == "Wait, let me think after all."


def test_non_reasoning_message_hides_the_thinking_pane(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_answer("Just an answer, no reasoning.")
    settle(qtbot, view)
    assert view.findChild(QWidget, "thinkingPane").isHidden()
    view.finish("", "Just an answer, no reasoning.", ["no_thinking"], None, "complete")
    assert view.findChild(QWidget, "thinkingPane").isHidden()
    assert view.copy_thinking_button.isHidden()


# --- the live answer's text ------------------------------------------------------------


def test_a_view_given_a_trace_reads_its_text_there_and_never_adds_to_it(qtbot, transcript):
    trace = TraceText()  # the chat session's: it feeds the trace, then tells the view
    view = streaming_view(transcript, trace=trace)
    for segment in [Segment("think", "Let me see."), Segment("answer", "**42**")]:
        trace.add(segment)
        view.append(segment.kind, segment.text)
    settle(qtbot, view)
    assert (trace.thinking, trace.answer) == ("Let me see.", "**42**")  # nothing added twice
    assert (view.thinking_text, view.answer_text) == ("Let me see.", "**42**")
    assert view.thinking_body.toPlainText() == "Let me see."
    trace.add(Segment("answer", " is it"))
    assert view.answer_text == "**42** is it"  # one owner: the view reads the trace, it keeps no copy
    view.finish("Thought it over.", "**42**, final.", [], None, "complete")
    assert (view.thinking_text, view.answer_text) == ("Thought it over.", "**42**, final.")  # the message's


def test_a_view_on_its_own_keeps_its_text_in_the_saved_shape(qtbot, transcript):
    view = streaming_view(transcript)
    for kind, text in [("think", "\nFirst thought. "), ("answer", "Partial "), ("think", "Second thought."),
                       ("answer", "answer.\n\n")]:
        view.append(kind, text)
    assert view.thinking_text == "First thought.\n\nSecond thought."  # think blocks apart, stripped
    assert view.answer_text == "Partial answer."
    settle(qtbot, view)
    assert view.answer_view.toPlainText() == "Partial answer.\n\n"


def test_a_theme_change_mid_stream_shows_the_same_answer_in_the_new_colours(qtbot, transcript):
    text = "Intro *para*.\n\n```python\ndef f():\n    return 1\n```\n\nMore text."
    cut = text.index("```")  # right after a blank line: the whitespace must survive the change
    view = streaming_view(transcript)
    stream_in_chunks(qtbot, view, text[:cut], seed=1)
    shown = view.answer_view.toPlainText()
    theme.apply_theme(QApplication.instance(), "dark")
    try:
        qtbot.waitUntil(lambda: view._dark)
        assert view.answer_view.toPlainText() == shown
        stream_in_chunks(qtbot, view, text[cut:], seed=2)
        view.finish("", text, [], None, "complete")
        whole = transcript(AssistantMessageView.from_message(StoredMessage(text)))
        assert view.answer_view.toHtml() == whole.answer_view.toHtml()
    finally:
        theme.apply_theme(QApplication.instance(), "light")


# --- answer ----------------------------------------------------------------------------


def test_streamed_answer_renders_finished_blocks_and_shows_the_tail_as_text(qtbot, transcript):
    view = streaming_view(transcript)
    for piece in ["The **first** ", "paragraph.\n", "\nThe **sec", "ond** one"]:
        view.append_answer(piece)
        settle(qtbot, view)
    answer = view.findChild(QWidget, "answerView")
    assert answer.toPlainText() == "The first paragraph.\nThe **second** one"
    bold = answer.document().find("first")
    assert bold.charFormat().fontWeight() >= 600  # the finished block is rendered
    view.finish("", "The **first** paragraph.\n\nThe **second** one", [], None, "complete")
    assert answer.toPlainText() == "The first paragraph.\nThe second one"


def test_streaming_a_long_answer_in_small_pieces_matches_the_final_render(qtbot, transcript):
    text = "\n\n".join(
        [
            "# Title",
            "Some *text* with `code`.",
            "- a\n- b\n\n    continued",
            "```python\nfor i in range(3):\n\n    print(i)\n```",
            "| x | y |\n|---|---|\n| 1 | 2 |",
            "Last line",
        ]
    )
    view = streaming_view(transcript)
    for i in range(0, len(text), 3):
        view.append_answer(text[i:i + 3])
        settle(qtbot, view)
    streamed = view.answer_view.toPlainText()
    assert "for i in range(3):" in streamed and "Title" in streamed and "continued" in streamed
    assert view.answer_view.code_blocks == ["for i in range(3):\n\n    print(i)"]
    view.finish("", text, [], None, "complete")
    whole = transcript(AssistantMessageView.from_message(StoredMessage(text)))  # one setHtml of the whole
    assert view.answer_view.toHtml() == whole.answer_view.toHtml()
    # While it streamed, it read exactly as the final render does (the tail, plain text, included).
    assert streamed == whole.answer_view.toPlainText()


# Answers whose streamed pieces render like the whole (tight lists, tables, code) and ones
# where the whole renders differently (loose lists, quotes continued after a blank line,
# a reference link defined at the end).
FINISH_SAMPLES = {
    "two_space_nested": "Plan:\n\n- a\n  - b\n    - c\n  - d\n- e\n\n- loose\n  - nested\n\nAfter.",
    "three_space_nested": (
        "1. First step\n   - detail a\n     - deeper\n   - detail b\n2. Second\n\n   More on two.\n\n"
        "3. Third\n   ```bash\n   ls\n   ```\n   Then more.\n4. Four\n\nEnd."
    ),
    "paragraphs": "First *para* with `code` and a [link](https://example.org).\n\nSecond **para**\nwith a break.\n\nThird.",
    "headings": "# Title\n\nIntro.\n\n## Section\n\nBody.\n\n### Sub\n\n#### Deep\n\nEnd.",
    "tight_lists": "Steps:\n\n- one\n- two\n    - nested a\n    - nested b\n- three\n\n1. first\n2. second\n\nAfter.",
    "loose_list": "Plan:\n\n1. **Read** the input.\n\n2. Parse it.\n\n    More about parsing.\n\n3. Print.\n\nDone.",
    "code": "Code:\n\n```python\ndef f(x):\n\n    return x + 1\n```\n\n```\nplain\n```\n\nText after.",
    "code_in_list": "1. Install:\n\n    ```bash\n    pip install x\n    ```\n\n2. Run it.\n\nEnd.",
    "tables": "| a | b |\n|---|---|\n| 1 | 2 |\n\n| c | d |\n|:--|--:|\n| 3 | 4 |\n\nText.\n\n| e |\n|---|\n| 5 |",
    "table_first_then_quotes": "| x | y |\n|---|---|\n| 1 | 2 |\n\n## After\n\n> a quote\n\n> more quote\n\n---\n\nFinal $x^2$.",
    "list_first": "- a\n- b\n\n- c\n\nText\n\n* d",
    "reference_link": "See [the docs][1].\n\nMore text.\n\n[1]: https://example.org/docs",
    "escaped_html": "<b>not bold</b>\n\n<script>alert(1)</script>\n\nok",
    "rule_then_table": "Above\n\n---\n\n| a |\n|---|\n| 1 |\n\n---\n\n- after",
    "unclosed_fence": "Intro\n\n```python\nx = 1\n\ny = 2\n",
    "ends_in_a_list": "## Heading\n- straight into a list\n- second\n\n1. one\n\n1. two",
    "lists_under_paragraph_lines": (
        "Here are the steps:\n1. Install it\n2. Run it\n\nKey points:\n- fast\n- small\n\n"
        "Not a list:\n1999. was a year\n\n> a quote\n* then a list"
    ),
    "list_under_text_after_a_list": (
        "- a\n- b\n\nThen:\n- c\n  - nested\n\nCode:\n```\nnot\n- a list\n```\nAlso:\n+ d\n\nEnd."
    ),
}


def stream_in_chunks(qtbot, view: AssistantMessageView, text: str, seed: int) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(text):
        n = rng.randint(1, 24)
        view.append_answer(text[i:i + n])
        view._throttle.flush()
        i += n


def structure(doc: QTextDocument) -> list[tuple]:
    """Each block: its text, formats, list and table cell: what a reader sees, block by block."""
    rows = []
    block = doc.begin()
    while block.isValid():
        cursor = QTextCursor(block)
        table, text_list = cursor.currentTable(), block.textList()
        cell = table.cellAt(cursor) if table is not None else None
        rows.append((
            block.text(), block.blockFormat().topMargin(), block.blockFormat().bottomMargin(),
            block.blockFormat().headingLevel(), block.charFormat().font().pixelSize(),
            text_list.format().style() if text_list else None, text_list.itemNumber(block) if text_list else None,
            (cell.row(), cell.column()) if cell else None,
        ))
        block = block.next()
    return rows


@pytest.mark.parametrize("name", sorted(FINISH_SAMPLES))
def test_a_finished_streamed_answer_is_exactly_a_render_of_the_whole_text(qtbot, transcript, name):
    text = FINISH_SAMPLES[name]
    streamed = streaming_view(transcript)
    stream_in_chunks(qtbot, streamed, text, seed=len(name))
    streamed.finish("", text, [], None, "complete")
    scratch = transcript(AssistantMessageView.from_message(StoredMessage(text)))  # one setHtml of the whole
    assert streamed.answer_view.toPlainText() == scratch.answer_view.toPlainText()
    assert structure(streamed.answer_view.document()) == structure(scratch.answer_view.document())
    assert streamed.answer_view.toHtml() == scratch.answer_view.toHtml()
    assert streamed.answer_view.code_blocks == scratch.answer_view.code_blocks
    assert streamed.answer_view.height() == scratch.answer_view.height()


def long_sections(count: int, *, loose: bool) -> str:
    gap = "\n\n" if loose else "\n"
    return "".join(
        f"## Part {n}\n\n1. **Step {n}a** does one thing.{gap}2. Step {n}b does another.\n\n"
        f"| case | result |\n|---|---|\n| a{n} | {n} |\n\n```python\nprint({n})\n```\n\n"
        for n in range(count)
    )


def mark_first_block(view: AssistantMessageView) -> None:
    view.answer_view.document().firstBlock().setUserState(42)  # gone if the document is rebuilt


def first_block_kept(view: AssistantMessageView) -> bool:
    block = view.answer_view.document().firstBlock()
    kept = block.userState() == 42
    block.setUserState(-1)  # (it would show in toHtml)
    return kept


def test_finishing_a_long_streamed_answer_keeps_what_streamed_in(qtbot, transcript):
    text = long_sections(60, loose=False) + "The end."
    assert len(text) > SYNC_RENDER_MAX_CHARS
    view = streaming_view(transcript)
    stream_in_chunks(qtbot, view, text, seed=3)
    mark_first_block(view)
    with qtbot.waitSignal(view.rendered, timeout=1000):
        view.finish("", text, [], None, "complete")
    assert not view.render_pending and first_block_kept(view)
    assert view.answer_view.toHtml() == transcript(AssistantMessageView.from_message(StoredMessage(text))).answer_view.toHtml()


def test_a_long_answer_with_loose_lists_has_them_fixed_one_by_one(qtbot, transcript):
    text = "Intro.\n\n" + long_sections(60, loose=True) + "The end."
    view = streaming_view(transcript)
    stream_in_chunks(qtbot, view, text, seed=7)
    mark_first_block(view)
    with qtbot.waitSignal(view.rendered, timeout=10_000):
        view.finish("", text, [], None, "complete")
        assert view.render_pending  # the lists are re-rendered over the next passes of the event loop
    assert first_block_kept(view)
    scratch = transcript(AssistantMessageView.from_message(StoredMessage(text)))
    assert view.answer_view.toHtml() == scratch.answer_view.toHtml()
    assert view.answer_view.code_blocks == [f"print({n})" for n in range(60)]


def test_a_long_answer_with_reference_links_is_compared_with_a_whole_render_off_the_gui_thread(qtbot, transcript):
    text = long_sections(60, loose=True) + "Last [word][ref].\n\n[ref]: https://example.org"
    view = streaming_view(transcript)
    stream_in_chunks(qtbot, view, text, seed=5)
    with qtbot.waitSignal(view.rendered, timeout=10_000):
        view.finish("", text, [], None, "complete")
        assert view.render_pending
    scratch = transcript(AssistantMessageView.from_message(StoredMessage(text)))
    assert view.answer_view.toHtml() == scratch.answer_view.toHtml()
    assert 'href="https://example.org"' in view.answer_view.toHtml()


def test_streamed_blocks_keep_their_own_formats(qtbot, transcript):
    view = streaming_view(transcript)
    for piece in ["Intro para.\n\n", "- a\n- b\n\n", "## Heading\n\n", "Closing para.\n\n", "tail"]:
        view.append_answer(piece)
        settle(qtbot, view)
    doc = view.answer_view.document()
    whole_word = QTextDocument.FindFlag.FindWholeWords | QTextDocument.FindFlag.FindCaseSensitively
    intro, heading, closing, item = (doc.find(t, 0, whole_word) for t in ("Intro", "Heading", "Closing", "a"))
    assert heading.charFormat().font().pixelSize() > intro.charFormat().font().pixelSize()
    assert intro.block().blockFormat().bottomMargin() > 0 and closing.block().blockFormat().bottomMargin() > 0
    assert item.block().textList() is not None
    assert view.answer_view.height() < 40 * view.fontMetrics().lineSpacing()


def test_an_open_code_block_streams_looking_like_code(qtbot, transcript):
    view = streaming_view(transcript)
    for piece in ["Intro.\n\n``", "`python\ndef f():\n", "    pass\n"]:
        view.append_answer(piece)
        settle(qtbot, view)
    doc = view.answer_view.document()
    assert "```" not in doc.toPlainText()
    assert doc.find("def f").charFormat().font().family() == theme.mono_family()
    view.append_answer("```\nAfter")
    settle(qtbot, view)
    assert view.answer_view.code_blocks == ["def f():\n    pass"]
    assert "Copy" in doc.toPlainText() and doc.toPlainText().endswith("After")


def test_a_long_stored_answer_renders_at_once(qtbot, transcript):
    answer = "\n\n".join(f"Paragraph {i} with **bold** text and more words to make it long." for i in range(150))
    view = transcript(AssistantMessageView.from_message(StoredMessage(answer)))
    assert not view.render_pending
    assert view.answer_view.toPlainText().startswith("Paragraph 0 with bold text")


def test_html_and_script_in_the_answer_are_shown_as_text(qtbot, transcript):
    answer = 'Try <script>alert("x")</script> and <img src=http://evil.example/a.png> and <b>not bold</b>.'
    view = streaming_view(transcript)
    view.append_answer(answer + "\n\nmore")
    settle(qtbot, view)  # streamed: the first block is rendered through markdown
    assert answer in view.answer_view.toPlainText()
    view.finish("", answer, [], None, "complete")
    doc = view.answer_view.document()
    assert doc.toPlainText() == answer
    assert doc.find("not bold").charFormat().fontWeight() < 600
    assert not _has_images(doc)


def test_remote_images_are_links_and_nothing_is_fetched(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("![chart](http://tracker.example/pixel.png)")))
    doc = view.answer_view.document()
    assert not _has_images(doc)
    assert "[image: chart]" in doc.toPlainText()


def test_the_answer_never_loads_images_or_stylesheets_that_its_html_names(qtbot, transcript, tmp_path):
    # Markdown escapes raw HTML, so this is the second line of defence: even HTML that names
    # resources Qt could read (local files, which a plain QTextBrowser loads) gets none of them.
    image, css = tmp_path / "big.png", tmp_path / "huge.css"
    picture = QImage(300, 300, QImage.Format.Format_RGB32)
    picture.fill(QColor("red"))
    assert picture.save(str(image))
    css.write_text("p { font-size: 60px; }")
    view = transcript(AssistantMessageView.from_message(StoredMessage("Placeholder.")))
    browser = view.answer_view
    browser.setHtml(
        f'<html><head><link rel="stylesheet" type="text/css" href="{QUrl.fromLocalFile(str(css)).toString()}">'
        f'</head><body><p>Styled?</p><img src="{QUrl.fromLocalFile(str(image)).toString()}"></body></html>'
    )
    qtbot.wait(5)
    assert browser.document().size().height() < 300  # the 300 px picture never arrived
    assert browser.document().find("Styled?").charFormat().font().pixelSize() != 60


def shown_as(tooltip: str) -> str:
    """The text a person reads in a tooltip: Qt renders it as HTML when it looks like HTML."""
    if not QtGui.Qt.mightBeRichText(tooltip):
        return tooltip
    doc = QTextDocument()
    doc.setHtml(tooltip)
    return doc.toPlainText()


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # (offscreen: showing a tooltip)
@pytest.mark.parametrize("target", ["https://x.test/<b>bold</b>", "https://x.test/&lt;b&gt;bold&lt;/b&gt;",
                                    "https://x.test/?q=<i>x</i>&a=1"])
def test_a_hovered_link_shows_where_it_goes_literally(qtbot, transcript, target):
    view = transcript(AssistantMessageView.from_message(StoredMessage("[a link](https://x.test/)")))
    url = QUrl(target)
    view.answer_view.highlighted.emit(url)  # what hovering the link does
    try:
        assert QToolTip.isVisible()
        assert shown_as(QToolTip.text()) == url.toString()
    finally:
        QToolTip.hideText()


def test_code_copy_link_puts_the_raw_code_on_the_clipboard(qtbot, transcript):
    code = 'if a < b:\n    print("<b>")\n\n\tdone()'
    view = transcript(AssistantMessageView.from_message(StoredMessage(f"Run:\n\n```python\n{code}\n```\n\nOk.")))
    QGuiApplication.clipboard().clear()
    click_text(qtbot, view.answer_view, "Copy")
    assert QGuiApplication.clipboard().text() == code


def test_code_copy_works_while_streaming(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_answer("```sh\necho one\n```\n\n```sh\necho two\n```\n\nand")
    settle(qtbot, view)
    QGuiApplication.clipboard().clear()
    view.answer_view.anchorClicked.emit(QUrl("copy:1"))
    assert QGuiApplication.clipboard().text() == "echo two"


def test_copy_feedback_mid_stream_does_not_disturb_the_stream(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_answer("```\nfirst\n```\n\nSome text that is still")
    settle(qtbot, view)
    click_text(qtbot, view.answer_view, "Copy")
    assert "Copied" in view.answer_view.toPlainText()  # the link says so for a moment
    view.append_answer(" being written.\n\nNext block")
    settle(qtbot, view)
    text = view.answer_view.toPlainText()
    assert "Some text that is still being written." in text and text.endswith("Next block")
    assert text.count("first") == 1


def test_links_open_in_the_system_browser_and_not_in_place(qtbot, transcript):
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("https", catcher, "open")
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        view = transcript(AssistantMessageView.from_message(
            StoredMessage("Read [the guide](https://example.org/guide) or [this](file:///etc/passwd).")))
        before = view.answer_view.toPlainText()
        click_text(qtbot, view.answer_view, "the guide")
        click_text(qtbot, view.answer_view, "this")
    finally:
        QDesktopServices.unsetUrlHandler("https")
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toString() for u in catcher.urls] == ["https://example.org/guide"]  # file: is not opened
    assert view.answer_view.toPlainText() == before
    assert view.answer_view.source().isEmpty()


def test_finished_message_renders_tables_and_highlighted_code(qtbot, transcript):
    text = "| name | value |\n|---|--:|\n| alpha | 1 |\n| beta | 22 |\n\n```python\ndef f():\n    return 1\n```"
    view = transcript(AssistantMessageView.from_message(StoredMessage(text)))
    doc = view.answer_view.document()
    tables = [f for f in doc.rootFrame().childFrames() if f.__class__.__name__ == "QTextTable"]
    data = next(t for t in tables if t.rows() == 3)
    assert data.columns() == 2
    assert data.cellAt(2, 0).firstCursorPosition().block().text() == "beta"
    keyword = doc.find("def")
    assert keyword.charFormat().foreground().color().name() != doc.find("f()").charFormat().foreground().color().name()
    assert view.answer_view.code_blocks == ["def f():\n    return 1"]


def test_answer_has_no_inner_scrollbar_and_follows_the_width(qtbot, transcript):
    long_text = " ".join(["word"] * 400)
    view = transcript(AssistantMessageView.from_message(StoredMessage(long_text)))
    qtbot.wait(20)
    answer = view.answer_view
    assert answer.verticalScrollBar().maximum() == 0
    assert answer.height() >= answer.document().size().height()
    tall = answer.height()
    view.window().resize(400, 900)
    qtbot.waitUntil(lambda: answer.height() > tall * 1.3)
    assert answer.verticalScrollBar().maximum() == 0


# --- footer: stats, state, actions -----------------------------------------------------


def test_footer_shows_stats_and_actions_when_finished(qtbot, transcript):
    view = streaming_view(transcript)
    view.append_answer("partial")
    settle(qtbot, view)
    assert view.regenerate_button.isHidden()
    view.finish("Trace", "Answer", [], STATS, "complete")
    stats = view.stats_label.text()
    assert "0.4 s to first token" in stats and "38.2 tokens/s" in stats
    assert "812 thinking + 240 answer tokens" in stats and stats.endswith("done")
    assert "Context used: 1,073 tokens" in view.stats_label.toolTip()
    assert view.regenerate_button.isVisible() and view.copy_thinking_button.isVisible()
    assert view.status_chip.isHidden()
    assert view.minimumSizeHint().width() < 480  # the long stats line wraps; it never widens the transcript


def test_copy_answer_and_copy_thinking(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("**Answer** text", thinking="Trace text")))
    qtbot.mouseClick(view.copy_answer_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "**Answer** text"  # the markdown source
    assert view.copy_answer_button.text() == "Copied"
    qtbot.mouseClick(view.copy_thinking_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "Trace text"


def test_regenerate_asks_for_this_turn(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("A", position=5)))
    with qtbot.waitSignal(view.regenerate_requested) as signal:
        qtbot.mouseClick(view.regenerate_button, Qt.MouseButton.LeftButton)
    assert signal.args == [5]


def test_stopped_and_error_messages_say_so(qtbot, transcript):
    stopped = transcript(AssistantMessageView.from_message(
        StoredMessage("Half an ans", status="stopped", stats={**STATS, "finish_reason": "cancelled"})))
    assert stopped.status_chip.isVisible() and stopped.status_chip.text() == "Stopped"
    assert stopped.status_chip.property("state") == "stopped"

    failed = streaming_view(transcript)
    failed.append_answer("Some")
    failed.finish("", "Some", [], None, "error", error="The model ran out of memory. Lower the context size.")
    assert failed.status_chip.text() == "Error" and failed.status_chip.property("state") == "error"
    assert failed.error_label.isVisible() and "ran out of memory" in failed.error_label.text()

    crashed = transcript(AssistantMessageView.from_message(
        StoredMessage("Cut", status="stopped", flags=("interrupted",))))
    assert crashed.status_chip.text() == "Interrupted"
    assert crashed.badges() == []

    limited = transcript(AssistantMessageView.from_message(
        StoredMessage("Long", stats={**STATS, "finish_reason": "length"})))
    assert limited.status_chip.text() == "Token limit" and "Max tokens" in limited.status_chip.toolTip()


def test_an_error_from_the_engine_is_shown_as_written(qtbot, transcript):
    error = "llama_decode failed: <b>-3</b> &amp; more"
    failed = transcript(AssistantMessageView.from_message(
        StoredMessage("Some", status="error", stats={"error": error})))
    assert failed.error_label.text() == error and failed.error_label.textFormat() == Qt.TextFormat.PlainText
    assert shown_as(failed.status_chip.toolTip()) == error


def test_theme_change_recolours_the_rendered_answer(qtbot, transcript):
    view = transcript(AssistantMessageView.from_message(StoredMessage("```python\ndef f(): pass\n```")))
    light = view.answer_view.document().find("def").charFormat().foreground().color().name()
    theme.apply_theme(QApplication.instance(), "dark")
    try:
        qtbot.waitUntil(lambda: view.answer_view.document().find("def").charFormat()
                        .foreground().color().name() != light)
    finally:
        theme.apply_theme(QApplication.instance(), "light")


# --- user message ----------------------------------------------------------------------


def test_user_prompt_is_plain_text_with_edit_and_copy(qtbot, transcript):
    prompt = "What does <b>this</b> do?\nSecond line"
    view = transcript(UserMessageView(prompt, position=4))
    assert view.label.text() == prompt and view.label.textFormat() == Qt.TextFormat.PlainText
    with qtbot.waitSignal(view.edit_requested) as signal:
        qtbot.mouseClick(view.edit_button, Qt.MouseButton.LeftButton)
    assert signal.args == [4]
    qtbot.mouseClick(view.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == prompt


def test_long_prompt_wraps_inside_the_bubble(qtbot, transcript):
    view = transcript(UserMessageView("lorem ipsum " * 200, position=0))
    qtbot.wait(20)
    assert view.bubble.width() <= view.width() * 0.8 + 1
    assert view.label.height() > 5 * view.label.fontMetrics().lineSpacing()


# --- throttle --------------------------------------------------------------------------


def test_throttle_runs_at_once_then_coalesces_a_burst(qtbot):
    calls = []
    throttle = Throttle(lambda: calls.append(1), interval_ms=30)
    throttle.request()
    assert calls == [1]  # the first request after a quiet period runs at once
    for _ in range(100):
        throttle.request()
    assert calls == [1] and throttle.pending
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=1000)
    qtbot.wait(60)
    assert len(calls) == 2  # the burst became one call


def test_throttle_flush_and_cancel(qtbot):
    calls = []
    throttle = Throttle(lambda: calls.append(1), interval_ms=1000)
    throttle.request()
    throttle.request()
    throttle.flush()
    assert len(calls) == 2 and not throttle.pending
    throttle.request()
    throttle.cancel()
    qtbot.wait(50)
    assert len(calls) == 2


def _has_images(doc: QTextDocument) -> bool:
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isImageFormat():
                return True
            it += 1
        block = block.next()
    return False

