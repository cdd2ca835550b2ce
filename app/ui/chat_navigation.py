"""Moving between chats: the conversation list on the left and what it asks of the session.

`ChatNavigation` opens, starts, deletes (with Undo) and searches conversations for the
window, and keeps the list's selection in step with the chat on screen. Opening a search hit
expands a thinking pane it is in and highlights every occurrence of the search's words in the
chat, stepped through with F3 / Shift+F3 or the match bar (search_matches.py).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from app.core.errors import PonderError
from app.core.storage import Conversation, SearchHit
from app.ui.search_matches import MatchBar, SearchMatches

UNDO_DELETE_MS = 10_000


class ChatNavigation(QObject):
    """The window's conversation room (see the module); `window` is its parent."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.session = window.session
        self.list = window.conversations
        lst = self.list
        lst.conversation_selected.connect(self._on_conversation_selected)
        lst.new_requested.connect(self.new_chat)
        lst.rename_requested.connect(self.session.rename_conversation)
        lst.delete_requested.connect(self.delete)
        lst.search_requested.connect(self._on_search)
        lst.hit_activated.connect(self._on_hit_activated)
        self.session.conversations_changed.connect(self.refresh)
        self.matches = SearchMatches(window.transcript, self)
        self.match_bar = MatchBar(window.transcript)
        self.matches.changed.connect(self._on_matches_changed)
        self.match_bar.next_requested.connect(self.next_match)
        self.match_bar.previous_requested.connect(self.previous_match)
        self.match_bar.close_requested.connect(self.matches.clear)
        # Another chat, or this one cut (regenerate, edit): the marks no longer fit.
        self.session.transcript_reset.connect(self.matches.clear)
        self.session.transcript_reset.connect(self._show_keep_thinking)

    @property
    def window(self):
        # Not kept in an attribute: a child holding its parent would keep a closed window alive.
        return self.parent()

    @Slot()
    def new_chat(self) -> None:
        self.window.editing.cancel()
        self.session.new_conversation()
        self.list.set_current(None)
        self.window.prompt_input.setFocus()

    @Slot(int)
    def delete(self, conv_id: int) -> None:
        snapshot = self.session.delete_conversation(conv_id)
        if snapshot is None:
            return
        self.window.notice.show_notice(
            f"Deleted “{snapshot.title}”.", action=("Undo", lambda: self._undo_delete(snapshot)),
            timeout_ms=UNDO_DELETE_MS,
        )

    @Slot()
    def refresh(self) -> None:
        """List the conversations again (titles, order or membership changed)."""
        try:
            conversations = self.session.store.list_conversations()
        except PonderError as exc:
            self.window.notice.show_notice(str(exc), error=True)
            return
        self.list.set_conversations(conversations, self.session.conversation_id)

    def _undo_delete(self, snapshot: Conversation) -> None:
        conv_id = self.session.restore_conversation(snapshot)
        if conv_id is not None:
            self.session.open_conversation(conv_id)
            self.list.set_current(conv_id)

    @Slot(int)
    def _on_conversation_selected(self, conv_id: int) -> None:
        self.window.editing.cancel()
        self.session.open_conversation(conv_id)

    @Slot(bool)
    def set_keep_thinking(self, keep: bool) -> None:
        """Chat → Send earlier thinking back, for the chat on screen."""
        if not self.session.set_keep_thinking(keep):
            self._show_keep_thinking()  # refused (the store said why): the check mark goes back
            return
        self.window.status.showMessage(
            "This chat's next prompts carry its earlier thinking" if keep
            else "This chat's next prompts leave earlier thinking out, as DeepSeek advises", 5000)

    @Slot()
    def _show_keep_thinking(self, *_args) -> None:
        menus = getattr(self.window, "menus", None)  # the first reset may come before the menus exist
        if menus is not None:
            menus.keep_thinking.setChecked(self.session.keep_thinking)

    @Slot(str)
    def _on_search(self, query: str) -> None:
        if query:
            self.list.show_hits(self.session.search(query))
        else:
            self.matches.clear()

    @Slot(object)
    def _on_hit_activated(self, hit: SearchHit) -> None:
        if not self.session.open_conversation(hit.conversation_id):
            return
        self.list.set_current(hit.conversation_id)
        transcript = self.window.transcript
        for view in transcript.views():
            if getattr(view, "position", None) == hit.position:
                transcript.scroll_to_view(view)
                break
        # Every occurrence marked; the first in the hit's field is current (a thinking pane opens).
        self.matches.start(self.list.search_input.text(), hit.position, hit.field)

    @Slot()
    def next_match(self) -> None:
        self.matches.next()

    @Slot()
    def previous_match(self) -> None:
        self.matches.previous()

    @property
    def showing_matches(self) -> bool:
        return bool(self.matches.terms)

    @Slot()
    def _on_matches_changed(self) -> None:
        query = " ".join(self.matches.terms)
        self.match_bar.show_matches(query, self.matches.current_index, self.matches.count)
