"""Which model the window runs: loading it, switching to one that was just downloaded or
imported, the file dialog and the Models window, and what the page, the status bar and
the notices say about each step.

`ModelSwitching` is the window's model room: it listens to the engine client and the
model library and updates the window's widgets; the window keeps the widgets and the
conversation logic.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog

from app import APP_NAME
from app.core.engine import LoadOptions, ModelInfo
from app.core.paths import same_file
from app.core.settings import Settings
from app.ui.model_manager import ModelManagerDialog
from app.ui.remote_dialog import ConnectDialog, remember_connection


def load_options(settings: Settings) -> LoadOptions:
    # "auto" and -1 ("all") both mean: let the engine offload every layer it can.
    layers = settings.n_gpu_layers
    return LoadOptions(n_ctx=settings.n_ctx, n_gpu_layers=None if layers in ("auto", -1) else int(layers),
                       draft=settings.draft)


def _same_server(a: str, b: str) -> bool:
    from app.core.errors import PonderError
    from app.core.remote import normalise_base_url

    try:
        return normalise_base_url(a) == normalise_base_url(b)
    except PonderError:
        return False


class ModelSwitching(QObject):
    """Loads models for `window` and shows each step of it there (see the module)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.client = window.client
        self.library = window.library
        self.settings: Settings = window.settings
        self.manager: ModelManagerDialog | None = None
        self._new_chat_on_load: str | None = None  # a downloaded/imported model: open a new chat when loaded
        self._connecting = None  # the Endpoint being connected to (connect_remote), until it answers

        c = self.client
        c.load_started.connect(self._on_load_started)
        c.load_progress.connect(self._on_load_progress)
        c.load_phase.connect(self._on_load_phase)
        c.load_cancelled.connect(self._on_load_cancelled)
        window.status.cancel_load_button.clicked.connect(c.cancel_load)
        window.welcome.cancel_load_requested.connect(c.cancel_load)
        c.loaded.connect(self._on_loaded)
        c.load_failed.connect(self._on_load_failed)
        c.unloaded.connect(self._on_unloaded)
        c.finished.connect(self._on_answer_finished)
        lib = self.library
        lib.load_requested.connect(self._on_model_ready)
        lib.import_started.connect(self._on_import_started)
        lib.problem.connect(self._on_library_problem)
        lib.deleted.connect(self._on_model_deleted)
        lib.downloads.failed.connect(self._on_download_failed)
        # Bound methods, not lambdas: the library outlives the window, and a lambda would keep it alive.
        lib.draft_offered.connect(self._on_draft_offered)
        lib.draft_ready.connect(self._on_draft_ready)
        welcome = window.welcome
        welcome.choose_model_requested.connect(self.choose_file)
        welcome.models_requested.connect(self.open_manager)
        welcome.connect_requested.connect(self.open_connect_dialog)
        welcome.load_requested.connect(self.switch_to)

    @property
    def window(self):
        # Not kept in an attribute: a child holding its parent would keep a closed window alive.
        return self.parent()

    # --- actions --------------------------------------------------------------------

    @Slot(str)
    def load(self, path: str | Path) -> None:
        """Load a GGUF on the engine thread; the window shows progress meanwhile."""
        self._connecting = None
        self.client.load(path, load_options(self.settings))

    @Slot(str)
    def switch_to(self, path: str) -> None:
        """Load `path` and open a new chat with it once it is loaded."""
        self._new_chat_on_load = path
        self.load(path)

    @Slot()
    def open_connect_dialog(self) -> None:
        """"Connect to a server…": chat through a model on an OpenAI-compatible server."""
        self.ask_to_connect()

    def ask_to_connect(self, problem: str | None = None) -> None:
        """The connect dialog (showing `problem`, the last attempt's failure); connects on OK."""
        dialog = ConnectDialog(self.settings, self.window, problem=problem)
        if dialog.exec() == ConnectDialog.DialogCode.Accepted:
            self.connect_remote(dialog.endpoint())

    def connect_remote(self, endpoint) -> None:
        """Use a model on a server (an app.core.remote.Endpoint) in place of the loaded GGUF."""
        self._connecting = endpoint
        self.client.connect_remote(endpoint)

    @Slot()
    def choose_file(self) -> None:
        if self.client.loading:
            return
        start = self.settings.last_model_path
        folder = str(Path(start).parent) if start else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Choose a GGUF model", folder, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.import_file(path)

    @Slot(str)
    def import_file(self, path: str | Path) -> None:
        """Validate a GGUF, add it to the models folder, then load it (or show why not)."""
        self.library.import_file(path)

    @Slot()
    def open_manager(self) -> ModelManagerDialog:
        if self.manager is None:
            self.manager = ModelManagerDialog(self.library, self.window)
            self.manager.load_requested.connect(self.load)
            self.manager.import_requested.connect(self.choose_file)
            self.manager.connect_requested.connect(self.open_connect_dialog)
        if self.manager.isVisible():  # already open, perhaps behind the window
            self.manager.raise_()
            self.manager.activateWindow()
        else:
            # The folder may have changed outside Ponder, and the settings (drafting: the plans) since it was shown.
            self.library.refresh()
            self.manager.show()
        return self.manager

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
        self.library.shutdown()  # a running download stops; its part file resumes next time

    # --- the library's reports ------------------------------------------------------

    @Slot(str)
    def _on_model_ready(self, path: str) -> None:
        """A download or import finished: switch to it, unless an answer is streaming."""
        self.window.status.clearMessage()
        if self.window.session.busy:
            self.window.notice.show_notice(f"{Path(path).name} is ready.",
                                           action=("Load it", lambda: self.switch_to(path)))
            return
        self.switch_to(path)

    @Slot(str)
    def _on_import_started(self, name: str) -> None:
        self.window.status.showMessage(f"Checking and importing {name}…")

    @Slot(str)
    def _on_library_problem(self, message: str) -> None:
        self.window.status.clearMessage()
        self.window.notice.show_notice(message, error=True)

    @Slot(object, str)
    def _on_download_failed(self, _request, message: str) -> None:
        # The welcome page and the manager show it in place; elsewhere it needs a notice.
        shown = self.window.welcome.download_area.isVisible() or (
            self.manager is not None and self.manager.isVisible())
        if not shown:
            self.window.notice.show_notice(message, error=True)

    @Slot(object, str)
    def _on_draft_offered(self, request, text: str) -> None:
        """A 14B/32B/70B is downloaded: "… answers faster when … drafts for it", [Download]."""
        library = self.library
        self.window.notice.show_notice(text, action=("Download", lambda: library.start_download(request)))

    @Slot(str, str)
    def _on_draft_ready(self, path: str, text: str) -> None:
        """An offered draft is downloaded: the model it drafts for picks it up when it loads next;
        if that model is loaded now (drafting on), "Reload now" does that at once."""
        from app.core.speculative import paired_draft_path

        model = getattr(self.client.info, "path", None)  # None: nothing loaded, or a model on a server
        pairs = (model is not None and self.settings.draft == "auto"
                 and same_file(paired_draft_path(model, [self.library.models_dir]), path))
        self.window.notice.show_notice(text, action=("Reload now", lambda: self.load(model)) if pairs else None)

    @Slot(str)
    def _on_model_deleted(self, path: str) -> None:
        if same_file(self.settings.last_model_path, path):
            self.settings.last_model_path = None
            self.window.save_settings()

    # --- the engine's reports -------------------------------------------------------

    @Slot(str)
    def _on_load_started(self, path: str) -> None:
        self.window.setWindowTitle(APP_NAME)
        self.window.welcome.show_loading(path)
        self.window.status.show_loading(path)
        if self.client.loading_path is None:  # not a file: "remote: host · model" (connect_remote)
            for label in (self.window.welcome.message, self.window.status.model_label):
                label.setText(f"Connecting to {path.removeprefix('remote: ')}…")
        self.window.update_controls()

    @Slot(float)
    def _on_load_progress(self, fraction: float) -> None:
        self.window.welcome.set_progress(fraction)
        self.window.status.show_load_progress(fraction)

    @Slot(str)
    def _on_load_phase(self, name: str) -> None:
        """The draft model loads after the model (its progress follows, from 0 again): say which,
        so the second bar has a name (and Cancel stays there)."""
        label = self._draft_label() if name == "draft" else None
        if label is not None:
            text = f"Loading {label}…"  # "Loading draft 1.5B…"
            self.window.welcome.show_load_step(text)
            self.window.status.show_load_step(text)

    def _draft_label(self) -> str | None:
        """'draft 1.5B': the draft model the engine opens with drafting on (the catalog's pair, if
        downloaded); None when it drafts from the text, which has nothing to load."""
        from app.core.speculative import drafter_label, paired_draft_path

        path = self.client.loading_path
        if path is None or self.settings.draft != "auto":
            return None
        draft = paired_draft_path(path, [self.library.models_dir])
        return drafter_label(draft) if draft is not None else None

    @Slot()
    def _on_load_cancelled(self) -> None:
        w = self.window
        w.welcome.show_no_model("Loading was cancelled.")
        w.status.show_model(None)
        w.update_controls()

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        w = self.window
        remote = info.path is None  # a model on a server (RemoteModelInfo), not a file
        # Remote is visible at all times: also in the title (a status message hides the status bar's label).
        w.setWindowTitle(f"{info.label} — {APP_NAME}" if remote else APP_NAME)
        w.welcome.show_ready(info.label if remote else info.name)
        w.status.show_model(info)
        w.status.show_last_answer(w.last_stats())
        if not remote:  # a server is not reconnected at start: no request leaves unasked
            self.settings.last_model_path = str(info.path)
            w.save_settings()
        elif self._connecting is not None:  # remembered for the dialog, without its key
            remember_connection(self.settings, dataclasses.replace(self._connecting, model=info.name))
            w.save_settings()
        self._connecting = None
        if same_file(self._new_chat_on_load, info.path):
            self._new_chat_on_load = None
            w.new_chat()
        notes = [n for n in (info.gpu_note, getattr(info, "context_note", None), info.template_note,
                             getattr(info, "draft_note", None)) if n]
        if notes:
            w.notice.show_notice(" ".join(notes))
        elif w.notice.property("kind") == "error":
            w.notice.hide()  # an earlier load error no longer applies
        w.update_controls()
        w.focus_prompt()

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        w = self.window
        w.welcome.show_failed(message)
        w.status.show_model(None)
        connecting, self._connecting = self._connecting, None
        if connecting is not None:  # a server: the way on is the connect dialog, not a file
            w.notice.show_notice(message, error=True,
                                 action=("Connect to a server…", lambda: self.ask_to_connect(message)))
        elif w.pages.currentWidget() is not w.welcome:  # else the welcome page says it already
            w.notice.show_notice(message, error=True, action=("Choose a GGUF file…", self.choose_file))
        w.update_controls()

    @Slot(int, object)
    def _on_answer_finished(self, _req_id: int, result: dict) -> None:
        """A remote stream showed whether the model thinks: that becomes its recent connection's
        setting (unless the user set it), so the next connection starts from it."""
        learned, info = result.get("reasoning_learned"), self.client.info
        if learned is None or not self.client.is_remote:
            return
        for connection in self.settings.remote_connections:
            if (connection.get("model") == info.name and connection.get("reasoning") is None
                    and _same_server(connection.get("base_url", ""), info.base_url)):
                connection["reasoning"] = learned
                self.window.save_settings()
                self.window.status.show_model(info)  # its tooltip says whether it thinks
                self.window.status.show_last_answer(self.window.last_stats())
                return

    @Slot()
    def _on_unloaded(self) -> None:
        if self.client.loading:  # a load asked after the unload: its own reports follow ("Loading …" stays)
            return
        self.window.setWindowTitle(APP_NAME)
        self.window.welcome.show_no_model()
        self.window.status.show_model(None)
        self.window.update_controls()
