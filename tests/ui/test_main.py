"""Starting the window: a missing system library is a sentence, not a Qt abort."""

import ctypes.util
import sys

import pytest

from app.ui import main


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 only")
def test_missing_xcb_cursor_is_reported_before_qt_aborts(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert "libxcb-cursor0" in main.missing_display_library()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libxcb-cursor.so.0")
    assert main.missing_display_library() is None


def test_offscreen_needs_no_display_library(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert main.missing_display_library() is None


def test_one_ponder_per_data_folder(qapp, tmp_path):
    first = main.lock_data_dir(tmp_path)
    assert first is not None
    assert main.lock_data_dir(tmp_path) is None  # a second Ponder on the same folder is refused
    first.unlock()
    again = main.lock_data_dir(tmp_path)
    assert again is not None
    again.unlock()


def test_lock_left_by_a_dead_process_is_taken_over(qapp, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from PySide6.QtCore import QLockFile; l = QLockFile(sys.argv[1]); "
            "assert l.tryLock(100); import os; os._exit(0)")  # exits without unlocking
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "ponder.lock")], check=True, timeout=60)
    lock = main.lock_data_dir(tmp_path)
    assert lock is not None
    lock.unlock()
