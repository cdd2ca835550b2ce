"""A finished thought with its maths typeset (setting `thinking_maths`, docs/maths.md).

The thinking pane streams into a QPlainTextEdit, which is fast for long traces but lays out no
images at all (its layout has no inline objects). So once a thought is finished and holds maths,
`TypesetThought` shows it instead: a read-only QTextBrowser with a copy of the plain text's
document (its text and styles, steering spans included) in which each formula is replaced by its
typeset image (app/ui/formula_images.py). Copying gives the LaTeX back.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QMimeData, Qt, QUrl
from PySide6.QtGui import QTextCursor, QTextDocument, QTextDocumentFragment
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QWidget

from app.core.maths import RESOURCE_SCHEME, find_maths, resource_name
from app.ui import theme
from app.ui.formula_images import FormulaImages, FormulaStyle, image_format, with_sources


def has_maths(text: str) -> bool:
    return bool(find_maths(text))


class TypesetThought(QTextBrowser):
    """The finished thought, maths typeset; as tall as its text up to `max_height`, then it scrolls."""

    def __init__(self, max_height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thinkingBody")  # looks like the plain body (theme.py styles it)
        self.max_height = max_height
        self.active = False  # shown in place of the plain body (the pane decides)
        self.setOpenLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.formula_images = FormulaImages(self.document(), self)
        self._source: QTextDocument | None = None
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)

    def show_thought(self, source: QTextDocument) -> bool:
        """Show `source` (the plain body's document) with its formulas typeset; False (and
        nothing shown) if it has none."""
        found = find_maths(source.toPlainText())
        if not found:
            return False
        self._source = source
        doc = self.document()
        doc.clear()
        doc.setDocumentMargin(source.documentMargin())
        colors = theme.colors_for(self)
        self.formula_images.set_style(FormulaStyle.for_text(
            doc.defaultFont(), colors.text_dim, colors.text_dim, self.devicePixelRatioF(), theme.mono_family()))
        self.formula_images.reset()  # (clear() dropped the document's images)
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        cursor.insertFragment(QTextDocumentFragment(source))
        for formula in reversed(found):  # from the end: earlier positions stay as they are
            name = resource_name(formula)
            self.formula_images.ensure_resource(name)
            cursor.setPosition(formula.start)
            cursor.setPosition(formula.end, QTextCursor.MoveMode.KeepAnchor)
            cursor.insertImage(image_format(name))
        cursor.endEditBlock()
        self.formula_images.attach(0, doc.blockCount() - 1)
        self._fit_height()
        return True

    def loadResource(self, kind: int, name: QUrl) -> Any:  # noqa: N802 (Qt API)
        """Formulas only; nothing else is ever loaded (as AnswerBrowser)."""
        if kind == QTextDocument.ResourceType.ImageResource.value and name.scheme() == RESOURCE_SCHEME:
            return self.formula_images.image(name.toString())
        return QByteArray(b" ")

    def createMimeDataFromSelection(self) -> QMimeData:  # noqa: N802 (Qt API)
        """Formulas copy as their LaTeX source."""
        return with_sources(super().createMimeDataFromSelection(), self.textCursor())

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.DevicePixelRatioChange) and self._source:
            self.show_thought(self._source)  # typeset again in the new colours (or pixel density)

    def _fit_height(self, *_args) -> None:
        height = min(self.max_height, math.ceil(self.document().size().height()) + 2 * self.frameWidth())
        if height != self.height():
            self.setFixedHeight(height)
