"""Crash reports reach the user: a message box naming the report file (app.ui.main.CrashDialog)."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core import logs
from app.ui.main import CrashDialog, app_icon, create_app

# pytest-qt would treat the exception in the slot as a test failure; here it is the point.
pytestmark = pytest.mark.qt_no_exception_capture


@pytest.fixture
def crash_dialog(qapp, tmp_path):
    logs.setup_gui_logging(tmp_path / "data")
    dialog = CrashDialog()
    yield dialog
    dialog.detach()
    logs.teardown_gui_logging()


def _close_box_when_shown(seen: list[str]) -> None:
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        seen.append(box.text())
        box.close()
    else:
        QTimer.singleShot(20, lambda: _close_box_when_shown(seen))


def _raise_in_slot() -> None:
    raise ValueError("a slot broke")


def test_exception_in_a_slot_shows_the_report_path(qtbot, crash_dialog, tmp_path):
    seen: list[str] = []
    QTimer.singleShot(0, lambda: _close_box_when_shown(seen))
    QTimer.singleShot(0, _raise_in_slot)
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)

    reports = list((tmp_path / "data" / "logs").glob("crash-*.txt"))
    assert len(reports) == 1 and "ValueError: a slot broke" in reports[0].read_text()
    assert str(reports[0]) in seen[0] and "unexpected error" in seen[0]


def test_exception_in_a_worker_thread_shows_a_box_on_the_gui_thread(qtbot, crash_dialog, tmp_path):
    seen: list[str] = []
    QTimer.singleShot(0, lambda: _close_box_when_shown(seen))

    def work():
        raise RuntimeError("engine thread broke")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert "RuntimeError: engine thread broke" in seen[0]


def test_app_has_its_name_and_icon_at_every_size(qapp):
    app = create_app()
    assert app.applicationDisplayName() == "Ponder" and app.desktopFileName() == "ponder"
    sizes = {(s.width(), s.height()) for s in app_icon().availableSizes()}
    assert {(16, 16), (32, 32), (48, 48), (256, 256), (512, 512)} <= sizes
    assert not app.windowIcon().isNull()
