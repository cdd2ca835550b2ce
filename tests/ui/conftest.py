"""UI test fixtures: windows on a temporary data directory, driven through real llama.cpp."""

from __future__ import annotations

import pytest

# The offscreen platform warns each time a top-level window's size constraints
# change; that is a limitation of the platform plugin, not of Ponder.
OFFSCREEN_SIZE_HINTS = "This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/ui/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_SIZE_HINTS))


from pathlib import Path  # noqa: E402

from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui.main import open_window  # noqa: E402
from app.ui.window import MainWindow  # noqa: E402

LOAD_TIMEOUT_MS = 20_000
ANSWER_TIMEOUT_MS = 30_000


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data directory whose settings suit scripted models: small context, CPU, light theme, no drafting
    (tests/ui/test_speculative_ui.py covers it)."""
    folder = tmp_path / "data"
    folder.mkdir()
    save_settings(folder, Settings(n_ctx=2048, n_gpu_layers=0, theme="light", draft="off"))
    return folder


@pytest.fixture
def open_app(qtbot):
    """open_app(data_dir, model=None) -> a shown MainWindow, as `python -m app` builds it.

    With a model (or a remembered last model) it waits until the model is loaded.
    Every window is closed (saving, stopping the engine thread) at the end of the test.
    """
    windows: list[MainWindow] = []

    def open_(data_dir: Path, model: Path | None = None, *, wait_loaded: bool = True) -> MainWindow:
        window = open_window(str(data_dir), str(model) if model else None)
        windows.append(window)
        qtbot.waitExposed(window)
        if wait_loaded and (model or window.settings.last_model_path):
            qtbot.waitUntil(lambda: not window.client.loading, timeout=LOAD_TIMEOUT_MS)
            assert window.client.info is not None, window.welcome.message.text()
        return window

    yield open_
    for window in windows:
        window.close()
        window.store.close()
        window.deleteLater()
