"""The engine thread: one QThread owns the Engine (and its llama.cpp model) for its whole life.

The GUI talks to it only through `EngineClient`: requests cross to the worker by
queued signals, results come back as plain data, and Stop is a `threading.Event`
set directly from the GUI thread (a queued "stop" would wait behind the running
generation). Every request, chat or model load, carries an id and a cancel Event;
results of a request the GUI no longer waits for are dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.core.engine import Engine, LoadOptions, Sampling
from app.core.errors import LoadCancelled, PonderError
from app.core.paths import same_file
from app.core.reasoning import Segment
from app.core.steering import Steering, SteeringError
from app.core.server.service import Job, serve_job

log = logging.getLogger(__name__)

# Text pieces are batched for this long before crossing to the GUI thread, so a
# fast model costs a few dozen signals a second instead of one per token.
FLUSH_INTERVAL_S = 0.02

NO_MODEL_MESSAGE = "No model is loaded. Choose a GGUF file first."
CONTINUE_NEEDS_LOCAL = ("This model runs on a server, which cannot continue a thought from a given text. "
                        "Load a local model to continue an edited or stopped thought.")
NO_MODEL_TO_SERVE = "No model is loaded in Ponder's window. Load one there, then try again."


class EngineWorker(QObject):
    """Lives on the engine thread; creates, uses and closes the Engine there.

    Signals (all emitted on the engine thread, carrying plain data):
      load_progress(int load_id, float): 0..1 while a model loads.
      load_phase(int load_id, str): a later part of the load begins: "draft" (the draft model, after
        the model; load_progress then follows its load from 0), "ready" (Engine.load's `phase`).
      loaded(int load_id, ModelInfo): a model is ready.
      capabilities_known(int load_id, Capabilities): just before `loaded` of a model on a server:
        what its API can do (app.core.remote.Capabilities, frozen: safe to read on any thread).
      load_failed(int load_id, str): a sentence saying why the model did not load.
      started(int req_id, int prompt_tokens): the prompt is tokenized; generation begins.
      segment(int req_id, Segment): "think" or "answer" text (with its think block), in order.
      counts(int req_id, int thinking_tokens, int answer_tokens): live token counters.
      finished(int req_id, dict result): flags, stats (Stats.to_dict()), prompt (the exact text
        tokenized) and sampling (as used, seed included); the text is what
        the segments said (app.core.reasoning.TraceText puts it in its saved shape).
      failed(int req_id, str message): the request ended with an error; nothing more comes.
      notice(int req_id, str): a sentence from a remote run while it runs (RemoteChatRun.notices:
        e.g. a llama-server too old for Answer now's control), so a control never does nothing.
      unloaded(): the model was closed on request (its file can now be deleted).
      closed(): the engine is closed and the thread is about to stop.
    """

    load_progress = Signal(int, float)
    load_phase = Signal(int, str)
    loaded = Signal(int, object)
    capabilities_known = Signal(int, object)
    load_failed = Signal(int, str)
    started = Signal(int, int)
    segment = Signal(int, object)
    counts = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    notice = Signal(int, str)
    unloaded = Signal()
    closed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._engine: Engine | None = None

    @Slot(int, str, object, object)
    def load(self, load_id: int, path: str, options: LoadOptions, cancel: threading.Event) -> None:
        """Load a model; setting `cancel` (a newer load, or the app closing) abandons it at
        the next progress tick, or before it starts if it is still queued."""
        self._close_engine()  # one model at a time: free the old one before loading
        if cancel.is_set():
            self.load_failed.emit(load_id, str(LoadCancelled()))
            return
        last_report = [0.0]

        def progress(fraction: float) -> bool:
            now = time.monotonic()
            if now - last_report[0] >= 0.05 or fraction >= 1.0:
                last_report[0] = now
                self.load_progress.emit(load_id, float(fraction))
            return not cancel.is_set()

        def phase(name: str) -> bool:
            self.load_phase.emit(load_id, name)
            return not cancel.is_set()

        try:
            self._engine = Engine.load(Path(path), options, progress=progress, phase=phase)
        except PonderError as exc:
            self.load_failed.emit(load_id, str(exc))
        except Exception as exc:  # a bug, not a bad file: log it with its traceback
            log.exception("model load crashed")
            self.load_failed.emit(load_id, f"The model could not be loaded because of an internal error: {exc}")
        else:
            self.loaded.emit(load_id, self._engine.info)

    @Slot(int, object, object, object, bool, object, object)
    def chat(self, req_id: int, messages: list, sampling: Sampling, stop: threading.Event,
             keep_thinking: bool = False, steering: Steering | None = None, prefix: list | None = None) -> None:
        """An answer; with `prefix` (segments), one that continues that thought (Engine.continue_from)."""
        if self._engine is None:
            self.failed.emit(req_id, NO_MODEL_MESSAGE)
            return
        try:
            if prefix is None:
                run = self._engine.chat(messages, sampling, stop, keep_thinking=keep_thinking, steering=steering)
            elif hasattr(self._engine, "continue_from"):
                run = self._engine.continue_from(messages, prefix, sampling, stop, keep_thinking=keep_thinking,
                                                 steering=steering)
            else:  # a server's model (app.core.remote): no API puts words into its thought
                raise PonderError(CONTINUE_NEEDS_LOCAL)
            self.started.emit(req_id, run.stats.prompt_tokens)
            # Text of one (kind, block, inserted) is batched: inserted text stays a segment of its own.
            where, pieces, last_flush = ("answer", 0, None), [], 0.0
            told = 0  # of a remote run's notices
            for seg in run:
                if (seg.kind, seg.block, seg.inserted) != where and pieces:
                    self.segment.emit(req_id, Segment(where[0], "".join(pieces), where[1], where[2]))
                    pieces = []
                where = (seg.kind, seg.block, seg.inserted)
                pieces.append(seg.text)
                now = time.monotonic()
                if now - last_flush >= FLUSH_INTERVAL_S:
                    self.segment.emit(req_id, Segment(where[0], "".join(pieces), where[1], where[2]))
                    self.counts.emit(req_id, run.thinking_tokens, run.answer_tokens)
                    pieces, last_flush = [], now
                    told = self._tell(req_id, run, told)
            if pieces:
                self.segment.emit(req_id, Segment(where[0], "".join(pieces), where[1], where[2]))
            self.counts.emit(req_id, run.thinking_tokens, run.answer_tokens)
            self._tell(req_id, run, told)
            if getattr(run, "error", None) is not None:  # a remote run ends with its failure: the text so far stays
                raise run.error
            # prompt: the exact text tokenized; sampling: as used, with the seed drawn if none was given.
            result = {"flags": list(run.flags), "stats": run.stats.to_dict(), "prompt": run.prompt_text,
                      "sampling": dataclasses.asdict(run.sampling),
                      # steering (app/core/steering.py): notes that came after the thought ended
                      "unused_nudges": list(getattr(getattr(run, "steering", None), "unused", []))}
            if getattr(run, "resplit", False):  # a remote stream split on a wrong reasoning guess: the true split
                result["text"] = {"thinking": run.thinking, "answer": run.answer}
            if getattr(self._engine, "reasoning_learned", None) is not None:  # what a remote stream showed
                result["reasoning_learned"] = self._engine.reasoning_learned
        except PonderError as exc:
            self.failed.emit(req_id, str(exc))
        except Exception as exc:
            log.exception("generation crashed")
            self.failed.emit(req_id, f"Generation stopped because of an internal error: {exc}")
        else:
            self.finished.emit(req_id, result)

    def _tell(self, req_id: int, run, told: int) -> int:
        """Emit the run's notices after the first `told`; returns how many are told now."""
        notices = getattr(run, "notices", None) or []
        for text in notices[told:]:
            self.notice.emit(req_id, text)
        return max(told, len(notices))

    @Slot(int, object, object)
    def connect_remote(self, load_id: int, endpoint, cancel: threading.Event) -> None:
        """Use a model on an OpenAI-compatible server (app.core.remote.Endpoint) instead of a
        GGUF: the RemoteEngine takes the Engine's place on this thread, so chats, Stop and the
        server switch drive it alike. Listing the server's models (its check) runs here too."""
        from app.core.remote import RemoteEngine  # the openai client loads only when used

        self._close_engine()
        if cancel.is_set():
            self.load_failed.emit(load_id, "Connecting to the server was cancelled.")
            return
        try:
            engine = RemoteEngine.connect(endpoint)
        except PonderError as exc:
            self.load_failed.emit(load_id, str(exc))
            return
        except Exception as exc:
            log.exception("connecting to a remote engine crashed")
            self.load_failed.emit(load_id, f"Could not connect because of an internal error: {exc}")
            return
        if cancel.is_set():
            engine.close()
            self.load_failed.emit(load_id, "Connecting to the server was cancelled.")
            return
        self._engine = engine
        if engine.notices:  # e.g. the model is not in the server's list: shown with the model's notes
            engine.info.gpu_note = " ".join(engine.notices)
        self.capabilities_known.emit(load_id, engine.capabilities)  # queued in order: before `loaded`
        self.loaded.emit(load_id, engine.info)

    @Slot(object)
    def serve(self, job: Job) -> None:
        """A request of the window's server (app/ui/server_switch.py): it runs here, in turn with
        the window's own chats, and reports to its own listener (never to the GUI's signals)."""
        serve_job(self._engine, job, NO_MODEL_TO_SERVE)

    @Slot()
    def unload(self) -> None:
        self._close_engine()
        self.unloaded.emit()

    @Slot()
    def close(self) -> None:
        self._close_engine()
        self.closed.emit()
        QThread.currentThread().quit()

    def _close_engine(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            try:
                engine.close()
            except Exception:
                log.exception("closing the engine failed")


def remote_label(endpoint) -> str:
    """"remote: host · model" for an Endpoint not connected yet (RemoteModelInfo.label once it is)."""
    from app.core.remote import host_of, normalise_base_url

    try:
        host = host_of(normalise_base_url(endpoint.base_url))
    except PonderError:
        host = endpoint.base_url
    return f"remote: {host} · {endpoint.model}" if endpoint.model else f"remote: {host}"


class EngineClient(QObject):
    """The GUI thread's handle on the engine thread.

    Starts the thread, forwards requests, and re-emits the worker's results on the
    GUI thread, dropping those of requests that are no longer current: a chat that a
    newer chat replaced, a load that a newer load replaced (each load is cancelled when
    the next one starts).

    Signals:
      load_started(str path), load_progress(float), loaded(ModelInfo), load_failed(str)
        (for a server's model, `capabilities` is set before `loaded` comes)
      load_phase(str): "draft": the draft model loads now, after the model (EngineWorker.load_phase)
      load_cancelled(): `cancel_load()` gave the load up; nothing is loaded now
      started(int req_id, int prompt_tokens): the answer's prompt fills this many tokens of context
      segment(int req_id, Segment), counts(int req_id, int thinking, int answer)
      finished(int req_id, dict result): flags and stats; failed(int req_id, str message)
      notice(int req_id, str): a remote answer's sentence while it runs (EngineWorker.notice)
      unloaded(): the model is closed (after `unload()`); nothing is loaded now
      releasing(str why): "load", "unload" or "shutdown" is about to give up the current model
        (emitted before the request goes to the engine thread): served jobs end then
    """

    load_started = Signal(str)
    load_progress = Signal(float)
    load_phase = Signal(str)
    load_cancelled = Signal()
    loaded = Signal(object)
    load_failed = Signal(str)
    started = Signal(int, int)
    segment = Signal(int, object)
    counts = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    notice = Signal(int, str)
    unloaded = Signal()
    releasing = Signal(str)

    # Requests; queued across to the worker because it lives on another thread.
    _load_requested = Signal(int, str, object, object)
    _chat_requested = Signal(int, object, object, object, bool, object, object)
    _unload_requested = Signal()
    _close_requested = Signal()
    _job_requested = Signal(object)
    _remote_requested = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.info = None  # ModelInfo of the loaded model, or None
        # A server's (app.core.remote.Capabilities: Answer now, budget, nudges, each with a note
        # saying why not); None for a local model, which can do all of them.
        self.capabilities = None
        self.loading_path: Path | None = None  # the model the current load opens
        self._next_id = 1  # chat requests and loads share one counter: an id names one request
        self._current_id: int | None = None
        self._stop: threading.Event | None = None
        self._steering: Steering | None = None  # the running answer's: answer now, nudges
        self._current_load: int | None = None
        self._load_cancel: threading.Event | None = None
        self._opening: dict[int, Path] = {}  # every load the engine thread has not answered yet

        self._thread = QThread()
        self._thread.setObjectName("engine")
        self._worker = EngineWorker()
        self._worker.moveToThread(self._thread)
        self._load_requested.connect(self._worker.load)
        self._chat_requested.connect(self._worker.chat)
        self._unload_requested.connect(self._worker.unload)
        self._close_requested.connect(self._worker.close)
        # Emitted from the HTTP server's thread: queued explicitly, into the same FIFO as chats.
        self._job_requested.connect(self._worker.serve, Qt.ConnectionType.QueuedConnection)
        self._remote_requested.connect(self._worker.connect_remote)
        self._worker.load_progress.connect(self._on_load_progress)
        self._worker.load_phase.connect(self._on_load_phase)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.capabilities_known.connect(self._on_capabilities_known)
        self._worker.load_failed.connect(self._on_load_failed)
        self._worker.started.connect(self._on_started)
        self._worker.segment.connect(self._on_segment)
        self._worker.counts.connect(self._on_counts)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.notice.connect(self._on_notice)
        self._worker.unloaded.connect(self._on_unloaded)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A chat request is running (or queued)."""
        return self._current_id is not None

    @property
    def loading(self) -> bool:
        return self._current_load is not None

    def uses_file(self, path: str | Path) -> bool:
        """Whether the engine has `path` open or may still be opening it (a load that a newer
        one replaced keeps the file open until the engine thread has given it up)."""
        opened = [self.info.path] if self.info is not None else []
        return any(same_file(p, path) for p in [*opened, *self._opening.values()])

    def _new_id(self) -> int:
        req_id, self._next_id = self._next_id, self._next_id + 1
        return req_id

    def load(self, path: str | Path, options: LoadOptions) -> int:
        """Load a model (closing the current one); returns the load's id. A running answer is
        stopped first and still delivers its `finished` (the worker handles requests in
        order); a running load is cancelled and its result dropped."""
        self.releasing.emit("load")
        self.stop()
        self._cancel_load()
        load_id = self._new_id()
        self._current_load, self._load_cancel = load_id, threading.Event()
        self.loading_path = Path(path)
        self._opening[load_id] = Path(path)
        self.info = self.capabilities = None
        self.load_started.emit(str(path))
        self._load_requested.emit(load_id, str(path), options, self._load_cancel)
        return load_id

    def connect_remote(self, endpoint) -> int:
        """Chat through a server (an app.core.remote.Endpoint) instead of a GGUF, like `load`:
        the current model is closed first; `loaded` brings a RemoteModelInfo (`is_remote`)."""
        self.releasing.emit("load")
        self.stop()
        self._cancel_load()
        load_id = self._new_id()
        self._current_load, self._load_cancel = load_id, threading.Event()
        self.info = self.capabilities = None
        self.load_started.emit(remote_label(endpoint))
        self._remote_requested.emit(load_id, endpoint, self._load_cancel)
        return load_id

    @property
    def is_remote(self) -> bool:
        """The loaded model is on a server (app.core.remote), not a file here."""
        return self.info is not None and getattr(self.info, "backend", "") == "remote"

    def chat(self, messages: list[dict], sampling: Sampling, *, keep_thinking: bool = False,
             prefix: list[Segment] | None = None) -> int:
        """Start an answer; returns its request id. Any earlier request becomes stale.
        `keep_thinking`: earlier reasoning goes back into the prompt (Engine.chat). `prefix`:
        the thought starts with these segments (Engine.continue_from)."""
        self.stop()
        req_id = self._new_id()
        self._current_id = req_id
        self._stop = threading.Event()
        self._steering = Steering()
        self._chat_requested.emit(req_id, list(messages), sampling, self._stop, keep_thinking, self._steering,
                                  list(prefix) if prefix is not None else None)
        return req_id

    def answer_now(self) -> None:
        """End the running answer's thought at its next token; it answers from there (steering.py)."""
        if self._steering is not None:
            self._steering.answer_now()

    def nudge(self, note: str) -> None:
        """Put `note` into the running answer's thought (SteeringError with a sentence if it cannot be)."""
        if self._steering is None:
            raise SteeringError("No answer is being written, so there is no thought to add a note to.")
        self._steering.nudge(note)

    def unload(self) -> None:
        """Close the model (after the running answer stops), e.g. to delete its file; `unloaded` follows."""
        self.releasing.emit("unload")
        self.stop()
        self._cancel_load()
        self.info = self.capabilities = None
        self._unload_requested.emit()

    def submit_job(self, job: Job) -> None:
        """Queue a server job on the engine thread, behind whatever is already queued there
        (chats included). Callable from any thread; the caller keeps the queue's limit."""
        self._job_requested.emit(job)

    def stop(self) -> None:
        """Ask the running answer to end after its current token; what it said is kept."""
        if self._stop is not None:
            self._stop.set()

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Stop any answer or load, close the engine on its own thread and end the thread.

        A stop ends generation within a token and a load at its next progress report. By
        default it waits until the thread has ended (a QThread must not be destroyed while
        it runs), warning after 5 s; with `timeout_s` it gives up after that long (tests
        bound it so). Returns whether the thread ended.
        """
        if not self._thread.isRunning():
            return True
        self.releasing.emit("shutdown")
        self.stop()
        self._cancel_load()
        self._close_requested.emit()
        if self._thread.wait(int((timeout_s if timeout_s is not None else 5.0) * 1000)):
            return True
        if timeout_s is not None:
            return False
        log.warning("waiting for the engine thread to finish its current step")
        return self._thread.wait()

    def cancel_load(self) -> None:
        """Give up the running load (the window's Cancel): the engine thread abandons it at its next
        progress report or phase (the model's or the draft model's) and frees what it loaded; `load_cancelled` says so now. The load was asked as one, so
        it ends whole: no model stays loaded (the one before was closed when the load began)."""
        if self._current_load is None:
            return
        self._cancel_load()
        self.info = self.capabilities = None
        self.load_cancelled.emit()

    def _cancel_load(self) -> None:
        if self._load_cancel is not None:
            self._load_cancel.set()
        self._current_load, self._load_cancel, self.loading_path = None, None, None

    @Slot()
    def _on_unloaded(self) -> None:
        self.info = self.capabilities = None  # a load queued before the unload has finished by now
        self.unloaded.emit()

    def _is_current(self, req_id: int) -> bool:
        return req_id == self._current_id

    @Slot(int, float)
    def _on_load_progress(self, load_id: int, fraction: float) -> None:
        if load_id == self._current_load:
            self.load_progress.emit(fraction)

    @Slot(int, str)
    def _on_load_phase(self, load_id: int, name: str) -> None:
        if load_id == self._current_load:
            self.load_phase.emit(name)

    @Slot(int, object)
    def _on_loaded(self, load_id: int, info) -> None:
        self._opening.pop(load_id, None)
        if load_id != self._current_load:
            return  # replaced by a newer load, which closes this model first
        self._current_load, self._load_cancel, self.loading_path = None, None, None
        self.info = info
        self.loaded.emit(info)

    @Slot(int, object)
    def _on_capabilities_known(self, load_id: int, capabilities) -> None:
        if load_id == self._current_load:
            self.capabilities = capabilities

    @Slot(int, str)
    def _on_load_failed(self, load_id: int, message: str) -> None:
        self._opening.pop(load_id, None)
        if load_id != self._current_load:
            return
        self._current_load, self._load_cancel, self.loading_path = None, None, None
        self.info = self.capabilities = None
        self.load_failed.emit(message)

    @Slot(int, int)
    def _on_started(self, req_id: int, prompt_tokens: int) -> None:
        if self._is_current(req_id):
            self.started.emit(req_id, prompt_tokens)

    @Slot(int, object)
    def _on_segment(self, req_id: int, segment: Segment) -> None:
        if self._is_current(req_id):
            self.segment.emit(req_id, segment)

    @Slot(int, int, int)
    def _on_counts(self, req_id: int, thinking: int, answer: int) -> None:
        if self._is_current(req_id):
            self.counts.emit(req_id, thinking, answer)

    @Slot(int, object)
    def _on_finished(self, req_id: int, result: dict) -> None:
        if self._is_current(req_id):
            self._current_id, self._stop, self._steering = None, None, None
            self.finished.emit(req_id, result)

    @Slot(int, str)
    def _on_notice(self, req_id: int, text: str) -> None:
        if self._is_current(req_id):
            self.notice.emit(req_id, text)

    @Slot(int, str)
    def _on_failed(self, req_id: int, message: str) -> None:
        if self._is_current(req_id):
            self._current_id, self._stop, self._steering = None, None, None
            self.failed.emit(req_id, message)

