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
