"""Compare two versions of a turn side by side: prompt, thinking and answer of each with a
word-level diff, both stats rows, and scrolling that stays together.

The versions are data (app/core/storage.py: TurnVersion); the diff is plain Python
(`compare_texts`: difflib on sentences, then on the words of the sentences that differ)
and runs off the GUI thread through `run_in_background`, so even two 20k-token traces never
stall the window (tests/benchmarks/bench_compare.py). The GUI thread only fills the two
documents with the result, as literal text (model output is never read as HTML).
"""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextDocumentLayout,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.storage import Message, TurnVersion
from app.ui import message_wording, theme
from app.ui.background import run_in_background

FIELDS = (("prompt", "Prompt"), ("thinking", "Thinking"), ("answer", "Answer"))
# A word with the whitespace before it (and at the very end, after it): joined back, the text as it was.
_WORD = re.compile(r"\s*\S+\s*$|\s*\S+|\s+$")
# A sentence (or a line) with the whitespace after it; joined back, the text as it was.
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n+|$)\s*")
WORD_DIFF_LIMIT = 400  # words each side of a differing stretch, beyond which it is not diffed word by word

SAME, REMOVED, ADDED = "same", "removed", "added"  # REMOVED: only on the left; ADDED: only on the right


# --- the diff (no Qt) -------------------------------------------------------------------


def word_diff(left: str, right: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Each side as (kind, text) pieces: SAME, or REMOVED (left) / ADDED (right). The two
    lists are aligned: piece i of each side is the same stretch of the comparison (one
    side's may be empty), which is how the two views scroll together.

    In two steps, as a word diff of two long traces must be: first whole sentences are
    matched, then the words inside each pair of differing stretches of at most
    WORD_DIFF_LIMIT words (longer ones are different text; a word match inside them would
    be noise). Compared without their whitespace. Two 15,000-word traces take ~0.05 s
    this way against ~1.6 s for one difflib pass over all the words
    (tests/benchmarks/bench_compare.py), and a thread that holds the GIL for that long
    stalls the GUI thread too.
    """
    a, b = [x for x in _SENTENCE.findall(left) if x], [x for x in _SENTENCE.findall(right) if x]
    out_a: list[tuple[str, str]] = []
    out_b: list[tuple[str, str]] = []

    def pair(same: bool, text_a: str, text_b: str) -> None:
        out_a.append((SAME if same else REMOVED, text_a))
        out_b.append((SAME if same else ADDED, text_b))

    for tag, i1, i2, j1, j2 in _opcodes(a, b):
        text_a, text_b = "".join(a[i1:i2]), "".join(b[j1:j2])
        words_a, words_b = _WORD.findall(text_a), _WORD.findall(text_b)
        if tag == "replace" and max(len(words_a), len(words_b)) <= WORD_DIFF_LIMIT:
            for wtag, k1, k2, l1, l2 in _opcodes(words_a, words_b):
                pair(wtag == "equal", "".join(words_a[k1:k2]), "".join(words_b[l1:l2]))
        else:
            pair(tag == "equal", text_a, text_b)
    return out_a, out_b


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    # autojunk off: sentences rarely repeat, and stretches of words are short by then.
    return difflib.SequenceMatcher(None, [x.strip() for x in a], [x.strip() for x in b], autojunk=False).get_opcodes()


@dataclass(frozen=True)
class Comparison:
    """The diff of two versions, field by field (prompt, thinking, answer)."""

    left: dict[str, list[tuple[str, str]]]
    right: dict[str, list[tuple[str, str]]]
    shared_words: int  # words the two have in common
    left_words: int
    right_words: int

    @property
    def identical(self) -> bool:
        return all(kind == SAME or not text for side in (self.left, self.right) for pieces in side.values()
                   for kind, text in pieces)

    def summary(self) -> str:
        if self.identical:
            return "The two versions are identical."
        total = max(self.left_words, self.right_words, 1)
        return (f"{self.shared_words / total:.0%} of the words in common "
                f"({self.left_words:,} words left, {self.right_words:,} right)")


def turn_texts(version: TurnVersion) -> dict[str, str]:
    """What the compare view shows of a version: its prompt, thinking and answer."""
    prompt = next((m.content for m in version.messages if m.role == "user"), "")
    answer = version.answer
    return {"prompt": prompt, "thinking": answer.thinking if answer else "", "answer": answer.content if answer else ""}


def compare_texts(left: dict[str, str], right: dict[str, str]) -> Comparison:
    out_left, out_right = {}, {}
    shared = 0
    for name, _ in FIELDS:
        out_left[name], out_right[name] = word_diff(left[name], right[name])
        shared += sum(len(_WORD.findall(text)) for kind, text in out_left[name] if kind == SAME)
    count = sum(len(_WORD.findall(left[n])) for n, _ in FIELDS), sum(len(_WORD.findall(right[n])) for n, _ in FIELDS)
    return Comparison(out_left, out_right, shared, *count)


def stats_row(message: Message | None) -> str:
    """Tokens, time, tokens/s, flags, sampling and seed of an answer, on two short lines."""
    if message is None:
        return "No answer in this version."
    s = message.stats or {}
    fmt = message_wording.format_seconds
    first: list[str] = []
    thinking, answer = s.get("thinking_tokens"), s.get("answer_tokens")
    if thinking is not None or answer is not None:
        first.append(f"{thinking or 0:,} thinking + {answer or 0:,} answer tokens")
    if s.get("thinking_s") is not None:
        first.append(f"thought {fmt(s['thinking_s'])}")
    if s.get("answer_s") is not None:
        first.append(f"answered {fmt(s['answer_s'])}")
    if s.get("total_s") is not None:
        first.append(f"{fmt(s['total_s'])} in all")
    if s.get("time_to_first_token_s") is not None:
        first.append(f"first token {fmt(s['time_to_first_token_s'])}")
    if s.get("decode_tokens_per_s"):
        first.append(f"{s['decode_tokens_per_s']:.1f} tokens/s")
    if s.get("finish_reason"):
        first.append(message_wording.FINISH_WORDS.get(s["finish_reason"], s["finish_reason"]))
    if message.status in ("stopped", "error"):
        first.append(message.status)
    second: list[str] = []
    flags = [f for f in message.flags if f not in message_wording.SILENT_FLAGS]
    second.append("flags: " + ", ".join(f.replace("_", " ") for f in flags) if flags else "no flags")
    sampling = message.sampling or {}
    for key, label in (("temperature", "temperature"), ("top_p", "top-p"), ("top_k", "top-k"),
                       ("min_p", "min-p"), ("max_tokens", "max tokens"), ("seed", "seed")):
        if sampling.get(key) is not None:
            second.append(f"{label} {sampling[key]}")
    if message.model:
        second.append(message.model)
    return " · ".join(first or ["no stats"]) + "\n" + " · ".join(second)


# --- the view ---------------------------------------------------------------------------


def _version_label(number: int, version: TurnVersion) -> str:
    return f"Version {number}" + (" (shown)" if version.shown else "")


class CompareDialog(QDialog):
    """Two versions of one turn, side by side. `versions` in order (Conversation.versions_of);
    `left` and `right` index it. Non-modal: the chat stays usable beside it.

    Signals:
      compared(): both sides show the diff of the versions picked (after the background diff).
    """

    compared = Signal()

    def __init__(self, versions: list[TurnVersion], left: int, right: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare versions")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.versions = versions
        self.comparison: Comparison | None = None
        self._request = 0  # the latest diff asked for; older results are dropped
        self._syncing = False
        self._anchors: list[list[int]] = []  # per side, where each aligned piece starts (_document)

        self.pickers: list[QComboBox] = []
        self.stats_labels: list[QLabel] = []
        # QPlainTextEdit lays out only what is on screen: a 20k-token trace shows at once.
        self.browsers: list[QPlainTextEdit] = []
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(6)
        for column, index in enumerate((left, right)):
            picker = QComboBox(self, objectName="versionPicker")
            for number, version in enumerate(versions, 1):
                picker.addItem(_version_label(number, version))
            picker.setCurrentIndex(index)
            picker.currentIndexChanged.connect(self._on_picked)
            stats = QLabel(self, objectName="compareStats")
            stats.setTextFormat(Qt.TextFormat.PlainText)
            stats.setWordWrap(True)
            stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            browser = QPlainTextEdit(self, objectName="compareText")
            browser.setReadOnly(True)
            browser.verticalScrollBar().valueChanged.connect(self._on_scrolled)
            grid.addWidget(picker, 0, column)
            grid.addWidget(stats, 1, column)
            grid.addWidget(browser, 2, column)
            self.pickers.append(picker)
            self.stats_labels.append(stats)
            self.browsers.append(browser)
        grid.setRowStretch(2, 1)

        self.summary = QLabel(self, objectName="compareSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        colors = theme.colors_for(self)
        self._removed_bg, self._added_bg = _diff_colors(colors.dark)
        legend = QLabel(self, objectName="compareLegend")
        legend.setTextFormat(Qt.TextFormat.RichText)  # fixed app text, no model output
        legend.setText(f'<span style="background-color:{self._removed_bg}">&nbsp;only left&nbsp;</span>&nbsp;&nbsp;'
                       f'<span style="background-color:{self._added_bg}">&nbsp;only right&nbsp;</span>')
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(legend)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(grid, 1)
        layout.addWidget(buttons)
        self.resize(1100, 720)
        self._on_picked()

    # --- picking and diffing ----------------------------------------------------------

    @property
    def picked(self) -> tuple[int, int]:
        return self.pickers[0].currentIndex(), self.pickers[1].currentIndex()

    @Slot()
    def _on_picked(self, *_args) -> None:
        left, right = (self.versions[i] for i in self.picked)
        for label, version in zip(self.stats_labels, (left, right)):
            label.setText(stats_row(version.answer))
        self._request += 1
        request = self._request
        texts = turn_texts(left), turn_texts(right)
        self.summary.setText("Comparing…")
        run_in_background(lambda job: compare_texts(*texts), owner=self, name="compare versions", lane="render",
                          on_done=lambda result: self._show(request, result), on_failed=self._on_failed)

    def _show(self, request: int, comparison: Comparison) -> None:
        if request != self._request:
            return  # the user picked other versions meanwhile
        self.comparison = comparison
        left, right = self.picked
        same_pick = " Pick two different versions to see what changed." if left == right else ""
        self.summary.setText(comparison.summary() + same_pick)
        self._anchors = []
        for browser, side in zip(self.browsers, (comparison.left, comparison.right)):
            document, anchors = self._document(side, browser)
            browser.setDocument(document)
            self._anchors.append(anchors)
        self.compared.emit()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.summary.setText(message)

    def _document(self, side: dict[str, list[tuple[str, str]]], parent: QWidget) -> tuple[QTextDocument, list[int]]:
        """The side's fields as literal text, the words only on this side highlighted; and
        where each aligned piece starts (its anchors: the same count on both sides)."""
        document = QTextDocument(parent)
        document.setDefaultFont(parent.font())
        cursor = QTextCursor(document)
        heading = QTextCharFormat()
        heading.setFontWeight(QFont.Weight.Bold)
        plain = QTextCharFormat()
        marked = {REMOVED: QTextCharFormat(), ADDED: QTextCharFormat()}
        marked[REMOVED].setBackground(QColor(self._removed_bg))
        marked[ADDED].setBackground(QColor(self._added_bg))
        anchors: list[int] = []
        for i, (name, title) in enumerate(FIELDS):
            if i:
                cursor.insertBlock()
                cursor.insertBlock()
            anchors.append(cursor.position())
            cursor.insertText(title, heading)
            cursor.insertBlock()
            pieces = side[name]
            if not any(text.strip() for _, text in pieces):
                anchors.extend(cursor.position() for _ in pieces)
                cursor.insertText(f"(no {name})", plain)
                continue
            first = True
            for kind, text in pieces:
                anchors.append(cursor.position())
                if first:  # the field starts at its first visible character
                    text, first = text.lstrip(), not text.strip()
                cursor.insertText(text, marked.get(kind, plain))
        anchors.append(cursor.position())
        # Laid out once, when filled (a layout set first would relayout on every insert: ~10x slower).
        document.setDocumentLayout(QPlainTextDocumentLayout(document))
        return document, anchors

    # --- scrolling together -----------------------------------------------------------

    @Slot(int)
    def _on_scrolled(self, _value: int) -> None:
        """Scrolling one side scrolls the other to the same place in the comparison: the text at
        the top of one is the text it is aligned with at the top of the other."""
        if self._syncing or len(self._anchors) != 2:
            return
        bars = [b.verticalScrollBar() for b in self.browsers]
        source = 0 if self.sender() is bars[0] else 1
        other = 1 - source
        self._syncing = True
        try:
            if bars[source].value() >= bars[source].maximum():  # the ends meet, whatever the lengths
                bars[other].setValue(bars[other].maximum())
                return
            top = _position_of(self.browsers[source].document(), bars[source].value())
            target = _map_position(top, self._anchors[source], self._anchors[other])
            bars[other].setValue(_line_of(self.browsers[other].document(), target))
        finally:
            self._syncing = False


def _map_position(position: int, source: list[int], target: list[int]) -> int:
    """The position in the other side's text aligned with `position` (anchors: aligned starts)."""
    i = max(0, min(bisect.bisect_right(source, position) - 1, len(source) - 2))
    span = source[i + 1] - source[i]
    share = (position - source[i]) / span if span > 0 else 0.0
    return target[i] + round(min(share, 1.0) * (target[i + 1] - target[i]))


def _position_of(document: QTextDocument, line: int) -> int:
    """Where the text of a plain text view scrolled to `line` starts (the inverse of _line_of)."""
    block = document.findBlockByLineNumber(line)
    layout = block.layout()
    within = line - block.firstLineNumber()
    if layout is not None and 0 < within < layout.lineCount():
        return block.position() + layout.lineAt(within).textStart()
    return block.position()


def _line_of(document: QTextDocument, position: int) -> int:
    """The line a plain text view scrolls to so that `position` is at its top."""
    block = document.findBlock(position)
    line = block.firstLineNumber()
    layout = block.layout()
    if layout is not None and layout.lineCount():
        line += layout.lineForTextPosition(position - block.position()).lineNumber()
    return line


def _diff_colors(dark: bool) -> tuple[str, str]:
    """(removed, added) backgrounds that keep text readable in the theme."""
    return ("#6b2a2e", "#24562f") if dark else ("#ffd7d5", "#ccf2d3")
