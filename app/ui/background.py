"""Work off the GUI thread, with results back on it: the one way Ponder runs background jobs.

Everything slow that is not the model (the engine has its own thread, app/ui/worker.py)
goes through `run_in_background`: hardware surveys, GGUF imports, downloads, markdown
renders. Modelled on Anki's `QueryOp`:

    job = run_in_background(work, owner=self, on_done=self._on_done, on_failed=self._on_failed)

- `work(job)` runs on a worker thread. It may call `job.report(value)` (progress) and read
  `job.cancelled` / `job.cancel_event` (cooperative cancel); it never touches widgets.
- `on_done(result)`, `on_failed(message)` and `on_progress(value)` run on the GUI thread,
  and only while `owner` (a QObject) still exists: a closed dialog gets no late callback.
- A `PonderError` reaches `on_failed` as its sentence; any other exception is a bug: it is
  logged with its traceback and `on_failed` gets a sentence saying so.
- `shutdown()` at exit cancels every job, drops queued ones and waits a bounded time.

Jobs share a small pool of threads; `lane="render"` puts CPU-bound rendering on a lane of
its own, one thread, so long renders never queue behind an import; `lane="download"` is the
downloads' own (app/ui/downloads.py), so a download's minutes of network wait hold up nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

from app.core.errors import PonderError

log = logging.getLogger(__name__)

POOL_THREADS = 4  # surveys and imports: mostly waiting on the disk
# "download": one thread, as Ponder runs one download at a time; a download never waits
# behind an import (and so is never cancelled while queued, which would end it silently).
LANES = {"default": POOL_THREADS, "render": 1, "download": 1}


class BackgroundJob:
    """One background call: what `work` gets to report progress and see a cancel, and what
    the caller keeps to cancel or wait. Its reports reach the GUI thread through `_Relay`."""

    def __init__(self, work: Callable[[BackgroundJob], Any], owner: QObject, name: str,
                 on_done: Callable[[Any], None] | None, on_failed: Callable[[str], None] | None,
                 on_progress: Callable[[Any], None] | None, relay: _Relay) -> None:
        self.name = name
        self.cancel_event = threading.Event()
        self.finished_event = threading.Event()  # set when `work` returned or raised (or never ran)
        self._work = work
        self._owner = owner
        self._on_done, self._on_failed, self._on_progress = on_done, on_failed, on_progress
        self._relay = relay

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        """Ask `work` to stop (it checks `cancelled`). A job still queued never starts, and
        then no callback runs at all."""
        self.cancel_event.set()

    def wait(self, timeout_s: float) -> bool:
        """Wait (bounded) for `work` to return; True if it has."""
        return self.finished_event.wait(timeout_s)

    def report(self, value: Any) -> None:
        """From `work`: a progress value for `on_progress` (called on the GUI thread)."""
        if self._on_progress is not None:
            self._relay.progressed.emit(self, value)

    def _run(self) -> None:
        try:
            result = self._work(self)
        except PonderError as exc:
            ok, value = False, str(exc)
        except Exception as exc:  # a bug, not a disk or network problem: keep its traceback
            log.exception("background job %s crashed", self.name)
            ok, value = False, f"Something went wrong inside Ponder ({self.name}): {exc}"
        else:
            ok, value = True, result
        self.finished_event.set()
        self._relay.ended.emit(self, ok, value)

    def _owner_alive(self) -> bool:
        return shiboken6.isValid(self._owner)

    def _deliver_progress(self, value: Any) -> None:
        if self._on_progress is not None and self._owner_alive():
            self._on_progress(value)

    def _deliver_end(self, ok: bool, value: Any) -> None:
        _forget(self)
        alive = self._owner_alive()
        callback = self._on_done if ok else self._on_failed
        # Let go of the owner, the callbacks and `work` (which may hold Qt objects) here, on the
        # GUI thread: if the worker thread dropped the last reference to a Python-owned widget,
        # Qt would destroy it on that thread, and crash.
        self._work = self._owner = self._on_done = self._on_failed = self._on_progress = None
        if value is _SKIPPED or not alive or callback is None:
            return
        callback(value)


class _Relay(QObject):
    """Carries every job's reports from its worker thread to the GUI thread: it lives there, so
    Qt queues a signal emitted on another thread to it, in order. One relay that lives as long
    as the app, so that no QObject is ever created per job and then destroyed on a worker thread.

    Signals (internal): progressed(job, value), ended(job, bool ok, result_or_message)
    """

    progressed = Signal(object, object)
    ended = Signal(object, bool, object)

    def __init__(self) -> None:
        super().__init__()
        app = QCoreApplication.instance()
        if app is not None and app.thread() is not self.thread():
            self.moveToThread(app.thread())
        self.progressed.connect(self._on_progressed)
        self.ended.connect(self._on_ended)

    @Slot(object, object)
    def _on_progressed(self, job: BackgroundJob, value: Any) -> None:
        job._deliver_progress(value)

    @Slot(object, bool, object)
    def _on_ended(self, job: BackgroundJob, ok: bool, value: Any) -> None:
        job._deliver_end(ok, value)


class _Lane:
    """A queue and its daemon worker threads (daemon: a job stuck in a network read never
    holds up the process exit; `concurrent.futures` threads would)."""

    def __init__(self, name: str, threads: int) -> None:
        self.queue: queue.SimpleQueue[BackgroundJob | None] = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._serve, name=f"ponder-{name}-{i}", daemon=True)
                        for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def _serve(self) -> None:
        while (job := self.queue.get()) is not None:
            if job.cancelled:  # cancelled while queued: it never starts, and reports nothing
                job.finished_event.set()
                job._relay.ended.emit(job, False, _SKIPPED)  # its references are let go on the GUI thread
                continue
            job._run()

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)


_SKIPPED = object()  # the "result" of a job cancelled before it started
_lanes: dict[str, _Lane] = {}
_relay_instance: _Relay | None = None
_running: set[BackgroundJob] = set()  # every job until it has reported, for `shutdown`
_lock = threading.Lock()


def _forget(job: BackgroundJob) -> None:
    with _lock:
        _running.discard(job)


def _relay() -> _Relay:
    global _relay_instance
    with _lock:
        if _relay_instance is None:
            _relay_instance = _Relay()
        return _relay_instance


def _lane(name: str) -> _Lane:
    if name not in LANES:
        raise ValueError(f"unknown background lane {name!r}; one of {sorted(LANES)}")
    with _lock:
        lane = _lanes.get(name)
        if lane is None:
            lane = _lanes[name] = _Lane(name, LANES[name])
        return lane


def run_in_background(work: Callable[[BackgroundJob], Any], *, owner: QObject,
                      on_done: Callable[[Any], None] | None = None,
                      on_failed: Callable[[str], None] | None = None,
                      on_progress: Callable[[Any], None] | None = None,
                      lane: str = "default", name: str | None = None) -> BackgroundJob:
    """Run `work(job)` on a worker thread; the callbacks run later on the GUI thread (see the module)."""
    job = BackgroundJob(work, owner, name or getattr(work, "__name__", "job"), on_done, on_failed, on_progress,
                        _relay())
    with _lock:
        _running.add(job)
    _lane(lane).queue.put(job)
    return job


def running_jobs() -> list[BackgroundJob]:
    """The jobs that have not reported yet (queued, running, or with a report on its way)."""
    with _lock:
        return list(_running)


def shutdown(timeout_s: float = 5.0) -> bool:
    """At exit: cancel every job, drop queued ones and wait up to `timeout_s` for running ones.

    Returns True if every running job ended in time; one stuck in a system call (a network
    read) is left to the process exit, which its daemon thread does not hold up.
    """
    for job in running_jobs():
        job.cancel()
    deadline = time.monotonic() + timeout_s
    with _lock:
        lanes = list(_lanes.values())
        _lanes.clear()
    for lane in lanes:
        lane.close()
    all_ended = True
    for job in running_jobs():
        if not job.wait(max(0.0, deadline - time.monotonic())):
            log.warning("background job %s is still running at exit; leaving it", job.name)
            all_ended = False
    with _lock:
        _running.clear()
    return all_ended
