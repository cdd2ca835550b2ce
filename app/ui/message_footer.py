"""Under an assistant answer: its error, status chip, flag badges, stats and actions."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.flag_badges import BadgeRow
from app.ui.message_actions import action_button, refresh_icons
from app.ui.plain_text import as_plain_text


class MessageFooter(QWidget):
    """While streaming, one line of progress ("Writing… 120 tokens"); once finished, the
    stats (details in the tooltip), a chip if it did not simply finish, the error if it
    failed, flag badges when there is no thinking pane to carry them, and the actions.

    Signals:
      copy_answer_requested(), copy_thinking_requested(), regenerate_requested(),
      prompt_requested(): show what the model was sent (prompt_inspector.py)
    """

    copy_answer_requested = Signal()
    copy_thinking_requested = Signal()
    regenerate_requested = Signal()
    prompt_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageFooter")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("messageError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.hide()
        self.status_chip = QLabel(self)
        self.status_chip.setObjectName("statusChip")
        self.status_chip.setTextFormat(Qt.TextFormat.PlainText)
        self.status_chip.hide()
        self.badges = BadgeRow(self)
        self.stats_label = QLabel(self)
        self.stats_label.setObjectName("messageStats")
        self.stats_label.setTextFormat(Qt.TextFormat.PlainText)
        self.stats_label.setWordWrap(True)  # wraps on narrow windows instead of widening the transcript
        self.copy_answer_button = action_button("Copy", "copy", self, "Copy the answer (markdown)")
        self.copy_answer_button.clicked.connect(self.copy_answer_requested)
        self.copy_thinking_button = action_button("Copy thinking", "copy", self, "Copy the model's reasoning")
        self.copy_thinking_button.clicked.connect(self.copy_thinking_requested)
        self.regenerate_button = action_button("Regenerate", "regenerate", self,
                                               "Generate a new answer to the same prompt")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.prompt_button = action_button("Prompt", "prompt", self,
                                           "What the model was sent: the exact prompt, sampling, seed and model file")
        self.prompt_button.clicked.connect(self.prompt_requested)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.status_chip)
        row.addLayout(self.badges)
        row.addWidget(self.stats_label, 1)
        for button in self._actions():
            row.addWidget(button)
            button.hide()  # actions appear when the message is finished
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(8)
        column.addWidget(self.error_label)
        column.addLayout(row)
        refresh_icons(self)

    def show_live(self, text: str) -> None:
        """The progress line while the answer streams (message_wording.live_footer)."""
        if text != self.stats_label.text():
            self.stats_label.setText(text)

    def show_finished(self, *, stats: str, details: str, chip: tuple[str, str], failed: bool, error: str | None,
                      can_copy_answer: bool, can_copy_thinking: bool) -> None:
        self.stats_label.setText(stats)
        self.stats_label.setToolTip(details)  # app text: numbers and fixed words
        text, tip = chip
        self.status_chip.setVisible(bool(text))
        self.status_chip.setText(text)
        self.status_chip.setToolTip(as_plain_text(tip))  # may be an error message from the engine
        self.status_chip.setProperty("state", "error" if failed else "stopped")
        self.status_chip.style().unpolish(self.status_chip)
        self.status_chip.style().polish(self.status_chip)
        self.error_label.setVisible(bool(error))
        self.error_label.setText(error or "")
        self.regenerate_button.show()
        self.prompt_button.show()
        self.copy_answer_button.setVisible(can_copy_answer)
        self.copy_thinking_button.setVisible(can_copy_thinking)

    def refresh_icons(self) -> None:
        refresh_icons(self)

    def _actions(self) -> tuple[QToolButton, ...]:
        return (self.copy_answer_button, self.copy_thinking_button, self.regenerate_button, self.prompt_button)
