"""Downloads in the window plan from the model file's own header first (app/ui/downloads.py,
app/core/downloads.py plan_download), for the hardware the window's survey probed: a catalog entry that
is wrong about its file cannot make Ponder download a model that will not fit. Real window, fake hub on
loopback, tiny deepseek2 GGUFs with and without MLA metadata (tests/fixtures/deepseek2_gguf.py)."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core import downloads, survey
from app.core.catalog import load_catalog
from app.core.hardware import describe
from tests.fakehub import fake_hub  # noqa: F401  (fixture)
from tests.fixtures.deepseek2_gguf import mla_pair, ram_gb_between
from tests.ui.model_setup import DOWNLOAD_TIMEOUT_MS, SURVEY_TIMEOUT_MS

REPO = "ponder-tests/DeepSeek-Tiny-GGUF"
FILE = "ds2.gguf"


@pytest.fixture(scope="module")
def ds2_files(tmp_path_factory) -> dict[bool, bytes]:
    """Tiny deepseek2 GGUFs with 16 heads (the uncompressed KV cache is 16 × the MLA one), MLA and not."""
    return mla_pair(tmp_path_factory.mktemp("ds2"))


def _catalog(path, *, claims_mla: bool, size: int, n_ctx_train: int = 32768):
    """A one-model catalog whose entry for ds2.gguf claims the MLA layout (or not)."""
    arch = {"arch": "deepseek2", "n_layers": 3, "n_embd": 64, "n_ff": 96, "n_head": 16, "vocab_size": 265,
            "n_ctx_train": n_ctx_train, "n_expert": 4, "n_expert_used": 2, "mla": claims_mla,
            **({"n_head_kv": 1, "head_dim": 96, "head_dim_v": 64} if claims_mla else
               {"n_head_kv": 16, "head_dim": 64, "head_dim_v": 32})}
    entry = {"id": "ds2-tiny", "name": "DeepSeek tiny", "short_name": "DS2-tiny", "repo": REPO,
             "description": "test", "license": "MIT", "base_model": "none", "reasoning": True, "params_b": 0.01,
             "tier": 1, "architecture": arch, "quants": [{"name": "F16", "bits": 16, "files": [{"path": FILE, "size_bytes": size}]}]}
    path.write_text(json.dumps({"schema_version": 1, "models": [entry]}), encoding="utf-8")
    return path


@pytest.fixture
def between(ds2_files, tmp_path, monkeypatch):
    """The window's survey sees a CPU-only machine whose RAM holds the MLA file's plan but not the
    uncompressed one's (planned from the files themselves)."""
    hw = describe(ram_gb=ram_gb_between(ds2_files, tmp_path), cpu_cores=4)
    monkeypatch.setattr(survey, "probe", lambda: hw)
    return hw


def _serve(fake_hub, monkeypatch, tmp_path, data: bytes, *, claims_mla: bool, n_ctx_train: int = 32768):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(downloads, "HEADER_FIRST_BYTES", 8192)  # the tiny file would fit in the first 1 MiB
    fake_hub.add(REPO, FILE, data)
    path = _catalog(tmp_path / "models.json", claims_mla=claims_mla, size=len(data), n_ctx_train=n_ctx_train)
    monkeypatch.setattr(survey, "load_catalog", lambda _path=None: load_catalog(path))


def _manager_row(qtbot, window):
    dialog = window.open_model_manager()
    qtbot.waitExposed(dialog)
    # Surveys started so far (window start, manager opened) landed; new rows are shown by a queued call.
    qtbot.waitUntil(lambda: window.library.survey is not None and not window.library.refreshing,
                    timeout=SURVEY_TIMEOUT_MS)
    QApplication.processEvents()
    qtbot.waitUntil(lambda: dialog.catalog_rows["ds2-tiny"].download_button.isVisible(), timeout=SURVEY_TIMEOUT_MS)
    return dialog, dialog.catalog_rows["ds2-tiny"]


def _click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_a_catalog_entry_wrong_about_its_file_is_refused_in_the_window_and_nothing_is_downloaded(
    qtbot, data_dir, open_app, fake_hub, monkeypatch, tmp_path, ds2_files, between  # noqa: F811
):
    _serve(fake_hub, monkeypatch, tmp_path, ds2_files[False], claims_mla=True)  # the entry lies: MLA
    window = open_app(data_dir)
    dialog, row = _manager_row(qtbot, window)
    assert row.badge.text() == "fits" and row.download_button.isEnabled()  # as the catalog describes it

    with qtbot.waitSignal(window.library.downloads.failed, timeout=DOWNLOAD_TIMEOUT_MS) as failed:
        _click(qtbot, row.download_button)
    message = failed.args[1]
    assert message.startswith("DS2-tiny (ds2.gguf) will not fit this computer, so nothing was downloaded")
    assert "the file has no MLA metadata" in message
    assert "Multi-head Latent Attention (MLA): the catalog says yes, the file's header no" in message
    assert row.error.isVisible() and row.error.text() == message  # shown in the row the user clicked
    # The survey after the failure rebuilds the rows; the new row still says why.
    qtbot.waitUntil(lambda: dialog.catalog_rows["ds2-tiny"] is not row, timeout=SURVEY_TIMEOUT_MS)
    QApplication.processEvents()
    row = dialog.catalog_rows["ds2-tiny"]
    assert row.error.isVisible() and row.error.text() == message

    models = data_dir / "models"
    assert not models.exists() or not [p for p in models.iterdir() if p.name.startswith(FILE)]
    assert fake_hub.body_bytes_sent < len(ds2_files[False])  # only the header, by ranged requests
    assert all(seen.range for seen in fake_hub.gets())


def test_where_the_catalog_was_wrong_about_a_file_that_fits_the_window_says_so_and_downloads_it(
    qtbot, data_dir, open_app, fake_hub, monkeypatch, tmp_path, ds2_files, between  # noqa: F811
):
    # The entry is right about MLA and wrong about the training context.
    _serve(fake_hub, monkeypatch, tmp_path, ds2_files[True], claims_mla=True, n_ctx_train=65536)
    window = open_app(data_dir)
    dialog, row = _manager_row(qtbot, window)
    planned = []
    window.library.downloads.planned.connect(lambda _request, plan: planned.append(plan))

    with qtbot.waitSignal(window.library.downloads.finished, timeout=DOWNLOAD_TIMEOUT_MS):
        _click(qtbot, row.download_button)
    (plan,) = planned
    assert plan.plan.fits and plan.summary.mla
    assert dialog.notice.isVisible()
    assert dialog.notice.text() == (
        "DS2-tiny (ds2.gguf): the catalog described this file otherwise (" + "; ".join(plan.differences) + "). "
        "Ponder planned it from the file's own header.")
    assert plan.differences == ["training context: the catalog says 65536, the file's header 32768"]
    assert (data_dir / "models" / FILE).read_bytes() == ds2_files[True]


def test_the_welcome_page_refuses_it_too_and_keeps_saying_why(
    qtbot, data_dir, open_app, fake_hub, monkeypatch, tmp_path, ds2_files, between  # noqa: F811
):
    _serve(fake_hub, monkeypatch, tmp_path, ds2_files[False], claims_mla=True)
    window = open_app(data_dir)
    qtbot.waitUntil(lambda: window.library.survey is not None and not window.library.refreshing,
                    timeout=SURVEY_TIMEOUT_MS)
    QApplication.processEvents()
    panel = window.welcome.setup
    assert panel.primary_button.text() == "Download and start chatting (1.0 MB)"  # the catalog's pick

    with qtbot.waitSignal(window.library.downloads.failed, timeout=DOWNLOAD_TIMEOUT_MS) as failed:
        _click(qtbot, panel.primary_button)
    assert "will not fit this computer, so nothing was downloaded" in failed.args[1]
    qtbot.waitUntil(lambda: not window.library.refreshing, timeout=SURVEY_TIMEOUT_MS)  # the survey after it
    QApplication.processEvents()
    assert panel.error.isVisible() and panel.error.text() == failed.args[1]
    assert window.client.info is None and not (data_dir / "models" / FILE).exists()
