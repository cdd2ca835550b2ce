"""The conversation list shows titles and search snippets (model and user text) as written."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtGui import Qt as QtGui

from app.core.storage import ConversationSummary, SearchHit
from app.ui.conversation_list import ConversationList

MARKUP = [
    "<b>x</b>",
    "Why is <img src='https://example.com/pixel.png'> blank?",
    "a < b && c > d",
    "&lt;not an entity&gt;",
]


def shown(tooltip: str) -> str:
    """What QToolTip displays: HTML rendered as text when Qt takes the tooltip for rich text
    (Qt.mightBeRichText, as QLabel's auto format decides), else the string itself."""
    if QtGui.mightBeRichText(tooltip):
        document = QTextDocument()
        document.setHtml(tooltip)
        return document.toPlainText()
    return tooltip


@pytest.fixture
def sidebar(qtbot) -> ConversationList:
    widget = ConversationList()
    qtbot.addWidget(widget)
    return widget


@pytest.mark.parametrize("text", MARKUP)
def test_conversation_title_tooltip_shows_markup_literally(sidebar, text):
    sidebar.set_conversations([ConversationSummary(1, text, 0.0, 0.0, None, 2)], None)
    item = sidebar.list.item(0)
    assert item.text() == text
    first_line, second_line = shown(item.toolTip()).split("\n")
    assert first_line == text
    assert second_line.startswith("2 messages · last change ")


@pytest.mark.parametrize("text", MARKUP)
def test_search_snippet_tooltip_shows_markup_literally(sidebar, text):
    hit = SearchHit(conversation_id=1, title="A chat", message_id=3, position=1, field="answer", snippet=text)
    sidebar.show_hits([hit])
    assert shown(sidebar.hits.item(0).toolTip()) == text
