"""The prompt box and the editing of a sent prompt.

`PromptInput` is where the user types: Enter sends, Shift+Enter adds a line. `PromptEditing`
is the state of "this prompt is being edited to be sent again": which message, the banner
that says so, and how it ends (sent, or cancelled with Esc).
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget

from app.ui.model_drop import dropped_files

PROMPT_MAX_LINES = 8
PROMPT_PLACEHOLDER = "Ask anything… (Enter sends, Shift+Enter adds a line)"
EDIT_BANNER_TEXT = "Editing a prompt: Enter sends it again and replaces the answers after it. Esc cancels."


class PromptInput(QPlainTextEdit):
    """The prompt box: Enter sends, Shift+Enter inserts a new line; grows up to a few lines.

    Signals: submitted()
    """

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("promptInput")
        self.setAccessibleName("Prompt")
        self.setPlaceholderText(PROMPT_PLACEHOLDER)
        self.setTabChangesFocus(True)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 (Qt API)
        # A dropped file goes to the window (model import), not into the prompt as a path.
        return not dropped_files(source) and super().canInsertFromMimeData(source)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _fit_height(self, *_args) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = max(1, min(PROMPT_MAX_LINES, round(self.document().size().height())))
        margins = self.contentsMargins()
        padding = 2 * int(self.document().documentMargin()) + margins.top() + margins.bottom() + 18
        self.setFixedHeight(lines * line + padding)


class PromptEditing(QObject):
    """Which sent prompt the prompt box is editing (by message position), if any.

    Starting an edit puts the prompt's text in the box and shows the banner; cancelling
    clears both. The window asks `position` when the user sends.
    """

    def __init__(self, prompt_input: PromptInput, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt_input = prompt_input
        self.banner = QLabel(EDIT_BANNER_TEXT, parent, objectName="editBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.position: int | None = None

    @property
    def active(self) -> bool:
        return self.position is not None

    def start(self, position: int, text: str) -> None:
        self.position = position
        self.prompt_input.setPlainText(text)
        self.prompt_input.moveCursor(self.prompt_input.textCursor().MoveOperation.End)
        self.prompt_input.setFocus()
        self.banner.show()

    def cancel(self) -> None:
        """End the edit and clear the box (after sending, or when the user gives up)."""
        if self.position is not None:
            self.position = None
            self.banner.hide()
            self.prompt_input.clear()
