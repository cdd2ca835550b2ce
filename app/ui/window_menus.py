"""The window's menu bar and keyboard shortcuts, as QActions."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from app.ui.steering_bar import ANSWER_NOW_MENU_TIP, ANSWER_NOW_SHORTCUT


class WindowMenus:
    """Builds the menus of `window` (File, Edit, Model, Chat); each action calls one window slot.
    Parts wired after the window (the server switch) add their actions to `model_menu`.

    Esc stops an answer, else cancels an edit, else clears the search, else the highlighted
    matches (the window's `on_escape`).
    """

    def __init__(self, window: QMainWindow) -> None:
        action = _ActionMaker(window)
        self.open_model = action("&Import a GGUF file…", window.choose_model, QKeySequence.StandardKey.Open,
                                       "Check a GGUF model you already have and add it to Ponder's models")
        self.models = action("&Models…", window.open_model_manager, "Ctrl+Shift+M",
                                   "Downloaded models and models to download")
        self.connect_server = action("Co&nnect to a server…", window.models.open_connect_dialog, None,
                                     "Chat through a model on vLLM, SGLang, llama-server, Ollama, LM Studio or "
                                     "DeepSeek's API")
        self.new_chat = action("&New chat", window.new_chat, QKeySequence.StandardKey.New)
        # Traces as data: JSON Lines, one record per answer version (app/ui/trace_export.py).
        self.export_traces = action("&Export all traces (JSONL)…", window.trace_export.export_all, None,
                                    "Every answer and its versions, with prompts, settings and stats, as JSON Lines")
        self.export_chat_traces = action("Export this chat's &traces (JSONL)…", window.trace_export.export_current,
                                         None, "This chat's answers and their versions as JSON Lines")
        self.settings = action("&Settings…", window.open_settings, "Ctrl+,")
        self.quit = action("&Quit", window.close, QKeySequence.StandardKey.Quit)
        self.find = action("&Search chats", window.conversations.focus_search, QKeySequence.StandardKey.Find)
        self.copy_answer = action("&Copy last answer", window.copy_last_answer, "Ctrl+Shift+C")
        # The occurrences of an opened search hit (chat_navigation.py, search_matches.py).
        self.next_match = action("&Next match", window.chats.next_match, "F3")
        self.previous_match = action("&Previous match", window.chats.previous_match, "Shift+F3")
        self.stop = action("S&top answer", window.on_escape, Qt.Key.Key_Escape)
        self.answer_now = action("&Answer now", window.steering.answer_now, ANSWER_NOW_SHORTCUT,
                                 ANSWER_NOW_MENU_TIP)
        self.answer_now.setEnabled(False)  # steering_bar.py enables it while the model thinks
        # Versions of a turn (app/ui/version_nav.py).
        versions = window.versions
        self.regenerate = action("&Regenerate", versions.regenerate_last, "Ctrl+R",
                                 "A new answer to the latest prompt; the earlier one is kept as a version")
        self.compare = action("Co&mpare versions…", versions.compare_last, "Ctrl+D",
                              "Two versions of the latest answer side by side, with their differences")
        self.previous_version = action("Pre&vious version", versions.previous_version, "Ctrl+[",
                                       "Show the previous version of the latest answer")
        self.next_version = action("Ne&xt version", versions.next_version, "Ctrl+]",
                                   "Show the next version of the latest answer")

        menu = window.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.new_chat, self.settings):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.export_chat_traces)
        file_menu.addAction(self.export_traces)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addAction(self.find)
        edit_menu.addAction(self.next_match)
        edit_menu.addAction(self.previous_match)
        edit_menu.addAction(self.copy_answer)
        self.model_menu = menu.addMenu("&Model")
        self.model_menu.addAction(self.models)
        self.model_menu.addAction(self.open_model)
        self.model_menu.addAction(self.connect_server)
        chat_menu = self.chat_menu = menu.addMenu("&Chat")
        chat_menu.addAction(self.stop)
        chat_menu.addAction(self.answer_now)
        chat_menu.addAction(self.regenerate)
        chat_menu.addSeparator()
        for act in (self.compare, self.previous_version, self.next_version):
            chat_menu.addAction(act)
        chat_menu.addSeparator()
        # Per conversation (chat_navigation.py keeps it in step with the chat on screen).
        self.keep_thinking = action("Send earlier &thinking back", window.chats.set_keep_thinking, None,
                                    "Put this chat's earlier reasoning into the next prompts (DeepSeek advises "
                                    "leaving it out; the Prompt window shows the difference)")
        self.keep_thinking.setCheckable(True)
        chat_menu.addAction(self.keep_thinking)


class _ActionMaker:
    """Makes actions of one window. (Not kept by WindowMenus: holding the window from an
    attribute of the window would keep a closed window alive.)"""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window

    def __call__(self, text: str, slot, shortcut=None, tip: str | None = None) -> QAction:
        act = QAction(text, self.window)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(slot)
        self.window.addAction(act)
        return act
