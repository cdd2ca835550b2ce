"""`ModelLibrary`: what the window knows about models, and the actions on them (GUI thread).

It owns the downloads (app/ui/downloads.py) and the latest survey of this computer
(app/core/survey.py), runs imports and deletes, and says when a model should be loaded.
The welcome page (app/ui/welcome.py) and the manager dialog (app/ui/model_manager.py) are
views of it; the window loads what it asks for.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.core.catalog import CatalogModel
from app.core.downloads import SHA256_SUFFIX, import_local_gguf, model_parts
from app.core.hardware import HardwareInfo
from app.core.draft_plan import DraftPlan, plan_with_draft
from app.core.paths import same_file
from app.core.sizing import Plan
from app.core.survey import DownloadRequest, MachineSurvey, survey
from app.core.wording import header_differences_text
from app.ui.background import run_in_background
from app.ui.downloads import Downloads

log = logging.getLogger(__name__)


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
    draft_offered = Signal(object, str)  # (DownloadRequest, sentence): the downloaded model's draft pair
    draft_ready = Signal(str, str)  # (path, sentence): an offered draft is downloaded (not loaded as the chat model)

    def __init__(self, models_dir: Path, client, settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models_dir = Path(models_dir)
        self.client = client
        self.settings = settings
        self.downloads = Downloads(self.models_dir, self)
        self.survey: MachineSurvey | None = None
        self._hardware: HardwareInfo | None = None  # probed once, before a model takes GPU memory
        self._pending_delete: Path | None = None
        self._surveys_running = 0
        # Drafts offered this session (DownloadRequest -> the model's name): each is offered once, and
        # its download, when done, is not loaded as the chat model (it drafts for that model).
        self._offered_drafts: dict[DownloadRequest, str] = {}
        self.downloads.finished.connect(self._on_download_finished)
        self.downloads.planned.connect(self._on_download_planned)
        self.downloads.failed.connect(self._on_download_ended)
        self.downloads.cancelled.connect(self._on_download_ended)
        client.load_started.connect(self._on_load_started)
        client.loaded.connect(self._on_active_changed)
        client.load_failed.connect(self._on_active_changed)
        client.load_cancelled.connect(self._on_active_changed)
        client.unloaded.connect(self._on_unloaded)

    # --- state ----------------------------------------------------------------------

    @property
    def active_path(self) -> Path | None:
        info = self.client.info
        return Path(info.path) if info is not None and info.path is not None else None  # None: a remote engine

    def is_active(self, path: Path) -> bool:
        return same_file(self.active_path, path)

    def is_loading(self, path: Path) -> bool:
        return same_file(self.client.loading_path, path)

    def draft_plan(self, plan: Plan | None, model: CatalogModel | None) -> DraftPlan | None:
        """`plan` with the draft the catalog pairs with `model` beside it, while drafting is on
        (app/core/draft_plan.py); None without a pair, with drafting off or before a survey."""
        s = self.survey
        if plan is None or s is None or self.settings.draft == "off":
            return None
        return plan_with_draft(plan, model, s.catalog, self.models_dir, s.hardware)

    def catalog_model_of(self, path: Path) -> CatalogModel | None:
        """The catalog entry a downloaded file belongs to (by name), as the survey's catalog knows it."""
        catalog = self.survey.catalog if self.survey is not None else None
        known = catalog.find_file(Path(path).name) if catalog is not None else None
        return known[0] if known else None

    @property
    def refreshing(self) -> bool:
        """A survey is running; `survey` is about to change."""
        return self._surveys_running > 0

    # --- survey ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Survey again on a worker thread; `survey_changed` follows."""
        models_dir, n_ctx, hardware = self.models_dir, self.settings.n_ctx, self._hardware
        self._surveys_running += 1
        run_in_background(lambda _job: survey(models_dir, n_ctx, hardware), owner=self,
                          on_done=self._on_survey, on_failed=self._on_survey_failed, name="the model survey")

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
        """Download (or resume) a model; False while another download runs. Planned from the file's
        header first, for the hardware the survey probed: what will not fit is refused before the transfer."""
        catalog = self.survey.catalog if self.survey is not None else None
        entry = next((m for m in catalog if m.id == request.model_id), None) if catalog and request.model_id else None
        return self.downloads.start(request, hardware=self._hardware, catalog_model=entry)

    def import_file(self, src: str | Path) -> None:
        """Validate a GGUF and place it in the models folder (hard link or copy, on a worker
        thread); then `load_requested`, or `problem` with the reason it was refused."""
        src, models_dir = Path(src), self.models_dir
        self.import_started.emit(src.name)
        run_in_background(lambda _job: import_local_gguf(src, models_dir), owner=self,
                          on_done=self._on_imported, on_failed=self.problem.emit, name=f"the import of {src.name}")

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
        if self.client.uses_file(path):  # a load that a newer one replaced has not let go of it yet
            self.problem.emit(f"{path.name} is still being closed; try deleting it again in a moment.")
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
        """The app is closing: a running download stops (its part file resumes next time)."""
        self.downloads.shutdown()

    def _delete_files(self, path: Path) -> None:
        try:
            for part in model_parts(path):
                part.unlink(missing_ok=True)
                part.with_name(part.name + SHA256_SUFFIX).unlink(missing_ok=True)  # its verified hash
        except OSError as exc:
            self.problem.emit(f"Could not delete {path.name}: {exc.strerror or exc}.")
        else:
            self.deleted.emit(str(path))
        self.refresh()

    # --- reports --------------------------------------------------------------------

    @Slot(object, str)
    def _on_download_finished(self, request: DownloadRequest, path: str) -> None:
        self.refresh()
        if request in self._offered_drafts:  # a draft: it loads beside its model, not in its place
            self.draft_ready.emit(path, f"{request.label} is downloaded: it drafts for "
                                        f"{self._offered_drafts[request]} from its next load.")
            return
        self.load_requested.emit(path)
        from app.core.speculative import draft_offer

        offer = draft_offer(request.model_id, self.models_dir)  # a 14B/32B/70B: its small draft model
        if offer is not None and offer[0] not in self._offered_drafts:  # once a session: no nagging
            self._offered_drafts[offer[0]] = request.label.removesuffix(f" {request.quant}")
            self.draft_offered.emit(*offer)

    @Slot(object, object)
    def _on_download_planned(self, _request: DownloadRequest, planned) -> None:
        if text := header_differences_text(planned.label, planned.differences):
            self.problem.emit(text)  # the catalog was wrong about the file: say so while it downloads

    @Slot(object, str)
    def _on_download_ended(self, _request: DownloadRequest, _message: str) -> None:
        self.refresh()  # the partial file is listed as resumable

    @Slot(object)
    def _on_imported(self, path: Path) -> None:
        self.refresh()
        self.load_requested.emit(str(path))

    @Slot(str)
    def _on_load_started(self, _path: str) -> None:
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
