"""The models on this computer and in the catalog: what fits, what is downloaded, what runs.

- `survey()` (plain data, no Qt, runs on a worker thread): the hardware, the recommendation,
  the downloaded models with a fit badge planned from each GGUF's own metadata, and the
  partial downloads that can resume. It needs no network.
- `ModelLibrary` (GUI thread): owns the downloads, the latest survey, imports and deletes.
  The welcome page and the manager dialog are views of it.
- `ModelManagerDialog`: downloaded models (load, delete), partial downloads (resume,
  discard) and catalog models to download, each with its fit badge for this machine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.catalog import Catalog, CatalogModel, Quant, load_catalog
from app.core.downloads import (
    Progress, format_bytes, import_local_gguf, local_models, model_parts, partial_downloads,
)
from app.core.errors import PonderError
from app.core.hardware import HardwareInfo, probe
from app.core.modelfile import inspect_gguf
from app.core.sizing import (
    MIN_TOKENS_PER_S, TARGET_N_CTX, Plan, Recommendation, best_placement, format_speed, recommend,
)
from app.ui import theme
from app.ui.download_task import DownloadRequest, Downloads, run_in_background

log = logging.getLogger(__name__)

FIT_LABELS = {"fits": "fits", "partial": "partial offload", "too_big": "too big"}
FIT_TIPS = {
    "fits": "Runs entirely on the GPU (or in RAM on a computer without one) with room for a long reasoning context.",
    "partial": "Runs, but part of it on the CPU, which is slower.",
    "too_big": "Needs more memory than this computer has.",
}
# Green is not among the theme's colours; the others (warn, error) are.
_FITS_COLORS = {False: ("#dafbe1", "#116329"), True: ("#1c3d2a", "#7ee2a0")}


# ---------------------------------------------------------------------------------------------
# survey: plain data, computed off the GUI thread


@dataclass
class LocalModel:
    """A complete model in the models folder."""

    path: Path  # the file llama.cpp opens (first part of a split model)
    size_bytes: int  # all parts
    name: str
    quant: str
    plan: Plan | None  # None when the file is not a usable GGUF
    error: str | None = None  # why it is not usable

    @property
    def fit(self) -> str | None:
        return self.plan.fit if self.plan is not None else None


@dataclass
class PartialDownload:
    """A download that stopped part way; starting it again resumes it."""

    request: DownloadRequest
    downloaded: int  # bytes on disk, all parts together
    total: int


@dataclass
class MachineSurvey:
    hardware: HardwareInfo
    catalog: Catalog | None
    recommendation: Recommendation | None
    catalog_error: str | None  # the CatalogError sentence when models.json is unusable
    local: list[LocalModel] = field(default_factory=list)
    partials: list[PartialDownload] = field(default_factory=list)
    n_ctx: int = TARGET_N_CTX
    started_at: float = 0.0  # time.monotonic() when it began: a newer survey wins
    seconds: float = 0.0  # how long it took

    def local_model(self, request: DownloadRequest) -> LocalModel | None:
        first = request.file_names[0]
        return next((m for m in self.local if m.path.name == first), None)

    def partial(self, request: DownloadRequest) -> PartialDownload | None:
        return next((p for p in self.partials if p.request.files == request.files), None)

    def catalog_plan(self, model: CatalogModel, quant: Quant) -> Plan:
        return plan_catalog_quant(self.hardware, model, quant)


def survey(models_dir: Path, n_ctx: int, hardware: HardwareInfo | None = None,
           catalog_path: Path | None = None) -> MachineSurvey:
    """Everything the welcome page and the manager show, without any network access.
    `hardware`: a probe from earlier (a loaded model takes GPU memory a new probe would miss)."""
    started = time.monotonic()
    hw = hardware if hardware is not None else probe()
    catalog, rec, catalog_error = None, None, None
    try:
        catalog = load_catalog(catalog_path)
        rec = recommend(hw, catalog)
    except PonderError as exc:
        catalog_error = str(exc)
    local = [_local_model(path, hw, n_ctx, catalog) for path in local_models(models_dir)]
    result = MachineSurvey(hardware=hw, catalog=catalog, recommendation=rec, catalog_error=catalog_error,
                           local=local, partials=_partials(Path(models_dir), catalog), n_ctx=n_ctx,
                           started_at=started)
    result.seconds = time.monotonic() - started
    return result


def plan_catalog_quant(hw: HardwareInfo, model: CatalogModel, quant: Quant) -> Plan:
    """How a catalog file would run here, as the recommendation plans it: a 16k context (up to
    the model's own), f16 KV unless an 8-bit cache puts more layers on the GPU."""
    return best_placement(model, hw=hw, quant=quant, n_ctx=min(TARGET_N_CTX, model.architecture.n_ctx_train))


def _local_model(path: Path, hw: HardwareInfo, n_ctx: int, catalog: Catalog | None) -> LocalModel:
    size = sum(p.stat().st_size for p in model_parts(path) if p.is_file())
    try:
        summary = inspect_gguf(path)
    except PonderError as exc:
        return LocalModel(path, size, path.stem, "", None, str(exc))
    # Planned as the engine will load it: the context from the settings, KV type chosen as the engine does.
    p = best_placement(summary, hw=hw, n_ctx=min(n_ctx, summary.n_ctx_train))
    known = catalog.find_file(path.name) if catalog is not None else None
    name = known[0].short_name if known else summary.name
    return LocalModel(path, summary.file_size, name, known[1].name if known else p.quant, p)


def _partials(models_dir: Path, catalog: Catalog | None) -> list[PartialDownload]:
    """Downloads that stopped part way, grouped into the models they belong to."""
    found: dict[tuple[str, ...], PartialDownload] = {}
    for partial in partial_downloads(models_dir):
        repo, filename, size = partial.repo_id, partial.filename, partial.size
        known = catalog.find_file(filename) if catalog is not None else None
        if known:
            request = DownloadRequest.for_catalog(*known)
        else:
            name = filename.rsplit("/", 1)[-1]
            request = DownloadRequest(repo=repo, files=(filename,), label=name, size_bytes=size)
        if request.files in found:
            continue
        done = 0
        for name in request.file_names:
            whole, part = models_dir / name, models_dir / f"{name}.part"
            done += whole.stat().st_size if whole.is_file() else part.stat().st_size if part.is_file() else 0
        found[request.files] = PartialDownload(request, done, request.size_bytes or size)
    return list(found.values())


# ---------------------------------------------------------------------------------------------
# words


def describe_plan(p: Plan) -> str:
    """Where a model would run and how fast: 'all on the GPU · ~60 tokens/s'."""
    if p.fit == "too_big":
        return f"needs about {format_bytes(p.gpu_bytes + p.ram_bytes)} of memory"
    if p.placement == "gpu":
        where = "all on the GPU"
    elif p.placement == "split":
        where = f"{p.n_gpu_layers} of {p.n_layers + 1} layers on the GPU"
    else:
        where = "on the CPU"
    slow = " (slow)" if p.expected_tokens_per_s < MIN_TOKENS_PER_S else ""
    return f"{where} · ~{format_speed(p.expected_tokens_per_s)} tokens/s{slow}"


def speed_text(p: Plan) -> str:
    """The short form, for a column: '~60 tokens/s', '~2.8 tokens/s (slow)', 'needs 224.1 GB'."""
    if p.fit == "too_big":
        return f"needs {format_bytes(p.gpu_bytes + p.ram_bytes)}"
    slow = " (slow)" if p.expected_tokens_per_s < MIN_TOKENS_PER_S else ""
    return f"~{format_speed(p.expected_tokens_per_s)} tokens/s{slow}"


def hardware_text(hw: HardwareInfo) -> str:
    """Two lines: what the computer has, and whether this llama.cpp build can use a GPU."""
    summary = hw.summary().replace(" · llama.cpp without GPU support", "")  # said on the next line
    if hw.gpu_offload_supported is None:
        support = "Could not check whether this llama.cpp build can use a GPU."
    elif hw.gpu_offload_supported:
        support = "This llama.cpp build can run models on the GPU."
    elif hw.gpus:
        support = "This llama.cpp build runs models on the CPU only, so the GPU is not used."
    else:
        support = "This llama.cpp build runs models on the CPU only."
    return f"This computer: {summary}\n{support}"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60} min left"


def progress_text(p: Progress) -> str:
    """'340.0 MB of 1.1 GB · 12.3 MB/s · about 1 min left'."""
    if p.stage == "checking":
        return f"Checking the {format_bytes(p.downloaded)} downloaded before…"
    parts = [f"{format_bytes(p.downloaded)} of {format_bytes(p.total)}"]
    if p.speed_bps > 0:
        parts.append(f"{format_bytes(p.speed_bps)}/s")
    if p.eta_s is not None and p.downloaded < p.total:
        parts.append(format_eta(p.eta_s))
    return " · ".join(parts)


def same_file(a: str | Path | None, b: str | Path | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the library (GUI thread)


class ModelLibrary(QObject):
    """What the app knows about models, and the actions on them.

    Signals:
      survey_changed(MachineSurvey): a new survey (after start, download, import, delete).
      active_changed(): a model loaded or unloaded (views mark the active one).
      load_requested(str path): a download or import finished; the window loads it.
      import_started(str name), problem(str message): an import/delete failed, as a sentence.
      deleted(str path): a model's files were deleted.
    """

    survey_changed = Signal(object)
    active_changed = Signal()
    load_requested = Signal(str)
    import_started = Signal(str)
    problem = Signal(str)
    deleted = Signal(str)

    def __init__(self, models_dir: Path, client, settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models_dir = Path(models_dir)
        self.client = client
        self.settings = settings
        self.downloads = Downloads(self.models_dir, self)
        self.survey: MachineSurvey | None = None
        self.loading_path: str | None = None
        self._hardware: HardwareInfo | None = None  # probed once, before a model takes GPU memory
        self._pending_delete: Path | None = None
        self._surveys_running = 0
        self.downloads.finished.connect(self._on_download_finished)
        self.downloads.failed.connect(self._on_download_ended)
        self.downloads.cancelled.connect(self._on_download_ended)
        client.load_started.connect(self._on_load_started)
        client.loaded.connect(self._on_active_changed)
        client.load_failed.connect(self._on_active_changed)
        client.unloaded.connect(self._on_unloaded)

    # --- state ----------------------------------------------------------------------

    @property
    def active_path(self) -> Path | None:
        info = self.client.info
        return Path(info.path) if info is not None else None

    def is_active(self, path: Path) -> bool:
        return same_file(self.active_path, path)

    def is_loading(self, path: Path) -> bool:
        return self.client.loading and same_file(self.loading_path, path)

    @property
    def refreshing(self) -> bool:
        """A survey is running; `survey` is about to change."""
        return self._surveys_running > 0

    # --- survey ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Survey again on a worker thread; `survey_changed` follows."""
        self._surveys_running += 1
        run_in_background(survey, self.models_dir, self.settings.n_ctx, self._hardware,
                          on_done=self._on_survey, on_failed=self._on_survey_failed)

    @Slot(str)
    def _on_survey_failed(self, message: str) -> None:
        self._surveys_running -= 1
        self.problem.emit(message)

    @Slot(object)
    def _on_survey(self, result: MachineSurvey) -> None:
        self._surveys_running -= 1
        if self.survey is not None and result.started_at < self.survey.started_at:
            return  # an older survey finished after a newer one
        self._hardware = result.hardware
        self.survey = result
        log.debug("model survey took %.0f ms", result.seconds * 1000)
        self.survey_changed.emit(result)

    # --- actions --------------------------------------------------------------------

    def start_download(self, request: DownloadRequest) -> bool:
        """Download (or resume) a model; False while another download runs."""
        return self.downloads.start(request)

    def import_file(self, src: str | Path) -> None:
        """Validate a GGUF and place it in the models folder (hard link or copy, on a worker
        thread); then `load_requested`, or `problem` with the reason it was refused."""
        self.import_started.emit(Path(src).name)
        run_in_background(import_local_gguf, Path(src), self.models_dir,
                          on_done=self._on_imported, on_failed=self.problem)

    def delete_model(self, path: str | Path) -> None:
        """Delete a model's files (every part). The active model is unloaded first."""
        path = Path(path)
        if self.is_loading(path):
            self.problem.emit(f"{path.name} is loading; wait until it has loaded, then delete it.")
            return
        if self.is_active(path):
            self._pending_delete = path
            self.client.unload()  # deleted on `unloaded`: an open file cannot be removed everywhere
            return
        self._delete_files(path)

    def discard_partial(self, request: DownloadRequest) -> None:
        if self.downloads.current == request:
            self.problem.emit(f"{request.label} is downloading; cancel it first.")
            return
        for name in request.file_names:
            for leftover in (f"{name}.part", f"{name}.part.json"):
                (self.models_dir / leftover).unlink(missing_ok=True)
        self.refresh()

    def shutdown(self) -> None:
        self.downloads.shutdown()

    def _delete_files(self, path: Path) -> None:
        try:
            for part in model_parts(path):
                part.unlink(missing_ok=True)
        except OSError as exc:
            self.problem.emit(f"Could not delete {path.name}: {exc.strerror or exc}.")
        else:
            self.deleted.emit(str(path))
        self.refresh()

    # --- reports --------------------------------------------------------------------

    @Slot(object, str)
    def _on_download_finished(self, _request: DownloadRequest, path: str) -> None:
        self.refresh()
        self.load_requested.emit(path)

    @Slot(object, str)
    def _on_download_ended(self, _request: DownloadRequest, _message: str) -> None:
        self.refresh()  # the partial file is listed as resumable

    @Slot(object)
    def _on_imported(self, path: Path) -> None:
        self.refresh()
        self.load_requested.emit(str(path))

    @Slot(str)
    def _on_load_started(self, path: str) -> None:
        self.loading_path = path
        self.active_changed.emit()

    @Slot()
    def _on_active_changed(self, *_args) -> None:
        self.active_changed.emit()

    @Slot()
    def _on_unloaded(self) -> None:
        pending, self._pending_delete = self._pending_delete, None
        self.active_changed.emit()
        if pending is not None:
            self._delete_files(pending)


# ---------------------------------------------------------------------------------------------
# widgets


class FitBadge(QLabel):
    """'fits' / 'partial offload' / 'too big'. Coloured by `badge_css` in the enclosing
    page's stylesheet, through the `fit` property."""

    def __init__(self, fit: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fitBadge")
        self.fit: str | None = None
        self.set_fit(fit)

    def set_fit(self, fit: str | None) -> None:
        self.fit = fit
        self.setText(FIT_LABELS.get(fit, ""))
        self.setToolTip(FIT_TIPS.get(fit, ""))
        self.setProperty("fit", fit or "")
        self.style().unpolish(self)  # a property selector is matched only when polished
        self.style().polish(self)
        if fit is None:
            self.hide()
        elif self.parentWidget() is not None:  # show() on a parentless widget would open a window
            self.show()


def library_css(c: theme.Colors) -> str:
    """Looks shared by the welcome page and the manager: badges, download progress, dim text."""
    fits_bg, fits_fg = _FITS_COLORS[c.dark]
    return f"""
QLabel[dim="true"] {{ color: {c.text_dim}; }}
#downloadError {{ color: {c.error_text}; }}
QProgressBar#downloadProgress {{ background-color: {c.border}; border: none; border-radius: 4px; }}
QProgressBar#downloadProgress::chunk {{ background-color: {c.accent}; border-radius: 4px; }}
#fitBadge {{ border-radius: 8px; padding: 1px 8px; font-size: {theme.BASE_FONT_PX - 2}px; font-weight: 600; }}
#fitBadge[fit="fits"] {{ background-color: {fits_bg}; color: {fits_fg}; }}
#fitBadge[fit="partial"] {{ background-color: {c.warn_bg}; color: {c.warn_text}; }}
#fitBadge[fit="too_big"] {{ background-color: {c.error_bg}; color: {c.error_text}; }}
"""


class DownloadProgressRow(QWidget):
    """A progress bar, 'x of y · speed · time left', and Cancel."""

    def __init__(self, downloads: Downloads, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.bar = QProgressBar(objectName="downloadProgress")
        self.bar.setTextVisible(False)
        self.bar.setRange(0, 0)
        self.bar.setMaximumHeight(8)
        self.status = QLabel(objectName="downloadStatus")
        self.status.setProperty("dim", True)
        self.cancel_button = QPushButton("Cancel", objectName="cancelDownloadButton")
        self.cancel_button.setToolTip("Stop the download; what has arrived is kept and the download can resume.")
        self.cancel_button.clicked.connect(self._on_cancel)
        text_row = QHBoxLayout()
        text_row.setContentsMargins(0, 0, 0, 0)
        text_row.addWidget(self.status, 1)
        text_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.bar)
        layout.addLayout(text_row)

    def start(self, request: DownloadRequest) -> None:
        self.bar.setRange(0, 0)  # busy until the first report (the hub's answer takes a moment)
        self.status.setText(f"Connecting to download {request.label}…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")

    def show_progress(self, p: Progress) -> None:
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * p.downloaded / p.total))
        self.status.setText(progress_text(p))

    @Slot()
    def _on_cancel(self) -> None:
        self.downloads.cancel()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Stopping…")


def _dim(text: str = "", name: str | None = None) -> QLabel:
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setProperty("dim", True)
    label.setWordWrap(True)
    return label


class _LocalRow(QFrame):
    def __init__(self, model: LocalModel, library: ModelLibrary, dialog: ModelManagerDialog) -> None:
        super().__init__(objectName="localModelRow")
        self.model = model
        self.title = QLabel(f"<b>{_html(model.name)}</b>" + (f" · {model.quant}" if model.quant else ""))
        self.title.setTextFormat(Qt.TextFormat.RichText)
        detail = f"{format_bytes(model.size_bytes)} · {model.path.name}"
        if model.plan is not None:
            detail += f" · {describe_plan(model.plan)}"
        self.detail = _dim(detail)
        self.detail.setToolTip(str(model.path))
        self.error = QLabel(model.error or "", objectName="modelError")
        self.error.setWordWrap(True)
        if model.error is None:
            self.error.hide()
        self.badge = FitBadge(model.fit)
        self.active_label = QLabel("in use", objectName="activeBadge")
        self.load_button = QPushButton("Load", objectName="loadModelButton")
        self.delete_button = QPushButton("Delete…", objectName="deleteModelButton")
        self.load_button.clicked.connect(self._on_load)
        self.delete_button.clicked.connect(self._on_delete)
        self.dialog = dialog
        self.library = library
        _row_layout(self, [self.title, self.detail, self.error], [self.badge, self.active_label, self.load_button,
                                                                   self.delete_button])
        self.update_state()

    def update_state(self) -> None:
        active = self.library.is_active(self.model.path)
        loading = self.library.is_loading(self.model.path)
        usable = self.model.error is None
        self.active_label.setVisible(active)
        self.load_button.setVisible(usable and not active)
        self.load_button.setEnabled(not self.library.client.loading)
        self.load_button.setText("Loading…" if loading else "Load")
        self.delete_button.setEnabled(not loading)

    @Slot()
    def _on_load(self) -> None:
        self.dialog.load_requested.emit(str(self.model.path))

    @Slot()
    def _on_delete(self) -> None:
        if self.dialog.confirm_delete(self.model, self.library.is_active(self.model.path)):
            self.library.delete_model(self.model.path)


class _PartialRow(QFrame):
    def __init__(self, partial: PartialDownload, library: ModelLibrary) -> None:
        super().__init__(objectName="partialDownloadRow")
        self.partial = partial
        self.library = library
        self.title = QLabel(f"<b>{_html(partial.request.label)}</b>")
        self.detail = _dim(f"{format_bytes(partial.downloaded)} of {format_bytes(partial.total)} downloaded")
        self.resume_button = QPushButton("Resume", objectName="resumeDownloadButton")
        self.discard_button = QPushButton("Discard", objectName="discardDownloadButton")
        self.resume_button.clicked.connect(self._on_resume)
        self.discard_button.clicked.connect(self._on_discard)
        _row_layout(self, [self.title, self.detail], [self.resume_button, self.discard_button])
        self.update_state()

    def update_state(self) -> None:
        running = self.library.downloads.current is not None
        self.resume_button.setEnabled(not running)
        self.discard_button.setEnabled(self.library.downloads.current != self.partial.request)

    @Slot()
    def _on_resume(self) -> None:
        self.library.start_download(self.partial.request)

    @Slot()
    def _on_discard(self) -> None:
        self.library.discard_partial(self.partial.request)


class _CatalogRow(QFrame):
    """A catalog model: a quantisation to pick, its size and fit here, and Download."""

    def __init__(self, model: CatalogModel, quant: Quant, library: ModelLibrary) -> None:
        super().__init__(objectName="catalogModelRow")
        self.model = model
        self.library = library
        self.title = QLabel(f"<b>{_html(model.short_name)}</b>")
        self.title.setToolTip(model.description)
        self.description = _dim(model.description)
        self.description.setWordWrap(True)
        self.detail = _dim()
        self.quant_box = QComboBox(objectName="quantChoice")
        for q in model.quants:
            self.quant_box.addItem(q.name, q.name)
        self.quant_box.setCurrentIndex(model.quants.index(quant))
        self.quant_box.setToolTip("Quantisation: fewer bits are smaller and faster, more bits answer better.")
        self.quant_box.currentIndexChanged.connect(self.update_state)
        self.badge = FitBadge()
        self.download_button = QPushButton("Download", objectName="downloadModelButton")
        self.download_button.clicked.connect(self._on_download)
        self.progress = DownloadProgressRow(library.downloads)
        self.progress.hide()
        self.error = QLabel(objectName="downloadError")
        self.error.setWordWrap(True)
        self.error.hide()
        _row_layout(self, [self.title, self.description, self.detail],
                    [self.quant_box, self.badge, self.download_button], below=[self.progress, self.error])
        self.update_state()

    @property
    def quant(self) -> Quant:
        return self.model.quant(self.quant_box.currentData())

    @property
    def request(self) -> DownloadRequest:
        return DownloadRequest.for_catalog(self.model, self.quant)

    @Slot()
    def update_state(self, *_args) -> None:
        survey_ = self.library.survey
        request = self.request
        p = survey_.catalog_plan(self.model, self.quant) if survey_ else None
        self.badge.set_fit(p.fit if p else None)
        detail = format_bytes(self.quant.size_bytes)
        if p is not None:
            detail += f" · {describe_plan(p)}"
        self.detail.setText(detail)
        downloading = self.library.downloads.current == request
        downloaded = survey_ is not None and survey_.local_model(request) is not None
        partial = survey_.partial(request) if survey_ else None
        self.progress.setVisible(downloading)
        self.download_button.setVisible(not downloading)
        if downloaded:
            self.download_button.setText("Downloaded")
        elif partial is not None:
            self.download_button.setText("Resume")
        else:
            self.download_button.setText("Download")
        too_big = p is not None and p.fit == "too_big"
        self.download_button.setEnabled(not downloaded and not too_big and self.library.downloads.current is None)
        self.download_button.setToolTip(FIT_TIPS["too_big"] if too_big and not downloaded else "")

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))

    @Slot()
    def _on_download(self) -> None:
        self.show_error(None)
        self.library.start_download(self.request)


def _row_layout(row: QFrame, left: list[QWidget], right: list[QWidget], below: list[QWidget] = ()) -> None:
    text = QVBoxLayout()
    text.setSpacing(2)
    for widget in left:
        text.addWidget(widget)
    top = QHBoxLayout()
    top.setSpacing(8)
    top.addLayout(text, 1)
    for widget in right:
        top.addWidget(widget, 0, Qt.AlignmentFlag.AlignVCenter)
    layout = QVBoxLayout(row)
    layout.setContentsMargins(10, 8, 10, 8)
    layout.setSpacing(6)
    layout.addLayout(top)
    for widget in below:
        layout.addWidget(widget)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ModelManagerDialog(QDialog):
    """Downloaded models, partial downloads and the catalog, for this machine.

    Signals: load_requested(str path), import_requested()
    """

    load_requested = Signal(str)
    import_requested = Signal()

    def __init__(self, library: ModelLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelManager")
        self.library = library
        self.local_rows: dict[Path, _LocalRow] = {}
        self.partial_rows: dict[tuple[str, ...], _PartialRow] = {}
        self.catalog_rows: dict[str, _CatalogRow] = {}
        self._quant_choices: dict[str, str] = {}  # kept when the rows are rebuilt

        self.hardware = _dim("Checking this computer…", "hardwareSummary")
        self.hardware.setWordWrap(True)
        self.notice = QLabel(objectName="managerNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.content = QWidget(objectName="managerContent")
        self._content_layout = QVBoxLayout(self.content)
        self._content_layout.setContentsMargins(0, 0, 8, 0)
        self._content_layout.setSpacing(6)
        scroll = QScrollArea(objectName="managerScroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows wrap their text
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.content)

        self.import_button = QPushButton("Import a GGUF file…", objectName="importModelButton")
        self.import_button.clicked.connect(self.import_requested)
        self.models_folder = _dim(f"Models folder: {library.models_dir}")
        self.models_folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Close", objectName="closeManagerButton")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.models_folder, 1)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(self.hardware)
        layout.addWidget(self.notice)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.resize(820, 640)
        self._apply_colors()

        library.survey_changed.connect(self.set_survey)
        library.active_changed.connect(self._update_rows)
        library.problem.connect(self._show_problem)
        d = library.downloads
        d.started.connect(self._on_download_started)
        d.progress.connect(self._on_download_progress)
        d.failed.connect(self._on_download_failed)
        d.cancelled.connect(self._on_download_cancelled)
        d.finished.connect(self._on_download_finished)
        if library.survey is not None:
            self.set_survey(library.survey)

    # --- content --------------------------------------------------------------------

    @Slot(object)
    def set_survey(self, result: MachineSurvey) -> None:
        self.hardware.setText(hardware_text(result.hardware))
        while self._content_layout.count():
            item = self._content_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.local_rows, self.partial_rows, self.catalog_rows = {}, {}, {}

        self._section("On this computer")
        if not result.local:
            self._content_layout.addWidget(_dim("No models downloaded yet.", "noLocalModels"))
        for model in result.local:
            row = _LocalRow(model, self.library, self)
            self.local_rows[model.path] = row
            self._content_layout.addWidget(row)

        if result.partials:
            self._section("Partial downloads")
            for partial in result.partials:
                row = _PartialRow(partial, self.library)
                self.partial_rows[partial.request.files] = row
                self._content_layout.addWidget(row)

        self._section("Available to download")
        if result.catalog_error:
            error = QLabel(result.catalog_error, objectName="catalogError")
            error.setWordWrap(True)
            self._content_layout.addWidget(error)
        elif result.recommendation is not None and result.catalog is not None:
            for alternative in result.recommendation.alternatives:
                model = result.catalog.get(alternative.model_id)
                quant = self._quant_choices.get(model.id, alternative.plan.quant)
                row = _CatalogRow(model, model.quant(quant), self.library)
                row.quant_box.currentTextChanged.connect(self._remember_quants)
                self.catalog_rows[model.id] = row
                self._content_layout.addWidget(row)
        self._content_layout.addStretch(1)
        self._apply_colors()
        current = self.library.downloads.current
        if current is not None:
            self._on_download_started(current)
            if self.library.downloads.last_progress is not None:
                self._on_download_progress(current, self.library.downloads.last_progress)

    @Slot()
    def _remember_quants(self, *_args) -> None:
        self._quant_choices = {model_id: row.quant.name for model_id, row in self.catalog_rows.items()}

    def _section(self, title: str) -> None:
        label = QLabel(title, objectName="managerSection")
        self._content_layout.addSpacing(6)
        self._content_layout.addWidget(label)

    def _catalog_row(self, request: DownloadRequest) -> _CatalogRow | None:
        row = self.catalog_rows.get(request.model_id or "")
        return row if row is not None and row.request == request else None

    @Slot()
    def _update_rows(self) -> None:
        for row in [*self.local_rows.values(), *self.partial_rows.values(), *self.catalog_rows.values()]:
            row.update_state()

    def confirm_delete(self, model: LocalModel, active: bool) -> bool:
        text = f"Delete {model.name} ({format_bytes(model.size_bytes)}) from this computer?"
        if active:
            text += " It is the model in use; it will be unloaded first."
        answer = QMessageBox.question(self, "Delete model", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    # --- downloads ------------------------------------------------------------------

    @Slot(object)
    def _on_download_started(self, request: DownloadRequest) -> None:
        self._show_problem(None)
        self._update_rows()
        row = self._catalog_row(request)
        if row is None:  # a resumed partial, or one started with another quantisation on show
            row = self.catalog_rows.get(request.model_id or "")
            if row is not None and request.quant:
                row.quant_box.setCurrentIndex(row.quant_box.findData(request.quant))
        if row is not None:
            row.progress.start(request)
            row.update_state()

    @Slot(object, object)
    def _on_download_progress(self, request: DownloadRequest, progress: Progress) -> None:
        row = self._catalog_row(request)
        if row is not None:
            row.progress.show_progress(progress)

    @Slot(object, str)
    def _on_download_failed(self, request: DownloadRequest, message: str) -> None:
        row = self._catalog_row(request)
        if row is not None:
            row.show_error(message)
        else:
            self._show_problem(message)
        self._update_rows()

    @Slot(object, str)
    def _on_download_cancelled(self, request: DownloadRequest, _message: str) -> None:
        self._update_rows()

    @Slot(object, str)
    def _on_download_finished(self, _request: DownloadRequest, _path: str) -> None:
        self._update_rows()

    @Slot(str)
    def _show_problem(self, message: str | None) -> None:
        self.notice.setText(message or "")
        self.notice.setVisible(bool(message))

    # --- looks ----------------------------------------------------------------------

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()

    def _apply_colors(self) -> None:
        c = theme.colors_for(self)
        self.setStyleSheet(f"""
#managerSection {{ font-weight: 600; font-size: {theme.BASE_FONT_PX + 1}px; }}
#localModelRow, #partialDownloadRow, #catalogModelRow {{ border: 1px solid {c.border}; border-radius: 8px; }}
#managerScroll, #managerContent {{ background: transparent; }}
#activeBadge {{ color: {c.accent_text}; background-color: {c.accent}; border-radius: 8px; padding: 1px 8px;
               font-size: {theme.BASE_FONT_PX - 2}px; font-weight: 600; }}
#modelError, #catalogError {{ color: {c.error_text}; }}
#managerNotice {{ color: {c.error_text}; background-color: {c.error_bg}; border-radius: 6px; padding: 6px 8px; }}
{library_css(c)}""")

