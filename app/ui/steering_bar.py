"""Steering the thought from the window (app/core/steering.py): the row under the prompt box
and what drives it.

`SteeringBar` holds the thinking budget for the next answers (off, or a number of tokens;
it starts from the settings' default), and, only while the model is thinking, "Answer now"
and a note box that nudges the thought. With no answer running, the note box also shows
when the last answer was stopped while it thought: a note then continues that thought.
`SteeringControls` connects the bar, the Chat menu's "Answer now" and the messages'
"Edit thinking" to the chat session.

On a model on a server (app/core/remote.py) the controls follow its `Capabilities`: what the
server's API cannot do is disabled with the server's note as the tooltip (a budget it would
ignore is not sent, nor saved with the message), and the Answer now shortcut shows that note in
the notice bar instead of doing nothing.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

BUDGET_MAX = 1_000_000
BUDGET_STEP = 256
ANSWER_NOW_SHORTCUT = "Ctrl+Shift+Return"
NOTE_PLACEHOLDER = "Nudge the thinking: a note it reads as its own words… (Enter)"
STOPPED_NOTE_PLACEHOLDER = "Add a note and continue the stopped thought… (Enter)"
ANSWER_NOW_TIP = "End the thinking here and let the model answer (Ctrl+Shift+Enter)"
ANSWER_NOW_MENU_TIP = "End the thinking here and let the model answer (while it thinks)"
BUDGET_TIP = ("Thinking tokens before Ponder ends the thought with a short wrap-up and lets the model answer. "
              "Applies to the next answers; off lets it think freely.")
SERVER_BUDGET_TIP = ("Thinking tokens before the server ends the thought and lets the model answer "
                     "(llama-server's reasoning budget). Applies to the next answers; off lets it think freely.")
NUDGE_TIP = "Put the note into the thought as the model's own words (\"Wait, the user adds: …\"); it thinks on " \
            "from there"
NO_THINKING_BUDGET_TIP = "This model does not think, so it has no thinking budget."


class SteeringBar(QWidget):
    """Signals: budget_changed(object: int | None), answer_now_requested(), nudge_requested(str)"""

    budget_changed = Signal(object)
    answer_now_requested = Signal()
    nudge_requested = Signal(str)

    def __init__(self, budget: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("steeringBar")
        self.budget_label = QLabel("Thinking budget", self)
        self.budget_label.setObjectName("budgetLabel")
        self.budget_box = QSpinBox(self, objectName="budgetBox")
        self.budget_box.setRange(0, BUDGET_MAX)  # 0 shows "off": a budget itself is at least 1 token
        self.budget_box.setSpecialValueText("off")
        self.budget_box.setSuffix(" tokens")
        self.budget_box.setSingleStep(BUDGET_STEP)
        self.budget_box.setAccessibleName("Thinking budget")
        self.budget_box.setToolTip(BUDGET_TIP)
        self.budget_box.setValue(budget or 0)
        self.budget_box.valueChanged.connect(self._on_budget_changed)
        self.budget_label.setBuddy(self.budget_box)

        self.note_input = QLineEdit(self, objectName="nudgeInput")
        self.note_input.setPlaceholderText(NOTE_PLACEHOLDER)
        self.note_input.setAccessibleName("Note for the model's thinking")
        self.note_input.setClearButtonEnabled(True)
        self.note_input.returnPressed.connect(self._on_nudge)
        self.nudge_button = QPushButton("Nudge", self, objectName="nudgeButton")
        self.nudge_button.setToolTip(NUDGE_TIP)
        self.nudge_button.clicked.connect(self._on_nudge)
        self.answer_now_button = QPushButton("Answer now", self, objectName="answerNowButton")
        self.answer_now_button.setToolTip(ANSWER_NOW_TIP)
        self.answer_now_button.clicked.connect(self.answer_now_requested)

        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.budget_label)
        row.addWidget(self.budget_box)
        row.addSpacing(12)
        row.addWidget(self.note_input, 1)
        row.addWidget(self.nudge_button)
        row.addWidget(self.answer_now_button)
        row.addStretch(0)
        self.set_state(thinking=False, stopped_thought=False, reasoning=True)

    @property
    def budget(self) -> int | None:
        return self.budget_box.value() or None

    def set_state(self, *, thinking: bool, stopped_thought: bool, reasoning: bool, capabilities=None) -> None:
        """Show what applies now: Answer now only while the model thinks; the note box then,
        or after a thought was stopped; the budget only for a reasoning model. `capabilities`
        (app.core.remote.Capabilities, None for a local model): what a server cannot do is
        disabled, its note the tooltip (and the note box's text)."""
        caps = capabilities
        can_answer_now = caps is None or caps.answer_now
        self.answer_now_button.setVisible(thinking)
        self.answer_now_button.setEnabled(can_answer_now)
        self.answer_now_button.setToolTip(ANSWER_NOW_TIP if can_answer_now else caps.answer_now_note)
        can_nudge = caps is None or caps.nudge
        # A server's stopped thought cannot be continued (worker.CONTINUE_NEEDS_LOCAL): no box for it.
        show_note = reasoning and (thinking or (stopped_thought and can_nudge))
        self.note_input.setVisible(show_note)
        self.nudge_button.setVisible(show_note)
        self.note_input.setEnabled(can_nudge)
        self.nudge_button.setEnabled(can_nudge)
        self.nudge_button.setText("Nudge" if thinking else "Continue with note")
        self.note_input.setPlaceholderText(caps.nudge_note if not can_nudge else
                                           NOTE_PLACEHOLDER if thinking else STOPPED_NOTE_PLACEHOLDER)
        self.note_input.setToolTip("" if can_nudge else caps.nudge_note)
        self.nudge_button.setToolTip(NUDGE_TIP if can_nudge else caps.nudge_note)
        can_budget = reasoning and (caps is None or caps.budget)
        self.budget_box.setEnabled(can_budget)
        self.budget_label.setEnabled(can_budget)
        # The user's budget stays in the box for local models; the label says it does not apply here.
        self.budget_label.setText("Thinking budget" if caps is None or caps.budget else
                                  "Thinking budget (not on this server)")
        self.budget_box.setToolTip(NO_THINKING_BUDGET_TIP if not reasoning else
                                   BUDGET_TIP if caps is None else
                                   SERVER_BUDGET_TIP if caps.budget else caps.budget_note)

    @Slot(int)
    def _on_budget_changed(self, value: int) -> None:
        self.budget_changed.emit(value or None)

    @Slot()
    def _on_nudge(self) -> None:
        text = self.note_input.text().strip()
        if text:
            self.nudge_requested.emit(text)


class SteeringControls(QObject):
    """Connects the window's SteeringBar, its "Answer now" menu action and the messages'
    "Edit thinking" to the ChatSession, and keeps the bar showing what applies."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.bar: SteeringBar = window.steering_bar
        self.client = window.client
        session = window.session
        self.session = session
        session.set_thinking_budget(self.bar.budget)
        self.bar.budget_changed.connect(self._on_budget_changed)
        self.bar.answer_now_requested.connect(self.answer_now)
        self.bar.nudge_requested.connect(self._on_nudge)
        session.thinking_changed.connect(self.refresh)
        session.busy_changed.connect(self.refresh)
        session.transcript_reset.connect(self.refresh)
        session.answer_finished.connect(self.refresh)
        self.client.loaded.connect(self.refresh)
        window.transcript.thinking_edit_requested.connect(self.edit_thinking)
        # Takes Answer now's keys only while the menu action is disabled because the server has no
        # control for it (never both enabled: the keys would be ambiguous): the note, not silence.
        self.answer_now_unsupported = QShortcut(QKeySequence(ANSWER_NOW_SHORTCUT), window)
        self.answer_now_unsupported.setEnabled(False)
        self.answer_now_unsupported.activated.connect(self.answer_now)  # session.answer_now says why not
        self.refresh()

    @property
    def window(self):
        # Not kept in an attribute: a child holding its parent would keep a closed window alive.
        return self.parent()

    @Slot()
    def refresh(self, *_args) -> None:
        info = self.client.info
        caps = self.client.capabilities  # a server's; None for a local model
        thinking = self.session.live_thinking
        self.bar.set_state(thinking=thinking,
                           stopped_thought=not self.session.busy and self.session.stopped_thought() is not None,
                           reasoning=info is None or bool(getattr(info, "is_reasoning", True)), capabilities=caps)
        can_answer_now = caps is None or caps.answer_now
        self.answer_now_unsupported.setEnabled(thinking and not can_answer_now)
        action = getattr(getattr(self.window, "menus", None), "answer_now", None)  # menus come after us
        if action is not None:
            action.setEnabled(thinking and can_answer_now)
            tip = ANSWER_NOW_MENU_TIP if can_answer_now else caps.answer_now_note
            action.setStatusTip(tip)
            action.setToolTip(tip)

    @Slot()
    def answer_now(self) -> None:
        self.session.answer_now()

    @Slot(object)
    def _on_budget_changed(self, budget: int | None) -> None:
        self.session.set_thinking_budget(budget)

    @Slot(str)
    def _on_nudge(self, note: str) -> None:
        if self.session.nudge(note):
            self.bar.note_input.clear()

    @Slot(int)
    def edit_thinking(self, position: int) -> None:
        from app.ui.steering_editor import ThinkingEditor

        message = self.session.message_at(position)
        if message is None or not message.thinking:
            return
        if self.session.busy:
            self.session.error_occurred.emit("Let the answer finish, or stop it, before editing a thought.")
            return
        editor = ThinkingEditor(message.thinking, self.window, message.spans)
        if editor.exec() == ThinkingEditor.DialogCode.Accepted:
            self.session.continue_thinking(message.id, editor.text())
