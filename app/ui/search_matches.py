"""Where a search's words occur in the chat on screen: every occurrence highlighted in the
thinking panes and answers, one of them current, stepped through with F3 / Shift+F3 or the
buttons of a small bar over the transcript ("3 of 12").

`SearchMatches` finds and marks the occurrences (QTextEdit extra selections: the text and
its document are never changed); `MatchBar` is the bar. ChatNavigation (chat_navigation.py)
starts them when a search hit is opened and ends them when the search or the chat changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QTextEdit,
    QToolButton,
    QWidget,
)

from app.ui import theme
from app.ui.message_view import AssistantMessageView


@dataclass(frozen=True)
class Match:
    view: AssistantMessageView
    field: str  # "thinking" | "answer"
    start: int  # in the widget's document
    end: int

    @property
    def editor(self) -> QPlainTextEdit | QTextEdit:
        return self.view.thinking_body if self.field == "thinking" else self.view.answer_view


def find_terms(document: QTextDocument, terms: list[str]) -> list[tuple[int, int]]:
    """(start, end) of every case-insensitive occurrence of each term, in document order,
    overlapping ones merged (a search for "39 391" marks "391" once)."""
    spans = []
    for term in terms:
        cursor = QTextCursor(document)
        while True:
            cursor = document.find(term, cursor)
            if cursor.isNull():
                break
            spans.append((cursor.selectionStart(), cursor.selectionEnd()))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class SearchMatches(QObject):
    """The occurrences of a search's words in the transcript's assistant messages.

    Signals:
      changed(): the matches or the current one changed (the bar reads `current_index`, `count`).
    """

    changed = Signal()

    def __init__(self, transcript, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.transcript = transcript
        self.terms: list[str] = []
        self.matches: list[Match] = []
        self.current_index = -1
        self._watched: list[AssistantMessageView] = []  # views whose late render is followed
        self._marked: set[QWidget] = set()  # editors showing highlights

    @property
    def count(self) -> int:
        return len(self.matches)

    @property
    def current(self) -> Match | None:
        return self.matches[self.current_index] if 0 <= self.current_index < len(self.matches) else None

    def start(self, query: str, position: int | None = None, field: str | None = None) -> None:
        """Mark every occurrence of `query`'s words; the current one is the first in message
        `position`'s `field` ("thinking" or "answer"; a prompt hit: the first after it)."""
        self.clear()
        self.terms = query.split()
        self._watched = self.transcript.assistant_views()
        for view in self._watched:
            view.rendered.connect(self._on_view_rendered)  # a late final render replaces the answer's text
        self._collect()
        self.current_index = self._first_index(position, field)
        self._show_current()

    def clear(self) -> None:
        """No search shown: every highlight goes (views already closed are skipped)."""
        for view in self._watched:
            try:
                view.rendered.disconnect(self._on_view_rendered)
            except RuntimeError:  # the view was deleted with its chat
                pass
        for editor in self._marked:
            try:
                editor.setExtraSelections([])
            except RuntimeError:  # deleted with its view
                pass
        self.terms, self.matches, self.current_index, self._watched, self._marked = [], [], -1, [], set()
        self.changed.emit()

    def next(self) -> None:
        self._step(1)

    def previous(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        if not self.matches:
            return
        self.current_index = (self.current_index + delta) % len(self.matches)
        self._show_current()

    def _collect(self) -> None:
        self.matches = []
        if not self.terms:
            return
        for view in self.transcript.assistant_views():
            for field, editor in (("thinking", view.thinking_body), ("answer", view.answer_view)):
                text_shown = view.thinking_text if field == "thinking" else view.answer_text
                if not text_shown:
                    continue
                self.matches += [Match(view, field, s, e) for s, e in find_terms(editor.document(), self.terms)]

    def _first_index(self, position: int | None, field: str | None) -> int:
        if not self.matches:
            return -1
        if position is None:
            return 0
        for i, m in enumerate(self.matches):
            if m.view.position == position and (field not in ("thinking", "answer") or m.field == field):
                return i
        return next((i for i, m in enumerate(self.matches) if m.view.position >= position), 0)

    def _show_current(self) -> None:
        """Highlight every match, the current one in the accent colour, and bring it into view."""
        colors = theme.colors_for(self.transcript)
        every, current = QTextCharFormat(), QTextCharFormat()
        every.setBackground(QColor(colors.warn_bg))
        every.setForeground(QColor(colors.warn_text))
        current.setBackground(QColor(colors.accent))
        current.setForeground(QColor(colors.accent_text))
        by_editor: dict[QWidget, list[QTextEdit.ExtraSelection]] = {}
        for i, m in enumerate(self.matches):
            selection = QTextEdit.ExtraSelection()
            selection.cursor = QTextCursor(m.editor.document())
            selection.cursor.setPosition(m.start)
            selection.cursor.setPosition(m.end, QTextCursor.MoveMode.KeepAnchor)
            selection.format = current if i == self.current_index else every
            by_editor.setdefault(m.editor, []).append(selection)
        for editor in self._marked - by_editor.keys():  # e.g. an answer re-rendered without the word
            editor.setExtraSelections([])
        for editor, selections in by_editor.items():
            editor.setExtraSelections(selections)
        self._marked = set(by_editor)
        match = self.current
        if match is not None:
            if match.field == "thinking" and not match.view.thinking_expanded:
                match.view.set_thinking_expanded(True)
            # After the layout has settled: an expanded pane gets its height on the next pass.
            QTimer.singleShot(0, self, self._scroll_to_current)
        self.changed.emit()

    @Slot()
    def _scroll_to_current(self) -> None:
        match = self.current
        if match is None:
            return
        editor = match.editor
        cursor = QTextCursor(editor.document())
        cursor.setPosition(match.start)
        if match.field == "thinking":  # the pane scrolls inside itself first
            editor.setTextCursor(cursor)
            editor.ensureCursorVisible()
        point = editor.viewport().mapTo(self.transcript.widget(), editor.cursorRect(cursor).center())
        self.transcript.ensureVisible(point.x(), point.y(), 40, 120)

    @Slot()
    def _on_view_rendered(self) -> None:
        """An answer's final render replaced its document: find the matches again, keeping the
        current one's place as near as it can."""
        if not self.terms:
            return
        index = self.current_index
        self._collect()
        self.current_index = min(index, len(self.matches) - 1)
        self._show_current()


class MatchBar(QFrame):
    """A small bar over the transcript's top right corner: "3 of 12", Previous, Next, Close.

    Signals: previous_requested(), next_requested(), close_requested()
    """

    previous_requested = Signal()
    next_requested = Signal()
    close_requested = Signal()

    def __init__(self, overlay_on: QWidget) -> None:
        super().__init__(overlay_on)
        self.setObjectName("matchBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self, objectName="matchCount")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.previous_button = self._button("▲ Previous", "Previous match (Shift+F3)", self.previous_requested)
        self.next_button = self._button("▼ Next", "Next match (F3)", self.next_requested)
        self.close_button = self._button("✕", "Stop highlighting (Esc)", self.close_requested)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 4, 4)
        row.setSpacing(4)
        row.addWidget(self.label)
        row.addSpacing(6)
        row.addWidget(self.previous_button)
        row.addWidget(self.next_button)
        row.addWidget(self.close_button)
        overlay_on.installEventFilter(self)  # follows the transcript's size
        self.hide()

    def _button(self, text: str, tip: str, signal) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(signal)
        return button

    def show_matches(self, query: str, index: int, count: int) -> None:
        """'3 of 12 for “391”', or that there is none; hidden when no search is shown."""
        if not query:
            self.hide()
            return
        shown = query if len(query) <= 30 else query[:29] + "…"
        self.label.setText(f"{index + 1} of {count} for “{shown}”" if count else f"No matches for “{shown}” here")
        self.previous_button.setEnabled(count > 1)
        self.next_button.setEnabled(count > 1)
        c = theme.colors_for(self)
        self.setStyleSheet(  # floats over the transcript: opaque, with an edge
            f"#matchBar {{ background-color: {c.base}; border: 1px solid {c.border}; border-radius: 6px; }}"
            f"#matchCount {{ color: {c.text}; }}"
        )
        self.show()
        self.raise_()
        self._place()

    def _place(self) -> None:
        parent = self.parentWidget()
        self.adjustSize()
        scroll_bar = getattr(parent, "verticalScrollBar", None)
        bar_width = scroll_bar().width() if scroll_bar is not None and scroll_bar().isVisible() else 0
        self.move(max(0, parent.width() - self.width() - bar_width - 12), 8)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False
