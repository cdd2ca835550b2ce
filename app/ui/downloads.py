"""The app's model downloads, one at a time, as background jobs (app/ui/background.py).

`app.core.downloads.download_model` does the work on the download lane; its progress, its
end and a cancel cross to the GUI thread as the signals of `Downloads`, carrying plain data
(DownloadRequest, Progress, str). Errors arrive as the DownloadError's sentence.

Given this computer's hardware (the survey's probe: a new one on the GUI thread would stall it,
and a loaded model's GPU memory would look taken), a download first reads the model's GGUF header
and plans it (`plan_download`): a model that will not fit is refused before any big transfer
(`failed`, with the sentence), and where the catalog entry described the file otherwise, `planned`
carries the plan with those differences.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.core.downloads import DownloadCancelled, DownloadPlan, Progress, download_model
from app.core.survey import DownloadRequest
from app.ui.background import BackgroundJob, run_in_background

log = logging.getLogger(__name__)


def _download(request: DownloadRequest, models_dir: Path, hardware, catalog_model,
              job: BackgroundJob) -> Path | DownloadCancelled:
    """On the download lane: every file of `request`; the path llama.cpp opens, or the cancel. With
    `hardware`, planned from the header first (the plan is reported like progress, before any)."""
    try:
        return download_model(request.repo, list(request.files), models_dir, progress=job.report,
                              cancel=job.cancel_event, hardware=hardware, catalog_model=catalog_model,
                              on_plan=job.report)[0]
    except DownloadCancelled as exc:
        return exc  # a cancel is how the user ends a download, not a failure


class Downloads(QObject):
    """The app's downloads, one at a time (they share one connection's bandwidth anyway).

    Signals (on the GUI thread):
      started(DownloadRequest)
      planned(DownloadRequest, DownloadPlan): planned from the file's header, before the transfer;
        `differences` lists where the catalog entry was wrong about the file (the header wins).
      progress(DownloadRequest, Progress)
      finished(DownloadRequest, str path): the verified model file (first part) is in place.
      failed(DownloadRequest, str message): a DownloadError's sentence (also: the model will not fit,
        so nothing was downloaded); a partial file is kept.
      cancelled(DownloadRequest, str message): the partial file is kept; starting it again resumes.
    """

    started = Signal(object)
    planned = Signal(object, object)
    progress = Signal(object, object)
    finished = Signal(object, str)
    failed = Signal(object, str)
    cancelled = Signal(object, str)

    def __init__(self, models_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models_dir = Path(models_dir)
        self._request: DownloadRequest | None = None
        self._job: BackgroundJob | None = None
        self.last_progress: Progress | None = None

    @property
    def current(self) -> DownloadRequest | None:
        """The download running (or stopping after a cancel), if any."""
        return self._request

    @property
    def cancelling(self) -> bool:
        return self._job is not None and self._job.cancelled

    def start(self, request: DownloadRequest, *, hardware=None, catalog_model=None) -> bool:
        """Start (or resume) a download; False while another one is still running. `hardware` (a
        HardwareInfo probed earlier): plan from the header first and refuse what will not fit;
        `catalog_model`: the entry that described the file, compared with its header."""
        if self._request is not None:
            return False
        self._request, self.last_progress = request, None
        # Its own lane, one thread: the job starts at once, so a cancel always reaches a running job.
        work = partial(_download, request, self.models_dir, hardware, catalog_model)
        self._job = run_in_background(work, owner=self,
                                      on_done=self._on_ended, on_failed=self._on_failed,
                                      on_progress=self._on_progress, lane="download",
                                      name=f"the download of {request.label}")
        self.started.emit(request)  # reports are queued to this thread, so none comes before this
        return True

    def cancel(self) -> None:
        """Stop the running download after its current chunk; `cancelled` follows."""
        if self._job is not None:
            self._job.cancel()

    def shutdown(self, timeout_s: float = 3.0) -> None:
        """The app is closing: cancel, and wait a little for the download to stop. The part file stays."""
        job = self._job
        if job is not None:
            job.cancel()
            if not job.wait(timeout_s):
                log.warning("the download of %s is still waiting for the network; leaving it", job.name)

    def _end(self) -> DownloadRequest:
        request = self._request
        self._request, self._job = None, None
        return request

    @Slot(object)
    def _on_progress(self, report: Progress | DownloadPlan) -> None:
        if self._request is None:
            return
        if isinstance(report, DownloadPlan):
            self.planned.emit(self._request, report)
        else:
            self.last_progress = report
            self.progress.emit(self._request, report)

    @Slot(object)
    def _on_ended(self, result: Path | DownloadCancelled) -> None:
        if isinstance(result, DownloadCancelled):
            self.cancelled.emit(self._end(), str(result))
        else:
            self.finished.emit(self._end(), str(result))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.failed.emit(self._end(), message)
