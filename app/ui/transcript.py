"""The centre column: the open conversation's message views in a scroll area.

It follows the stream (stays scrolled to the bottom as the live answer grows)
unless the user has scrolled up to read something; scrolling back to the bottom
resumes following. Only the live message is updated while an answer streams.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.reasoning import TraceText
from app.core.storage import Message
from app.ui.message_view import AssistantMessageView, UserMessageView

COLUMN_MAX_WIDTH = 860  # readable line length on wide windows
FOLLOW_SLACK_PX = 24  # this close to the bottom counts as "at the bottom"


class Transcript(QScrollArea):
    """Signals:
      regenerate_requested(int position), edit_requested(int position): from a message's actions.
      prompt_requested(int position): an answer's Prompt action (prompt_inspector.py).
    """

    regenerate_requested = Signal(int)
    thinking_edit_requested = Signal(int)  # position of an answer whose thought the user wants to edit
    prompt_requested = Signal(int)
    edit_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.thinking_expanded = False  # finished thinking panes start expanded
        self.thinking_maths = True  # finished thinking panes typeset their maths
        self.live_view: AssistantMessageView | None = None
        self._views: list[QWidget] = []
        self._message_ids: list[int] = []  # the message each view shows, in the same order
        self._follow = True

        self._column = QWidget(objectName="transcriptColumn")
        self._column.setMaximumWidth(COLUMN_MAX_WIDTH)
        self._column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._layout = QVBoxLayout(self._column)
        self._layout.setContentsMargins(20, 20, 20, 20)
        self._layout.setSpacing(18)
        self._layout.addStretch(1)  # keeps messages at the top while they are few
        canvas = QWidget(objectName="transcriptCanvas")
        row = QHBoxLayout(canvas)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(0)
        row.addWidget(self._column, 1)
        row.addStretch(0)
        self.setWidget(canvas)

        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

    # --- content --------------------------------------------------------------------

    def views(self) -> list[QWidget]:
        return list(self._views)

    def assistant_views(self) -> list[AssistantMessageView]:
        return [v for v in self._views if isinstance(v, AssistantMessageView)]

    def reset(self, messages: list[Message]) -> None:
        """Show exactly these (stored, finished) messages.

        When they are the first of the messages already shown (regenerate, edit and
        resend cut the conversation), only the views after them are removed.
        """
        ids = [m.id for m in messages]
        keep = len(ids) if ids == self._message_ids[: len(ids)] else 0
        for view in self._views[keep:]:
            if view is self.live_view:
                self.live_view = None
            self._layout.removeWidget(view)
            view.deleteLater()
        del self._views[keep:], self._message_ids[keep:]
        for message in messages[keep:]:
            self.append(message)
        self._follow = True
        self.scroll_to_bottom()

    def append(self, message: Message, trace: TraceText | None = None) -> QWidget:
        """Add a view for `message`; an assistant message still 'streaming' becomes the live view.

        `trace` is the live answer's text, fed by its owner (the chat session); the live view
        reads its text from there. (Only a message this app is generating right now arrives
        as 'streaming': the store turns ones left over by a crash into 'stopped'.)
        """
        if message.role == "user":
            view = UserMessageView.from_message(message)
            view.edit_requested.connect(self.edit_requested)
        elif message.status == "streaming":
            view = AssistantMessageView(message.position, trace=trace, expand_when_done=self.thinking_expanded,
                                        typeset_thinking_maths=self.thinking_maths)
            self.live_view = view
            self._follow = True  # a new answer: follow it
        else:
            view = AssistantMessageView.from_message(message, expand_when_done=self.thinking_expanded,
                                                     typeset_thinking_maths=self.thinking_maths)
        if isinstance(view, AssistantMessageView):
            view.regenerate_requested.connect(self.regenerate_requested)
            view.thinking_edit_requested.connect(self.thinking_edit_requested)
            view.prompt_requested.connect(self.prompt_requested)
        self._layout.insertWidget(self._layout.count() - 1, view)  # before the stretch
        self._views.append(view)
        self._message_ids.append(message.id)
        if self._follow:
            self.scroll_to_bottom()
        return view

    # --- the live answer ------------------------------------------------------------

    def live_segment(self, kind: str, text: str) -> None:
        if self.live_view is not None:
            self.live_view.append(kind, text)

    def live_inserted(self, kind: str, text: str, inserted: str) -> None:
        """Text the model did not write (app/core/steering.py), in the live answer."""
        if self.live_view is not None:
            self.live_view.append(kind, text, inserted=inserted)

    def live_counts(self, thinking: int, answer: int) -> None:
        if self.live_view is not None:
            self.live_view.set_live_counts(thinking, answer)

    def finish_live(self, message: Message) -> None:
        view = self.live_view
        if view is None:
            return
        self.live_view = None
        error = (message.stats or {}).get("error") if message.status == "error" else None
        view.finish(message.thinking, message.content, list(message.flags), message.stats, message.status,
                    error=error, spans=message.spans)

    # --- scrolling ------------------------------------------------------------------

    def scroll_to_bottom(self) -> None:
        # After the layout has settled: new widgets get their height on the next pass.
        QTimer.singleShot(0, self, self._jump_to_bottom)

    def scroll_to_view(self, view: QWidget) -> None:
        self._follow = False
        QTimer.singleShot(0, self, lambda: self.ensureWidgetVisible(view, 0, 40))

    @Slot()
    def _jump_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - FOLLOW_SLACK_PX

    @Slot(int, int)
    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
