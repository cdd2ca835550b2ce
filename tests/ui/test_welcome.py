"""First run: the welcome page recommends a model for this machine, downloads it from the fake
hub on loopback with progress, cancel and resume, and starts a chat with it under real llama.cpp.
Local GGUFs are imported by the Choose button or by dropping them on the window."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from app.core.catalog import load_catalog
from app.core.downloads import format_bytes
from app.core.errors import CatalogError
from app.core.settings import load_settings
from app.core.sizing import recommend
from tests.fixtures.scripted_gguf import STANDARD_ANSWER
from tests.ui.conftest import LOAD_TIMEOUT_MS
from tests.ui.model_setup import (  # noqa: F401  (fixtures)
    DOWNLOAD_TIMEOUT_MS,
    MEDIUM_FILE,
    TINY_RECOMMENDED,
    catalog,
    fake_hub,
    hub,
    machine,
    offline,
    wait_for_survey,
)
from tests.ui.test_window import send


def setup_panel(window):
    return window.welcome.setup


def badges(window) -> dict[str, str]:
    return {row.alternative.name: row.badge.text() for row in setup_panel(window).rows}


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_loaded(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=DOWNLOAD_TIMEOUT_MS + LOAD_TIMEOUT_MS)


def drop(window, path: Path) -> bool:
    """Drag a file over the window and drop it, as a file manager would; True if accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = window.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(centre.toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    return event.isAccepted()


# --- what the first run shows ----------------------------------------------------------------


def test_first_run_shows_the_hardware_the_recommendation_with_its_reason_and_a_badge_per_model(
    qtbot, data_dir, open_app, catalog, machine
):
    window = open_app(data_dir)
    survey = wait_for_survey(qtbot, window)
    panel = setup_panel(window)
    expected = recommend(machine, load_catalog(catalog.path))

    assert window.welcome.download_area.isVisible()
    assert panel.hardware.text() == (
        "This computer: RTX 4060 (8 GB) · 32 GB RAM · 8 CPU cores\nThis llama.cpp build can run models on the GPU."
    )
    assert panel.heading.text() == "Recommended for this computer"
    assert panel.model_title.text() == "Tiny-R1 · Q8_0"
    assert panel.reason.text() == expected.reason
    assert panel.reason.text().startswith("Tiny-R1 Q8_0 fits entirely in your RTX 4060's 8 GB")
    assert panel.badge.text() == "fits"
    size = catalog.recommended.stat().st_size
    assert panel.primary_button.text() == f"Download and start chatting ({format_bytes(size)})"

    assert badges(window) == {"Tiny-R1": "fits", "Medium-R1": "partial offload", "Huge-R1": "too big"}
    rows = {row.alternative.name: row for row in panel.rows}
    assert rows["Tiny-R1"].radio.isChecked() and rows["Tiny-R1"].radio.toolTip().startswith("Recommended")
    assert [rows["Medium-R1"].quant.text(), rows["Medium-R1"].size.text()] == ["Q4_K_M", "9.0 GB"]
    assert re.fullmatch(r"~\d+(\.\d)? tokens/s", rows["Medium-R1"].detail.text())
    assert "of 49 layers on the GPU" in rows["Medium-R1"].radio.toolTip()
    assert not rows["Huge-R1"].radio.isEnabled()  # shown, but not offered
    assert rows["Huge-R1"].detail.text().startswith("needs ")
    assert survey.seconds < 5


def test_choosing_another_model_changes_the_button_and_explains_where_it_runs(
    qtbot, data_dir, open_app, catalog
):
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)
    medium = next(row for row in panel.rows if row.alternative.name == "Medium-R1")

    qtbot.mouseClick(medium.radio, Qt.MouseButton.LeftButton, pos=QPoint(8, medium.radio.height() // 2))

    assert panel.heading.text() == "Your choice"
    assert panel.model_title.text() == "Medium-R1 · Q4_K_M" and panel.badge.text() == "partial offload"
    assert "layers on the GPU" in panel.reason.text()
    assert panel.primary_button.text() == "Download and start chatting (9.0 GB)"


# --- download ----------------------------------------------------------------------------------


def test_download_shows_progress_then_loads_the_model_and_a_chat_works(qtbot, data_dir, open_app, hub, catalog):
    hub.chunk_delay_s = 0.005  # a few hundred ms: long enough to see the progress row
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)
    seen: list[tuple[str, bool, bool]] = []

    def record(_request, progress) -> None:
        seen.append((panel.progress.status.text(), panel.progress.isVisible(), panel.primary_button.isVisible()))

    window.library.downloads.progress.connect(record)
    click(qtbot, panel.primary_button)
    wait_loaded(qtbot, window)

    model = data_dir / "models" / TINY_RECOMMENDED
    assert model.read_bytes() == catalog.recommended.read_bytes()
    assert seen, "no progress was reported"
    assert all(progress_shown and not button_shown for _text, progress_shown, button_shown in seen)
    total = format_bytes(catalog.recommended.stat().st_size)
    assert any(f" of {total} · " in text and "/s" in text for text, _, _ in seen), seen
    assert load_settings(data_dir).last_model_path == str(model)
    assert window.client.info.path == model
    assert window.session.conversation_id is None and window.pages.currentWidget() is window.welcome
    assert "is ready" in window.welcome.message.text()

    message = send(qtbot, window)
    assert message.status == "complete" and message.content == STANDARD_ANSWER.strip()


def test_cancel_keeps_the_partial_file_and_the_button_then_resumes_it(qtbot, data_dir, open_app, hub, catalog):
    hub.chunk_delay_s = 0.02  # ~2 s for the whole file: time to cancel part way
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)
    downloads = window.library.downloads
    part = data_dir / "models" / f"{TINY_RECOMMENDED}.part"

    click(qtbot, panel.primary_button)
    qtbot.waitUntil(lambda: downloads.last_progress is not None and downloads.last_progress.downloaded > 0,
                    timeout=DOWNLOAD_TIMEOUT_MS)
    with qtbot.waitSignal(downloads.cancelled, timeout=DOWNLOAD_TIMEOUT_MS):
        click(qtbot, panel.progress.cancel_button)
        assert panel.progress.cancel_button.text() == "Stopping…"

    kept = part.stat().st_size
    assert 0 < kept < catalog.recommended.stat().st_size
    qtbot.waitUntil(lambda: panel.primary_button.text().startswith("Resume download ("), timeout=5_000)
    assert panel.primary_button.text() == (
        f"Resume download ({format_bytes(kept)} of {format_bytes(catalog.recommended.stat().st_size)})")
    assert panel.primary_button.isVisible() and not panel.progress.isVisible()
    assert window.client.info is None

    hub.chunk_delay_s = 0
    hub.requests.clear()
    click(qtbot, panel.primary_button)
    wait_loaded(qtbot, window)

    assert (data_dir / "models" / TINY_RECOMMENDED).read_bytes() == catalog.recommended.read_bytes()
    assert not part.exists()
    # The header is read (ranged, bounded) and planned before any transfer (app/ui/downloads.py), then the rest
    # of the file is resumed from the part.
    *header, resume = [g.range for g in hub.gets() if g.server == "cdn"]
    assert resume == f"bytes={kept}-" and all(r.startswith("bytes=0-") and not r.endswith("-") for r in header)


def test_a_file_missing_on_the_hub_shows_the_reason_and_the_app_stays_usable(
    qtbot, data_dir, open_app, hub, catalog
):
    hub.add("ponder-tests/Medium-R1-GGUF", "README.md", b"No GGUF here yet.", lfs=False)
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)
    panel.select("medium-r1")  # its repo exists, its file does not (HTTP 404)

    with qtbot.waitSignal(window.library.downloads.failed, timeout=DOWNLOAD_TIMEOUT_MS):
        click(qtbot, panel.primary_button)

    assert panel.error.isVisible()
    assert panel.error.text() == (
        f"The file {MEDIUM_FILE} was not found in repo ponder-tests/Medium-R1-GGUF on "
        f"{hub.url.removeprefix('http://')} (set by HF_ENDPOINT); check the file name or pick another quantisation."
    )
    assert panel.primary_button.isVisible() and not panel.progress.isVisible()
    assert not window.notice.isVisible()  # said once, in place

    panel.select("tiny-r1")  # another model still downloads and runs
    assert not panel.error.isVisible()
    click(qtbot, panel.primary_button)
    wait_loaded(qtbot, window)


def test_an_unreachable_hub_shows_the_reason_and_local_files_still_work(
    qtbot, data_dir, open_app, offline, catalog
):
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)

    with qtbot.waitSignal(window.library.downloads.failed, timeout=DOWNLOAD_TIMEOUT_MS):
        click(qtbot, panel.primary_button)

    host = offline.removeprefix("http://")
    assert panel.error.text() == f"Could not reach {host} (set by HF_ENDPOINT) — check your connection."
    assert not (data_dir / "models" / f"{TINY_RECOMMENDED}.part").exists()

    window.import_model(catalog.other)
    wait_loaded(qtbot, window)
    assert window.client.info.name == "Scripted-non_reasoning"


def test_offline_a_downloaded_recommendation_starts_without_the_network(
    qtbot, data_dir, open_app, offline, catalog
):
    (data_dir / "models").mkdir()
    (data_dir / "models" / TINY_RECOMMENDED).write_bytes(catalog.recommended.read_bytes())
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)

    assert panel.primary_button.text() == "Start chatting with Tiny-R1"
    click(qtbot, panel.primary_button)
    wait_loaded(qtbot, window)
    assert window.client.info.path == data_dir / "models" / TINY_RECOMMENDED
    assert window.library.downloads.current is None


def test_a_broken_catalog_is_explained_and_a_local_file_can_still_be_chosen(
    qtbot, data_dir, open_app, monkeypatch, scripted_model
):
    def broken(_path=None):
        raise CatalogError("The model catalog models.json is not valid JSON (line 3, column 1: Expecting value).")

    monkeypatch.setattr("app.core.survey.load_catalog", broken)
    window = open_app(data_dir)
    wait_for_survey(qtbot, window)
    panel = setup_panel(window)

    assert panel.heading.text() == "Downloads are not available"
    assert "not valid JSON" in panel.reason.text()
    assert not panel.primary_button.isVisible() and panel.rows == []
    assert panel.hardware.text().startswith("This computer: ")

    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *args, **kwargs: (str(scripted_model("standard_r1")), "GGUF models (*.gguf)"))
    click(qtbot, window.welcome.choose_button)
    wait_loaded(qtbot, window)


# --- local files -------------------------------------------------------------------------------


def test_choose_a_gguf_file_imports_it_into_the_models_folder_and_starts_a_chat(
    qtbot, data_dir, open_app, catalog, monkeypatch
):
    window = open_app(data_dir)
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *args, **kwargs: (str(catalog.recommended), "GGUF models (*.gguf)"))

    click(qtbot, window.welcome.choose_button)
    wait_loaded(qtbot, window)

    imported = data_dir / "models" / catalog.recommended.name
    assert imported.read_bytes() == catalog.recommended.read_bytes()
    assert window.client.info.path == imported
    assert load_settings(data_dir).last_model_path == str(imported)
    assert send(qtbot, window).content == STANDARD_ANSWER.strip()


def test_dropping_a_gguf_on_the_window_imports_and_loads_it(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir)
    model = scripted_model("non_reasoning")

    assert drop(window, model)
    wait_loaded(qtbot, window)
    assert window.client.info.path == data_dir / "models" / model.name


def test_a_malformed_file_is_refused_with_the_reason_and_nothing_is_imported(
    qtbot, data_dir, open_app, malformed_model
):
    window = open_app(data_dir)
    bad = malformed_model("bad_magic")

    with qtbot.waitSignal(window.library.problem, timeout=LOAD_TIMEOUT_MS) as blocker:
        assert drop(window, bad)

    message = blocker.args[0]
    assert "bad_magic.gguf" in message and "not a GGUF model file" in message
    assert window.notice.isVisible() and window.notice.label.text() == message
    assert list((data_dir / "models").iterdir()) == []
    assert window.client.info is None and not window.client.loading
    assert "No model is loaded" in window.welcome.message.text()


def test_a_dropped_file_goes_to_the_import_not_into_the_prompt(qtbot, data_dir, open_app, scripted_model):
    window = open_app(data_dir)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(scripted_model("standard_r1")))])
    assert not window.prompt_input.canInsertFromMimeData(mime)
    text = QMimeData()
    text.setText("some words")
    assert window.prompt_input.canInsertFromMimeData(text)
