"""Text from a model, a model file or the hub, shown as written and never as HTML.

Qt renders a QLabel's text and every tooltip as HTML when it looks like HTML
(`Qt.mightBeRichText`), and so does a QMessageBox: a file named `<b>x.gguf` or an error quoting
a web page would be drawn as markup. Labels that show such text are `plain_label`s; tooltips
and message box texts go through `as_plain_text`.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui
from PySide6.QtWidgets import QLabel, QWidget


def as_plain_text(text: str) -> str:
    """`text` for a tooltip or a message box, shown as written. Text that Qt would take for HTML is escaped
    into a paragraph that keeps its line breaks; any other is left as it is (and shown as is)."""
    if not QtGui.mightBeRichText(text):
        return text
    return f"<p style='white-space:pre-wrap'>{html.escape(text, quote=False)}</p>"


def plain_label(text: str = "", name: str | None = None, parent: QWidget | None = None) -> QLabel:
    """A QLabel that always shows `text` (and whatever is set later) as plain text."""
    label = QLabel(parent)
    if name:
        label.setObjectName(name)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label
