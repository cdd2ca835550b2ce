"""The widget an answer is shown in: as tall as its text, links open only on a click and
only in the system browser, code blocks copy with their Copy link, formulas are typeset
images that copy as their LaTeX, nothing remote loads."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QSize, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QDesktopServices,
    QGuiApplication,
    QImage,
    QTextCursor,
    QTextDocument,
    QTextOption,
)
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QToolTip, QWidget

from app.core.maths import RESOURCE_SCHEME
from app.core.render import COPY_SCHEME
from app.ui.formula_images import FormulaImages, with_sources
from app.ui.plain_text import as_plain_text

COPIED_FEEDBACK_MS = 1500
OPENABLE_SCHEMES = ("http", "https", "mailto")


class AnswerBrowser(QTextBrowser):
    """The rendered answer. `code_blocks[n]` is the raw text the `copy:<n>` link copies;
    whoever fills the document (answer_document.py) keeps it current, and gives
    `formula_images` its style.

    Signals:
      device_pixel_ratio_changed(): the widget moved to a screen of another pixel density.
    """

    device_pixel_ratio_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.code_blocks: list[str] = []
        self.formula_images = FormulaImages(self.document(), self)
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
        """Model output must never make Ponder load anything (images, style sheets).

        Returning nothing would not do: QTextDocument then reads a local file itself, and an
        image that does not decode is loaded from its file name. So: a blank pixel for any
        image but a formula's (typeset here), an empty text for anything else.
        """
        if kind == QTextDocument.ResourceType.ImageResource.value and name.scheme() == RESOURCE_SCHEME:
            return self.formula_images.image(name.toString())
        if kind == QTextDocument.ResourceType.ImageResource.value:
            blank = QImage(1, 1, QImage.Format.Format_ARGB32)
            blank.fill(0)
            return blank
        return QByteArray(b" ")

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.DevicePixelRatioChange:
            self.device_pixel_ratio_changed.emit()

    def createMimeDataFromSelection(self) -> QMimeData:  # noqa: N802 (Qt API)
        """Selection + Ctrl+C: formulas copy as their LaTeX source, as plain text."""
        return with_sources(super().createMimeDataFromSelection(), self.textCursor())

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

    @Slot(QUrl)
    def _on_link_hovered(self, url: QUrl) -> None:
        if url.isEmpty() or url.scheme() == COPY_SCHEME:
            QToolTip.hideText()
        else:  # show where a link goes before anyone clicks it (the model wrote it: shown literally)
            QToolTip.showText(self.cursor().pos(), as_plain_text(url.toString()), self)

    def _show_code_copied(self, index: int) -> None:
        """The block's "Copy" link reads "Copied" for a moment."""
        cursor = self._find_copy_link(index)
        if cursor is None:
            return
        cursor.insertText("Copied", cursor.charFormat())

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

    def _fit_height(self, *_args) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + 2
        if height != self.height():
            self.setFixedHeight(height)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().sizeHint().width(), self.height())
