"""Edit an answer's thought and let the model continue from it (issue 9): a dialog with the
thinking as editable text. "Cut here" drops everything after the cursor; "Continue" starts a
new version of the answer whose thought begins with this text (ChatSession.continue_thinking,
Engine.continue_from). The part the user changed is marked as theirs in the new trace.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.steering import SteeringError, check_thought
from app.ui import theme
from app.ui.steering_spans import display_pieces, span_format

EDITOR_HINT = ("Change or cut the model's thinking. The model continues from the end of this text, as a new "
               "version of the answer; the current one is kept. What you change is marked as yours.")


class ThinkingEditor(QDialog):
    def __init__(self, thinking: str, parent: QWidget | None = None, spans=()) -> None:
        """`spans`: the thought's inserted stretches, shown in their style while editing."""
        super().__init__(parent)
        self.setObjectName("thinkingEditor")
        self.setWindowTitle("Edit the thinking")
        self.resize(720, 520)
        hint = QLabel(EDITOR_HINT, self)
        hint.setWordWrap(True)
        self.editor = QPlainTextEdit(self, objectName="thinkingEditorText")
        if spans:
            colors, cursor = theme.colors_for(parent), QTextCursor(self.editor.document())
            for piece, kind in display_pieces(thinking, spans):
                if kind != "close":  # a display mark, not text of the thought
                    cursor.insertText(piece, span_format(kind, colors) if kind else QTextCharFormat())
        else:
            self.editor.setPlainText(thinking)
        self.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.error_label = QLabel(self, objectName="thinkingEditorError")
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        buttons = QDialogButtonBox(self)
        self.cut_button = QPushButton("Cut here", self)
        self.cut_button.setToolTip("Drop everything after the cursor")
        self.cut_button.clicked.connect(self.cut_at_cursor)
        buttons.addButton(self.cut_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.continue_button = buttons.addButton("Continue from here", QDialogButtonBox.ButtonRole.AcceptRole)
        self.continue_button.setDefault(True)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.editor.setFocus()

    def text(self) -> str:
        return self.editor.toPlainText()

    @Slot()
    def cut_at_cursor(self) -> None:
        cursor = self.editor.textCursor()
        cursor.clearSelection()
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        self.editor.setFocus()

    def accept(self) -> None:  # a text the model cannot continue from stays here, with why
        try:
            check_thought(self.text())
        except SteeringError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        super().accept()
