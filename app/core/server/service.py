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

from app.core.engine import Engine, LoadOptions, ModelInfo, Sampling, Stats
from app.core.errors import PonderError
from app.core.reasoning import Segment, TraceText

log = logging.getLogger("ponder.server")

DEFAULT_MAX_WAITING = 8


class ServerBusy(PonderError):
    """The request queue is full."""


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
    error_kind: str | None = None  # "invalid_request" (the conversation cannot run) | "server_error"
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

    def cancel(self) -> None:
        """Stop generating (within a token), or never start."""
        self.stop.set()


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
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        self.model_path = Path(model_path)
        self.load_options = load_options or LoadOptions()
        self.max_waiting = max_waiting
        self.info: ModelInfo | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
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
    def waiting(self) -> int:
        """Jobs in the queue, not yet started."""
        return self._waiting

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
            if self._waiting >= self.max_waiting:
                self.counters["rejected"] += 1
                raise ServerBusy(
                    f"The server is busy: {self._waiting} requests are already waiting. Try again shortly."
                )
            self._waiting += 1
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
                with self._lock:
                    self._waiting -= 1
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

    def _emit(self, job: Job, kind: str, payload: object) -> None:
        try:
            job.on_event(kind, payload)
        except Exception:  # the listener is gone (e.g. its event loop closed): stop generating for it
            log.debug("event listener of job %s failed; cancelling it", job.id, exc_info=True)
            job.cancel()

    def _finish(self, job: Job, result: JobResult) -> None:
        result.ended_at = time.monotonic()
        self.counters["failed" if result.error else
                      "cancelled" if result.finish_reason == "cancelled" else "completed"] += 1
        self.recent.append(result)
        self._emit(job, "done", result)

    def _run(self, engine: Engine, job: Job) -> None:
        self._finish(job, run_job(engine, job, lambda kind, payload: self._emit(job, kind, payload)))


def run_job(engine: Engine, job: Job, emit: EventCallback) -> JobResult:
    """Run one job on the thread that owns `engine`: emits ("started", None) and ("segment", ...)
    events and returns the result (the caller emits "done"). Any engine-owning thread can run
    jobs this way: the service's own, or later the window's engine thread."""
    waited = time.monotonic() - job.submitted_at
    if job.stop.is_set():
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
    finish = "error" if error else ("stop" if hit else stats.finish_reason)
    return JobResult(
        job.id, finish, thinking=text.thinking, answer=text.answer, flags=run.flags, stats=stats,
        stopped_by_string=hit, error=error, error_kind="server_error" if error else None, waited_s=waited,
    )
