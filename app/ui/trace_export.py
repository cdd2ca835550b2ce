"""File → Export traces: the chats' reasoning traces as JSON Lines, one record per assistant
message version (app/core/traces.py, the same as `ponder export --format jsonl`).

The file is chosen on the GUI thread; reading the conversations and writing the file run in
the background on a store connection of their own, so a long export never freezes the window
and a streaming answer is left as it is. A folder that cannot be written gets a sentence in
the notice bar; nothing is half-written and no chat changes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from app.core.traces import export_jsonl
from app.ui.background import run_in_background


class TraceExport(QObject):
    """Export for the window (its parent).

    Signals:
      finished(str path, int records): the file is written.
      failed(str message): a sentence saying why nothing was written.
    """

    finished = Signal(str, int)
    failed = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.finished.connect(self._on_finished)
        self.failed.connect(self._on_failed)

    @property
    def window(self):
        return self.parent()  # not kept in an attribute: it would keep a closed window alive

    @Slot()
    def export_all(self) -> None:
        self._ask_and_export(None, "ponder-traces.jsonl")

    @Slot()
    def export_current(self) -> None:
        conv_id = self.window.session.conversation_id
        if conv_id is None:
            self.window.notice.show_notice("Open a chat first: this one has nothing saved yet.", error=True)
            return
        self._ask_and_export(conv_id, f"ponder-chat-{conv_id}-traces.jsonl")

    def _ask_and_export(self, conv_id: int | None, name: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export traces as JSON Lines",
                                              str(Path.home() / name), "JSON Lines (*.jsonl);;All files (*)")
        if path:
            self.export_to(path, conv_id)

    def export_to(self, path: str | Path, conv_id: int | None = None) -> None:
        """Write the traces (of chat `conv_id`, or all) to `path` in the background."""
        db, target = self.window.store.path, Path(path)
        self.window.status.showMessage(f"Exporting traces to {target.name}…")

        def work(_job) -> tuple[int, list[str]]:
            return export_jsonl(db, target, conv_id)

        def done(result: tuple[int, list[str]]) -> None:
            records, warnings = result
            if warnings:  # chats a damaged file could not give back: say which
                self.window.notice.show_notice(" ".join(warnings), error=True)
            self.finished.emit(str(target), records)

        run_in_background(work, owner=self, on_done=done, on_failed=self.failed.emit, name="the trace export")

    @Slot(str, int)
    def _on_finished(self, path: str, records: int) -> None:
        noun = "answer" if records == 1 else "answers"
        self.window.status.showMessage(f"Exported {records} {noun} (every version) to {path}", 8000)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.window.status.clearMessage()
        self.window.notice.show_notice(message, error=True)
