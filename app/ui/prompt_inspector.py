"""What the model saw, for one answer: the exact text that was tokenized (chat template
applied, system text folded in, earlier reasoning left out or kept), its token count, the
sampling parameters and the seed, and the model file (name, quantisation, SHA-256 when a
download verified it, where it came from).

Everything shown comes from the stored message (messages.prompt, .sampling, .stats,
.model_info), so it is the same after a restart and in `ponder export --format jsonl`.
In the prompt text the template's own tokens are tinted and earlier thinking that went
back into it (the conversation's "Send earlier thinking" choice) is highlighted.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.storage import Message
from app.ui import theme
from app.ui.message_actions import action_button, refresh_icons, show_copied
from app.ui.plain_text import plain_label

NO_PROMPT = (
    "Ponder has no prompt text for this answer: a server applied its own chat template, the answer "
    "was written before Ponder kept prompts, or it failed before its prompt was built."
)
# Template markers: DeepSeek's <｜User｜>-style tokens, ChatML/Llama 3-style <|...|> tokens, think tags.
_SPECIAL = re.compile(r"<｜[^｜\n]{1,40}｜>|<\|[^|\n>]{1,40}\|>|</?think>")


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def summary_rows(message: Message) -> list[tuple[str, str]]:
    """(label, text) rows above the prompt: model, file, SHA-256, prompt, sampling, seed."""
    info = message.model_info or {}
    sampling = message.sampling or {}
    stats = message.stats or {}
    name = info.get("name") or message.model or "unknown"
    quant = info.get("quantization")
    rows = [("Model", f"{name} · {quant}" if quant else name)]
    if info.get("file"):
        rows.append(("File", f"{info['file']} ({info['source']})" if info.get("source") else info["file"]))
    rows.append(("SHA-256", info.get("sha256") or "not known: only files Ponder downloaded have a verified hash"))
    if message.prompt is not None:
        tokens = stats.get("prompt_tokens")
        count = f"{tokens} tokens" if tokens is not None else "token count not known"
        reused = stats.get("prompt_reused_tokens")
        if tokens and reused:
            count += f" ({reused} reused from the previous answer's cache)"
        kept = sampling.get("keep_thinking", False)
        thinking = ("earlier thinking kept (highlighted)" if kept
                    else "earlier thinking left out, as DeepSeek advises")
        rows.append(("Prompt", f"{count} · {thinking}"))
    else:
        rows.append(("Prompt", "not kept"))
    parts = [f"{key} {_number(sampling[key])}" for key in ("temperature", "top_p", "top_k", "min_p")
             if sampling.get(key) is not None]
    if sampling.get("max_tokens") is not None:
        parts.append(f"at most {sampling['max_tokens']} tokens")
    if "thinking_budget" in sampling:
        budget = sampling["thinking_budget"]
        parts.append(f"thinking budget {budget} tokens" if budget else "no thinking budget")
    rows.append(("Sampling", " · ".join(parts) if parts else "not recorded"))
    seed = sampling.get("seed")
    rows.append(("Seed", str(seed) if seed is not None else "not recorded (random)"))
    return rows


def _utf16(text: str, index: int) -> int:
    """A Python string index as a QTextDocument position (UTF-16 units: an emoji counts two)."""
    return len(text[:index].encode("utf-16-le")) // 2


def kept_thinking_spans(prompt: str, earlier: list[Message]) -> list[tuple[int, int]]:
    """Where the earlier answers' thinking stands in `prompt` (empty when it was left out)."""
    spans, start = [], 0
    for m in earlier:
        text = m.thinking.strip()
        if m.role != "assistant" or not text:
            continue
        at = prompt.find(text, start)
        if at >= 0:
            spans.append((at, at + len(text)))
            start = at + len(text)
    return spans


class PromptInspector(QDialog):
    """A window over the main one showing what the model saw for `message` (an assistant
    message as stored). `earlier` are the messages before it in its conversation."""

    def __init__(self, message: Message, earlier: list[Message], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("promptInspector")
        self.setWindowTitle("What the model saw")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.message = message
        self.thinking_spans: list[tuple[int, int]] = []  # earlier thinking found in the prompt
        self.resize(820, 640)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(12)
        self.rows: dict[str, QLabel] = {}
        for label, text in summary_rows(message):
            value = plain_label(text, parent=self)  # names and files come from the model file: never HTML
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{label}:", value)
            self.rows[label] = value

        self.prompt_view = QPlainTextEdit(self)
        self.prompt_view.setObjectName("promptText")
        self.prompt_view.setReadOnly(True)
        self.prompt_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.prompt_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.prompt_view.setAccessibleName("The exact prompt text")
        if message.prompt is not None:
            self.prompt_view.setPlainText(message.prompt)
            self._mark(kept_thinking_spans(message.prompt, earlier))
        else:
            self.prompt_view.setPlaceholderText(NO_PROMPT)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        self.copy_button = action_button("Copy prompt", "copy", self, "Copy the exact prompt text")
        self.copy_button.setEnabled(message.prompt is not None)
        self.copy_button.clicked.connect(self.copy_prompt)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        note = QLabel("The exact text that was tokenized, template tokens tinted:", self)
        note.setObjectName("promptNote")
        layout.addWidget(note)
        layout.addWidget(self.prompt_view, 1)
        layout.addWidget(buttons)
        refresh_icons(self)

    def _mark(self, thinking_spans: list[tuple[int, int]]) -> None:
        """Tint the template's tokens; highlight earlier thinking that went back into the prompt."""
        colors = theme.colors_for(self)
        special, thinking = QTextCharFormat(), QTextCharFormat()
        special.setForeground(QColor(colors.accent))
        special.setFontWeight(QFont.Weight.Bold)
        thinking.setBackground(QColor(colors.warn_bg))
        thinking.setForeground(QColor(colors.warn_text))
        document = self.prompt_view.document()
        selections = []
        text = self.message.prompt or ""
        spans = [(s, e, thinking) for s, e in thinking_spans]
        tokens: list[list[int]] = []
        for m in _SPECIAL.finditer(text):  # touching tokens as one range: Qt draws only the first of two that touch
            if tokens and tokens[-1][1] == m.start():
                tokens[-1][1] = m.end()
            else:
                tokens.append([m.start(), m.end()])
        spans += [(start, end, special) for start, end in tokens]
        for start, end, fmt in spans:
            selection = QTextEdit.ExtraSelection()
            selection.cursor = QTextCursor(document)
            selection.cursor.setPosition(_utf16(text, start))
            selection.cursor.setPosition(_utf16(text, end), QTextCursor.MoveMode.KeepAnchor)
            selection.format = fmt
            selections.append(selection)
        self.prompt_view.setExtraSelections(selections)
        self.thinking_spans = thinking_spans

    @Slot()
    def copy_prompt(self) -> None:
        QGuiApplication.clipboard().setText(self.message.prompt or "")
        show_copied(self.copy_button)
