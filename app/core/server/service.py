"""The engine service: one thread owns the Engine; requests wait in a bounded queue.

llama.cpp's context is not thread-safe and an `Engine` belongs to the thread that loaded it,
so every request runs on the service's own thread, one after the other. `submit` puts a
request in the queue, or raises `ServerBusy` when `max_waiting` requests already wait there.
Each `Job` carries its own stop `threading.Event`: setting it (`Job.cancel`, e.g. when the
HTTP client disconnects) ends the generation within a token, or drops the job before it
starts. What a job produces goes to its `on_event(kind, payload)` callback, called on the
service thread: ("started", None) once the run has begun, then ("segment", Segment) for each piece of thinking or
answer text, then ("done", JobResult) exactly once (also for a job that failed or was
cancelled while waiting).

Stop strings end the answer: the answer text is cut before the first stop string (which is
not sent), and the run ends there. They are matched in the answer only, not in the thinking.

The HTTP API (`api.py`) needs only a `JobQueue`: `submit`, `model_id` and `model_created`.
`EngineService` is the headless one (`ponder serve`); the window's server switch
(app/ui/server_switch.py) is another, whose jobs run on the window's own engine thread with
`serve_job`, in turn with the window's chats. A job cancelled with a reason (`Job.cancel(reason)`:
the model was unloaded or switched, serving was turned off) ends as an "unavailable" error, which
the API answers with 503.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.core.engine import Engine, LoadOptions, ModelInfo, Sampling, Stats
from app.core.errors import PonderError
from app.core.reasoning import Segment, TraceText

log = logging.getLogger("ponder.server")

DEFAULT_MAX_WAITING = 8


class ServerBusy(PonderError):
    """The request queue is full."""


class NoModelLoaded(PonderError):
    """Nothing is loaded to answer with (the window has no model, or is switching models)."""


@dataclass
class ChatRequest:
    messages: list[dict]
    sampling: Sampling = field(default_factory=Sampling)
    stop_strings: tuple[str, ...] = ()


@dataclass
class JobResult:
    """How a job ended. `finish_reason`: stop | length | context_full | cancelled | error."""

    job_id: int
    finish_reason: str
    thinking: str = ""
    answer: str = ""
    flags: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    stopped_by_string: bool = False
    error: str | None = None
    error_kind: str | None = None  # "invalid_request" (cannot run) | "unavailable" (no model) | "server_error"
    waited_s: float = 0.0  # in the queue
    ended_at: float = 0.0  # time.monotonic()


EventCallback = Callable[[str, object], None]


class Job:
    _ids = itertools.count(1)

    def __init__(self, request: ChatRequest, on_event: EventCallback) -> None:
        self.id = next(Job._ids)
        self.request = request
        self.on_event = on_event
        self.stop = threading.Event()
        self.submitted_at = time.monotonic()
        self.cancel_reason: str | None = None

    def cancel(self, reason: str | None = None) -> None:
        """Stop generating (within a token), or never start. With a `reason` (a sentence: the
        model went away) the job ends as an "unavailable" error instead of "cancelled"."""
        if reason and not self.stop.is_set():
            self.cancel_reason = reason
        self.stop.set()


class JobQueue(Protocol):
    """What the HTTP API needs of whatever runs its jobs."""

    @property
    def model_id(self) -> str | None: ...  # None: no model loaded now

    @property
    def model_created(self) -> int: ...  # unix time, for /v1/models

    def submit(self, request: ChatRequest, on_event: EventCallback) -> Job:
        """Queue a job; raises ServerBusy (queue full) or NoModelLoaded."""


class WaitingRoom:
    """Counts the jobs waiting for an engine thread, up to `limit` (thread-safe)."""

    def __init__(self, limit: int = DEFAULT_MAX_WAITING) -> None:
        if limit < 0:
            raise ValueError("max_waiting must be >= 0")
        self.limit = limit
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        """One more job waits; raises ServerBusy when `limit` already do."""
        with self._lock:
            if self._count >= self.limit:
                raise ServerBusy(
                    f"The server is busy: {self._count} requests are already waiting. Try again shortly."
                )
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


class StopMatcher:
    """Cuts streamed text before the first stop string; holds back a possible start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to send, whether a stop string was reached)."""
        buf = self._held + text
        self._held = ""
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            return buf[: min(hits)], True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        if keep:
            self._held = buf[-keep:]
            buf = buf[:-keep]
        return buf, False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


class EngineService:
    """Loads a model on its own thread and runs chat requests there, one at a time."""

    def __init__(self, model_path: str | Path, load_options: LoadOptions | None = None,
                 max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.model_path = Path(model_path)
        self.load_options = load_options or LoadOptions()
        self._room = WaitingRoom(max_waiting)
        self.max_waiting = max_waiting
        self.info: ModelInfo | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closing = False
        self._current: Job | None = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ponder-engine-service", daemon=True)
        self.counters = collections.Counter()  # completed, cancelled, failed, rejected
        self.recent: collections.deque[JobResult] = collections.deque(maxlen=64)

    # --- lifetime -------------------------------------------------------------------

    def start(self) -> EngineService:
        """Start the thread and load the model; raises what the load raised."""
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error
        return self

    def close(self, timeout: float | None = 30) -> None:
        """Cancel the running and waiting jobs, then free the model on its thread."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            current = self._current
        if current is not None:
            current.cancel()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def model_id(self) -> str:
        return self.model_path.stem

    @property
    def model_created(self) -> int:
        try:
            return int(self.model_path.stat().st_mtime)
        except OSError:
            return 0

    @property
    def waiting(self) -> int:
        """Jobs in the queue, not yet started."""
        return self._room.count

    @property
    def running(self) -> Job | None:
        return self._current

    # --- requests -------------------------------------------------------------------

    def submit(self, request: ChatRequest, on_event: EventCallback) -> Job:
        """Queue a request; raises ServerBusy when `max_waiting` jobs already wait."""
        job = Job(request, on_event)
        with self._lock:
            if self._closing:
                raise ServerBusy("The server is shutting down.")
            try:
                self._room.enter()
            except ServerBusy:
                self.counters["rejected"] += 1
                raise
            self._queue.put(job)
        return job

    # --- the engine thread ----------------------------------------------------------

    def _main(self) -> None:
        try:
            engine = Engine.load(self.model_path, self.load_options)
        except BaseException as exc:  # noqa: BLE001  (handed to start())
            self._load_error = exc
            self._loaded.set()
            return
        self.info = engine.info
        self._loaded.set()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    break
                self._room.leave()
                with self._lock:
                    closing = self._closing
                    self._current = job
                if closing:
                    job.cancel()
                try:
                    self._run(engine, job)
                finally:
                    with self._lock:
                        self._current = None
        finally:
            # Jobs still queued at shutdown end as cancelled.
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.cancel()
                    self._finish(job, JobResult(job.id, "cancelled"))
            engine.close()

    def _finish(self, job: Job, result: JobResult) -> None:
        self.counters["failed" if result.error else
                      "cancelled" if result.finish_reason == "cancelled" else "completed"] += 1
        self.recent.append(result)
        finish_job(job, result)

    def _run(self, engine: Engine, job: Job) -> None:
        self._finish(job, run_job(engine, job, emitter(job)))


def emitter(job: Job) -> EventCallback:
    """The job's `on_event`, made safe: a listener that fails (e.g. its event loop closed)
    cancels the job instead of breaking the engine thread."""

    def emit(kind: str, payload: object) -> None:
        try:
            job.on_event(kind, payload)
        except Exception:
            log.debug("event listener of job %s failed; cancelling it", job.id, exc_info=True)
            job.cancel()

    return emit


def finish_job(job: Job, result: JobResult) -> None:
    """Emit the job's one ("done", result)."""
    result.ended_at = time.monotonic()
    emitter(job)("done", result)


def serve_job(engine: Engine | None, job: Job, no_model: str = "No model is loaded.") -> JobResult:
    """Run `job` on the thread that owns `engine` (None: nothing is loaded, the job ends as
    "unavailable" with the sentence `no_model`) and emit all its events, "done" included."""
    if engine is None:
        result = JobResult(job.id, "error", error=job.cancel_reason or no_model, error_kind="unavailable",
                           waited_s=time.monotonic() - job.submitted_at)
    else:
        result = run_job(engine, job, emitter(job))
    finish_job(job, result)
    return result


def run_job(engine: Engine, job: Job, emit: EventCallback) -> JobResult:
    """Run one job on the thread that owns `engine`: emits ("started", None) and ("segment", ...)
    events and returns the result (the caller emits "done"). Any engine-owning thread can run
    jobs this way: the service's own, or later the window's engine thread."""
    waited = time.monotonic() - job.submitted_at
    if job.stop.is_set():
        if job.cancel_reason:
            return JobResult(job.id, "error", error=job.cancel_reason, error_kind="unavailable", waited_s=waited)
        return JobResult(job.id, "cancelled", waited_s=waited)
    request = job.request
    try:
        run = engine.chat(request.messages, request.sampling, stop=job.stop)
    except PonderError as exc:  # context overflow, a template that cannot format the conversation
        return JobResult(job.id, "error", error=str(exc), error_kind="invalid_request", waited_s=waited)
    except Exception as exc:
        log.exception("chat request %s failed to start", job.id)
        return JobResult(job.id, "error", error=f"The engine failed: {exc}", error_kind="server_error",
                         waited_s=waited)
    emit("started", None)
    text = TraceText()
    matcher = StopMatcher(request.stop_strings)
    hit = False
    error = None
    try:
        for segment in run:
            if segment.kind == "answer" and matcher.stops:
                out, hit = matcher.feed(segment.text)
                segment = Segment("answer", out) if out else None
            if segment is not None:
                text.add(segment)
                emit("segment", segment)
            if hit:
                break
        else:
            tail = matcher.flush()
            if tail:
                segment = Segment("answer", tail)
                text.add(segment)
                emit("segment", segment)
    except Exception as exc:
        log.exception("chat request %s failed while generating", job.id)
        error = f"The engine failed while generating: {exc}"
    finally:
        run.close()  # on this thread: ends the run and settles its stats
    stats = run.stats
    kind = "server_error" if error else None
    if error is None and job.cancel_reason and stats.finish_reason == "cancelled":
        error, kind = job.cancel_reason, "unavailable"  # the model went away mid-run
    finish = "error" if error else ("stop" if hit else stats.finish_reason)
    return JobResult(
        job.id, finish, thinking=text.thinking, answer=text.answer, flags=run.flags, stats=stats,
        stopped_by_string=hit, error=error, error_kind=kind, waited_s=waited,
    )
