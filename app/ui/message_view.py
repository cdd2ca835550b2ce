"""How one message looks and streams: the user's prompt, and the assistant's thinking + answer.

Streaming cost stays flat however long the message grows: text arriving from the
engine is buffered and applied by a `Throttle` (~30 Hz); thinking is appended to a
plain-text pane; in the answer each markdown block is rendered to HTML once, when
it is complete, and only the unfinished tail is shown as plain text. `finish()`
renders the tail and re-renders only the runs of blocks that a render of the whole
answer joins (a list or a quote that went on after a blank line): the finished
document is exactly what a render of the whole answer gives, for about the cost of
one streamed block instead of the whole answer's.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QResizeEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.core.render import (
    COPY_SCHEME,
    Patch,
    Rendered,
    StreamRenderer,
    StreamStep,
    patches,
    render_markdown,
    warm_up,
)
from app.ui import theme
from app.ui.throttle import Throttle

UPDATE_INTERVAL_MS = 33  # ~30 Hz: smooth to the eye, cheap for the event loop
SYNC_RENDER_MAX_CHARS = 6000  # longer answers get their finishing fixes over several event loop passes
THINKING_MAX_HEIGHT = 320  # a long trace scrolls inside its pane instead of pushing the answer away
COPIED_FEEDBACK_MS = 1500
BUBBLE_PADDING = (14, 9, 14, 9)  # left, top, right, bottom
OPENABLE_SCHEMES = ("http", "https", "mailto")

# Trace anomalies from app.core.reasoning (and storage's "interrupted"): badge text, tooltip.
FLAG_INFO = {
    "skipped_thinking": (
        "skipped",
        "The model closed its thinking block without writing any reasoning; the answer came without visible thought.",
    ),
    "unclosed_thinking": (
        "unclosed",
        "The thinking never ended: the model hit the token limit or was stopped before </think>, "
        "so there is no separate answer. Raise Max tokens in Settings and regenerate.",
    ),
    "orphan_close": (
        "orphan tag",
        "The answer contained a </think> without a matching <think>; the tag was removed from the answer.",
    ),
    "multiple_think_blocks": (
        "multiple",
        "The model wrote more than one think block (or a nested <think>); all of its reasoning is shown here.",
    ),
    "text_before_think": (
        "text before",
        "The model wrote answer text before it started thinking; that text is shown in the answer.",
    ),
    "interrupted": (
        "interrupted",
        "Ponder closed while this message was being written; it ends where the last save did.",
    ),
}
SILENT_FLAGS = {"no_thinking"}  # normal for a non-reasoning model: nothing to warn about

FINISH_WORDS = {"stop": "done", "length": "token limit", "context_full": "context full", "cancelled": "stopped"}


def _format_seconds(s: float) -> str:
    if s < 0.1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:.0f} s"


def _tokens(n: int) -> str:
    return f"{n:,} token" + ("" if n == 1 else "s")


class _AnswerBrowser(QTextBrowser):
    """The rendered answer: as tall as its content, links open only on click, nothing remote loads."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.code_blocks: list[str] = []
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(0)
        self.viewport().setAutoFillBackground(False)
        self.anchorClicked.connect(self._on_anchor_clicked)
        self.highlighted.connect(self._on_link_hovered)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def loadResource(self, kind: int, name: QUrl) -> Any:  # noqa: N802 (Qt API)
        return None  # model output must never make Ponder fetch anything (images, styles)

    @Slot(QUrl)
    def _on_anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() == COPY_SCHEME:
            index = int(url.path()) if url.path().isdigit() else -1
            if 0 <= index < len(self.code_blocks):
                QGuiApplication.clipboard().setText(self.code_blocks[index])
                self._show_code_copied(index)
        elif url.scheme().lower() in OPENABLE_SCHEMES:
            QDesktopServices.openUrl(url)
        # Anything else (file:, javascript:, relative links) is not followed.

    def _show_code_copied(self, index: int) -> None:
        """The block's "Copy" link reads "Copied" for a moment."""
        cursor = self._find_copy_link(index)
        if cursor is None:
            return
        fmt = cursor.charFormat()
        cursor.insertText("Copied", fmt)

        def restore() -> None:
            again = self._find_copy_link(index)  # the document may have been re-rendered meanwhile
            if again is not None and again.selectedText() == "Copied":
                again.insertText("Copy", again.charFormat())

        QTimer.singleShot(COPIED_FEEDBACK_MS, self, restore)

    def _find_copy_link(self, index: int) -> QTextCursor | None:
        href = f"{COPY_SCHEME}:{index}"
        block = self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.charFormat().anchorHref() == href:
                    cursor = QTextCursor(self.document())
                    cursor.setPosition(fragment.position())
                    cursor.setPosition(fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor)
                    return cursor
                it += 1
            block = block.next()
        return None

    @Slot(QUrl)
    def _on_link_hovered(self, url: QUrl) -> None:
        if url.isEmpty() or url.scheme() == COPY_SCHEME:
            QToolTip.hideText()
        else:  # show where a link goes before anyone clicks it
            QToolTip.showText(self.cursor().pos(), url.toString(), self)

    def _fit_height(self, *_args) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + 2
        if height != self.height():
            self.setFixedHeight(height)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().sizeHint().width(), self.height())


class _ThinkingBody(QPlainTextEdit):
    """Live reasoning text: appended, never re-set; as tall as its text up to THINKING_MAX_HEIGHT."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.document().setDocumentMargin(6)
        self._at_max = False
        self._wrap_width = -1
        self.setFixedHeight(0)

    def append_text(self, text: str) -> None:
        bar = self.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 2  # keep following the end unless the user scrolled up
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.fit_height()
        if follow:
            bar.setValue(bar.maximum())

    def set_text(self, text: str) -> None:
        self.setPlainText(text)
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


class UserMessageView(QWidget):
    """The user's prompt as a bubble on the right, with Edit and Copy actions.

    Signals:
      edit_requested(int position): the user wants to edit this prompt and resend it.
    """

    edit_requested = Signal(int)

    def __init__(self, text: str, position: int = -1, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("userMessage")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.position = position
        self._text = text

        self.bubble = QFrame(self)
        self.bubble.setObjectName("userBubble")
        self.label = QLabel(self.bubble)
        self.label.setObjectName("userText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # a prompt is never interpreted as HTML
        self.label.setText(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setCursor(Qt.CursorShape.IBeamCursor)
        bubble_layout = QVBoxLayout(self.bubble)
        bubble_layout.setContentsMargins(*BUBBLE_PADDING)
        bubble_layout.addWidget(self.label)

        self.edit_button = _action_button("Edit", "edit", self)
        self.edit_button.setToolTip("Edit this prompt and send it again")
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self.position))
        self.copy_button = _action_button("Copy", "copy", self)
        self.copy_button.setToolTip("Copy this prompt")
        self.copy_button.clicked.connect(self.copy_text)

        bubble_row = QHBoxLayout()
        bubble_row.setContentsMargins(0, 0, 0, 0)
        bubble_row.addStretch(1)
        bubble_row.addWidget(self.bubble)
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        actions.setSpacing(2)
        actions.addStretch(1)
        actions.addWidget(self.edit_button)
        actions.addWidget(self.copy_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(bubble_row)
        column.addLayout(actions)
        self._natural_width = -1
        _refresh_icons(self)

    @classmethod
    def from_message(cls, message: Any, parent: QWidget | None = None) -> "UserMessageView":
        """A view of a stored user message (anything with .content and .position)."""
        return cls(message.content, getattr(message, "position", -1), parent)

    @property
    def text(self) -> str:
        return self._text

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self._text)
        _show_copied(self.copy_button)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit_bubble()

    def _fit_bubble(self) -> None:
        """Short prompts keep their natural width; long ones wrap at 80% of the transcript.

        (A word-wrapped QLabel in a layout does not find this width by itself.)
        """
        if self._natural_width < 0:
            metrics = self.label.fontMetrics()
            self._natural_width = max(metrics.horizontalAdvance(line) for line in self._text.split("\n")) + 2
        padding = BUBBLE_PADDING[0] + BUBBLE_PADDING[2]
        width = max(40, min(self._natural_width, int(self.width() * 0.8) - padding))
        self.label.setFixedWidth(width)
        self.label.setFixedHeight(self.label.heightForWidth(width))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            _refresh_icons(self)
        elif event.type() == QEvent.Type.FontChange:
            self._natural_width = -1
            self._fit_bubble()


class AssistantMessageView(QWidget):
    """One assistant turn: collapsible thinking pane, the answer, stats and actions.

    Stream with `append_thinking` / `append_answer` (or `append(kind, text)`) and
    `set_live_counts`, then call `finish` once. `from_message` builds a finished view.

    Signals:
      regenerate_requested(int position): the user wants a new answer for this turn.
      rendered(): the answer shows its final render (after `finish`; for a long answer
        whose lists or quotes need rendering again, a few event loop passes later).
    """

    regenerate_requested = Signal(int)
    rendered = Signal()

    def __init__(
        self,
        position: int = -1,
        *,
        expand_while_thinking: bool = True,
        expand_when_done: bool = False,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("assistantMessage")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)  # never stretched
        self.position = position
        self.expand_while_thinking = expand_while_thinking
        self.expand_when_done = expand_when_done

        self._phase = "waiting"  # waiting -> thinking -> answering -> done
        self._thinking_parts: list[str] = []
        self._answer_parts: list[str] = []
        self._pending_thinking: list[str] = []
        self._pending_answer: list[str] = []
        self._think_started: float | None = None
        self._think_seconds: float | None = None
        self._thinking_tokens = 0
        self._answer_tokens = 0
        self._user_toggled = False
        self._stream = StreamRenderer()
        self._piece_ends: list[int] = []  # the last block of each streamed piece (in _stream.html_parts)
        self._shown_tail = ""  # the tail (the document's last block while streaming) as last shown
        self._tail_is_code = False  # ...shown as an open code block
        self._scratch = QTextDocument(self)  # parses HTML before it goes into the answer (see _replace_blocks)
        self._scratch.setUndoRedoEnabled(False)
        self._fixes: list[Patch | tuple[int, int]] = []  # still to apply to the streamed answer (see finish)
        self._final_code_blocks: list[str] = []
        self._code_block_format = QTextBlockFormat()
        self._code_char_format = QTextCharFormat()
        self._dark: bool | None = None
        self._render_pending = False
        self.flags: list[str] = []
        self.stats: dict | None = None
        self.status = "streaming"
        self.error: str | None = None

        self._throttle = Throttle(self._apply_pending, UPDATE_INTERVAL_MS, self)
        self._clock = QTimer(self)  # ticks the "Thinking… 12 s" header
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_header)

        # Thinking pane
        self.thinking_pane = QFrame(self)
        self.thinking_pane.setObjectName("thinkingPane")
        self.thinking_header = QToolButton(self.thinking_pane)
        self.thinking_header.setObjectName("thinkingHeader")
        self.thinking_header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thinking_header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.thinking_header.setToolTip("Show or hide the model's reasoning")
        self.thinking_header.clicked.connect(self._on_header_clicked)
        self.thinking_body = _ThinkingBody(self.thinking_pane)
        self.thinking_body.setObjectName("thinkingBody")
        self._badges = QHBoxLayout()
        self._badges.setSpacing(4)
        header_row = QHBoxLayout()
        header_row.setContentsMargins(0, 0, 0, 0)
        header_row.setSpacing(6)
        header_row.addWidget(self.thinking_header, 0, Qt.AlignmentFlag.AlignVCenter)
        header_row.addLayout(self._badges)
        header_row.addStretch(1)
        pane_layout = QVBoxLayout(self.thinking_pane)
        pane_layout.setContentsMargins(6, 4, 6, 4)
        pane_layout.setSpacing(2)
        pane_layout.addLayout(header_row)
        pane_layout.addWidget(self.thinking_body)
        self.thinking_pane.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.thinking_pane.hide()  # until thinking arrives; a non-reasoning model never shows it

        # Answer
        self.answer_view = _AnswerBrowser(self)
        self.answer_view.setObjectName("answerView")

        self.error_label = QLabel(self)
        self.error_label.setObjectName("messageError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.hide()

        # Footer: status chip, stats, actions
        self.status_chip = QLabel(self)
        self.status_chip.setObjectName("statusChip")
        self.status_chip.hide()
        self.stats_label = QLabel(self)
        self.stats_label.setObjectName("messageStats")
        self.stats_label.setWordWrap(True)  # wraps on narrow windows instead of widening the transcript
        self.copy_answer_button = _action_button("Copy", "copy", self)
        self.copy_answer_button.setToolTip("Copy the answer (markdown)")
        self.copy_answer_button.clicked.connect(self.copy_answer)
        self.copy_thinking_button = _action_button("Copy thinking", "copy", self)
        self.copy_thinking_button.setToolTip("Copy the model's reasoning")
        self.copy_thinking_button.clicked.connect(self.copy_thinking)
        self.regenerate_button = _action_button("Regenerate", "regenerate", self)
        self.regenerate_button.setToolTip("Generate a new answer to the same prompt")
        self.regenerate_button.clicked.connect(lambda: self.regenerate_requested.emit(self.position))
        self._footer_badges = QHBoxLayout()
        self._footer_badges.setSpacing(4)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.setSpacing(6)
        footer.addWidget(self.status_chip)
        footer.addLayout(self._footer_badges)
        footer.addWidget(self.stats_label, 1)
        for button in (self.copy_answer_button, self.copy_thinking_button, self.regenerate_button):
            footer.addWidget(button)
            button.hide()  # actions appear when the message is finished

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.thinking_pane)
        layout.addWidget(self.answer_view)
        layout.addWidget(self.error_label)
        layout.addLayout(footer)

        self._apply_colors()
        self._set_expanded(self.expand_while_thinking)
        self._update_footer()
        _render_pool()  # warm up the renderer before the first answer streams

    # --- building from storage ----------------------------------------------------------

    @classmethod
    def from_message(
        cls, message: Any, *, expand_when_done: bool = False, parent: QWidget | None = None
    ) -> "AssistantMessageView":
        """A finished view of a stored assistant message (.thinking, .content, .flags, .stats, .status)."""
        view = cls(getattr(message, "position", -1), expand_when_done=expand_when_done, parent=parent)
        status = message.status if message.status != "streaming" else "stopped"
        error = (message.stats or {}).get("error") if status == "error" else None
        view.finish(message.thinking, message.content, list(message.flags), message.stats, status, error=error)
        return view

    # --- streaming API --------------------------------------------------------------------

    def append(self, kind: str, text: str) -> None:
        """Add streamed text of `kind` "think" or "answer" (app.core.reasoning.Segment)."""
        if kind == "think":
            self.append_thinking(text)
        else:
            self.append_answer(text)

    def append_thinking(self, text: str) -> None:
        if self._phase == "done" or not text:
            return
        if not self._thinking_parts and not self._pending_thinking:  # the first thinking text
            text = text.lstrip()
            if not text:
                return
            self.thinking_pane.show()
            if self._phase == "waiting":
                self._phase = "thinking"
                self._think_started = time.monotonic()
                self._clock.start()
                self._set_expanded(self.expand_while_thinking)
            else:  # thinking after answer text (a flagged trace): no live clock, start folded
                self._set_expanded(False)
        self._pending_thinking.append(text)
        self._throttle.request()

    def append_answer(self, text: str) -> None:
        if self._phase == "done" or not text:
            return
        if self._phase in ("waiting", "thinking"):
            text = text.lstrip()  # the answer starts at its first visible character
            if not text:
                return
            if self._phase == "thinking":
                self._end_thinking_clock()
            self._phase = "answering"
        self._pending_answer.append(text)
        self._throttle.request()

    def set_live_counts(self, thinking_tokens: int, answer_tokens: int) -> None:
        self._thinking_tokens, self._answer_tokens = thinking_tokens, answer_tokens
        self._throttle.request()

    def finish(
        self,
        thinking: str,
        answer: str,
        flags: list[str] | tuple[str, ...] = (),
        stats: dict | None = None,
        status: str = "complete",
        *,
        error: str | None = None,
    ) -> None:
        """Show the final message: the answer as a render of its whole text, stats, flags,
        actions. Call once."""
        self._throttle.flush()  # what is still buffered goes in first, so the texts compare equal
        if self._phase == "thinking":
            self._end_thinking_clock()
        self._clock.stop()
        self._phase = "done"
        self.flags, self.stats, self.status, self.error = list(flags), stats, status, error
        if stats:
            self._thinking_tokens = stats.get("thinking_tokens") or self._thinking_tokens
            self._answer_tokens = stats.get("answer_tokens") or self._answer_tokens
            if stats.get("thinking_s") is not None:
                self._think_seconds = stats["thinking_s"]

        thinking, answer = thinking.strip(), answer.strip()
        streamed_thinking, streamed_answer = self.thinking_text, self.answer_text
        self._thinking_parts, self._answer_parts = [thinking], [answer]
        if streamed_thinking.rstrip() == thinking:
            self.thinking_body.trim_end()  # same text: no need to set it again
        else:
            self.thinking_body.set_text(thinking)
        self.thinking_pane.setVisible(bool(thinking))
        if streamed_answer and streamed_answer.rstrip() == answer:
            self._finish_streamed_answer(answer)  # only the tail and the pieces that differ change
        else:
            self._render_answer_fully()
        self.answer_view.setVisible(bool(answer) or not thinking)

        if not self._user_toggled:
            # Nothing but thinking (e.g. cut off before </think>): keep the trace open.
            self._set_expanded(self.expand_when_done or not answer)
        self._show_flags()
        self._update_header()
        self._update_footer()

    # --- accessors and actions ------------------------------------------------------------

    @property
    def thinking_text(self) -> str:
        return "".join(self._thinking_parts)

    @property
    def answer_text(self) -> str:
        return "".join(self._answer_parts)

    @property
    def is_streaming(self) -> bool:
        return self._phase != "done"

    @property
    def render_pending(self) -> bool:
        """True between `finish` of a long answer and its final render (see `rendered`)."""
        return self._render_pending

    @property
    def thinking_expanded(self) -> bool:
        return not self.thinking_body.isHidden()

    def set_thinking_expanded(self, expanded: bool) -> None:
        self._user_toggled = True
        self._set_expanded(expanded)

    def copy_answer(self) -> None:
        QGuiApplication.clipboard().setText(self.answer_text)
        _show_copied(self.copy_answer_button)

    def copy_thinking(self) -> None:
        QGuiApplication.clipboard().setText(self.thinking_text)
        _show_copied(self.copy_thinking_button)

    # --- internals ------------------------------------------------------------------------

    def _end_thinking_clock(self) -> None:
        self._clock.stop()
        if self._think_started is not None:
            self._think_seconds = time.monotonic() - self._think_started

    def _apply_pending(self) -> None:
        """The throttled update: apply everything that arrived since the last one."""
        if self._pending_thinking:
            text = "".join(self._pending_thinking)
            self._pending_thinking.clear()
            self._thinking_parts.append(text)
            self.thinking_body.append_text(text)
        if self._pending_answer:
            text = "".join(self._pending_answer)
            self._pending_answer.clear()
            self._answer_parts.append(text)
            self._append_answer_markdown(text)
            if self._phase == "answering" and not self._user_toggled and self.thinking_expanded:
                self._set_expanded(False)  # the answer has started: fold the reasoning away
        self._update_header()
        self._update_footer()

    def _append_answer_markdown(self, delta: str) -> None:
        self._show_stream_step(self._stream.feed(delta))

    def _show_stream_step(self, step: StreamStep) -> None:
        """Blocks completed: their HTML replaces the plain tail; then the new tail is shown.

        The streamed document is kept exactly as a render of its pieces would make it, so
        that `finish` only has to fix the pieces a render of the whole answer shows differently.
        """
        self.answer_view.code_blocks = self._stream.code_blocks
        doc = self.answer_view.document()
        if step.html:
            after = self._piece_ends[-1] if self._piece_ends else -1
            self._piece_ends.append(_replace_blocks(doc, self._scratch, after, doc.blockCount() - 1, step.html))
            cursor = QTextCursor(doc)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())  # the tail's own block
            self._shown_tail, self._tail_is_code = "", False
        self._show_tail(step.tail)

    def _show_tail(self, tail: str) -> None:
        """The unfinished block (the document's last) as plain text; an open code fence already looks like code."""
        is_code = self._stream.in_code and tail.startswith(("```", "~~~"))
        shown = self._tail_text(self._shown_tail, self._tail_is_code)
        wanted = self._tail_text(tail, is_code)
        cursor = QTextCursor(self.answer_view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if is_code == self._tail_is_code and wanted.startswith(shown):
            text = wanted[len(shown):]
        else:  # the tail turned out to be code (or stopped being): show it again, once
            cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.setBlockFormat(self._code_block_format if is_code else QTextBlockFormat())
            text = wanted
        if text:
            cursor.insertText(text, self._code_char_format if is_code else QTextCharFormat())
        self._shown_tail, self._tail_is_code = tail, is_code

    @staticmethod
    def _tail_text(tail: str, is_code: bool) -> str:
        if not is_code:
            return tail
        newline = tail.find("\n")  # the fence line itself is not shown
        return "" if newline < 0 else tail[newline + 1:]

    def _close_stream(self) -> None:
        """The end of the streamed answer: render its tail and drop the tail's block."""
        self._show_stream_step(self._stream.close())
        doc = self.answer_view.document()
        if self._piece_ends:
            _replace_blocks(doc, self._scratch, self._piece_ends[-1], doc.blockCount() - 1, "")
        else:
            self.answer_view.clear()

    def _finish_streamed_answer(self, answer: str) -> None:
        """Make the streamed document equal to a render of the whole answer, changing only
        the pieces that come out differently there: runs of pieces that continue one list
        or quote are rendered together (see StreamRenderer.continued_runs). A long answer
        gets one such fix per pass of the event loop, so no single step takes long."""
        self._close_stream()
        runs = self._stream.continued_runs()
        short = len(answer) <= SYNC_RENDER_MAX_CHARS
        if runs is None and not short:
            self._render_whole_in_background(answer)
            return
        if runs is None:  # reference links: compare with a render of the whole text
            rendered = render_markdown(answer)
            self._fixes = patches(self._stream.html_parts, rendered.html)
            self._final_code_blocks = list(rendered.code_blocks)
        else:
            self._fixes = list(runs)
            self._final_code_blocks = list(self._stream.code_blocks)
        if short:
            while self._fixes:
                self._apply_fix(self._fixes.pop())
            self._fixes_done()
        else:
            self._render_pending = True
            self._apply_fixes_in_turn()

    def _render_whole_in_background(self, answer: str) -> None:
        """A long answer with reference links: markdown of the whole text, and finding the
        pieces it shows differently, run on a worker thread."""
        self._render_pending = True
        pieces = self._stream.html_parts
        job = _RenderJob(self)
        job.done.connect(self._on_background_render)

        def work() -> None:
            rendered = render_markdown(answer)
            found = patches(pieces, rendered.html)
            try:
                job.done.emit(answer, (rendered, found))
            except RuntimeError:  # the view was closed meanwhile
                pass

        _render_pool().submit(work)

    @Slot(str, object)
    def _on_background_render(self, answer: str, result: tuple[Rendered, list[Patch]]) -> None:
        self.sender().deleteLater()
        if self._phase != "done" or answer != self.answer_text or not self._render_pending:
            return  # shown another way meanwhile (a theme change renders the whole answer)
        rendered, self._fixes = result
        self._final_code_blocks = list(rendered.code_blocks)
        self._apply_fixes_in_turn()

    @Slot()
    def _apply_fixes_in_turn(self) -> None:
        if not self._render_pending:
            return  # rendered another way meanwhile
        if self._fixes:
            self._apply_fix(self._fixes.pop())  # from the last: earlier block numbers stay valid
        if self._fixes:
            QTimer.singleShot(0, self, self._apply_fixes_in_turn)
        else:
            self._fixes_done()

    def _apply_fix(self, fix: Patch | tuple[int, int]) -> None:
        """Replace streamed pieces: a Patch says with what; a run (start, end) is rendered together."""
        if not isinstance(fix, Patch):
            start, end = fix
            html = self._stream.render_run(start, end)
            if html == "\n".join(self._stream.html_parts[start:end]):
                return
            fix = Patch(start, end, html)
        ends = self._piece_ends
        after = ends[fix.start - 1] if fix.start > 0 else -1
        through = ends[fix.end - 1] if fix.end > fix.start else after
        _replace_blocks(self.answer_view.document(), self._scratch, after, through, fix.html)

    def _fixes_done(self) -> None:
        self.answer_view.code_blocks = self._final_code_blocks
        self._render_pending = False
        self._fixes = []
        self.rendered.emit()

    def _render_answer_fully(self) -> None:
        """The whole answer at once (a stored message, a theme change): one setHtml."""
        rendered = render_markdown(self.answer_text)
        self.answer_view.setHtml(rendered.html)
        self._final_code_blocks = list(rendered.code_blocks)
        self._fixes_done()

    def _restart_stream(self) -> None:
        self.answer_view.clear()
        self._stream = StreamRenderer()
        self._piece_ends = []  # the last block of each streamed piece
        self._shown_tail, self._tail_is_code = "", False

    def _restream_answer(self) -> None:
        """Rebuild the streamed answer from its text (after a theme change mid-stream)."""
        self._restart_stream()
        if self.answer_text:
            self._append_answer_markdown(self.answer_text)

    def _set_expanded(self, expanded: bool) -> None:
        self.thinking_body.setVisible(expanded)
        self.thinking_header.setProperty("expanded", expanded)
        self._refresh_header_icon()

    @Slot()
    def _on_header_clicked(self) -> None:
        self.set_thinking_expanded(not self.thinking_expanded)

    def _update_header(self) -> None:
        tokens = self._thinking_tokens
        if self._phase == "thinking" and self._think_started is not None:
            seconds = int(time.monotonic() - self._think_started)
            text = f"Thinking… {seconds} s"
        elif self._think_seconds is not None:
            text = f"Thought for {_format_seconds(self._think_seconds)}"
        else:
            text = "Thoughts"
        if tokens:
            text += f" · {_tokens(tokens)}"
        if text != self.thinking_header.text():
            self.thinking_header.setText(text)

    def _update_footer(self) -> None:
        done = self._phase == "done"
        self.regenerate_button.setVisible(done)
        self.copy_answer_button.setVisible(done and bool(self.answer_text))
        self.copy_thinking_button.setVisible(done and bool(self.thinking_text))
        if not done:  # (while thinking, the pane's header says it all)
            if self._phase == "waiting":
                text = "Starting…"
            elif self._phase == "answering":
                text = f"Writing… {_tokens(self._answer_tokens)}" if self._answer_tokens else "Writing…"
            else:
                text = ""
            if text != self.stats_label.text():
                self.stats_label.setText(text)
            return
        self.stats_label.setText(self._stats_text())
        self.stats_label.setToolTip(self._stats_details())
        chip, tip = self._status_chip()
        self.status_chip.setVisible(bool(chip))
        self.status_chip.setText(chip)
        self.status_chip.setToolTip(tip)
        self.status_chip.setProperty("state", "error" if self.status == "error" else "stopped")
        self.status_chip.style().unpolish(self.status_chip)
        self.status_chip.style().polish(self.status_chip)
        self.error_label.setVisible(bool(self.error))
        self.error_label.setText(self.error or "")

    def _stats_text(self) -> str:
        s = self.stats or {}
        parts = []
        if s.get("time_to_first_token_s") is not None:
            parts.append(f"{_format_seconds(s['time_to_first_token_s'])} to first token")
        if s.get("decode_tokens_per_s"):
            parts.append(f"{s['decode_tokens_per_s']:.1f} tokens/s")
        if self._thinking_tokens:
            parts.append(f"{self._thinking_tokens:,} thinking + {self._answer_tokens:,} answer tokens")
        elif self._answer_tokens:
            parts.append(_tokens(self._answer_tokens))
        if s.get("finish_reason"):
            parts.append(FINISH_WORDS.get(s["finish_reason"], s["finish_reason"]))
        return " · ".join(parts)

    def _stats_details(self) -> str:
        s = self.stats
        if not s:
            return ""
        rows = [
            ("Prompt tokens", s.get("prompt_tokens")),
            ("Thinking tokens", s.get("thinking_tokens")),
            ("Answer tokens", s.get("answer_tokens")),
            ("Time to first token", s.get("time_to_first_token_s") and _format_seconds(s["time_to_first_token_s"])),
            ("Thinking time", s.get("thinking_s") and _format_seconds(s["thinking_s"])),
            ("Speed", s.get("decode_tokens_per_s") and f"{s['decode_tokens_per_s']:.1f} tokens/s"),
            ("Total time", s.get("total_s") and _format_seconds(s["total_s"])),
            ("Finish reason", s.get("finish_reason")),
            ("Context used", s.get("context_used") and _tokens(s["context_used"])),
        ]
        return "\n".join(f"{name}: {value}" for name, value in rows if value not in (None, ""))

    def _status_chip(self) -> tuple[str, str]:
        reason = (self.stats or {}).get("finish_reason")
        if self.status == "error":
            return "Error", self.error or "The answer could not be completed."
        if "interrupted" in self.flags:
            return "Interrupted", FLAG_INFO["interrupted"][1]
        if self.status == "stopped" or reason == "cancelled":
            return "Stopped", "You stopped this answer; what was generated is kept."
        if reason == "length":
            return "Token limit", "The answer reached Max tokens. Raise it in Settings and regenerate."
        if reason == "context_full":
            return "Context full", (
                "The conversation filled the model's context window. Start a new chat or raise the context size."
            )
        return "", ""

    def _show_flags(self) -> None:
        for layout in (self._badges, self._footer_badges):
            while layout.count():
                item = layout.takeAt(0)
                if item.widget():
                    item.widget().deleteLater()
        # Trace flags sit on the thinking pane; without a pane (no thinking) in the footer.
        target = self._badges if self.thinking_text else self._footer_badges
        for flag in self.flags:
            if flag in SILENT_FLAGS or flag == "interrupted":  # "interrupted" is the status chip
                continue
            label, tip = FLAG_INFO.get(flag, (flag.replace("_", " "), f"Trace flag: {flag}"))
            badge = QLabel(label, self)
            badge.setObjectName("flagBadge")
            badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            badge.setToolTip(tip)
            target.addWidget(badge)

    def badges(self) -> list[QLabel]:
        """The flag badges currently shown (for tests and accessibility)."""
        return [w for w in self.findChildren(QLabel, "flagBadge") if not w.isHidden()]

    def _apply_colors(self) -> None:
        colors = theme.colors_for(self)
        if colors.dark == self._dark:
            return
        self._dark = colors.dark
        self.answer_view.document().setDefaultStyleSheet(theme.document_css(colors))
        self._scratch.setDefaultStyleSheet(theme.document_css(colors))
        self._code_block_format = QTextBlockFormat()
        self._code_block_format.setBackground(QColor(colors.code_bg))
        code_font = QFont(theme.mono_family())
        code_font.setPixelSize(theme.BASE_FONT_PX - 1)
        self._code_char_format = QTextCharFormat()
        self._code_char_format.setFont(
            code_font, QTextCharFormat.FontPropertiesInheritanceBehavior.FontPropertiesSpecifiedOnly
        )
        _refresh_icons(self)
        self._refresh_header_icon()
        if self._phase == "done":
            self._render_answer_fully()
        elif self.answer_text:
            self._restream_answer()

    def _refresh_header_icon(self) -> None:
        name = "chevron-down" if self.thinking_expanded else "chevron-right"
        self.thinking_header.setIcon(theme.icon(name, theme.colors_for(self).text_dim))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()


class _RenderJob(QObject):
    """Carries a background render's result back to the GUI thread (a queued signal)."""

    done = Signal(str, object)


_pool: ThreadPoolExecutor | None = None


def _render_pool() -> ThreadPoolExecutor:
    """One worker thread for markdown work off the GUI thread; it starts by warming up
    the renderer (imports of pygments lexers would otherwise stall the first code block)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ponder-render")
        _pool.submit(warm_up)
    return _pool


def _replace_blocks(doc: QTextDocument, scratch: QTextDocument, after: int, through: int, html: str) -> int:
    """Replace blocks `after`+1 .. `through` of `doc` with top-level `html`; returns the number
    of the last block the HTML became (`after` if it is empty). `after` -1: from the start.

    The result is the document `setHtml` of all the HTML would make. Qt merges an inserted
    fragment's first block into the block at the cursor, which keeps its own format, unless
    the fragment starts with a list item or a table (then they get blocks of their own). So
    the HTML goes into a fresh block that takes the fragment's first block format, or that
    is removed again. `scratch` (with `doc`'s default stylesheet) parses the HTML.
    """
    if after < 0:
        through = max(through, 0)  # a document always has a first block: it is replaced too
    count = doc.blockCount()
    cursor = QTextCursor(doc)
    keep = doc.findBlockByNumber(after)  # invalid when after is -1
    keep_formats = (keep.blockFormat(), keep.charFormat()) if keep.isValid() else None
    start = keep.position() + keep.length() - 1 if keep.isValid() else 0
    if through > after:
        last = doc.findBlockByNumber(through)
        cursor.setPosition(start)
        cursor.setPosition(last.position() + last.length() - 1, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        _restore_formats(doc, after, keep_formats)
    if not html and keep_formats is None:
        cursor.setBlockFormat(QTextBlockFormat())  # nothing left: a plain empty document
        cursor.setBlockCharFormat(QTextCharFormat())
    if html:
        scratch.setDefaultFont(doc.defaultFont())
        scratch.setHtml(html)
        first = scratch.firstBlock()
        fragment = QTextDocumentFragment(scratch)
        cursor.setPosition(start)
        if keep_formats is None:
            cursor.insertFragment(fragment)  # at the very start Qt gives it the fragment's format
        else:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            cursor.insertFragment(fragment)
            if first.textList() is None and fragment.toRawText()[:1] not in _OWN_BLOCK_STARTS:
                block_format = QTextBlockFormat(first.blockFormat())
                block_format.clearProperty(QTextFormat.Property.ObjectIndex)  # an object of `scratch`
                fix = QTextCursor(doc.findBlockByNumber(after + 1))
                fix.setBlockFormat(block_format)
                fix.setBlockCharFormat(first.charFormat())
            else:  # the fragment made its own first block: the fresh one goes again
                cursor.setPosition(start)
                cursor.setPosition(start + 1, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
                _restore_formats(doc, after, keep_formats)
    return through + doc.blockCount() - count


_OWN_BLOCK_STARTS = ("\u2029", "\ufdd0")  # a paragraph separator, the start of a frame (table)


def _restore_formats(doc: QTextDocument, number: int, formats: tuple[QTextBlockFormat, QTextCharFormat] | None) -> None:
    """Give block `number` its formats back: merging away the separator after a block can
    leave the merged block with the next one's formats. (Found by number: a QTextBlock
    handle may name another block after an edit.)"""
    block = doc.findBlockByNumber(number)
    if formats is None or (block.blockFormat() == formats[0] and block.charFormat() == formats[1]):
        return
    cursor = QTextCursor(block)
    cursor.setBlockFormat(formats[0])
    cursor.setBlockCharFormat(formats[1])


def _action_button(text: str, icon_name: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName("messageAction")
    button.setText(text)
    button.setProperty("iconName", icon_name)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setAutoRaise(True)
    return button


def _refresh_icons(root: QWidget) -> None:
    color = theme.colors_for(root).text_dim
    for button in root.findChildren(QToolButton, "messageAction"):
        button.setIcon(theme.icon(button.property("iconName"), color))


def _show_copied(button: QToolButton) -> None:
    """Brief "Copied" feedback on the button that copied."""
    if button.property("restoreText") is None:
        button.setProperty("restoreText", button.text())
    button.setText("Copied")
    button.setIcon(theme.icon("check", theme.colors_for(button).text_dim))

    def restore() -> None:
        if button.property("restoreText") is not None:
            button.setText(button.property("restoreText"))
            button.setProperty("restoreText", None)
            button.setIcon(theme.icon(button.property("iconName"), theme.colors_for(button).text_dim))

    QTimer.singleShot(COPIED_FEEDBACK_MS, button, restore)


