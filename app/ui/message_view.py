"""One assistant turn on screen: the thinking pane, the answer and the footer, and the
streaming state machine that drives them (waiting -> thinking -> answering -> done).

The parts, each in its own module:
- thinking_pane.py: the header ("Thinking… 12 s", folds the pane), flag badges, the reasoning;
- answer_browser.py: the answer's widget (links, Copy on code blocks, nothing remote loads);
- answer_document.py: the answer's content, streamed block by block, finally a whole render;
- message_footer.py: stats, status chip, error and actions (message_wording.py: what they say);
- version_nav.py: ‹ 2/3 › above the footer when the turn has several versions.
The user's prompt is user_message.py.

Text arriving from the engine is buffered and applied by a `Throttle` (~30 Hz). The text
itself has one owner, a `TraceText` (app.core.reasoning): the chat session's when it
passes one (it feeds it), else the view's own (fed by `append`). The view renders only the
deltas; once finished, its text is the finished message's.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.core.reasoning import Segment, TraceText
from app.ui import message_wording, theme
from app.ui.answer_browser import AnswerBrowser
from app.ui.answer_document import StreamedAnswer
from app.ui.message_actions import show_copied
from app.ui.message_footer import MessageFooter
from app.ui.message_wording import FLAG_INFO
from app.ui.thinking_pane import ThinkingPane
from app.ui.throttle import Throttle
from app.ui.user_message import UserMessageView
from app.ui.version_nav import VersionNav

__all__ = ["FLAG_INFO", "AssistantMessageView", "UserMessageView"]

UPDATE_INTERVAL_MS = 33  # ~30 Hz: smooth to the eye, cheap for the event loop


class AssistantMessageView(QWidget):
    """One assistant turn: collapsible thinking pane, the answer, stats and actions.

    Stream with `append(kind, text)` (or `append_thinking` / `append_answer`) and
    `set_live_counts`, then call `finish` once. `from_message` builds a finished view.

    Signals:
      regenerate_requested(int position): the user wants a new answer for this turn.
      prompt_requested(int position): the user wants to see what the model was sent.
      version_requested(int position, int number), compare_requested(int position),
      delete_version_requested(int position): from the versions row (version_nav.py).
      rendered(): the answer shows its final render (after `finish`; for a long answer
        whose lists or quotes need rendering again, a few event loop passes later).
    """

    regenerate_requested = Signal(int)
    thinking_edit_requested = Signal(int)  # position: edit this answer's thought and continue from it
    prompt_requested = Signal(int)
    version_requested = Signal(int, int)
    compare_requested = Signal(int)
    delete_version_requested = Signal(int)
    rendered = Signal()

    def __init__(
        self,
        position: int = -1,
        *,
        trace: TraceText | None = None,
        expand_while_thinking: bool = True,
        expand_when_done: bool = False,
        typeset_thinking_maths: bool = True,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("assistantMessage")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)  # never stretched
        self.position = position
        self.expand_while_thinking = expand_while_thinking
        self.expand_when_done = expand_when_done
        self.typeset_thinking_maths = typeset_thinking_maths  # once finished (setting thinking_maths)

        self._trace = trace if trace is not None else TraceText()
        self._feeds_trace = trace is None  # someone else's trace is fed by its owner, never here
        self._final: tuple[str, str] | None = None  # (thinking, answer) of the finished message
        self._phase = "waiting"  # waiting -> thinking -> answering -> done
        self._pending_thinking: list[str] = []  # deltas not shown yet (the throttle shows them)
        self._pending_answer: list[str] = []
        self._thinking_seen = False
        self._think_blocks, self._last_kind = 0, ""  # to number think blocks in the view's own trace
        self._thinking_tokens = 0
        self._answer_tokens = 0
        self._dark: bool | None = None
        self.flags: list[str] = []
        self.stats: dict | None = None
        self.status = "streaming"
        self.error: str | None = None
        self._throttle = Throttle(self._apply_pending, UPDATE_INTERVAL_MS, self)

        self.thinking_pane = ThinkingPane(self)
        self.answer_view = AnswerBrowser(self)
        self.answer_view.setObjectName("answerView")
        self.answer = StreamedAnswer(self.answer_view)
        self.answer.rendered.connect(self.rendered)
        self.footer = MessageFooter(self)
        self.footer.copy_answer_requested.connect(self.copy_answer)
        self.footer.copy_thinking_requested.connect(self.copy_thinking)
        self.footer.regenerate_requested.connect(self._on_regenerate_clicked)
        self.thinking_pane.edit_button.clicked.connect(self._on_edit_thinking_clicked)
        self.footer.prompt_requested.connect(self._on_prompt_clicked)
        # The parts' widgets, where the window and tests look for them.
        self.thinking_header, self.thinking_body = self.thinking_pane.header, self.thinking_pane.body
        self.status_chip, self.stats_label, self.error_label = (
            self.footer.status_chip, self.footer.stats_label, self.footer.error_label)
        self.copy_answer_button, self.copy_thinking_button, self.regenerate_button = (
            self.footer.copy_answer_button, self.footer.copy_thinking_button, self.footer.regenerate_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.thinking_pane)
        layout.addWidget(self.answer_view)
        self.version_nav = VersionNav(self)
        self.version_nav.version_requested.connect(self._on_version_requested)
        self.version_nav.compare_requested.connect(self._on_compare_requested)
        self.version_nav.delete_requested.connect(self._on_delete_version_requested)
        # A row of its own: the footer's row is full of stats and actions already.
        layout.addWidget(self.version_nav, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.footer)

        self._apply_colors()
        self.thinking_pane.set_expanded(self.expand_while_thinking)
        self._update_footer()

    @classmethod
    def from_message(
        cls, message: Any, *, expand_when_done: bool = False, typeset_thinking_maths: bool = True,
        parent: QWidget | None = None
    ) -> "AssistantMessageView":
        """A finished view of a stored assistant message (.thinking, .content, .flags, .stats, .status)."""
        view = cls(getattr(message, "position", -1), expand_when_done=expand_when_done,
                   typeset_thinking_maths=typeset_thinking_maths, parent=parent)
        status = message.status if message.status != "streaming" else "stopped"
        error = (message.stats or {}).get("error") if status == "error" else None
        view.finish(message.thinking, message.content, list(message.flags), message.stats, status, error=error,
                    spans=getattr(message, "spans", ()))
        return view

    # --- streaming ------------------------------------------------------------------

    def append(self, kind: str, text: str, block: int | None = None, inserted: str | None = None) -> None:
        """Streamed text of `kind` "think" or "answer" (an app.core.reasoning.Segment's;
        `block` numbers think blocks, found from the order of kinds when not given;
        `inserted` marks text the model did not write, app/core/steering.py)."""
        if self._phase == "done" or not text:
            return
        if self._feeds_trace:
            self._trace.add(Segment(kind, text, self._block_of(kind) if block is None else block, inserted))
        if kind == "think":
            self._show_thinking(text, inserted)
        else:
            self._show_answer(text)

    def append_thinking(self, text: str) -> None:
        self.append("think", text)

    def append_answer(self, text: str) -> None:
        self.append("answer", text)

    def set_live_counts(self, thinking_tokens: int, answer_tokens: int) -> None:
        self._thinking_tokens, self._answer_tokens = thinking_tokens, answer_tokens
        self._throttle.request()

    def _block_of(self, kind: str) -> int:
        """The block number ThinkSplitter would give: each run of thinking opens a new block."""
        if kind == "think" and self._last_kind != "think":
            self._think_blocks += 1
        self._last_kind = kind
        return self._think_blocks - 1 if kind == "think" else 0

    def _show_thinking(self, text: str, inserted: str | None = None) -> None:
        if not self._thinking_seen:
            text = text.lstrip()  # the pane starts at the first visible character
            if not text:
                return
            self._thinking_seen = True
            self.thinking_pane.show()
            if self._phase == "waiting":
                self._phase = "thinking"
                self.thinking_pane.start_clock()
                self.thinking_pane.set_expanded(self.expand_while_thinking)
            else:  # thinking after answer text (a flagged trace): no live clock, start folded
                self.thinking_pane.set_expanded(False)
        if inserted is not None:  # rare: shown at once in its own style, after what is buffered
            if self._pending_thinking:
                self.thinking_body.append_text("".join(self._pending_thinking))
                self._pending_thinking.clear()
            self.thinking_body.append_text(text, inserted)
            return
        self._pending_thinking.append(text)
        self._throttle.request()

    def _show_answer(self, text: str) -> None:
        if self._phase in ("waiting", "thinking"):
            text = text.lstrip()  # the answer starts at its first visible character
            if not text:
                return
            if self._phase == "thinking":
                self.thinking_pane.stop_clock()
            self._phase = "answering"
        self._pending_answer.append(text)
        self._throttle.request()

    def _apply_pending(self) -> None:
        """The throttled update: show everything that arrived since the last one."""
        if self._pending_thinking:
            text = "".join(self._pending_thinking)
            self._pending_thinking.clear()
            self.thinking_body.append_text(text)
        if self._pending_answer:
            text = "".join(self._pending_answer)
            self._pending_answer.clear()
            self.answer.append(text)
            pane = self.thinking_pane
            if self._phase == "answering" and not pane.user_toggled and pane.expanded:
                pane.set_expanded(False)  # the answer has started: fold the reasoning away
        self.thinking_pane.set_tokens(self._thinking_tokens)
        self._update_footer()

    # --- finishing ------------------------------------------------------------------

    def finish(
        self,
        thinking: str,
        answer: str,
        flags: list[str] | tuple[str, ...] = (),
        stats: dict | None = None,
        status: str = "complete",
        *,
        error: str | None = None,
        spans=(),
    ) -> None:
        """Show the final message: the answer as a render of its whole text, stats, flags,
        actions. Call once. `spans`: the inserted stretches of the thinking (Message.spans)."""
        self._throttle.flush()  # what is still buffered goes in first, so the texts compare equal
        pane = self.thinking_pane
        pane.stop_clock()
        self._phase = "done"
        self.flags, self.stats, self.status, self.error = list(flags), stats, status, error
        if stats:
            self._thinking_tokens = stats.get("thinking_tokens") or self._thinking_tokens
            self._answer_tokens = stats.get("answer_tokens") or self._answer_tokens
            if stats.get("thinking_s") is not None:
                pane.set_thought_for(stats["thinking_s"])
        pane.set_tokens(self._thinking_tokens)

        thinking, answer = thinking.strip(), answer.strip()
        self._final = (thinking, answer)
        pane.show_final_text(thinking, typeset_maths=self.typeset_thinking_maths, spans=spans)
        pane.edit_button.setVisible(bool(thinking))
        pane.setVisible(bool(thinking))
        self.answer.finish(answer)
        self.answer_view.setVisible(bool(answer) or not thinking)
        if not pane.user_toggled:
            # Nothing but thinking (e.g. cut off before </think>): keep the trace open.
            pane.set_expanded(self.expand_when_done or not answer)
        # Trace flags sit on the thinking pane; without a pane (no thinking) in the footer.
        badges = message_wording.badges(self.flags)
        pane.badges.show_badges(badges if thinking else [])
        self.footer.badges.show_badges([] if thinking else badges)
        self._update_footer()

    def _update_footer(self) -> None:
        if self._phase != "done":
            self.footer.show_live(message_wording.live_footer(self._phase, self._answer_tokens))
            return
        self.footer.show_finished(
            stats=message_wording.stats_line(self.stats, self._thinking_tokens, self._answer_tokens),
            details=message_wording.stats_details(self.stats),
            chip=message_wording.status_chip(self.status, self.stats, self.flags, self.error),
            failed=self.status == "error",
            error=self.error,
            can_copy_answer=bool(self.answer_text),
            can_copy_thinking=bool(self.thinking_text),
        )

    # --- state and actions ----------------------------------------------------------

    @property
    def thinking_text(self) -> str:
        return self._final[0] if self._final is not None else self._trace.thinking

    @property
    def answer_text(self) -> str:
        return self._final[1] if self._final is not None else self._trace.answer

    @property
    def is_streaming(self) -> bool:
        return self._phase != "done"

    @property
    def render_pending(self) -> bool:
        """True between `finish` of a long answer and its final render (see `rendered`)."""
        return self.answer.render_pending

    @property
    def thinking_expanded(self) -> bool:
        return self.thinking_pane.expanded

    def set_thinking_expanded(self, expanded: bool) -> None:
        self.thinking_pane.user_toggled = True
        self.thinking_pane.set_expanded(expanded)

    def badges(self) -> list[QLabel]:
        """The flag badges currently shown (for tests and accessibility)."""
        return [w for w in self.findChildren(QLabel, "flagBadge") if not w.isHidden()]

    @Slot()
    def copy_answer(self) -> None:
        QGuiApplication.clipboard().setText(self.answer_text)
        show_copied(self.copy_answer_button)

    @Slot()
    def copy_thinking(self) -> None:
        QGuiApplication.clipboard().setText(self.thinking_text)
        show_copied(self.copy_thinking_button)

    @Slot()
    def _on_regenerate_clicked(self) -> None:
        self.regenerate_requested.emit(self.position)

    @Slot()
    def _on_edit_thinking_clicked(self) -> None:
        self.thinking_edit_requested.emit(self.position)

    @Slot()
    def _on_prompt_clicked(self) -> None:
        self.prompt_requested.emit(self.position)

    @Slot(int)
    def _on_version_requested(self, number: int) -> None:
        self.version_requested.emit(self.position, number)

    @Slot()
    def _on_compare_requested(self) -> None:
        self.compare_requested.emit(self.position)

    @Slot()
    def _on_delete_version_requested(self) -> None:
        self.delete_version_requested.emit(self.position)

    # --- theme ----------------------------------------------------------------------

    def _apply_colors(self) -> None:
        colors = theme.colors_for(self)
        if colors.dark == self._dark:
            return
        self._dark = colors.dark
        self.answer.set_colors(colors)
        self.footer.refresh_icons()
        self.version_nav.refresh_icons()
        self.thinking_pane.refresh_icon()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()
