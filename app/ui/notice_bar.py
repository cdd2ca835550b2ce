"""NoticeBar: a one-line message above the transcript, with an optional action (Undo, Choose…)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class NoticeBar(QFrame):
    """A one-line message above the transcript, with an optional action (Undo, Choose…).

    Errors stay until closed; other notices can time out.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBar")
        self.label = QLabel(objectName="noticeText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton(objectName="noticeAction")
        self.action_button.clicked.connect(self._on_action)
        close = QToolButton(objectName="noticeClose", text="✕", autoRaise=True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(close)
        self._action = None
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_notice(self, text: str, *, error: bool = False, action: tuple[str, object] | None = None,
                    timeout_ms: int | None = None) -> None:
        self.label.setText(text)
        self.setProperty("kind", "error" if error else "info")  # the theme's stylesheet colours by kind
        for widget in (self, self.label):
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self._timer.stop()
        if timeout_ms:
            self._timer.start(timeout_ms)
        self.show()

    @Slot()
    def _on_action(self) -> None:
        action, self._action = self._action, None
        self.hide()
        if action is not None:
            action()
