"""Start the window: `python -m app [--model PATH] [--data-dir DIR]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app import APP_NAME, __version__
from app.core.errors import PonderError
from app.core.paths import data_dir
from app.core.settings import load_settings
from app.core.storage import ChatStore, store_path
from app.ui.theme import apply_theme
from app.ui.window import MainWindow

log = logging.getLogger(__name__)


def create_app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName("ponder")
    return app


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
    window = MainWindow(store, settings, base)
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


def run_gui(args: argparse.Namespace) -> int:
    app = create_app()
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
    code = app.exec()
    window.close()  # already closed by the user normally; saves and stops the engine if not
    window.store.close()
    return code
