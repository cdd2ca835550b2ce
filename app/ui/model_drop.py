"""Dropping a GGUF file onto the window imports it: the drag-and-drop half of model import."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QMimeData, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent


def dropped_files(mime: QMimeData) -> list[str]:
    """Local files in a drag (a .gguf, or anything else for import to refuse with a reason)."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class ModelFileDrop(QObject):
    """Accepts local files dragged onto `target` (the window) and reports the first dropped.

    Install with `ModelFileDrop(window)`; it turns on `acceptDrops` and filters the window's
    drag events. Anything without a local file is left alone (text drags into the prompt box).

    Signals:
      file_dropped(str path)
    """

    file_dropped = Signal(str)

    def __init__(self, target) -> None:
        super().__init__(target)
        target.setAcceptDrops(True)
        target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, (QDragEnterEvent, QDragMoveEvent))
            if dropped_files(event.mimeData()):
                event.acceptProposedAction()
            else:
                event.ignore()
            return True
        if kind == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            files = dropped_files(event.mimeData())
            if not files:
                event.ignore()
                return True
            event.acceptProposedAction()
            self.file_dropped.emit(files[0])
            return True
        return super().eventFilter(watched, event)
