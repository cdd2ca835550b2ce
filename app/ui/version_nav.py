"""Versions of a turn on screen: the ‹ 2/3 › row under an answer, and what it and the Chat
menu ask of the session (regenerate, switch, delete a version, compare two).

The versions themselves are data in the store (app/core/storage.py, "Versions of a turn");
the session keeps the open conversation's (`ChatSession.versions`, `version_of`,
`show_version`). `VersionNav` is the small widget each assistant message carries;
`VersionControls` keeps every answer's nav in step with the session and opens the compare
view (compare_view.py).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QSizePolicy, QWidget

from app.ui.message_actions import action_button, refresh_icons

NO_SECOND_VERSION = ("This answer has only one version, so there is nothing to compare yet. "
                     "Regenerate it (Ctrl+R) or edit its prompt to make another.")


class VersionNav(QWidget):
    """‹ 2/3 › and Compare / Delete for an answer whose turn has more than one version;
    hidden while it has one.

    Signals:
      version_requested(int number): show version `number` (1-based) of this turn.
      compare_requested(), delete_requested(): compare this turn's versions; delete the shown one.
    """

    version_requested = Signal(int)
    compare_requested = Signal()
    delete_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("versionNav")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.number, self.count = 1, 1
        self.previous_button = action_button("", "chevron-left", self, "Previous version")
        self.next_button = action_button("", "chevron-right", self, "Next version")
        self.label = QLabel("1/1", self)
        self.label.setObjectName("messageStats")  # the footer's small dim text
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.compare_button = action_button("Compare", "compare", self,
                                            "Compare two versions of this answer side by side (Ctrl+D)")
        self.delete_button = action_button("", "trash", self, "Delete the version shown")
        for button in (self.previous_button, self.next_button, self.delete_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.previous_button.clicked.connect(self._on_previous)
        self.next_button.clicked.connect(self._on_next)
        self.compare_button.clicked.connect(self.compare_requested)
        self.delete_button.clicked.connect(self.delete_requested)

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        for widget in (self.previous_button, self.label, self.next_button, self.compare_button, self.delete_button):
            row.addWidget(widget)
        refresh_icons(self)
        self.hide()

    def set_versions(self, number: int, count: int, *, enabled: bool = True) -> None:
        """Version `number` of `count` is shown; `enabled` False while an answer is generated."""
        self.number, self.count = number, count
        self.label.setText(f"{number}/{count}")
        self.label.setToolTip(f"Version {number} of {count} of this answer")
        self.previous_button.setEnabled(enabled and number > 1)
        self.next_button.setEnabled(enabled and number < count)
        self.compare_button.setEnabled(enabled)
        self.delete_button.setEnabled(enabled)
        self.setVisible(count > 1)

    def refresh_icons(self) -> None:
        refresh_icons(self)

    @Slot()
    def _on_previous(self) -> None:
        self.version_requested.emit(self.number - 1)

    @Slot()
    def _on_next(self) -> None:
        self.version_requested.emit(self.number + 1)


class VersionControls(QObject):
    """Every answer's VersionNav in step with the session; the Chat menu's Regenerate, Compare
    and previous / next version. `window` (the MainWindow) is its parent."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.session = window.session
        self.transcript = window.transcript
        self.compare_dialog = None  # the open compare view, if any (one at a time)
        self.session.versions_changed.connect(self.refresh)
        self.session.busy_changed.connect(self.refresh)

    @property
    def window(self):
        # Not kept in an attribute: a child holding its parent would keep a closed window alive.
        return self.parent()

    @Slot()
    def refresh(self, *_args) -> None:
        """Each answer's nav says which version is shown; disabled while an answer is generated."""
        for view in self.transcript.assistant_views():
            if not view.property("versionsWired"):  # each view once (views live until a reset)
                view.version_requested.connect(self._on_version_requested)
                view.compare_requested.connect(self.compare)
                view.delete_version_requested.connect(self._on_delete_requested)
                view.setProperty("versionsWired", True)
            number, count = self.session.version_of(view.position)
            view.version_nav.set_versions(number, count, enabled=not self.session.busy)

    # --- the Chat menu --------------------------------------------------------------

    def _last_answer(self):
        return next((m for m in reversed(self.session.messages) if m.role == "assistant"), None)

    @Slot()
    def regenerate_last(self) -> None:
        last = self._last_answer()
        if last is None or self.session.busy:
            return
        self.window.editing.cancel()
        self.session.regenerate(last.id)

    @Slot()
    def compare_last(self) -> None:
        """Compare the versions of the latest answer that has more than one (else the latest's)."""
        answers = [m for m in reversed(self.session.messages) if m.role == "assistant"]
        if not answers:
            self.window.notice.show_notice("There is no answer to compare yet.")
            return
        many = next((m for m in answers if self.session.version_of(m.position)[1] > 1), answers[0])
        self.compare(many.position)

    @Slot()
    def previous_version(self) -> None:
        self._step(-1)

    @Slot()
    def next_version(self) -> None:
        self._step(+1)

    def _step(self, step: int) -> None:
        last = self._last_answer()
        if last is None or self.session.busy:
            return
        number, count = self.session.version_of(last.position)
        if 1 <= number + step <= count:
            self.session.show_version(last.position, number + step)

    # --- from an answer's nav -------------------------------------------------------

    @Slot(int, int)
    def _on_version_requested(self, position: int, number: int) -> None:
        self.session.show_version(position, number)

    @Slot(int)
    def compare(self, position: int) -> None:
        from app.ui.compare_view import CompareDialog  # only when asked: difflib and the dialog

        versions = self.session.versions_of(position)
        if len(versions) < 2:
            self.window.notice.show_notice(NO_SECOND_VERSION)
            return
        shown = next(i for i, v in enumerate(versions) if v.shown)
        left = shown - 1 if shown > 0 else 1
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = CompareDialog(versions, left, shown, self.window)
        self.compare_dialog.show()

    @Slot(int)
    def _on_delete_requested(self, position: int) -> None:
        number, count = self.session.version_of(position)
        answer = QMessageBox.question(
            self.window, "Delete this version?",
            f"Delete version {number} of {count} of this answer, with everything said after it? "
            "The other versions stay. This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.session.delete_shown_version(position)
