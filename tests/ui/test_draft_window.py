"""The window around draft models (speculative decoding): the Models window's memory plan with
the draft, loading the draft (what the status bar says, Cancel) and the offer of a draft after a
download. Real Qt, real llama.cpp on scripted models named as the catalog's files, the real
catalog (models.json, whose "draft" fields pair the models), the fake hub on loopback."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from app.core import downloads, sizing
from app.core.catalog import load_catalog
from app.core.downloads import format_bytes
from app.core.settings import Settings, save_settings
from app.core.survey import DownloadRequest
from tests.fakehub import fake_hub  # noqa: F401  (fixture)
from tests.ui.conftest import LOAD_TIMEOUT_MS
from tests.ui.model_setup import DOWNLOAD_TIMEOUT_MS, pretend_machine
from tests.ui.test_model_manager import click, open_manager, put, settled

TARGET_FILE = "DeepSeek-R1-Distill-Qwen-32B-Q4_K_M.gguf"  # the catalog pairs it with the 1.5B
DRAFT_FILE = "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"


@pytest.fixture
def workstation(monkeypatch):
    """The window sees a 48 GB GPU and 64 GB of RAM: the 32B fits with its draft, the 70B not with its."""
    return pretend_machine(monkeypatch, vram_gb=48, ram_gb=64, gpu_name="RTX 6000 Ada", cpu_cores=16)


@pytest.fixture
def drafting_dir(data_dir):
    """data_dir with drafting on (the default setting; the other UI tests turn it off)."""
    save_settings(data_dir, Settings(n_ctx=2048, n_gpu_layers=0, theme="light", draft="auto"))
    return data_dir


def memory(p: sizing.Plan) -> str:
    return format_bytes(p.gpu_bytes + p.ram_bytes)


def draft_memory(hw, draft_id: str, n_ctx: int) -> str:
    """The draft as the engine loads it beside a model on the GPU: all layers there, the model's context."""
    return memory(sizing.plan(load_catalog().get(draft_id), quant="Q4_K_M", n_ctx=n_ctx, n_gpu_layers=-1, hw=hw))


def test_the_models_window_plans_a_paired_model_with_its_draft(qtbot, drafting_dir, open_app, workstation,
                                                                scripted_model):
    local = put(drafting_dir, scripted_model("standard_r1"), TARGET_FILE)
    window = open_app(drafting_dir)
    dialog = open_manager(qtbot, window)
    s = window.library.survey

    def row_plans():
        rows = dialog.catalog_rows
        return {i: (rows[i].detail.text(), s.catalog_plan(rows[i].model, rows[i].quant))
                for i in ("r1-distill-qwen-32b", "r1-distill-llama-70b", "r1-distill-qwen-7b")}

    # Not downloaded: the plan without the draft, and what the draft would add.
    plans = row_plans()
    text, p = plans["r1-distill-qwen-32b"]
    assert text.endswith(f" · uses about {memory(p)} (the 1.5B draft would add "
                         f"{draft_memory(workstation, 'r1-distill-qwen-1.5b', p.n_ctx)})"), text
    text, p = plans["r1-distill-llama-70b"]  # 49 GB with the 8B's 8 GB beside it: more than the GPU has
    assert text.endswith(f" · uses about {memory(p)} (no room beside it for the 8B draft's "
                         f"{draft_memory(workstation, 'r1-distill-llama-8b', p.n_ctx)})"), text
    assert "draft" not in plans["r1-distill-qwen-7b"][0]  # the catalog pairs no draft with a 7B
    local_row = dialog.local_rows[local]
    local_plan = s.local[0].plan
    assert local_row.detail.text().endswith(
        f"(the 1.5B draft would add {draft_memory(workstation, 'r1-distill-qwen-1.5b', local_plan.n_ctx)})")

    # Downloaded: the plan counts it, and says so.
    put(drafting_dir, scripted_model("standard_r1"), DRAFT_FILE)
    window.library.refresh()
    settled(qtbot, window)
    qtbot.waitUntil(lambda: "for the 1.5B draft" in dialog.catalog_rows["r1-distill-qwen-32b"].detail.text())
    text, p = row_plans()["r1-distill-qwen-32b"]
    assert text.endswith(f" · uses about {memory(p)} + {draft_memory(workstation, 'r1-distill-qwen-1.5b', p.n_ctx)} "
                         "for the 1.5B draft"), text
    assert dialog.local_rows[local].detail.text().endswith(
        f" + {draft_memory(workstation, 'r1-distill-qwen-1.5b', local_plan.n_ctx)} for the 1.5B draft")

    # Drafting off: no draft in any plan once the Models window is shown again.
    window.apply_settings(dataclasses.replace(window.settings, draft="off"))
    dialog.close()
    dialog = open_manager(qtbot, window)
    qtbot.waitUntil(lambda: "draft" not in dialog.catalog_rows["r1-distill-qwen-32b"].detail.text())
    assert not any("draft" in row.detail.text() for row in [*dialog.catalog_rows.values(), *dialog.local_rows.values()])


@pytest.fixture
def slow_draft(monkeypatch):
    """The draft model's load waits (a big draft on a slow disk) until the test sets the event, then
    loads for real: a Cancel lands before llama.cpp reports any progress for it."""
    from app.core import speculative

    real, may_load = speculative.open_drafter, threading.Event()

    def open_drafter(eng, spec, hw=None, progress=None):
        may_load.wait(LOAD_TIMEOUT_MS / 1000)
        return real(eng, spec, hw, progress)

    monkeypatch.setattr(speculative, "open_drafter", open_drafter)
    yield may_load
    may_load.set()  # never leave the engine thread waiting


def test_the_status_bar_names_the_draft_while_it_loads_and_cancel_ends_the_whole_load(
        qtbot, drafting_dir, open_app, scripted_model, slow_draft):
    target = put(drafting_dir, scripted_model("standard_r1"), TARGET_FILE)
    draft = put(drafting_dir, scripted_model("standard_r1"), DRAFT_FILE)  # same script: same tokenizer
    window = open_app(drafting_dir)
    bar, client = window.status, window.client
    said = []  # what the status bar says when each phase arrives (connected after the window's handler)
    client.load_phase.connect(lambda name: said.append((name, bar.model_label.text())))

    window.models.load(target)
    qtbot.waitUntil(lambda: bool(said), timeout=LOAD_TIMEOUT_MS)
    assert said == [("draft", "Loading draft 1.5B…")]
    assert window.welcome.message.text() == "Loading draft 1.5B…"
    assert bar.progress_bar.isVisible() and bar.progress_bar.maximum() == 0  # busy: no fraction to show
    assert window.welcome.cancel_load_button.isVisible()  # (the page's Cancel does what the status bar's does)
    engine_said = []  # the engine thread's answer to the load (emitted there: recorded, not waited on)
    client._worker.load_failed.connect(lambda _id, message: engine_said.append(message))
    client._worker.loaded.connect(lambda _id, info: engine_said.append(info))
    click(qtbot, bar.cancel_load_button)
    # At once: nothing loads and nothing is loaded, though the draft's load is still under way.
    assert not client.loading and client.info is None and client.uses_file(target)
    assert bar.model_label.text() == "No model loaded"
    assert not bar.cancel_load_button.isVisible() and not bar.progress_bar.isVisible()
    assert window.welcome.message.text().startswith("Loading was cancelled.")
    assert not window.welcome.cancel_load_button.isVisible()
    slow_draft.set()  # the draft's load ends; the engine thread sees the cancel and frees both models
    qtbot.waitUntil(lambda: not client.uses_file(target), timeout=LOAD_TIMEOUT_MS)
    assert engine_said == ["Loading the model was cancelled."]
    assert not window.send_button.isEnabled()

    # Loading again works, and drafts with the pair.
    window.models.load(target)
    qtbot.waitUntil(lambda: client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert client.info.drafter == "draft 1.5B" and "drafting (draft 1.5B)" in bar.device_label.text()

    # An unload's report that comes after the next load began leaves "Loading …" standing.
    client.unload()
    window.models.load(target)
    with qtbot.waitSignal(client.unloaded, timeout=LOAD_TIMEOUT_MS):
        pass
    assert bar.model_label.text() == f"Loading {TARGET_FILE}…" and bar.progress_bar.isVisible()
    qtbot.waitUntil(lambda: client.info is not None, timeout=LOAD_TIMEOUT_MS)

    # Without the pair downloaded it drafts from the text: nothing to load, nothing named.
    with qtbot.waitSignal(client.unloaded, timeout=LOAD_TIMEOUT_MS):
        client.unload()  # (the draft's file is let go before it leaves the folder)
    draft.unlink()
    said.clear()
    window.models.load(target)
    qtbot.waitUntil(lambda: client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert said[0] == ("draft", f"Loading {TARGET_FILE}…") and client.info.drafter == "n-gram"


@pytest.fixture
def catalog_hub(fake_hub, monkeypatch, scripted_model):  # noqa: F811
    """The fake hub serves the catalog's 14B, 32B and 1.5B Q4_K_M files at their real repositories
    and paths; each is a scripted model (one script: one tokenizer, so the 1.5B can draft)."""
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(downloads, "RETRY_DELAYS_S", (0, 0.01))
    data = scripted_model("standard_r1").read_bytes()
    catalog = load_catalog()
    requests = {}
    for model_id in ("r1-distill-qwen-14b", "r1-distill-qwen-32b", "r1-distill-qwen-1.5b"):
        model = catalog.get(model_id)
        request = requests[model_id] = DownloadRequest.for_catalog(model, model.quant("Q4_K_M"))
        fake_hub.add(request.repo, request.files[0], data)
    return requests


def download(qtbot, window, request) -> None:
    with qtbot.waitSignal(window.library.downloads.finished, timeout=DOWNLOAD_TIMEOUT_MS):
        assert window.library.start_download(request)


def test_a_downloaded_32b_offers_its_draft_whose_download_then_drafts_for_it(
        qtbot, drafting_dir, open_app, workstation, catalog_hub):
    window = open_app(drafting_dir)
    offers = []
    window.library.draft_offered.connect(lambda request, text: offers.append(request))
    settled(qtbot, window)

    download(qtbot, window, catalog_hub["r1-distill-qwen-32b"])
    notice = window.notice
    draft = load_catalog().get("r1-distill-qwen-1.5b").quant("Q4_K_M")
    assert notice.label.text().startswith(
        f"R1-Distill-Qwen-32B answers faster when R1-Distill-Qwen-1.5B drafts for it ({format_bytes(draft.size_bytes)} "
        "download, about ")
    assert notice.label.text().endswith(" of memory beside it; the answers stay the same).")
    assert offers == [catalog_hub["r1-distill-qwen-1.5b"]]
    # The 32B is loaded meanwhile (the download switches to it); its load leaves the offer standing.
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    big = window.client.info.path
    assert big.name == TARGET_FILE and window.client.info.drafter == "n-gram"  # no draft model yet
    assert notice.isVisible() and notice.action_button.text() == "Download"

    with qtbot.waitSignal(window.library.downloads.finished, timeout=DOWNLOAD_TIMEOUT_MS) as done:
        click(qtbot, notice.action_button)
        assert window.library.downloads.current == catalog_hub["r1-distill-qwen-1.5b"]
    assert done.args[0] == catalog_hub["r1-distill-qwen-1.5b"]
    # The draft is not loaded in the 32B's place: it drafts for it, after a reload.
    assert not window.client.loading and window.client.info.path == big
    assert notice.label.text() == ("R1-Distill-Qwen-1.5B Q4_K_M is downloaded: it drafts for R1-Distill-Qwen-32B "
                                   "from its next load.")
    click(qtbot, notice.action_button)  # "Reload now"
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.client.info.path == big and window.client.info.drafter == "draft 1.5B"
    assert offers == [catalog_hub["r1-distill-qwen-1.5b"]]  # offered once


def test_the_draft_is_offered_once_a_session(qtbot, drafting_dir, open_app, workstation, catalog_hub):
    window = open_app(drafting_dir)
    offers = []
    window.library.draft_offered.connect(lambda request, text: offers.append(text))
    settled(qtbot, window)
    download(qtbot, window, catalog_hub["r1-distill-qwen-32b"])
    assert len(offers) == 1 and offers[0].startswith("R1-Distill-Qwen-32B answers faster when R1-Distill-Qwen-1.5B")
    qtbot.waitUntil(lambda: window.client.info is not None, timeout=LOAD_TIMEOUT_MS)
    download(qtbot, window, catalog_hub["r1-distill-qwen-14b"])  # paired with the same 1.5B, still not downloaded
    assert len(offers) == 1
    assert not (drafting_dir / "models" / DRAFT_FILE).exists()


def test_the_welcome_page_says_what_the_chosen_model_uses_with_its_draft(qtbot, drafting_dir, open_app, workstation):
    window = open_app(drafting_dir)
    settled(qtbot, window)
    setup = window.welcome.setup
    setup.select("r1-distill-qwen-32b")
    p = setup.selected.plan
    assert setup.reason.text().endswith(f" It uses about {memory(p)} (the 1.5B draft would add "
                                        f"{draft_memory(workstation, 'r1-distill-qwen-1.5b', p.n_ctx)})."), setup.reason.text()
    setup.select("r1-distill-qwen-7b")
    assert "draft" not in setup.reason.text()


def test_cancel_on_the_welcome_page_gives_a_load_up(qtbot, drafting_dir, open_app, scripted_model, slow_draft):
    target = put(drafting_dir, scripted_model("standard_r1"), TARGET_FILE)
    put(drafting_dir, scripted_model("standard_r1"), DRAFT_FILE)
    window = open_app(drafting_dir)
    window.models.load(target)
    qtbot.waitUntil(lambda: window.welcome.message.text() == "Loading draft 1.5B…", timeout=LOAD_TIMEOUT_MS)
    click(qtbot, window.welcome.cancel_load_button)
    assert not window.client.loading and window.client.info is None
    assert window.welcome.message.text().startswith("Loading was cancelled.")
    slow_draft.set()
    qtbot.waitUntil(lambda: not window.client.uses_file(target), timeout=LOAD_TIMEOUT_MS)
    assert window.client.info is None
