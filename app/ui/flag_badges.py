"""A row of small warning badges for trace flags (texts from message_wording.badges)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget


class BadgeRow(QHBoxLayout):
    """Badges (QLabel#flagBadge), each with its explaining tooltip; `show_badges` replaces them."""

    def __init__(self, owner: QWidget) -> None:
        super().__init__()
        self.setSpacing(4)
        self._owner = owner  # parents the badges (a layout cannot)

    def show_badges(self, badges: list[tuple[str, str]]) -> None:
        while self.count():
            widget = self.takeAt(0).widget()
            if widget is not None:
                widget.hide()  # gone at once for whoever looks, deleted on the next pass
                widget.deleteLater()
        for text, tip in badges:
            badge = QLabel(self._owner)
            badge.setObjectName("flagBadge")
            badge.setTextFormat(Qt.TextFormat.PlainText)
            badge.setText(text)
            badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            badge.setToolTip(tip)  # app text (message_wording.FLAG_INFO): Qt shows it as plain text
            self.addWidget(badge)
