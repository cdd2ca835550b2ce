"""The model's reasoning above its answer: a header that ticks "Thinking… 12 s" and folds
the pane, the trace's flag badges, and the text appended as it streams (plain text, for
speed); once the thought is finished its maths can be typeset too (setting `thinking_maths`)."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QSize, Qt, QTimer, Slot
from PySide6.QtGui import QResizeEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import message_wording, theme
from app.ui.flag_badges import BadgeRow
from app.ui.message_actions import action_button, refresh_icons
from app.ui.steering_spans import CLOSE_MARK, display_pieces, span_format
from app.ui.thought_maths import TypesetThought, has_maths

THINKING_MAX_HEIGHT = 320  # a long trace scrolls inside its pane instead of pushing the answer away
CLOCK_TICK_MS = 1000


class ThinkingPane(QFrame):
    """Header (fold button, badges) over a `ThinkingBody`. Hidden until there is thinking.

    The header reads "Thinking… N s" while the clock runs (`start_clock`), "Thought for …"
    after `stop_clock` or `set_thought_for`, plus the token count. A click on it folds or
    unfolds the body, and from then on `user_toggled` is True: the message view stops
    folding it by itself.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thinkingPane")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.user_toggled = False
        self._live_since: float | None = None  # when the clock started; None when it does not run
        self._thought_for: float | None = None
        self._tokens = 0

        self.header = QToolButton(self)
        self.header.setObjectName("thinkingHeader")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.header.setToolTip("Show or hide the model's reasoning")
        self.header.clicked.connect(self._on_header_clicked)
        self.body = ThinkingBody(self)
        self.body.setObjectName("thinkingBody")
        self.badges = BadgeRow(self)
        header_row = QHBoxLayout()
        header_row.setContentsMargins(0, 0, 0, 0)
        header_row.setSpacing(6)
        header_row.addWidget(self.header, 0, Qt.AlignmentFlag.AlignVCenter)
        header_row.addLayout(self.badges)
        header_row.addStretch(1)
        # Shown once the answer is done (message_view.py): edit the thought, continue from it.
        self.edit_button = action_button("Edit thinking", "edit", self, "Edit or cut the model's reasoning and let "
                                         "it continue from there, as a new version of this answer")
        self.edit_button.hide()
        header_row.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        layout.addLayout(header_row)
        layout.addWidget(self.body)
        self.typeset: TypesetThought | None = None  # the finished thought with its maths typeset

        self._clock = QTimer(self)  # ticks the header's seconds
        self._clock.setInterval(CLOCK_TICK_MS)
        self._clock.timeout.connect(self._update_header)
        self._update_header()
        self.hide()  # until thinking arrives; a non-reasoning model never shows it

    # --- header ---------------------------------------------------------------------

    def start_clock(self) -> None:
        self._live_since = time.monotonic()
        self._clock.start()
        self._update_header()

    def stop_clock(self) -> None:
        """Thinking ended: the header says how long it took."""
        self._clock.stop()
        if self._live_since is not None:
            self._thought_for = time.monotonic() - self._live_since
            self._live_since = None
        self._update_header()

    def set_thought_for(self, seconds: float) -> None:
        self._thought_for = seconds
        self._update_header()

    def set_tokens(self, tokens: int) -> None:
        if tokens != self._tokens:
            self._tokens = tokens
            self._update_header()

    @Slot()
    def _update_header(self) -> None:
        live = int(time.monotonic() - self._live_since) if self._live_since is not None else None
        text = message_wording.thinking_header(live, self._thought_for, self._tokens)
        if text != self.header.text():
            self.header.setText(text)

    # --- folding --------------------------------------------------------------------

    @property
    def expanded(self) -> bool:
        return not self._text_view().isHidden()

    def set_expanded(self, expanded: bool) -> None:
        self._text_view().setVisible(expanded)
        self.header.setProperty("expanded", expanded)
        self.refresh_icon()

    @Slot()
    def _on_header_clicked(self) -> None:
        self.user_toggled = True
        self.set_expanded(not self.expanded)

    def refresh_icon(self) -> None:
        name = "chevron-down" if self.expanded else "chevron-right"
        self.header.setIcon(theme.icon(name, theme.colors_for(self).text_dim))
        refresh_icons(self)  # the Edit thinking action

    # --- text -----------------------------------------------------------------------

    def show_final_text(self, text: str, *, typeset_maths: bool = False, spans=()) -> None:
        """The finished trace: what streamed in stays if it is the same text; with
        `typeset_maths` its formulas are then typeset. `spans`: its inserted stretches
        (steering_spans.py shows them)."""
        shown = "".join(piece for piece, _ in display_pieces(text, spans)) if spans else text
        if self.body.toPlainText().rstrip() == shown:
            self.body.trim_end()
        else:
            self.body.set_text(text, spans)
        self._show_typeset_maths(typeset_maths)

    def _text_view(self) -> QWidget:
        """The widget that shows the thought: the plain body, or its typeset copy."""
        return self.typeset if self.typeset is not None and self.typeset.active else self.body

    def _show_typeset_maths(self, wanted: bool) -> None:
        """The finished thought's maths typeset (thought_maths.py: QPlainTextEdit cannot show
        images), in place of the plain text, if it has maths; else the plain text."""
        expanded = self.expanded
        if wanted and self.typeset is None and not has_maths(self.body.toPlainText()):
            return  # (most thoughts: no widget made for them)
        if wanted and self.typeset is None:
            self.typeset = TypesetThought(THINKING_MAX_HEIGHT, self)
            self.typeset.hide()
            self.layout().addWidget(self.typeset)
        active = wanted and self.typeset.show_thought(self.body.document())
        if self.typeset is not None:
            self.typeset.active = active
            self.typeset.setVisible(active and expanded)
        self.body.setVisible(not active and expanded)


class ThinkingBody(QPlainTextEdit):
    """Live reasoning text: appended, never re-set; as tall as its text up to THINKING_MAX_HEIGHT."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.document().setDocumentMargin(6)
        self._styled = False  # holds inserted text in its own style (steering_spans.py)
        self._at_max = False
        self._wrap_width = -1
        self.setFixedHeight(0)

    def append_text(self, text: str, inserted: str | None = None) -> None:
        """Append streamed text; `inserted` (a steering kind) styles text the model did not write."""
        bar = self.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 2  # keep following the end unless the user scrolled up
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if inserted is not None:
            colors = theme.colors_for(self.window())  # (the text box's own palette reads dark)
            cursor.insertText(text, span_format(inserted, colors))
            if inserted == "wrap_up":  # Ponder's </think> ends the thought: shown, as inserted
                cursor.insertText(("" if text.endswith("\n") else "\n") + CLOSE_MARK, span_format("close", colors))
            self._styled = True
        elif self._styled:  # the model's text again: not in the style of the inserted text before it
            cursor.insertText(text, QTextCharFormat())
        else:
            cursor.insertText(text)
        self.fit_height()
        if follow:
            bar.setValue(bar.maximum())

    def set_text(self, text: str, spans=()) -> None:
        self.setPlainText(text if not spans else "")
        if spans:  # inserted stretches in their own style (steering_spans.py)
            colors, cursor = theme.colors_for(self.window()), QTextCursor(self.document())
            for piece, kind in display_pieces(text, spans):
                cursor.insertText(piece, span_format(kind, colors) if kind else QTextCharFormat())
        self._styled = bool(spans)
        self._at_max = False
        self.fit_height()

    def trim_end(self) -> None:
        """Drop trailing whitespace (the text before </think> ends in blank lines)."""
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        while cursor.position() > 0 and doc.characterAt(cursor.position() - 1) in " \t\u2029\u2028\n":
            cursor.deletePreviousChar()
        self._at_max = False
        self.fit_height()

    def fit_height(self) -> None:
        self._check_wrap_width()
        if self._at_max:  # the text only grows while streaming: once full, it stays full
            return
        doc, layout = self.document(), self.document().documentLayout()
        extra = 2 * doc.documentMargin() + 2 * self.frameWidth()
        height = extra
        block = doc.firstBlock()
        while block.isValid() and height < THINKING_MAX_HEIGHT:  # stops early for long traces
            height += layout.blockBoundingRect(block).height()
            block = block.next()
        self._at_max = height >= THINKING_MAX_HEIGHT
        self.setFixedHeight(min(THINKING_MAX_HEIGHT, math.ceil(height)))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.fit_height()

    def _check_wrap_width(self) -> None:
        """Rewrap when the viewport width changed, even if Qt did not notice.

        QPlainTextEdit rewraps only on a resize event whose old and new widths differ;
        when its scroll bar appears while the widget is being laid out, the viewport
        narrows without such an event and lines run under the scroll bar.
        """
        width = self.viewport().width()
        if width == self._wrap_width:
            return
        self._wrap_width = width
        QPlainTextEdit.resizeEvent(self, QResizeEvent(self.viewport().size(), QSize(-1, -1)))
        self._at_max = False  # rewrapped: the text may need more or less room
