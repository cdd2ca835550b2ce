"""Slow model work off the GUI thread: downloads (`Downloads`) and one-off calls (`run_in_background`).

Each job runs on a Python thread and reports through the signals of a QObject that
lives on the GUI thread, so Qt queues every report to the GUI thread; reports carry
plain data (DownloadRequest, Progress, str), and only the GUI thread touches widgets.
Errors arrive as the PonderError's sentence.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from app.core.catalog import CatalogModel, Quant
from app.core.downloads import DownloadCancelled, Progress, download_model
from app.core.errors import PonderError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadRequest:
    """What to download: every file of one model (one GGUF, or all parts of a split one)."""

    repo: str
    files: tuple[str, ...]  # paths inside the repository, first part first
    label: str  # for people: "R1-Distill-Qwen-7B Q4_K_M"
    size_bytes: int = 0  # as the catalog lists it (the hub's exact size is checked when it runs)
    model_id: str | None = None
    quant: str | None = None

    @classmethod
    def for_catalog(cls, model: CatalogModel, quant: Quant) -> DownloadRequest:
        return cls(repo=model.repo, files=tuple(f.path for f in quant.files), label=f"{model.short_name} {quant.name}",
                   size_bytes=quant.size_bytes, model_id=model.id, quant=quant.name)

    @property
    def file_names(self) -> list[str]:
        """The names the files get in the models folder (flat, as llama.cpp finds split parts)."""
        return [PurePosixPath(f).name for f in self.files]


class DownloadTask(QObject):
    """One download on a worker thread. Its signals are emitted on that thread and, because
    this object lives on the GUI thread, delivered there.

    Signals: progress(Progress), finished(str path_to_load), failed(str), cancelled(str)
    """

    progress = Signal(object)
    finished = Signal(str)
    failed = Signal(str)
    cancelled = Signal(str)

    def __init__(self, request: DownloadRequest, models_dir: Path) -> None:
        super().__init__()
        self.request = request
        self.models_dir = Path(models_dir)
        self.cancel_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        r = self.request
        try:
            paths = download_model(r.repo, list(r.files), self.models_dir, progress=self.progress.emit,
                                   cancel=self.cancel_event)
        except DownloadCancelled as exc:
            self.cancelled.emit(str(exc))
        except PonderError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug, not a network or disk problem: keep its traceback
            log.exception("download of %s crashed", r.label)
            self.failed.emit(f"The download of {r.label} stopped because of an internal error: {exc}")
        else:
            self.finished.emit(str(paths[0]))


class Downloads(QObject):
    """The app's downloads, one at a time (they share one connection's bandwidth anyway).

    Signals (on the GUI thread):
      started(DownloadRequest)
      progress(DownloadRequest, Progress)
      finished(DownloadRequest, str path): the verified model file (first part) is in place.
      failed(DownloadRequest, str message): a DownloadError's sentence; a partial file is kept.
      cancelled(DownloadRequest, str message): the partial file is kept; starting it again resumes.
    """

    started = Signal(object)
    progress = Signal(object, object)
    finished = Signal(object, str)
    failed = Signal(object, str)
    cancelled = Signal(object, str)

    def __init__(self, models_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models_dir = Path(models_dir)
        self._task: DownloadTask | None = None
        self.last_progress: Progress | None = None

    @property
    def current(self) -> DownloadRequest | None:
        """The download running (or stopping after a cancel), if any."""
        return self._task.request if self._task is not None else None

    @property
    def cancelling(self) -> bool:
        return self._task is not None and self._task.cancel_event.is_set()

    def start(self, request: DownloadRequest) -> bool:
        """Start (or resume) a download; False while another one is still running."""
        if self._task is not None:
            return False
        task = DownloadTask(request, self.models_dir)
        task.progress.connect(self._on_progress)
        task.finished.connect(self._on_finished)
        task.failed.connect(self._on_failed)
        task.cancelled.connect(self._on_cancelled)
        self._task = task
        self.last_progress = None
        self.started.emit(request)
        task.start()
        return True

    def cancel(self) -> None:
        """Stop the running download after its current chunk; `cancelled` follows."""
        if self._task is not None:
            self._task.cancel()

    def shutdown(self, timeout_s: float = 3.0) -> None:
        """Cancel and wait a little for the thread (the app is closing). The part file stays."""
        task = self._task
        if task is not None:
            task.cancel()
            if not task.wait(timeout_s):
                log.warning("the download thread is still waiting for the network; leaving it")

    def _end(self) -> DownloadRequest:
        request = self._task.request
        self._task = None
        return request

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        if self._task is not None:
            self.last_progress = progress
            self.progress.emit(self._task.request, progress)

    @Slot(str)
    def _on_finished(self, path: str) -> None:
        self.finished.emit(self._end(), path)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.failed.emit(self._end(), message)

    @Slot(str)
    def _on_cancelled(self, message: str) -> None:
        self.cancelled.emit(self._end(), message)


class BackgroundCall(QObject):
    """`fn(*args)` on a worker thread. Signals: done(object result), failed(str message)."""

    done = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__()
        self._fn, self._args = fn, args
        self.thread = threading.Thread(target=self._run, name=getattr(fn, "__name__", "background"), daemon=True)

    def _run(self) -> None:
        try:
            result = self._fn(*self._args)
        except PonderError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: keep its traceback in the log
            log.exception("%s crashed", self.thread.name)
            self.failed.emit(f"Something went wrong inside Ponder: {exc}")
        else:
            self.done.emit(result)

    @Slot()
    def _forget(self) -> None:
        _running.discard(self)


_running: set[BackgroundCall] = set()  # keeps each call (and its signals) alive until it has reported


def run_in_background(fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
                      on_failed: Callable[[str], None]) -> BackgroundCall:
    """Run `fn(*args)` on a thread; `on_done(result)` or `on_failed(message)` then runs on the GUI thread.

    Give slots of GUI-thread QObjects: the report is queued to their thread, and dropped if
    the object is gone by then (a plain function would be called on the worker thread)."""
    call = BackgroundCall(fn, *args)
    call.done.connect(on_done)
    call.failed.connect(on_failed)
    call.done.connect(call._forget)
    call.failed.connect(call._forget)
    _running.add(call)
    call.thread.start()
    return call
