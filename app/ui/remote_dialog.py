""""Connect to a server…": chat through a model on an OpenAI-compatible server (vLLM, SGLang,
llama-server, Ollama, LM Studio, DeepSeek's API, another Ponder) instead of a GGUF here.

The dialog only gathers an `app.core.remote.Endpoint`: a preset (app/core/remote_presets.py) or a
recent connection fills the fields; the model is picked from the server's `GET /v1/models` when
the user asks for the list (off the GUI thread), else typed; "Reasoning model" follows the
model's name until the user sets it. The API key goes to the keychain (app/core/secrets.py),
which keeps it for the session only where there is none and says so here. Recent connections
are remembered in the settings without their keys (`remember_connection`).

Nothing here touches the network until the user asks for the list or connects.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import PonderError
from app.core.remote import Endpoint, guess_reasoning, host_of, list_models, normalise_base_url
from app.core.remote_presets import PRESETS
from app.core.secrets import key_store
from app.core.settings import Settings
from app.ui import theme
from app.ui.background import run_in_background

MAX_RECENT = 8
OTHER = "Other server"


def remember_connection(settings: Settings, endpoint: Endpoint) -> None:
    """Put `endpoint` first among the recent connections (without its key)."""
    entry = {"base_url": endpoint.base_url, "model": endpoint.model, "reasoning": endpoint.reasoning,
             "server_kind": endpoint.server_kind}
    same = (entry["base_url"], entry["model"])
    rest = [c for c in settings.remote_connections if (c.get("base_url"), c.get("model", "")) != same]
    settings.remote_connections = [entry, *rest][:MAX_RECENT]


def connection_label(connection: dict) -> str:
    try:
        host = host_of(normalise_base_url(connection["base_url"]))
    except PonderError:
        host = connection["base_url"]
    return f"{host} · {connection['model']}" if connection.get("model") else host


class ConnectDialog(QDialog):
    """Gathers an Endpoint; `endpoint()` gives it after Connect (the key is stored by then)."""

    def __init__(self, settings: Settings, parent: QWidget | None = None, *, problem: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a server")
        self.setObjectName("connectDialog")
        self.setMinimumWidth(520)
        self.keys = key_store()
        self._reasoning_touched = False
        self._listing = None

        self.preset = QComboBox(objectName="remotePreset")
        for connection in settings.remote_connections:
            self.preset.addItem(f"Recent: {connection_label(connection)}", ("recent", connection))
        for preset in PRESETS:
            self.preset.addItem(preset.name, ("preset", preset))
        self.preset.addItem(OTHER, ("other", None))
        self.preset_note = QLabel(objectName="remotePresetNote", wordWrap=True)
        self.preset_note.setEnabled(False)

        self.base_url = QLineEdit(objectName="remoteUrl")
        self.base_url.setPlaceholderText("http://gpu-box:8000/v1")
        self.api_key = QLineEdit(objectName="remoteKey")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("if the server needs one")
        self.key_note = QLabel(self.keys.note or "The key is kept in the system keychain, never in Ponder's "
                               "settings.", objectName="remoteKeyNote", wordWrap=True)
        self.key_note.setEnabled(False)

        self.model = QComboBox(objectName="remoteModel", editable=True)
        self.model.lineEdit().setPlaceholderText("type a name, or list the server's models")
        self.list_button = QPushButton("List models", objectName="remoteListModels")
        self.list_button.setToolTip("Ask the server which models it serves (GET /v1/models)")
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.list_button)

        self.reasoning = QCheckBox("Reasoning model (its thinking is shown apart)", objectName="remoteReasoning")
        self.reasoning.setToolTip("Guessed from the model's name (R1, reasoner, QwQ…); the first answer "
                                  "corrects the guess. Set it yourself if the guess is wrong.")
        self.message = QLabel(objectName="remoteMessage", wordWrap=True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.privacy = QLabel("Your prompts and the conversation so far are sent to this server.",
                              objectName="remotePrivacy", wordWrap=True)
        self.privacy.setEnabled(False)

        form = QFormLayout()
        form.addRow("Server", self.preset)
        form.addRow("", self.preset_note)
        form.addRow("Address", self.base_url)
        form.addRow("API key", self.api_key)
        form.addRow("", self.key_note)
        form.addRow("Model", model_row)
        form.addRow("", self.reasoning)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button = self.buttons.addButton("Connect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.connect_button.setObjectName("remoteConnect")
        self.connect_button.setDefault(True)
        self.buttons.accepted.connect(self._on_connect)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.privacy)
        layout.addWidget(self.buttons)

        self.preset.currentIndexChanged.connect(self._on_preset)
        self.list_button.clicked.connect(self.list_models)
        self.model.currentTextChanged.connect(self._on_model_changed)
        self.reasoning.clicked.connect(self._on_reasoning_clicked)
        self.base_url.textEdited.connect(lambda _text: self._fill_key())
        self._on_preset(self.preset.currentIndex())
        if problem:
            self.show_message(problem, error=True)

    # --- filling in ---------------------------------------------------------------------

    @Slot(int)
    def _on_preset(self, index: int) -> None:
        kind, value = self.preset.itemData(index)
        self.show_message("")
        if kind == "recent":
            self.base_url.setText(value["base_url"])
            self._set_models([value.get("model", "")])
            self._server_kind = value.get("server_kind")
            self.preset_note.setText("A server you connected to before.")
            reasoning = value.get("reasoning")
            self._reasoning_touched = reasoning is not None
            self.reasoning.setChecked(guess_reasoning(value.get("model", "")) if reasoning is None else reasoning)
        elif kind == "preset":
            self.base_url.setText(value.base_url)
            self._set_models([value.model] if value.model else [])
            self._server_kind = value.server_kind
            self.preset_note.setText(value.note)
            self._reasoning_touched = False
        else:
            self._server_kind = None
            self._set_models([])  # not the last preset's model: type it, or list the server's
            self.preset_note.setText("Any OpenAI-compatible server (its address usually ends with …/v1).")
            self._reasoning_touched = False
        self._fill_key()
        self._on_model_changed(self.model.currentText())

    def _fill_key(self) -> None:
        """The key kept for this address, if any (from the keychain, or this session)."""
        try:
            url = normalise_base_url(self.base_url.text())
        except PonderError:
            return
        self.api_key.setText(self.keys.get(url) or "")

    def _set_models(self, names: list[str]) -> None:
        self.model.clear()
        self.model.addItems([n for n in names if n])

    @Slot(str)
    def _on_model_changed(self, name: str) -> None:
        if not self._reasoning_touched:
            self.reasoning.setChecked(guess_reasoning(name))

    @Slot()
    def _on_reasoning_clicked(self) -> None:
        self._reasoning_touched = True

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        colors = theme.colors_for(self)
        self.message.setStyleSheet(f"color: {colors.error_text if error else colors.text_dim};")
        self.message.setVisible(bool(text))

    # --- the server's list ------------------------------------------------------------

    @Slot()
    def list_models(self) -> None:
        try:
            url = normalise_base_url(self.base_url.text())
        except PonderError as exc:
            self.show_message(str(exc), error=True)
            return
        key = self.api_key.text().strip() or None
        self.list_button.setEnabled(False)
        self.show_message(f"Asking {host_of(url)} for its models…")
        self._listing = run_in_background(lambda job: list_models(url, key), owner=self, name="list remote models",
                                          on_done=self._on_listed, on_failed=self._on_list_failed)

    def _on_listed(self, models) -> None:
        self.list_button.setEnabled(True)
        self._listing = None
        if not models:
            self.show_message("The server lists no models: type the model's name.")
            return
        typed = self.model.currentText()
        self._set_models([m.id for m in models])
        if typed in [m.id for m in models]:
            self.model.setCurrentText(typed)
        self.show_message(f"{len(models)} model{'s' if len(models) != 1 else ''} on this server.")

    def _on_list_failed(self, message: str) -> None:
        self.list_button.setEnabled(True)
        self._listing = None
        self.show_message(f"{message} You can still type the model's name.", error=True)

    # --- connecting ---------------------------------------------------------------------

    def endpoint(self) -> Endpoint:
        return Endpoint(self.base_url.text().strip(), self.model.currentText().strip(),
                        self.api_key.text().strip() or None,
                        reasoning=self.reasoning.isChecked() if self._reasoning_touched else None,
                        server_kind=self._server_kind)

    @Slot()
    def _on_connect(self) -> None:
        try:
            url = normalise_base_url(self.base_url.text())
        except PonderError as exc:
            self.show_message(str(exc), error=True)
            return
        self.base_url.setText(url)
        key = self.api_key.text().strip()
        if key:
            self.keys.set(url, key)
        else:
            self.keys.delete(url)
        self.accept()
