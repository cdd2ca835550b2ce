"""Start the window: `python -m app [--model PATH] [--data-dir DIR]`.

This is where the window's application is wired, in one place (`build_window`): the
conversation store, the engine client (its thread owns the model), the chat session,
the model library and the window that shows them. Everything else receives its parts.
At exit `run_gui` closes them in order and ends the background jobs (app/ui/background.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app import APP_NAME, __version__
from app.core import logs
from app.core.errors import PonderError
from app.core.paths import data_dir, models_dir
from app.core.settings import Settings, load_settings
from app.core.storage import ChatStore, store_path
from app.ui import background
from app.ui.model_library import ModelLibrary
from app.ui.server_switch import ServerSwitch
from app.ui.session import ChatSession
from app.ui.theme import apply_theme
from app.ui.window import MainWindow
from app.ui.worker import EngineClient

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"  # in a frozen build: the bundle's copy
APP_USER_MODEL_ID = "Ponder.Ponder"  # Windows taskbar identity; the installer's shortcut uses the same


def app_icon() -> QIcon:
    """The application icon at every size it is drawn in (resources/hicolor, made by packaging/make_icons.py)."""
    icon = QIcon()
    for png in sorted((RESOURCES / "hicolor").glob("*/apps/ponder.png")):
        icon.addFile(str(png))
    return icon


def create_app() -> QApplication:
    if sys.platform == "win32":  # before any window: groups the taskbar button under Ponder's own icon
        import ctypes

        ctypes.windll.shell32.SetCurrentProcessExplicitAppUserModelID(APP_USER_MODEL_ID)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("ponder")
    app.setWindowIcon(app_icon())
    return app


class CrashDialog(QObject):
    """Shows crash reports (app.core.logs) in a message box, whichever thread crashed.

    A report from another thread crosses to the GUI thread by a queued signal; one from the
    GUI thread is shown at once (it may come after the event loop ended). While one box is open, further reports are only logged: a fault that repeats in a
    paint handler must not stack up boxes.
    """

    reported = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._showing = False
        self.reported.connect(self._on_reported, Qt.ConnectionType.QueuedConnection)
        logs.add_crash_listener(self._listen)

    def detach(self) -> None:
        logs.remove_crash_listener(self._listen)

    def _listen(self, message: str, _report: Path) -> None:
        if threading.current_thread() is threading.main_thread():
            self._on_reported(message)
        else:
            self.reported.emit(message)

    @Slot(str)
    def _on_reported(self, message: str) -> None:
        if self._showing:
            return
        self._showing = True
        try:
            QMessageBox.critical(QApplication.activeWindow(), APP_NAME, message)
        finally:
            self._showing = False


def build_window(store: ChatStore, settings: Settings, base: Path, client: EngineClient | None = None) -> MainWindow:
    """The application's parts, wired: engine client, chat session, model library, window.

    The window owns them from here on (Qt parents) and shuts them down when it closes.
    A test may pass its own `client` (a subclass that records requests).
    """
    client = client or EngineClient()
    session = ChatSession(store, client, settings)
    library = ModelLibrary(models_dir(base), client, settings)
    window = MainWindow(store, settings, base, client=client, session=session, library=library)
    for part in (client, session, library):
        if part.parent() is None:
            part.setParent(window)
    window.server = ServerSwitch(window)  # the Model menu's "Serve the loaded model" (docs/serving.md)
    return window


def open_window(data_dir_override: str | None, model: str | None) -> MainWindow:
    """Build the window on a data directory and start loading a model (given, or the last one).

    The window is shown first; the model loads on the engine thread while the window paints.
    Raises StorageError (a PonderError) if the conversation database cannot be opened at all.
    """
    base = data_dir(data_dir_override)
    settings = load_settings(base)
    app = QApplication.instance()
    apply_theme(app, settings.theme)
    store = ChatStore(store_path(base))
    window = build_window(store, settings, base)
    window.show()
    if model:
        window.load_model(model)
    elif settings.last_model_path:
        last = settings.last_model_path
        if Path(last).is_file():
            window.load_model(last)
        else:
            window.welcome.show_no_model(f"The last model you used, {last}, is no longer there.")
    return window


def missing_display_library() -> str | None:
    """On Linux/X11, Qt 6.5+ aborts at start without libxcb-cursor; say so before it does."""
    import ctypes.util
    import os

    if not sys.platform.startswith("linux") or getattr(sys, "frozen", False):
        return None  # the .deb declares it; other platforms do not use xcb
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform not in ("", "xcb") or not os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if ctypes.util.find_library("xcb-cursor"):
        return None
    return ("Ponder's window needs the system library libxcb-cursor0. Install it "
            "(Debian/Ubuntu: sudo apt install libxcb-cursor0; Fedora: sudo dnf install xcb-util-cursor) "
            "and start Ponder again.")


def lock_data_dir(base: Path) -> QLockFile | None:
    """One Ponder per data folder: a second one would mark the first's live answer as
    interrupted and write to the same database. None if another running Ponder holds it
    (QLockFile takes over a lock whose process is gone)."""
    lock = QLockFile(str(base / "ponder.lock"))
    lock.setStaleLockTime(0)  # never time out a live holder; a dead one is detected by its pid
    return lock if lock.tryLock(100) else None


def run_gui(args: argparse.Namespace) -> int:
    problem = missing_display_library()
    if problem:
        raise PonderError(problem)
    app = create_app()
    lock = lock_data_dir(data_dir(getattr(args, "data_dir", None)))
    if lock is None:
        QMessageBox.information(None, APP_NAME, "Ponder is already running with this data folder. "
                                "Switch to its window, or close it and start Ponder again.")
        return 1
    crash_dialog = CrashDialog(app)
    try:
        window = open_window(getattr(args, "data_dir", None), getattr(args, "model", None))
    except PonderError as exc:
        QMessageBox.critical(None, APP_NAME, str(exc))
        return 1
    # Ctrl+C in a terminal or a SIGTERM (logout) closes the window properly, saving the live answer.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    wake = QTimer(interval=250)  # Python runs signal handlers only between bytecodes, not inside Qt
    wake.timeout.connect(lambda: None)
    wake.start()
    if logs.previous_crash_message():  # a native crash last time: say where its report is
        QTimer.singleShot(0, lambda: QMessageBox.warning(window, APP_NAME, logs.previous_crash_message()))
    code = app.exec()
    window.close()  # already closed by the user normally; saves and stops the engine if not
    window.store.close()
    background.shutdown()  # imports, surveys and renders still running end here (bounded)
    crash_dialog.detach()
    logs.teardown_gui_logging()  # the process ends here; an embedding one (tests) gets its hooks back
    lock.unlock()
    return code
