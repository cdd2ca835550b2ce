"""MainWindow: conversations on the left, the transcript in the centre, the prompt box below.

The window is given its parts (app/ui/main.py wires the application: store, engine
client, chat session, model library) and connects them to its widgets. It is on
screen before any model loads; loading shows progress, and a load error is shown as
the PonderError's sentence while the rest of the window stays usable. A model that
finishes downloading or importing is loaded and a new chat opens; a GGUF file dropped
onto the window is imported. Its small parts live beside it: the status bar
(status_bar.py), the notice bar (notice_bar.py), the prompt box and prompt editing
(prompt_box.py), drag-and-drop of model files (model_drop.py).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME
from app.core.errors import PonderError
from app.core.settings import Settings, save_settings
from app.core.storage import ChatStore, Message
from app.ui import theme
from app.ui.background import run_in_background
from app.ui.chat_navigation import ChatNavigation
from app.ui.conversation_list import ConversationList
from app.ui.model_drop import ModelFileDrop
from app.ui.model_library import ModelLibrary
from app.ui.model_manager import ModelManagerDialog
from app.ui.model_switching import ModelSwitching
from app.ui.notice_bar import NoticeBar
from app.ui.prompt_box import PromptEditing, PromptInput
from app.ui.prompt_inspector import PromptInspector
from app.ui.session import ChatSession
from app.ui.settings_dialog import SettingsDialog
from app.ui.status_bar import ModelStatusBar
from app.ui.steering_bar import SteeringBar, SteeringControls
from app.ui.trace_export import TraceExport
from app.ui.transcript import Transcript
from app.ui.version_nav import VersionControls
from app.ui.welcome import WelcomePage
from app.ui.window_menus import WindowMenus
from app.ui.worker import NO_MODEL_MESSAGE, EngineClient

log = logging.getLogger(__name__)

class MainWindow(QMainWindow):
    """The application window, given its parts by app/ui/main.py (`build_window`)."""

    def __init__(self, store: ChatStore, settings: Settings, data_dir: Path, *, client: EngineClient,
                 session: ChatSession, library: ModelLibrary) -> None:
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.setObjectName("mainWindow")
        self.store = store
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.client = client
        self.session = session
        self.library = library
        self._closed = False

        self._build_widgets()
        self.status = ModelStatusBar(self)
        self.setStatusBar(self.status)
        self.drop = ModelFileDrop(self)
        self.models = ModelSwitching(self)
        self.chats = ChatNavigation(self)
        self.trace_export = TraceExport(self)  # File → Export traces (before the menus: they use it)
        self.versions = VersionControls(self)  # ‹ 2/3 › on answers, compare (before the menus: they use it)
        self.steering = SteeringControls(self)  # budget, Answer now, nudges, edit thinking (before the menus too)
        self.menus = WindowMenus(self)
        self._connect()

        self.transcript.thinking_expanded = settings.thinking_expanded
        self.transcript.thinking_maths = settings.thinking_maths
        if settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(settings.window_geometry.encode("ascii")))
        else:
            self.resize(1200, 800)
        self.chats.refresh()
        self._show_page()
        self.update_controls()
        self.prompt_input.setFocus()
        if store.recovery_message:
            self.notice.show_notice(store.recovery_message)
        if store.recovered_from is None:  # a file just begun has nothing to check
            # quick_check reads every page (1-5 s for 1 GB, docs/architecture.md): after start, off the GUI thread.
            run_in_background(lambda job: store.check_integrity(job.cancel_event), owner=self,
                              name="conversation file check", on_failed=self._on_store_check_failed)
        self.library.refresh()  # hardware, recommendation and local models, on a worker thread

    # --- construction ---------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.conversations = ConversationList()
        self.welcome = WelcomePage()
        self.welcome.bind(self.library)
        self.transcript = Transcript()
        self.notice = NoticeBar()

        self.pages = QStackedWidget(objectName="centrePages")
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.transcript)

        self.prompt_input = PromptInput()
        self.editing = PromptEditing(self.prompt_input, self)
        self.send_button = QPushButton("Send", objectName="sendButton")
        self.send_button.setToolTip("Send the prompt (Enter)")
        self.stop_button = QPushButton("Stop", objectName="stopButton")
        self.stop_button.setToolTip("Stop the answer; what was generated is kept (Esc)")

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        buttons.addStretch(1)  # the button sits at the bottom as the prompt box grows
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        prompt_row = QHBoxLayout()
        prompt_row.setSpacing(8)
        prompt_row.addWidget(self.prompt_input, 1)
        prompt_row.addLayout(buttons)
        bottom = QWidget(objectName="promptArea")
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(16, 8, 16, 12)
        bottom_layout.setSpacing(4)
        bottom_layout.addWidget(self.editing.banner)
        bottom_layout.addLayout(prompt_row)
        self.steering_bar = SteeringBar(self.settings.thinking_budget)  # steering_bar.py
        bottom_layout.addWidget(self.steering_bar)

        centre = QWidget(objectName="centre")
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.notice)
        centre_layout.addWidget(self.pages, 1)
        centre_layout.addWidget(bottom)

        splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        splitter.addWidget(self.conversations)
        splitter.addWidget(centre)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 940])
        splitter.setHandleWidth(1)  # drawn as a hairline between the sidebar and the chat
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

    def _connect(self) -> None:
        s = self.session
        s.transcript_reset.connect(self._on_transcript_reset)
        s.message_added.connect(self._on_message_added)
        s.stream_segment.connect(self.transcript.live_segment)
        s.stream_inserted.connect(self.transcript.live_inserted)
        s.stream_counts.connect(self.transcript.live_counts)
        s.stream_started.connect(self._on_live_context)
        s.stream_counts.connect(self._on_live_context)
        s.answer_finished.connect(self._on_answer_finished)
        s.busy_changed.connect(self.update_controls)
        s.error_occurred.connect(self._show_error)

        self.transcript.regenerate_requested.connect(self._on_regenerate_requested)
        self.transcript.prompt_requested.connect(self._on_prompt_requested)
        self.transcript.edit_requested.connect(self._on_edit_requested)
        self.prompt_input.submitted.connect(self.send_prompt)
        self.prompt_input.textChanged.connect(self.update_controls)
        self.send_button.clicked.connect(self.send_prompt)
        self.stop_button.clicked.connect(s.stop)
        self.drop.file_dropped.connect(self.import_model)

    # --- model (the work is ModelSwitching's) ------------------------------------------

    def load_model(self, path: str | Path) -> None:
        self.models.load(path)

    def import_model(self, path: str | Path) -> None:
        self.models.import_file(path)

    @Slot()
    def choose_model(self) -> None:
        self.models.choose_file()

    @Slot()
    def open_model_manager(self) -> ModelManagerDialog:
        return self.models.open_manager()

    @property
    def model_manager(self) -> ModelManagerDialog | None:
        return self.models.manager

    @Slot()
    def _on_live_context(self, *_counts) -> None:
        self.status.show_live_context(self.session.live_context_used)

    def last_stats(self) -> dict | None:
        for m in reversed(self.session.messages):
            if m.role == "assistant" and m.stats and "context_used" in m.stats:
                return m.stats
        return None

    @Slot()
    def new_chat(self) -> None:
        self.chats.new_chat()

    # --- transcript -----------------------------------------------------------------

    @Slot(list)
    def _on_transcript_reset(self, messages: list[Message]) -> None:
        self.transcript.reset(messages)
        self.conversations.set_current(self.session.conversation_id)
        self._show_page()
        self.status.show_last_answer(self.last_stats())

    @Slot(object)
    def _on_message_added(self, message: Message) -> None:
        live = message.status == "streaming"
        self.transcript.append(message, trace=self.session.live_trace if live else None)
        self._show_page()

    @Slot(object)
    def _on_answer_finished(self, message: Message) -> None:
        self.transcript.finish_live(message)
        self.status.show_last_answer(self.last_stats())

    def _show_page(self) -> None:
        self.pages.setCurrentWidget(self.transcript if self.session.messages else self.welcome)

    # --- prompt ---------------------------------------------------------------------

    @Slot()
    def send_prompt(self) -> None:
        text = self.prompt_input.toPlainText().strip()
        if not text or self.session.busy:
            return
        if self.editing.active:
            message = self.session.message_at(self.editing.position)
            sent = message is not None and self.session.edit_and_resend(message.id, text)
        else:
            sent = self.session.send(text)
        if sent:
            self.prompt_input.clear()
            self.editing.cancel()

    @Slot(int)
    def _on_prompt_requested(self, position: int) -> PromptInspector | None:
        """An answer's Prompt action: what the model saw for it, in a window of its own."""
        message = self.session.message_at(position)
        if message is None or message.role != "assistant":
            return None
        inspector = PromptInspector(message, [m for m in self.session.messages if m.position < position], self)
        inspector.show()
        return inspector

    @Slot(int)
    def _on_regenerate_requested(self, position: int) -> None:
        message = self.session.message_at(position)
        if message is not None:
            self.editing.cancel()
            self.session.regenerate(message.id)

    @Slot(int)
    def _on_edit_requested(self, position: int) -> None:
        message = self.session.message_at(position)
        if message is not None and message.role == "user":
            self.editing.start(position, message.content)

    @Slot()
    def on_escape(self) -> None:
        if self.session.busy:
            self.session.stop()
        elif self.editing.active:
            self.editing.cancel()
        elif self.conversations.search_input.hasFocus():
            self.conversations.clear_search()
        elif self.chats.showing_matches:
            self.chats.matches.clear()

    @Slot()
    def copy_last_answer(self) -> None:
        for m in reversed(self.session.messages):
            if m.role == "assistant" and m.status != "streaming" and m.content:
                QGuiApplication.clipboard().setText(m.content)
                self.status.showMessage("Answer copied", 2000)
                return
        self.status.showMessage("No answer to copy yet", 2000)

    @Slot()
    def update_controls(self, *_args) -> None:
        ready = self.client.info is not None
        busy = self.session.busy
        has_text = bool(self.prompt_input.toPlainText().strip())
        self.send_button.setEnabled(ready and not busy and has_text)
        self.stop_button.setEnabled(busy)
        # One button at a time in the same place: Send, or Stop while an answer streams.
        self.send_button.setVisible(not busy)
        self.stop_button.setVisible(busy)
        self.menus.open_model.setEnabled(not self.client.loading)
        if not ready:
            self.send_button.setToolTip("Waiting for the model to load" if self.client.loading else NO_MODEL_MESSAGE)
        else:
            self.send_button.setToolTip("Send the prompt (Enter)")

    @Slot(str)
    def _on_store_check_failed(self, message: str) -> None:
        self.notice.show_notice(message, error=True)

    @Slot(str)
    def _show_error(self, message: str) -> None:
        action = None if self.client.info is not None or self.client.loading else ("Choose a GGUF file…",
                                                                                   self.choose_model)
        self.notice.show_notice(message, error=True, action=action)

    # --- keyboard focus -------------------------------------------------------------

    def focus_prompt(self) -> None:
        """A model is ready: typing goes to the prompt box (unless the user is typing elsewhere)."""
        focus = QApplication.focusWidget()
        if focus is None or not _takes_text(focus) or focus is self.prompt_input:
            self.prompt_input.setFocus(Qt.FocusReason.OtherFocusReason)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        """Type-ahead: a character typed while the focus is on something that does not take
        text (a button, the welcome page, nothing yet) reaches the window; it goes to the
        prompt box, so no key typed right after the window appears is lost."""
        if _is_typing(event) and self.prompt_input.isEnabled() and not self._closed:
            self.prompt_input.setFocus(Qt.FocusReason.OtherFocusReason)
            QApplication.sendEvent(self.prompt_input, event)
            return
        super().keyPressEvent(event)

    # --- settings -------------------------------------------------------------------

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog.result_settings(), reload=dialog.needs_reload())

    def apply_settings(self, new: Settings, *, reload: bool = False) -> None:
        """Take new settings (in place: the session reads the same object) and save them."""
        theme_changed = new.theme != self.settings.theme
        for f in dataclasses.fields(Settings):
            setattr(self.settings, f.name, getattr(new, f.name))
        self.transcript.thinking_expanded = new.thinking_expanded
        self.transcript.thinking_maths = new.thinking_maths
        if theme_changed:
            theme.apply_theme(QApplication.instance(), new.theme)
        self.save_settings()
        model = self.client.info.path if self.client.info is not None else None
        if reload and model is not None:
            self.load_model(model)

    def save_settings(self) -> None:
        try:
            save_settings(self.data_dir, self.settings)
        except PonderError as exc:
            self._show_error(str(exc))

    # --- closing --------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(1200, 800)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self._closed:
            self._closed = True
            self.models.close()
            self.session.close()
            self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
            self.save_settings()
            self.client.shutdown()
        super().closeEvent(event)


def _is_typing(event: QKeyEvent) -> bool:
    """A key that writes a character (no Ctrl/Alt/Meta shortcut; Space and Shift count)."""
    modifiers = event.modifiers() & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier)
    return bool(event.text()) and event.text().isprintable() and modifiers == Qt.KeyboardModifier.NoModifier


def _takes_text(widget: QWidget) -> bool:
    """Widgets where a typed character is input (text fields)."""
    if isinstance(widget, (QTextEdit, QPlainTextEdit)):
        return not widget.isReadOnly()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QComboBox))
