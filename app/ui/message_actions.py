"""The small text-and-icon buttons under a message (Edit, Copy, Regenerate) and their
brief "Copied" feedback; shared by user_message.py and message_footer.py."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QToolButton, QWidget

from app.ui import theme

COPIED_FEEDBACK_MS = 1500


def action_button(text: str, icon_name: str, parent: QWidget, tooltip: str) -> QToolButton:
    """A flat button styled as a message action (theme: QToolButton#messageAction)."""
    button = QToolButton(parent)
    button.setObjectName("messageAction")
    button.setText(text)
    button.setToolTip(tooltip)
    button.setProperty("iconName", icon_name)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setAutoRaise(True)
    return button


def refresh_icons(root: QWidget) -> None:
    """Give every action button under `root` its icon in the current theme's colour."""
    color = theme.colors_for(root).text_dim
    for button in root.findChildren(QToolButton, "messageAction"):
        button.setIcon(theme.icon(button.property("iconName"), color))


def show_copied(button: QToolButton) -> None:
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
