"""ChatSession: the open conversation and the answer being generated, on the GUI thread.

It turns user actions (send, regenerate, edit and resend, stop, open, delete,
switch versions) into store writes and engine requests, and engine results into signals the
window renders. Persistence: a message is written when it starts and when it
ends; while an answer streams, its text is checkpointed about once a second
(never per token), so a crash loses at most about a second of text.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from app.core.engine import LLAMA_SEED_LIMIT, Sampling
from app.core.errors import PonderError, StorageError
from app.core.reasoning import Segment, TraceText
from app.core.settings import Settings
from app.core.steering import SteeringError, check_budget, check_note, continued_prefix, nudge_text
from app.core.storage import ChatStore, Conversation, Message, SearchHit, TurnVersion
from app.core.traces import model_record
from app.ui.worker import NO_MODEL_MESSAGE, EngineClient

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_MS = 1000


@dataclasses.dataclass
class LiveAnswer:
    """The assistant message being generated. Its text has one owner, `trace`: the view
    shows it, checkpoints save it, and every way the answer ends saves it in its one shape."""

    req_id: int
    message: Message  # as stored when it started (status 'streaming')
    trace: TraceText = dataclasses.field(default_factory=TraceText)
    dirty: bool = False  # text arrived since the last checkpoint
    prompt_tokens: int = 0  # of context, before the first generated token
    generated_tokens: int = 0  # thinking + answer so far
    thinking: bool = False  # the latest text was thinking (Answer now and nudges apply)

    def as_stored(self, status: str, **fields) -> Message:
        """The message with the text so far, as it is saved when the answer ends this way."""
        return dataclasses.replace(self.message, content=self.trace.answer, thinking=self.trace.thinking,
                                   status=status, spans=tuple(self.trace.spans), **fields)


def _status_for(finish_reason: str) -> str:
    return "stopped" if finish_reason == "cancelled" else "complete"


class ChatSession(QObject):
    """Controller between the window, the store and the engine.

    Signals:
      transcript_reset(list[Message]): show exactly these messages (a conversation
        was opened, a new chat started, or messages were cut for regenerate/edit).
      message_added(Message): append this message; an assistant message with
        status 'streaming' is the live answer that the stream_* signals fill (its
        text so far is `live_trace`).
      stream_started(int prompt_tokens): the live answer's prompt fills this much context.
      stream_segment(str kind, str text): "think" or "answer" text of the live answer.
      stream_counts(int thinking_tokens, int answer_tokens)
      stream_inserted(str kind, str text, str inserted): text the model did not write (a
        wrap-up, a nudge, an edited thought's start; app/core/steering.py), in stream order.
      thinking_changed(bool): the live answer started or stopped thinking (`live_thinking`).
      (The stream_* signals come only for the live answer of the conversation on screen.)
      answer_finished(Message): the live answer as finally stored.
      versions_changed(): the open conversation's versions changed (see version_of); comes
        after the transcript_reset / message_added that showed the change.
      conversations_changed(): titles, order or membership of the list changed.
      busy_changed(bool): an answer started or ended.
      error_occurred(str): a sentence to show the user.
    """

    transcript_reset = Signal(list)
    message_added = Signal(object)
    stream_started = Signal(int)
    stream_segment = Signal(str, str)
    stream_counts = Signal(int, int)
    stream_inserted = Signal(str, str, str)
    thinking_changed = Signal(bool)
    answer_finished = Signal(object)
    versions_changed = Signal()
    conversations_changed = Signal()
    busy_changed = Signal(bool)
    error_occurred = Signal(str)

    def __init__(self, store: ChatStore, client: EngineClient, settings: Settings,
                 parent: QObject | None = None, *, checkpoint_ms: int = CHECKPOINT_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.store = store
        self.client = client
        self.settings = settings
        self.conversation_id: int | None = None
        self.messages: list[Message] = []  # of the open conversation, in order
        self.keep_thinking = False  # the open conversation sends earlier thinking back (set_keep_thinking)
        self.versions: list[TurnVersion] = []  # its stored versions (storage.py: versions of a turn)
        self._live: LiveAnswer | None = None
        # Thinking tokens before Ponder ends the thought, for the next answers (None: off); the
        # prompt box's control sets it, starting from the settings' default.
        self.thinking_budget: int | None = getattr(settings, "thinking_budget", None)
        self._checkpoint = QTimer(self)
        self._checkpoint.setInterval(checkpoint_ms)
        self._checkpoint.timeout.connect(self._on_checkpoint)
        client.started.connect(self._on_started)
        client.segment.connect(self._on_segment)
        client.counts.connect(self._on_counts)
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.notice.connect(self._on_notice)

    # --- state ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._live is not None

    def message_at(self, position: int) -> Message | None:
        """The open conversation's message at `position` (message views name messages by position)."""
        for m in self.messages:
            if m.position == position:
                return m
        return None

    @property
    def live_trace(self) -> TraceText | None:
        """The live answer's text (read-only for everyone but this session)."""
        return self._live.trace if self._live is not None else None

    @property
    def live_context_used(self) -> int:
        """Tokens of context the live answer fills so far: its prompt, then every token generated."""
        return self._live.prompt_tokens + self._live.generated_tokens if self._live is not None else 0

    def _live_is_shown(self) -> bool:
        return self._live is not None and self._live.message.conversation_id == self.conversation_id

    # --- conversations --------------------------------------------------------------

    def new_conversation(self) -> None:
        """Show an empty chat. It is saved when its first prompt is sent."""
        self._leave_live_answer()
        self.conversation_id = None
        self.messages, self.versions = [], []
        self.keep_thinking = False  # DeepSeek's advice, until the user chooses otherwise
        self.transcript_reset.emit([])
        self.versions_changed.emit()

    def open_conversation(self, conv_id: int) -> bool:
        if conv_id == self.conversation_id:
            return True
        try:
            conv = self.store.get_conversation(conv_id)
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return False
        self._leave_live_answer()
        self._show(conv)
        return True

    def _show(self, conv: Conversation) -> None:
        self.conversation_id = conv.id
        self.messages, self.versions = list(conv.messages), list(conv.versions)
        self.keep_thinking = conv.keep_thinking
        self.transcript_reset.emit(list(self.messages))
        self.versions_changed.emit()

    def rename_conversation(self, conv_id: int, title: str) -> None:
        if self._write(self.store.rename_conversation, conv_id, title) is not _FAILED:
            self.conversations_changed.emit()

    def delete_conversation(self, conv_id: int) -> Conversation | None:
        """Delete a conversation; returns the snapshot that `restore_conversation` puts back."""
        try:
            snapshot = self.store.get_conversation(conv_id)
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return None
        live = self._live
        if live is not None and live.message.conversation_id == conv_id:
            # The snapshot keeps the text so far as a stopped answer; if the chat is
            # restored (same ids) the final update lands on it.
            stopped = live.as_stored("stopped")
            snapshot = dataclasses.replace(
                snapshot, messages=[stopped if m.id == stopped.id else m for m in snapshot.messages]
            )
            self.client.stop()
        if self._write(self.store.delete_conversation, conv_id) is _FAILED:
            return None
        if conv_id == self.conversation_id:
            self.conversation_id = None
            self.messages, self.versions = [], []
            self.transcript_reset.emit([])
        self.conversations_changed.emit()
        return snapshot

    def restore_conversation(self, snapshot: Conversation) -> int | None:
        conv_id = self._write(self.store.restore_conversation, snapshot)
        if conv_id is _FAILED:
            return None
        self.conversations_changed.emit()
        return conv_id

    def search(self, query: str) -> list[SearchHit]:
        try:
            return self.store.search(query)
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return []

    # --- asking ---------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Send a prompt in the open conversation (creating it if new). False if refused."""
        text = text.strip()
        if not text or not self._can_generate():
            return False
        if self.conversation_id is None:
            conv_id = self._write(self.store.create_conversation)
            if conv_id is _FAILED:
                return False
            if self.keep_thinking and self._write(self.store.set_keep_thinking, conv_id, True) is _FAILED:
                return False
            self.conversation_id, self.messages = conv_id, []
        if self._append("user", text) is None:
            return False
        self.conversations_changed.emit()
        return self._generate()

    def regenerate(self, message_id: int) -> bool:
        """Answer again: a new version of the turn; the earlier one is kept (versions_of)."""
        index = self._index_of(message_id, "assistant")
        if index is None or not self._can_generate():
            return False
        if not self.start_version(self._view().turn_start(self.messages[index].position)):
            return False
        return self._generate_version()

    def edit_and_resend(self, message_id: int, text: str) -> bool:
        """Answer `text` instead of a prompt: a new version of its turn; the earlier one is kept."""
        text = text.strip()
        index = self._index_of(message_id, "user")
        if index is None or not text or not self._can_generate():
            return False
        if not self.start_version(self.messages[index].position, text):
            return False
        self.conversations_changed.emit()
        return self._generate_version()

    # --- versions of a turn (app/core/storage.py) ---------------------------------------

    def start_version(self, turn: int, prompt: str | None = None) -> bool:
        """Keep the turn starting at position `turn` (and all after it) as a version; on screen
        stays its prompt (or `prompt`, edited), ready for a new answer. False if refused."""
        shown = self._write(self.store.start_version, self.conversation_id, turn, prompt)
        if shown is _FAILED:
            return False
        self.messages = [m for m in self.messages if m.position < turn] + ([shown] if shown else [])
        self.versions = self._reload_versions()
        self.transcript_reset.emit(list(self.messages))
        return True

    def _generate_version(self, prefix: list[Segment] | None = None) -> bool:
        started = self._generate(prefix)
        if not started and self.messages and self.messages[-1].role == "user":
            # The new answer could not be saved (the error is shown): the earlier version comes
            # back rather than stay hidden behind a prompt without an answer.
            if self._write(self.store.delete_version, self.conversation_id, self.messages[-1].position) is not _FAILED:
                self._reload()
        self.versions_changed.emit()  # after the new answer's view is there
        return started

    def _view(self) -> Conversation:
        """The open conversation as shown (for the version helpers of Conversation)."""
        return Conversation(self.conversation_id or 0, "", 0.0, 0.0, None, False, list(self.messages),
                            versions=self.versions)

    def versions_of(self, answer_position: int) -> list[TurnVersion]:
        """The versions of the turn an on-screen answer belongs to, in order (shown: id None)."""
        view = self._view()
        return view.versions_of(view.turn_start(answer_position))

    def version_of(self, answer_position: int) -> tuple[int, int]:
        """(number of the version shown, how many) for the turn of an on-screen answer."""
        view = self._view()
        return view.version_of(view.turn_start(answer_position))

    def show_version(self, answer_position: int, number: int) -> bool:
        """Show version `number` (1-based) of an answer's turn; the conversation continues from it."""
        versions = self.versions_of(answer_position)
        if not 1 <= number <= len(versions) or self.conversation_id is None or self._refuse_while_live():
            return False
        target = versions[number - 1]
        if target.shown:
            return True
        if self._write(self.store.switch_version, self.conversation_id, target.id) is _FAILED:
            return False
        return self._reload()

    def delete_shown_version(self, answer_position: int) -> bool:
        """Delete the version of an answer's turn that is shown; the one before it takes its place."""
        if self.conversation_id is None or self.message_at(answer_position) is None or self._refuse_while_live():
            return False
        turn = self._view().turn_start(answer_position)
        if self._write(self.store.delete_version, self.conversation_id, turn) is _FAILED:
            return False
        return self._reload()

    def _refuse_while_live(self) -> bool:
        if self._live_is_shown():
            self.error_occurred.emit("Let the answer finish, or stop it, before changing versions.")
            return True
        return False

    def _reload_versions(self) -> list[TurnVersion]:
        try:
            return self.store.get_conversation(self.conversation_id).versions
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return self.versions

    def _reload(self) -> bool:
        try:
            conv = self.store.get_conversation(self.conversation_id)
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return False
        self._show(conv)
        return True

    def set_keep_thinking(self, keep: bool) -> bool:
        """Whether the open conversation's next prompts carry its earlier thinking (DeepSeek
        advises against it; some studies want it). Saved with the conversation. False if refused."""
        if self.conversation_id is not None:
            if self._write(self.store.set_keep_thinking, self.conversation_id, keep) is _FAILED:
                return False
        self.keep_thinking = keep  # a chat not saved yet takes it when its first prompt saves it
        return True

    # --- steering the thought (app/core/steering.py) -------------------------------------

    @property
    def live_thinking(self) -> bool:
        """The live answer on screen is thinking now: Answer now and nudges apply."""
        return self._live is not None and self._live.thinking and self._live_is_shown()

    def set_thinking_budget(self, budget: int | None) -> None:
        """Thinking tokens for the next answers (None: off); the settings keep it as the default."""
        try:
            self.thinking_budget = check_budget(budget)
        except SteeringError as exc:
            self.error_occurred.emit(str(exc))
            return
        if hasattr(self.settings, "thinking_budget"):
            self.settings.thinking_budget = self.thinking_budget

    def answer_now(self) -> bool:
        """End the live answer's thought now; the model answers from what it has."""
        if not self.live_thinking:
            return False
        caps = self.client.capabilities  # a server's (app.core.remote); None: a local model can
        if caps is not None and not caps.answer_now:
            self.error_occurred.emit(caps.answer_now_note)
            return False
        try:
            self.client.answer_now()
        except PonderError as exc:  # a server without the control says why (app.core.remote)
            self.error_occurred.emit(str(exc))
            return False
        return True

    def stopped_thought(self) -> Message | None:
        """The last answer, if it was stopped while it thought (a nudge can continue it)."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant" and last.status == "stopped" \
                and last.thinking and not last.content:
            return last
        return None

    def nudge(self, note: str) -> bool:
        """Put a note into the thought: the live answer's while it thinks; with no answer
        running, the stopped thought of the last answer goes on with it, as a new version of
        that turn. False (and a sentence) if it cannot."""
        info = self.client.info
        if info is not None and not info.is_reasoning:
            self.error_occurred.emit(f"{info.name} is not a reasoning model: it does not think, so a note "
                                     "has no thought to go into. Send it as a prompt instead.")
            return False
        caps = self.client.capabilities
        if caps is not None and not caps.nudge:  # no server's API takes words into its thought
            self.error_occurred.emit(caps.nudge_note)
            return False
        try:
            note = check_note(note)
        except SteeringError as exc:
            self.error_occurred.emit(str(exc))
            return False
        if self._live is not None:
            if not self.live_thinking:
                self.error_occurred.emit("The model has finished thinking, so a note cannot go into its thought. "
                                         "Send it as a prompt, or edit the thinking once the answer is done.")
                return False
            self.client.nudge(note)
            return True
        stopped = self.stopped_thought()
        if stopped is None:
            self.error_occurred.emit("There is no thought to add a note to: send a note while the model thinks, "
                                     "or after you stop it while it thinks.")
            return False
        prefix = continued_prefix(stopped.thinking, stopped.spans, stopped.thinking)
        return self._continue_thought(stopped, prefix + [Segment("think", nudge_text(note), 0, "nudge")])

    def continue_thinking(self, message_id: int, edited: str) -> bool:
        """Continue an answer's thought from `edited` (its thinking, changed or cut) as a new
        version of its turn; the earlier version is kept."""
        index = self._index_of(message_id, "assistant")
        if index is None:
            return False
        message = self.messages[index]
        info = self.client.info
        if info is not None and not info.is_reasoning:
            self.error_occurred.emit(f"{info.name} is not a reasoning model: it writes no thinking to continue.")
            return False
        try:
            prefix = continued_prefix(message.thinking, message.spans, edited.rstrip())
        except SteeringError as exc:
            self.error_occurred.emit(str(exc))
            return False
        return self._continue_thought(message, prefix)

    def _continue_thought(self, message: Message, prefix: list[Segment]) -> bool:
        if not self._can_generate():
            return False
        if not self.start_version(self._view().turn_start(message.position)):
            return False
        return self._generate_version(prefix)

    def stop(self) -> None:
        """End the live answer after its current token; what it said is kept."""
        self.client.stop()

    def close(self) -> None:
        """The app is closing: stop the live answer and save what it has as stopped."""
        if self._live is None:
            return
        self.client.stop()
        stopped = self._end_live().as_stored("stopped")
        try:
            self.store.update_message(stopped.id, content=stopped.content, thinking=stopped.thinking,
                                      status=stopped.status, spans=stopped.spans)
        except StorageError as exc:
            log.warning("could not save the live answer at exit: %s", exc)

    # --- internals ------------------------------------------------------------------

    def _can_generate(self) -> bool:
        if self.busy:
            return False
        if self.client.info is None:
            self.error_occurred.emit(
                "The model is still loading; wait a moment." if self.client.loading else NO_MODEL_MESSAGE
            )
            return False
        return True

    def _index_of(self, message_id: int, role: str) -> int | None:
        for i, m in enumerate(self.messages):
            if m.id == message_id and m.role == role:
                return i
        return None

    def _append(self, role: str, content: str = "", **fields) -> Message | None:
        conv_id = self.conversation_id
        msg_id = self._write(self.store.add_message, conv_id, role, content, **fields)
        if msg_id is _FAILED:
            return None
        message = Message(
            id=msg_id,
            conversation_id=conv_id,
            position=self.messages[-1].position + 1 if self.messages else 0,
            role=role,
            content=content,
            thinking="",
            status=fields.get("status", "complete"),
            flags=(),
            stats=None,
            model=fields.get("model"),
            sampling=fields.get("sampling"),
            model_info=fields.get("model_info"),
            created_at=time.time(),
        )
        self.messages.append(message)
        self.message_added.emit(message)
        return message

    def _sampling(self) -> Sampling:
        s = self.settings
        caps = self.client.capabilities
        # A server without a thinking budget gets none, and the message does not claim one.
        budget = self.thinking_budget if caps is None or caps.budget else None
        # The seed is drawn here, so the placeholder saved before the answer starts already has it.
        return Sampling(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                        seed=random.randrange(LLAMA_SEED_LIMIT), thinking_budget=budget)

    def _generate(self, prefix: list[Segment] | None = None) -> bool:
        """Start the next answer; with `prefix`, one whose thought starts with those segments."""
        # Earlier reasoning goes back only if the conversation keeps it (the prompt builder decides).
        history = [{"role": m.role, "content": m.content, "thinking": m.thinking} for m in self.messages]
        sampling = self._sampling()
        placeholder = self._append(
            "assistant", status="streaming", model=self.client.info.name, model_info=model_record(self.client.info),
            # With the sampling: whether this prompt carried earlier thinking (the inspector and exports say so).
            sampling={**dataclasses.asdict(sampling), "keep_thinking": self.keep_thinking},
        )
        if placeholder is None:
            return False
        req_id = self.client.chat(history, sampling, keep_thinking=self.keep_thinking,
                                  **({"prefix": prefix} if prefix is not None else {}))  # a continued thought
        self._live = LiveAnswer(req_id, placeholder)
        self._checkpoint.start()
        self.busy_changed.emit(True)
        return True

    def _leave_live_answer(self) -> None:
        """Before showing another conversation: the live answer stops (and is still saved)."""
        if self._live is not None:
            self.client.stop()

    def _end_live(self) -> LiveAnswer:
        live, self._live = self._live, None
        self._checkpoint.stop()
        if live.thinking:
            self.thinking_changed.emit(False)
        self.busy_changed.emit(False)
        return live

    def _replace_message(self, message: Message) -> None:
        for i, m in enumerate(self.messages):
            if m.id == message.id:
                self.messages[i] = message
                return

    def _is_live(self, req_id: int) -> bool:
        return self._live is not None and self._live.req_id == req_id

    @Slot(int, int)
    def _on_started(self, req_id: int, prompt_tokens: int) -> None:
        if self._is_live(req_id):
            self._live.prompt_tokens = prompt_tokens
            if self._live_is_shown():
                self.stream_started.emit(prompt_tokens)

    @Slot(int, object)
    def _on_segment(self, req_id: int, segment: Segment) -> None:
        if not self._is_live(req_id):
            return
        live = self._live
        live.trace.add(segment)
        live.dirty = True
        shown = self._live_is_shown()
        if shown:
            if segment.inserted is None:
                self.stream_segment.emit(segment.kind, segment.text)
            else:
                self.stream_inserted.emit(segment.kind, segment.text, segment.inserted)
        if (segment.kind == "think") != live.thinking:
            live.thinking = segment.kind == "think"
            self.thinking_changed.emit(live.thinking)

    @Slot(int, int, int)
    def _on_counts(self, req_id: int, thinking: int, answer: int) -> None:
        if self._is_live(req_id):
            self._live.generated_tokens = thinking + answer
            if self._live_is_shown():
                self.stream_counts.emit(thinking, answer)

    @Slot()
    def _on_checkpoint(self) -> None:
        live = self._live
        if live is None or not live.dirty:
            return
        live.dirty = False
        try:  # TraceText keeps its text joined, so each checkpoint joins only what came since
            self.store.update_message(live.message.id, content=live.trace.answer, thinking=live.trace.thinking,
                                      spans=live.trace.spans or None)
        except StorageError as exc:  # the chat was deleted meanwhile, or the disk failed
            log.warning("checkpoint of message %d failed: %s", live.message.id, exc)

    @Slot(int, object)
    def _on_finished(self, req_id: int, result: dict) -> None:
        if not self._is_live(req_id):
            return
        stats = result["stats"]
        final = self._end_live().as_stored(_status_for(stats.get("finish_reason", "stop")),
                                           flags=tuple(result["flags"]), stats=stats,
                                           # the exact text the model read ("" from a server: not known)
                                           prompt=result.get("prompt") or None)
        if result.get("text"):  # a remote answer re-split at its end (remote.py: RemoteChatRun.resplit)
            final = dataclasses.replace(final, thinking=result["text"]["thinking"], content=result["text"]["answer"])
        self._store_final(final)
        unused = result.get("unused_nudges") or []
        if unused and final.conversation_id == self.conversation_id:
            self.error_occurred.emit(
                "The model had finished thinking before your note could go in, so it was not added: "
                + " / ".join(f"“{note}”" for note in unused))

    @Slot(int, str)
    def _on_notice(self, req_id: int, text: str) -> None:
        """A remote answer's sentence while it runs (e.g. its server refused Answer now)."""
        if self._is_live(req_id) and self._live_is_shown():
            self.error_occurred.emit(text)

    @Slot(int, str)
    def _on_failed(self, req_id: int, message: str) -> None:
        if not self._is_live(req_id):
            return
        self._store_final(self._end_live().as_stored("error", stats={"error": message}))
        self.error_occurred.emit(message)

    def _store_final(self, final: Message) -> None:
        try:
            self.store.update_message(
                final.id, content=final.content, thinking=final.thinking, status=final.status,
                flags=final.flags, stats=final.stats, prompt=final.prompt, spans=final.spans,
            )
        except StorageError as exc:
            if final.conversation_id == self.conversation_id:  # else: the chat was deleted
                self.error_occurred.emit(str(exc))
        if final.conversation_id == self.conversation_id:
            self._replace_message(final)
            self.answer_finished.emit(final)
        self.conversations_changed.emit()  # its position in the list (updated_at) changed

    def _write(self, method, *args, **kwargs):
        """Call a store method; a StorageError is shown and gives _FAILED."""
        try:
            return method(*args, **kwargs)
        except StorageError as exc:
            self.error_occurred.emit(str(exc))
            return _FAILED


_FAILED = object()  # a store write that failed (its result may legitimately be None)
