"""The model manager: downloaded models (load, delete), partial downloads (resume) and catalog
models (download with progress), with fit badges, against the fake hub and real llama.cpp."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtGui import Qt as QtGui
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from app.core.downloads import format_bytes
from app.core.settings import load_settings
from app.ui import background
from tests.fixtures.scripted_gguf import SCRIPTS, write_split_scripted_gguf
from tests.ui.conftest import LOAD_TIMEOUT_MS
from tests.ui.model_setup import (  # noqa: F401  (fixtures)
    DOWNLOAD_TIMEOUT_MS,
    SURVEY_TIMEOUT_MS,
    TINY_OTHER,
    TINY_RECOMMENDED,
    catalog,
    fake_hub,
    hub,
    machine,
    offline,
)


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def answer_questions(monkeypatch, answer: QMessageBox.StandardButton) -> list[str]:
    """Answer every confirmation with `answer`; returns the questions asked."""
    asked: list[str] = []

    def question(_parent, _title, text, *_args, **_kwargs):
        asked.append(text)
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def models_folder(data_dir: Path) -> Path:
    folder = data_dir / "models"
    folder.mkdir(exist_ok=True)
    return folder


def put(data_dir: Path, source: Path, name: str) -> Path:
    target = models_folder(data_dir) / name
    target.write_bytes(source.read_bytes())
    return target


def open_manager(qtbot, window):
    dialog = window.open_model_manager()
    qtbot.waitExposed(dialog)
    settled(qtbot, window)
    return dialog


def start_tiny_download(qtbot, dialog, downloads) -> None:
    """Click Download on the tiny model and wait until its first bytes have arrived."""
    click(qtbot, dialog.catalog_rows["tiny-r1"].download_button)
    qtbot.waitUntil(lambda: downloads.last_progress is not None and downloads.last_progress.downloaded > 0,
                    timeout=DOWNLOAD_TIMEOUT_MS)


def settled(qtbot, window) -> None:
    """Wait until the surveys started so far (window start, manager opened) have landed."""
    qtbot.waitUntil(lambda: window.library.survey is not None and not window.library.refreshing,
                    timeout=SURVEY_TIMEOUT_MS)
    QApplication.processEvents()  # new rows are shown by a queued call


def shown(text: str, text_format: Qt.TextFormat = Qt.TextFormat.AutoText) -> str:
    """What a person sees of `text`: Qt draws it as HTML when its format is rich text, or
    automatic (a QLabel's default, and always for a tooltip) and the text looks like HTML."""
    rich = text_format == Qt.TextFormat.RichText or (
        text_format == Qt.TextFormat.AutoText and QtGui.mightBeRichText(text))
    if not rich:
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def shown_label(label: QLabel) -> str:
    return shown(label.text(), label.textFormat())


def wait_rows(qtbot, dialog, condition) -> None:
    qtbot.waitUntil(lambda: condition(dialog), timeout=SURVEY_TIMEOUT_MS)
    QApplication.processEvents()  # new rows are shown by a queued call


# --- downloaded models ----------------------------------------------------------------------------


def test_lists_downloaded_models_with_size_of_all_parts_quant_fit_and_the_active_one(
    qtbot, data_dir, open_app, catalog, malformed_model, tmp_path
):
    active = put(data_dir, catalog.recommended, TINY_RECOMMENDED)
    parts = write_split_scripted_gguf(models_folder(data_dir) / "Split-R1.gguf", list(SCRIPTS["standard_r1"].pieces))
    broken = put(data_dir, malformed_model("truncated"), "broken.gguf")
    window = open_app(data_dir, active)
    dialog = open_manager(qtbot, window)

    assert set(dialog.local_rows) == {active, parts[0], broken}
    tiny = dialog.local_rows[active]
    assert tiny.title.text() == "<b>Tiny-R1</b> · Q8_0"  # named after its catalog entry
    size = format_bytes(active.stat().st_size)
    assert tiny.detail.text().startswith(f"{size} · {TINY_RECOMMENDED} · all on the GPU")
    assert tiny.badge.text() == "fits"
    assert tiny.active_label.isVisible() and not tiny.load_button.isVisible()

    split = dialog.local_rows[parts[0]]
    total = sum(p.stat().st_size for p in parts)
    assert split.detail.text().startswith(f"{format_bytes(total)} · {parts[0].name}")
    assert split.badge.text() == "fits"
    assert split.load_button.isVisible() and not split.active_label.isVisible()

    bad = dialog.local_rows[broken]
    assert bad.error.isVisible() and "broken.gguf" in bad.error.text()
    assert not bad.load_button.isVisible() and bad.delete_button.isEnabled() and not bad.badge.isVisible()
    assert dialog.hardware.text().startswith("This computer: RTX 4060 (8 GB)")


def test_names_from_model_files_are_shown_as_written_not_as_html(
    qtbot, data_dir, open_app, catalog, malformed_model
):
    odd = put(data_dir, catalog.other, "<img src=x>Odd.gguf")
    broken = put(data_dir, malformed_model("truncated"), "<b>broken.gguf")
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)

    row = dialog.local_rows[odd]
    assert shown_label(row.detail).startswith(f"{format_bytes(odd.stat().st_size)} · <img src=x>Odd.gguf · ")
    assert shown(row.detail.toolTip()) == str(odd)
    bad = dialog.local_rows[broken]
    assert "'<b>broken.gguf'" in shown_label(bad.error)
    assert shown_label(bad.title) == "<b>broken"  # the file's stem, in bold


def test_load_switches_the_active_model_and_remembers_it(qtbot, data_dir, open_app, catalog):
    first = put(data_dir, catalog.recommended, TINY_RECOMMENDED)
    second = put(data_dir, catalog.other, TINY_OTHER)
    window = open_app(data_dir, first)
    dialog = open_manager(qtbot, window)

    with qtbot.waitSignal(window.client.loaded, timeout=LOAD_TIMEOUT_MS):
        click(qtbot, dialog.local_rows[second].load_button)

    assert window.client.info.path == second
    assert load_settings(data_dir).last_model_path == str(second)
    assert dialog.local_rows[second].active_label.isVisible()
    assert not dialog.local_rows[first].active_label.isVisible() and dialog.local_rows[first].load_button.isVisible()


def test_delete_asks_first_and_then_removes_every_part(qtbot, data_dir, open_app, catalog, monkeypatch):
    parts = write_split_scripted_gguf(models_folder(data_dir) / "Split-R1.gguf", list(SCRIPTS["standard_r1"].pieces))
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)

    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Cancel)
    click(qtbot, dialog.local_rows[parts[0]].delete_button)
    assert len(asked) == 1 and asked[0].startswith("Delete Scripted-R1-split")
    assert all(p.exists() for p in parts)

    answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)
    click(qtbot, dialog.local_rows[parts[0]].delete_button)
    wait_rows(qtbot, dialog, lambda d: parts[0] not in d.local_rows)
    assert not any(p.exists() for p in parts)
    assert dialog.findChild(type(dialog.hardware), "noLocalModels").text() == "No models downloaded yet."


def test_a_model_whose_load_was_replaced_is_not_deleted_until_the_engine_let_go(qtbot, data_dir, open_app):
    first = SCRIPTS["standard_r1"].write(models_folder(data_dir) / "First.gguf")
    second = SCRIPTS["non_reasoning"].write(models_folder(data_dir) / "Second.gguf")
    window = open_app(data_dir)
    problems: list[str] = []
    window.library.problem.connect(problems.append)

    window.load_model(first)
    window.load_model(second)  # the first load is cancelled, but the engine thread may still hold its file
    window.library.delete_model(first)
    assert first.exists() and problems == ["First.gguf is still being closed; try deleting it again in a moment."]
    window.library.delete_model(second)
    assert second.exists() and "Second.gguf is loading" in problems[-1]

    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.client.info.path == second  # the first load's result never counted
    assert window.status.model_label.text().startswith("Scripted-non_reasoning")
    window.library.delete_model(first)  # let go now: deleted
    qtbot.waitUntil(lambda: not first.exists(), timeout=LOAD_TIMEOUT_MS)


def test_deleting_the_active_model_unloads_it_first_and_forgets_it(qtbot, data_dir, open_app, catalog, monkeypatch):
    active = put(data_dir, catalog.recommended, TINY_RECOMMENDED)
    window = open_app(data_dir, active)
    dialog = open_manager(qtbot, window)
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Yes)

    with qtbot.waitSignal(window.client.unloaded, timeout=LOAD_TIMEOUT_MS):
        click(qtbot, dialog.local_rows[active].delete_button)

    assert "it will be unloaded first" in asked[0]
    wait_rows(qtbot, dialog, lambda d: active not in d.local_rows)
    assert not active.exists()
    assert window.client.info is None
    assert window.status.model_label.text() == "No model loaded"
    assert "No model is loaded" in window.welcome.message.text()
    assert load_settings(data_dir).last_model_path is None


# --- catalog and downloads ----------------------------------------------------------------------


def test_catalog_models_show_size_and_fit_and_too_big_ones_cannot_be_downloaded(
    qtbot, data_dir, open_app, catalog
):
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    rows = dialog.catalog_rows

    assert list(rows) == ["tiny-r1", "medium-r1", "huge-r1"]
    assert (rows["tiny-r1"].quant.name, rows["tiny-r1"].badge.text()) == ("Q8_0", "fits")
    assert rows["medium-r1"].badge.text() == "partial offload"
    assert rows["medium-r1"].detail.text().startswith("9.0 GB · ")
    assert rows["medium-r1"].download_button.isEnabled()
    assert rows["huge-r1"].badge.text() == "too big"
    assert not rows["huge-r1"].download_button.isEnabled()
    assert rows["huge-r1"].detail.text().startswith("42.5 GB · needs about")

    rows["tiny-r1"].quant_box.setCurrentIndex(rows["tiny-r1"].quant_box.findData("Q4_K_M"))
    assert rows["tiny-r1"].detail.text().startswith(format_bytes(catalog.other.stat().st_size))


def test_download_from_the_manager_shows_progress_then_the_model_is_listed_and_loaded(
    qtbot, data_dir, open_app, hub, catalog
):
    hub.chunk_delay_s = 0.005
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    row = dialog.catalog_rows["tiny-r1"]
    row.quant_box.setCurrentIndex(row.quant_box.findData("Q4_K_M"))
    statuses: list[str] = []
    window.library.downloads.progress.connect(lambda _r, _p: statuses.append(row.progress.status.text()))

    click(qtbot, row.download_button)
    assert row.progress.isVisible() and not row.download_button.isVisible()
    assert not dialog.catalog_rows["medium-r1"].download_button.isEnabled()  # one download at a time
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=DOWNLOAD_TIMEOUT_MS + LOAD_TIMEOUT_MS)

    model = data_dir / "models" / TINY_OTHER
    assert window.client.info.path == model
    assert any(" of " in s and "/s" in s for s in statuses), statuses
    wait_rows(qtbot, dialog, lambda d: model in d.local_rows)
    row = dialog.catalog_rows["tiny-r1"]
    row.quant_box.setCurrentIndex(row.quant_box.findData("Q4_K_M"))
    assert row.download_button.text() == "Downloaded" and not row.download_button.isEnabled()
    assert dialog.local_rows[model].active_label.isVisible()


def test_a_cancelled_download_is_listed_as_resumable_and_resumes(qtbot, data_dir, open_app, hub, catalog):
    hub.chunk_delay_s = 0.02
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    downloads = window.library.downloads

    start_tiny_download(qtbot, dialog, downloads)
    with qtbot.waitSignal(downloads.cancelled, timeout=DOWNLOAD_TIMEOUT_MS):
        click(qtbot, dialog.catalog_rows["tiny-r1"].progress.cancel_button)
    wait_rows(qtbot, dialog, lambda d: len(d.partial_rows) == 1)

    (partial,) = dialog.partial_rows.values()
    kept = (data_dir / "models" / f"{TINY_RECOMMENDED}.part").stat().st_size
    total = catalog.recommended.stat().st_size
    assert partial.title.text() == "<b>Tiny-R1 Q8_0</b>"
    assert partial.detail.text() == f"{format_bytes(kept)} of {format_bytes(total)} downloaded"
    assert dialog.catalog_rows["tiny-r1"].download_button.text() == "Resume"
    assert window.client.info is None

    hub.chunk_delay_s = 0
    click(qtbot, partial.resume_button)
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=DOWNLOAD_TIMEOUT_MS + LOAD_TIMEOUT_MS)
    wait_rows(qtbot, dialog, lambda d: not d.partial_rows and (data_dir / "models" / TINY_RECOMMENDED) in d.local_rows)
    assert (data_dir / "models" / TINY_RECOMMENDED).read_bytes() == catalog.recommended.read_bytes()


def test_a_discarded_partial_download_is_deleted(qtbot, data_dir, open_app, hub, catalog):
    hub.chunk_delay_s = 0.02
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    downloads = window.library.downloads
    start_tiny_download(qtbot, dialog, downloads)
    with qtbot.waitSignal(downloads.cancelled, timeout=DOWNLOAD_TIMEOUT_MS):
        downloads.cancel()
    wait_rows(qtbot, dialog, lambda d: len(d.partial_rows) == 1)

    click(qtbot, next(iter(dialog.partial_rows.values())).discard_button)
    wait_rows(qtbot, dialog, lambda d: not d.partial_rows)
    assert list((data_dir / "models").iterdir()) == []


def test_offline_the_manager_lists_local_models_and_a_failed_download_says_why(
    qtbot, data_dir, open_app, offline, catalog
):
    local = put(data_dir, catalog.other, TINY_OTHER)
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    assert set(dialog.local_rows) == {local}

    row = dialog.catalog_rows["tiny-r1"]  # Q8_0: not downloaded
    with qtbot.waitSignal(window.library.downloads.failed, timeout=DOWNLOAD_TIMEOUT_MS):
        click(qtbot, row.download_button)
    assert row.error.isVisible()
    host = offline.removeprefix("http://")
    assert row.error.text() == f"Could not reach {host} (set by HF_ENDPOINT) — check your connection."

    with qtbot.waitSignal(window.client.loaded, timeout=LOAD_TIMEOUT_MS):
        click(qtbot, dialog.local_rows[local].load_button)
    assert window.client.info.path == local


def test_shutting_down_stops_a_running_download_within_its_bound_and_keeps_the_part(
    qtbot, data_dir, open_app, hub, catalog
):
    hub.chunk_delay_s = 0.02  # ~2 s for the whole file
    window = open_app(data_dir)
    dialog = open_manager(qtbot, window)
    downloads = window.library.downloads
    start_tiny_download(qtbot, dialog, downloads)
    (job,) = [j for j in background.running_jobs() if j.name == "the download of Tiny-R1 Q8_0"]

    start = time.monotonic()
    window.library.shutdown()  # what closing the window does

    assert job.cancelled and job.wait(0)  # the download had stopped when shutdown returned
    assert time.monotonic() - start < 3.0
    part = data_dir / "models" / f"{TINY_RECOMMENDED}.part"
    assert 0 < part.stat().st_size < catalog.recommended.stat().st_size
    assert not (data_dir / "models" / TINY_RECOMMENDED).exists()
    with qtbot.waitSignal(downloads.cancelled, timeout=DOWNLOAD_TIMEOUT_MS):
        pass  # and it ends as cancelled, not failed: the next start resumes it
