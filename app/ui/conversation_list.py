"""The left column: a search box, a New chat button, and the saved conversations.

While the search box has text, the list of conversations is replaced by the
search hits (prompts, answers and thinking); clearing the box brings it back.
The widget only shows things and reports what the user asked for; the window
does the work.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.storage import ConversationSummary, SearchHit
from app.ui.plain_text import as_plain_text  # titles and snippets are model text: never HTML

SEARCH_DELAY_MS = 200  # wait for a pause in typing before searching
ID_ROLE = Qt.ItemDataRole.UserRole
HIT_ROLE = Qt.ItemDataRole.UserRole + 1
FIELD_LABELS = {"prompt": "prompt", "answer": "answer", "thinking": "thinking"}


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


class ConversationList(QWidget):
    """Signals:
      conversation_selected(int conv_id)
      new_requested()
      rename_requested(int conv_id, str title)
      delete_requested(int conv_id)
      search_requested(str query): the search text settled (empty: search ended)
      hit_activated(object SearchHit)
    """

    conversation_selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    search_requested = Signal(str)
    hit_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # paint the stylesheet background
        self._current_id: int | None = None
        self._filling = False  # itemChanged fires while the list is rebuilt; ignore those

        self.search_input = QLineEdit(objectName="searchInput")
        self.search_input.setPlaceholderText("Search chats (Ctrl+F)")
        self.search_input.setToolTip("Search prompts, answers and thinking")
        self.search_input.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._on_search_settled)
        self.search_input.textChanged.connect(self._search_timer.start)

        self.new_button = QPushButton("New chat", objectName="newChatButton")
        self.new_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)

        self.list = QListWidget(objectName="conversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)  # F2 renames
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_context_menu)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setUniformItemSizes(True)
        delete = QAction("Delete", self.list, shortcut=QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(self._on_delete_current)
        self.list.addAction(delete)

        self.hits = QListWidget(objectName="searchResults")
        self.hits.setAccessibleName("Search results")
        self.hits.setWordWrap(True)
        self.hits.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.hits.itemActivated.connect(self._on_hit_activated)
        self.hits.itemClicked.connect(self._on_hit_activated)

        self._pages = QStackedWidget()
        self._pages.addWidget(self.list)
        self._pages.addWidget(self.hits)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search_input)
        layout.addWidget(self._pages, 1)

    def sizeHint(self) -> QSize:
        return QSize(260, 600)

    # --- showing --------------------------------------------------------------------

    def set_conversations(self, conversations: list[ConversationSummary], current_id: int | None) -> None:
        """Show these conversations (newest first, as given) with `current_id` selected."""
        self._filling = True
        try:
            self.list.clear()
            for conv in conversations:
                item = QListWidgetItem(conv.title)
                item.setData(ID_ROLE, conv.id)
                item.setToolTip(as_plain_text(
                    f"{conv.title}\n{conv.message_count} messages · last change {_when(conv.updated_at)}"
                ))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.list.addItem(item)
            self.set_current(current_id)
        finally:
            self._filling = False

    def set_current(self, conv_id: int | None) -> None:
        self._current_id = conv_id
        was_filling, self._filling = self._filling, True
        try:
            item = self._item_for(conv_id)
            if item is None:
                self.list.setCurrentItem(None)
                self.list.clearSelection()
            else:
                self.list.setCurrentItem(item)
        finally:
            self._filling = was_filling

    def show_hits(self, hits: list[SearchHit]) -> None:
        self.hits.clear()
        if not hits:
            empty = QListWidgetItem("No matches")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.hits.addItem(empty)
        for hit in hits:
            item = QListWidgetItem(f"{hit.title}\n{FIELD_LABELS.get(hit.field, hit.field)}: {hit.snippet}")
            item.setData(HIT_ROLE, hit)
            item.setToolTip(as_plain_text(hit.snippet))
            self.hits.addItem(item)
        self._pages.setCurrentWidget(self.hits)

    def focus_search(self) -> None:
        self.search_input.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_input.selectAll()

    def clear_search(self) -> None:
        self.search_input.clear()
        self._search_timer.stop()
        self._on_search_settled()

    def start_rename(self, conv_id: int) -> None:
        item = self._item_for(conv_id)
        if item is not None:
            self.list.editItem(item)

    def _item_for(self, conv_id: int | None) -> QListWidgetItem | None:
        if conv_id is None:
            return None
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(ID_ROLE) == conv_id:
                return item
        return None

    # --- reactions ------------------------------------------------------------------

    @Slot()
    def _on_search_settled(self) -> None:
        query = self.search_input.text().strip()
        if not query:
            self._pages.setCurrentWidget(self.list)
        self.search_requested.emit(query)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_current_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if self._filling or current is None:
            return
        conv_id = current.data(ID_ROLE)
        if conv_id != self._current_id:
            self._current_id = conv_id
            self.conversation_selected.emit(conv_id)

    @Slot(QListWidgetItem)
    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if not self._filling:
            # After the editor has closed: the rename rebuilds this list.
            conv_id, title = item.data(ID_ROLE), item.text()
            QTimer.singleShot(0, self, lambda: self.rename_requested.emit(conv_id, title))

    @Slot(QListWidgetItem)
    def _on_hit_activated(self, item: QListWidgetItem) -> None:
        hit = item.data(HIT_ROLE)
        if hit is not None:
            self.hit_activated.emit(hit)

    @Slot()
    def _on_delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.delete_requested.emit(item.data(ID_ROLE))

    @Slot(object)
    def _on_context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        conv_id = item.data(ID_ROLE)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Delete", lambda: self.delete_requested.emit(conv_id))
        menu.exec(self.list.viewport().mapToGlobal(pos))
