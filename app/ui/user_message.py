"""The user's prompt: a bubble on the right, with Edit and Copy under it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.ui.message_actions import action_button, refresh_icons, show_copied

BUBBLE_PADDING = (14, 9, 14, 9)  # left, top, right, bottom
BUBBLE_MAX_SHARE = 0.8  # long prompts wrap at this share of the transcript's width


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

        self.edit_button = action_button("Edit", "edit", self, "Edit this prompt and send it again")
        self.edit_button.clicked.connect(self._on_edit_clicked)
        self.copy_button = action_button("Copy", "copy", self, "Copy this prompt")
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
        refresh_icons(self)

    @classmethod
    def from_message(cls, message: Any, parent: QWidget | None = None) -> "UserMessageView":
        """A view of a stored user message (anything with .content and .position)."""
        return cls(message.content, getattr(message, "position", -1), parent)

    @property
    def text(self) -> str:
        return self._text

    @Slot()
    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self._text)
        show_copied(self.copy_button)

    @Slot()
    def _on_edit_clicked(self) -> None:
        self.edit_requested.emit(self.position)

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
        width = max(40, min(self._natural_width, int(self.width() * BUBBLE_MAX_SHARE) - padding))
        self.label.setFixedWidth(width)
        self.label.setFixedHeight(self.label.heightForWidth(width))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            refresh_icons(self)
        elif event.type() == QEvent.Type.FontChange:
            self._natural_width = -1
            self._fit_bubble()
