"""The window's server switch: serve the model the window has loaded over the OpenAI-compatible
API of `ponder serve` (app/core/server/api.py, docs/serving.md).

The model keeps one owner. The HTTP server (uvicorn, on a thread of its own) never touches the
engine: `WindowJobs` hands each request to the window's engine thread (`EngineClient.submit_job`),
where it waits in the same FIFO as the window's own chats and runs with `serve_job`. At most
`max_waiting` requests wait there; one more gets 429. When the window gives its model up (a
switch, an unload, closing) the requests running or waiting end with a 503 ("no model loaded"),
and so do the requests that arrive while nothing is loaded.

`ServerSwitch` is the switch itself: the Model menu's "Serve the loaded model" and "Server
settings…", the status bar's indicator (its menu copies the address or turns serving off), the
confirmation before serving beyond this computer without a key, and a notice when the port
cannot be had. The API key lives in the OS keychain (app/core/secrets.py), never in settings.json;
where there is no keychain, only until Ponder closes.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.server.api import build_app, bind_socket, is_loopback, make_server
from app.core.server.service import (
    DEFAULT_MAX_WAITING,
    ChatRequest,
    EventCallback,
    Job,
    JobResult,
    NoModelLoaded,
    WaitingRoom,
)
from app.ui.settings_dialog import lay_out_form_dialog
from app.ui.worker import NO_MODEL_TO_SERVE, EngineClient

log = logging.getLogger(__name__)

SECRET_NAME = "server-api-key"  # the keychain entry of the window server's API key
STOP_TIMEOUT_S = 5.0

RELEASE_REASONS = {
    "load": "Ponder's window is switching models, so no model is loaded right now. Try again when it has loaded.",
    "unload": NO_MODEL_TO_SERVE,
    "shutdown": "Ponder is closing; no model is loaded.",
    "off": "Serving was turned off in Ponder's window.",
}


class WindowJobs:
    """The `JobQueue` of the window's server: jobs run on the window's engine thread.

    `submit` is called on the HTTP server's thread; `set_model` and `release` on the GUI thread.
    """

    def __init__(self, client: EngineClient, max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.client = client
        self.room = WaitingRoom(max_waiting)
        self._lock = threading.Lock()
        self._model: tuple[str, int] | None = None  # (id, created) of the loaded model
        self._why_none = NO_MODEL_TO_SERVE
        self._jobs: set[Job] = set()  # submitted, not yet done
        self._waiting: set[Job] = set()  # of those, not yet taken by the engine thread

    @property
    def model_id(self) -> str | None:
        model = self._model
        return model[0] if model else None

    @property
    def model_created(self) -> int:
        model = self._model
        return model[1] if model else 0

    @property
    def active(self) -> int:
        """Jobs running or waiting."""
        return len(self._jobs)

    def set_model(self, info) -> None:
        """The loaded model's ModelInfo (its id is the file's name, as `ponder serve` gives it),
        a remote engine's RemoteModelInfo (its id is the server's model name), or None."""
        model = None
        if info is not None and info.path is not None:
            try:
                created = int(Path(info.path).stat().st_mtime)
            except OSError:
                created = 0
            model = (Path(info.path).stem, created)
        elif info is not None:
            model = (info.name, 0)
        with self._lock:
            self._model = model
            self._why_none = NO_MODEL_TO_SERVE

    def release(self, why: str) -> None:
        """The model goes away ("load", "unload", "shutdown", "off"): running and waiting jobs end
        with a 503 saying why, and so do new ones until a model is loaded again. A waiting job is
        answered at once (not when the engine thread reaches it, perhaps after a long chat of the
        window's); the running one ends within a token."""
        reason = RELEASE_REASONS.get(why, NO_MODEL_TO_SERVE)
        with self._lock:
            self._model = None
            self._why_none = reason
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel(reason)
            if job in self._waiting:  # the engine thread will drop it when it gets there
                try:
                    job.on_event("done", JobResult(job.id, "error", error=reason, error_kind="unavailable"))
                except Exception:  # its client is gone (its event loop closed): nothing to tell
                    log.debug("could not answer waiting job %s", job.id, exc_info=True)

    def submit(self, request: ChatRequest, on_event: EventCallback) -> Job:
        with self._lock:
            if self._model is None:
                raise NoModelLoaded(self._why_none)
            self.room.enter()  # raises ServerBusy when full

            def relay(kind: str, payload: object) -> None:  # on the engine thread (or release's)
                with self._lock:
                    if job in self._waiting:  # its first event: it has left the queue
                        self._waiting.discard(job)
                        self.room.leave()
                    if job not in self._jobs:
                        return  # ended already (answered by release): nothing more for its client
                    if kind == "done":
                        self._jobs.discard(job)
                on_event(kind, payload)

            job = Job(request, relay)
            self._jobs.add(job)
            self._waiting.add(job)
        self.client.submit_job(job)
        return job


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    raw_think: bool  # keep <think>…</think> in `content` instead of `reasoning_content`
    api_key: str | None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def start_problem(config: ServerConfig, exc: OSError) -> str:
    """A sentence for a server that could not bind its address."""
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return (f"Port {config.port} on {config.host} is already in use, perhaps by another server or another "
                f"Ponder. Choose another port in Server settings, or stop the program that uses it.")
    if exc.errno in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
        return (f"Ponder may not use port {config.port} on {config.host} (ports below 1024 need administrator "
                f"rights). Choose a port above 1024 in Server settings.")
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (f"{config.host} is not an address of this computer. Use 127.0.0.1 (this computer only) or "
                f"0.0.0.0 (every network) in Server settings.")
    return f"Could not serve on {config.address}: {exc.strerror or exc}. Check the address in Server settings."


class ServerKey:
    """The server's API key, in the OS keychain through app/core/secrets.py (which keeps it for
    the session only where there is no keychain, and says so in `note`)."""

    ACCOUNT = "ponder-window-server"  # its keychain entry, beside the remote servers' keys

    def __init__(self) -> None:
        self._session: str | None = None  # only if secrets.py is missing

    @staticmethod
    def _store():
        try:
            from app.core.secrets import key_store
        except ImportError:
            return None
        return key_store()

    @property
    def note(self) -> str | None:
        """A sentence when the key does not outlive this session; None when it does."""
        store = self._store()
        if store is None:
            return "The key is kept only until Ponder closes."
        return store.note

    def get(self) -> str | None:
        store = self._store()
        return store.get(self.ACCOUNT) if store is not None else self._session

    def set(self, key: str | None) -> None:
        store = self._store()
        if store is None:
            self._session = key or None
        elif key:
            store.set(self.ACCOUNT, key)
        else:
            store.delete(self.ACCOUNT)


class ServerSettingsDialog(QDialog):
    """Host, port, API key and the reasoning format of the window's server."""

    def __init__(self, config: ServerConfig, key_note: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Server settings")
        self.setObjectName("serverSettingsDialog")
        self.host = QLineEdit(config.host, objectName="serverHostInput")
        self.host.setToolTip("127.0.0.1: this computer only. 0.0.0.0: every network this computer is on.")
        self.port = QSpinBox(objectName="serverPortInput")
        self.port.setRange(1, 65535)
        self.port.setValue(config.port)
        self.api_key = QLineEdit(config.api_key or "", objectName="serverKeyInput")
        self.api_key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.api_key.setPlaceholderText("none: any program that reaches the address may use the model")
        show = QCheckBox("Show", objectName="serverKeyShow")
        show.toggled.connect(lambda on: self.api_key.setEchoMode(
            QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.PasswordEchoOnEdit))
        key_row = QVBoxLayout()
        key_row.addWidget(self.api_key)
        key_row.addWidget(show)
        self.raw_think = QCheckBox("Keep <think>…</think> in the answer's content", objectName="serverRawInput")
        self.raw_think.setChecked(config.raw_think)
        self.raw_think.setToolTip("Off: the thinking goes in reasoning_content, as DeepSeek's API sends it. "
                                  "On: for clients that split the tags themselves.")
        form = QFormLayout()
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow("API key", key_row)
        form.addRow("Thinking", self.raw_think)
        where = key_note or "The key is kept in the system keychain."
        note = QLabel(f"Clients send the key as 'Authorization: Bearer KEY'. {where}", objectName="serverKeyNote")
        lay_out_form_dialog(self, form, note)

    def result_config(self) -> ServerConfig:
        return ServerConfig(self.host.text().strip() or "127.0.0.1", self.port.value(), self.raw_think.isChecked(),
                            self.api_key.text().strip() or None)


class ServerSwitch(QObject):
    """Serves the window's loaded model (see the module).

    Signals:
      serving_changed(str address): on at this address, or "" when off.
      problem(str): a sentence saying why serving could not start (also shown as a notice).
    """

    serving_changed = Signal(str)
    problem = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.client: EngineClient = window.client
        self.settings = window.settings
        self.keys = ServerKey()
        self.max_waiting = DEFAULT_MAX_WAITING  # requests that may wait for the engine; more get 429
        self.jobs: WindowJobs | None = None
        self.config: ServerConfig | None = None  # while serving
        self._server = None
        self._thread: threading.Thread | None = None
        self._model = window.client.info  # ModelInfo (or RemoteModelInfo) while one is loaded

        self.client.loaded.connect(self._on_loaded)
        self.client.unloaded.connect(self._on_unloaded)
        self.client.load_failed.connect(self._on_unloaded)
        self.client.releasing.connect(self._on_releasing)
        window.session.busy_changed.connect(self._on_window_chat)
        window.session.stream_started.connect(self._on_window_chat_started)

        self.toggle_action = QAction("&Serve the loaded model", window, objectName="serveAction", checkable=True)
        self.toggle_action.setStatusTip("Serve the window's model over an OpenAI-compatible API "
                                        "(/v1/chat/completions), for editors, scripts and agents")
        self.toggle_action.toggled.connect(self._on_toggled)
        self.settings_action = QAction("Server se&ttings…", window, objectName="serverSettingsAction")
        self.settings_action.triggered.connect(self.open_settings)
        menu = window.menus.model_menu
        menu.addSeparator()
        menu.addAction(self.toggle_action)
        menu.addAction(self.settings_action)

        self.indicator_menu = QMenu(window.status)
        self.indicator_menu.addAction("Copy address", self.copy_address)
        self.indicator_menu.addAction("Server settings…", self.open_settings)
        self.indicator_menu.addAction("Turn serving off", self.stop)
        window.status.server_indicator.setMenu(self.indicator_menu)

    @property
    def window(self):
        return self.parent()  # not kept: a child holding its parent keeps a closed window alive

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> str | None:
        return self.config.address if self.config is not None else None

    def current_config(self) -> ServerConfig:
        s = self.settings
        return ServerConfig(s.server_host, s.server_port, s.server_reasoning_format == "raw", self.keys.get())

    # --- on and off -----------------------------------------------------------------

    def start(self, *, confirmed: bool = False) -> bool:
        """Start serving with the current settings; False (and a notice saying why) if it cannot."""
        if self.serving:
            return True
        config = self.current_config()
        if not is_loopback(config.host) and not config.api_key and not confirmed:
            if not self.confirm_open_address(config):
                self._show_state()
                return False
        try:
            sock = bind_socket(config.host, config.port)
            sock.listen(128)  # clients that connect before uvicorn's loop is up wait instead of failing
        except OSError as exc:
            message = start_problem(config, exc)
            self._show_state()
            self.window.notice.show_notice(message, error=True, action=("Server settings…", self.open_settings))
            self.problem.emit(message)
            return False
        self.jobs = WindowJobs(self.client, self.max_waiting)
        self.jobs.set_model(self._model)
        app = build_app(self.jobs, api_key=config.api_key, reasoning_format="raw" if config.raw_think else "separate")
        self._server = make_server(app, config.host, config.port, log_level="warning")
        self._thread = threading.Thread(target=self._serve, args=(self._server, sock), name="ponder-window-server",
                                        daemon=True)
        self.config = config
        self._thread.start()
        log.info("serving the window's model at %s", config.address)
        self._show_state()
        return True

    @staticmethod
    def _serve(server, sock) -> None:
        try:
            server.run(sockets=[sock])
        except Exception:  # uvicorn failing at start: logged; the switch still turns off cleanly
            log.exception("the window's server stopped with an error")
        finally:
            sock.close()

    @Slot()
    def stop(self, why: str = "off") -> None:
        """Turn serving off: running and waiting requests end (503), then the server stops."""
        if self._server is None:
            return
        server, thread, jobs = self._server, self._thread, self.jobs
        self._server = self._thread = self.jobs = self.config = None
        jobs.release(why)
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        self._show_state()

    def restart(self) -> None:
        if self.serving:
            self.stop()
            self.start()

    def confirm_open_address(self, config: ServerConfig) -> bool:
        """Serving beyond loopback without a key: ask first."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Serve without an API key?",
                          f"Serve on {config.address} without an API key?", parent=self.window)
        box.setObjectName("serveOpenConfirm")
        box.setInformativeText(f"Anyone who can reach this computer on port {config.port} can use the model "
                               "and read what it writes. Set an API key in Server settings, or serve on "
                               "127.0.0.1 (this computer only).")
        serve = box.addButton("Serve without a key", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is serve

    # --- the window's parts ---------------------------------------------------------

    @Slot(bool)
    def _on_toggled(self, on: bool) -> None:
        if on and not self.serving:
            self.start()
        elif not on and self.serving:
            self.stop()

    @Slot()
    def copy_address(self) -> None:
        if self.address:
            QGuiApplication.clipboard().setText(f"{self.address}/v1")
            self.window.status.showMessage("Server address copied", 2000)

    @Slot()
    def open_settings(self) -> None:
        dialog = ServerSettingsDialog(self.current_config(), self.keys.note, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.apply(dialog.result_config())

    def apply(self, new: ServerConfig) -> None:
        """Take new server settings (saved; the key in the keychain) and restart a running server."""
        old = self.current_config()
        s = self.settings
        s.server_host, s.server_port = new.host, new.port
        s.server_reasoning_format = "raw" if new.raw_think else "separate"
        if new.api_key != old.api_key:
            self.keys.set(new.api_key)  # never raises: without a keychain it is kept for the session
        self.window.save_settings()
        if self.serving and new != self.config:
            self.restart()

    def _show_state(self) -> None:
        address = self.address
        self.toggle_action.blockSignals(True)
        self.toggle_action.setChecked(address is not None)
        self.toggle_action.blockSignals(False)
        if address is None:
            self.window.status.show_serving(None)
        else:
            model = self.jobs.model_id if self.jobs is not None else None
            lines = [f"OpenAI-compatible API at {address}/v1 (/v1/chat/completions, /v1/models).",
                     f"Serving {model}." if model else "No model is loaded: requests get an error until one is.",
                     "Requests wait their turn with this window's chats.",
                     "An API key is required." if self.config.api_key else "No API key is required.",
                     "Click to copy the address or turn serving off."]
            self.window.status.show_serving(address, "\n".join(lines))
        self.serving_changed.emit(address or "")

    @Slot(bool)
    def _on_window_chat(self, busy: bool) -> None:
        """A chat sent while the server's requests hold the engine waits for them: say so."""
        waiting = self.jobs.active if self.jobs is not None else 0
        if busy and waiting:
            self.window.status.showMessage(
                f"Your answer starts when the server's {waiting} request{'s' if waiting > 1 else ''} "
                f"{'are' if waiting > 1 else 'is'} done…")
        elif not busy:
            self._on_window_chat_started()

    @Slot()
    def _on_window_chat_started(self, *_args) -> None:
        if self.window.status.currentMessage().startswith("Your answer starts when the server"):
            self.window.status.clearMessage()

    # --- the engine's reports -------------------------------------------------------

    @Slot(str)
    def _on_releasing(self, why: str) -> None:
        self._model = None
        if why == "shutdown":
            self.stop("shutdown")  # the engine thread ends next: nothing may wait for it
        elif self.jobs is not None:
            self.jobs.release(why)
            self._show_state()

    @Slot(object)
    def _on_loaded(self, info) -> None:
        self._model = info
        if self.jobs is not None:
            self.jobs.set_model(info)
            self._show_state()

    @Slot()
    def _on_unloaded(self, *_args) -> None:
        self._model = None
        if self.jobs is not None:
            self.jobs.set_model(None)
            self._show_state()
