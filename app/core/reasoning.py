"""Split a reasoning model's raw output into thinking and answer, as it streams.

DeepSeek-R1 distills think between ``<think>`` and ``</think>`` and answer after
that. Their current chat template ends the prompt with ``<think>\\n``, so the
generated text usually has no opening tag: it starts mid-thought. Older
templates leave the tag to the model, and non-reasoning models emit no tags.
The engine feeds the decoded text delta by delta (cut anywhere, even inside a
tag) and gets back `Segment`s to display; `split_text` does the same for a
whole stored text.

Decisions (each anomaly also sets a flag from `FLAGS`, so the UI can show it):

- ``prompt_opens_thinking=True`` starts inside a think block. With ``False``
  the stream starts as answer.
- ``<think>`` inside a think block that has no text yet (only whitespace) is
  the same opening tag repeated - e.g. the model writes ``<think>`` although
  the prompt already opened it - and is dropped silently.
- ``<think>`` inside a think block that has text is a nested tag: dropped, the
  text stays thinking, flag ``multiple_think_blocks``.
- ``<think>`` in the answer opens a new think block. After an earlier think
  block that is ``multiple_think_blocks``; before any, following non-whitespace
  answer text, it is ``text_before_think`` (that text stays answer).
- ``</think>`` ends the think block; what follows is answer. A block with no
  text but whitespace is ``skipped_thinking``.
- ``</think>`` in the answer is ``orphan_close``: dropped, the text stays answer.
- End of stream inside a think block is ``unclosed_thinking`` (the text stays
  thinking; it is not also ``skipped_thinking`` when empty, since it was never
  closed). End of stream without any think block is ``no_thinking`` (everything
  is answer; this includes a stream whose only tag was an orphan ``</think>``).
  Both are end-of-stream facts: `flags` reports them only after `finish`.
- Whitespace at the start of each block (at stream start or after a tag that
  switches kind) is never emitted; trailing whitespace is, and the `thinking`
  and `answer` properties strip. Answer text of several answer blocks is
  concatenated as emitted; think blocks are kept apart (`thinking_blocks`).
- Tags match exactly (case-sensitive, as the tokenizer renders them). Text is
  held back only while it is a proper prefix of a tag (``<``, ``</th`` ...);
  anything else is emitted at once, and `finish` emits a held prefix as
  ordinary text. The result therefore does not depend on how the text was cut.
- Adjacent same-kind segments of one `feed` are merged, except where the
  junction would spell a tag (``<thi`` + dropped tag + ``nk>``): a segment never
  contains tag text. (The joined `thinking`/`answer` text of such a contrived
  output does read ``<think>``, faithfully to what the model wrote.)

Inserted text. `insert` puts text that the model did not write into the stream (a
wrap-up that ends the thought when a thinking budget runs out, a user's nudge, a kept
prefix of an edited thought; app/core/steering.py): it is emitted as it is, never
parsed for tags, in segments whose `inserted` says what it is ("wrap_up", "nudge",
"edit"; `inserted_by` says who wrote it, "ponder" or "user"), and
`close_thinking=True` then ends the think block as ``</think>`` would.
`TraceText.spans` gives every inserted stretch of the thinking as character offsets
into `thinking`, the shape messages are stored and exported with (app/core/storage.py,
Message.spans): {"field": "thinking", "start", "end", "by", "kind"}; a wrap-up is
followed by a zero-width "close" span where Ponder's ``</think>`` ended the thought.

Cost: each `feed` is O(len(delta)) (a `str.find` for ``<``; a held prefix is at
most 8 characters). Text is kept in a `TraceText` as lists of parts, joined when a property is
read; the join is cached, so reading the properties for a periodic checkpoint
costs only the text added since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

FLAGS = (
    "skipped_thinking",
    "unclosed_thinking",
    "orphan_close",
    "multiple_think_blocks",
    "no_thinking",
    "text_before_think",
)

_TAG_PREFIXES = frozenset(
    tag[:i] for tag in (OPEN_TAG, CLOSE_TAG) for i in range(1, len(tag))
)
_LONGEST_TAG = len(CLOSE_TAG)


@dataclass(frozen=True)
class Segment:
    """A piece of output text of one kind, ready to display.

    `block` numbers the think blocks of a message from 0 (`TraceText` keeps them apart by
    it); answer text is all one, block 0. `inserted` is None for text the model wrote, else
    what was inserted (a key of INSERTED): a "wrap_up" that ended the thought, a user's
    "nudge", or the user's "edit" of a thought the model continues.
    """

    kind: Literal["think", "answer"]
    text: str
    block: int = 0
    inserted: str | None = None

    @property
    def inserted_by(self) -> str | None:
        """Who wrote inserted text: "ponder" or "user" (None: the model)."""
        return INSERTED[self.inserted] if self.inserted is not None else None


# What can be inserted into a thought, and by whom (a span's "kind" and "by").
INSERTED = {"wrap_up": "ponder", "nudge": "user", "edit": "user"}


class TraceText:
    """The text of one message as its segments arrive, in its one saved shape.

    Whoever holds the live answer keeps one of these (the splitter on the engine thread,
    the chat session on the GUI thread); a finished, stopped, failed or checkpointed
    answer is read from `thinking` and `answer`, so every way an answer ends is saved
    alike. Reading is cheap: parts are joined in place, so the next read joins only the
    text added since.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, list[str]] = {}
        self._block_chars: dict[int, int] = {}  # characters added to each think block so far
        self._inserted: list[tuple[int, int, int, str]] = []  # (block, start, end, kind) of inserted thinking
        self._answer: list[str] = []

    def add(self, segment: Segment) -> None:
        if segment.kind == "think":
            block = segment.block
            self._blocks.setdefault(block, []).append(segment.text)
            start = self._block_chars.get(block, 0)
            self._block_chars[block] = start + len(segment.text)
            if segment.inserted is not None:
                self._inserted.append((block, start, start + len(segment.text), segment.inserted))
        else:
            self._answer.append(segment.text)

    @property
    def spans(self) -> list[dict]:
        """Inserted stretches of `thinking`: [{"field": "thinking", "start", "end", "by", "kind"}],
        character offsets into `thinking` (end exclusive), in order; adjacent stretches of one
        kind are one. Each wrap-up is followed by a zero-width "close" span: Ponder's </think>."""
        spans: list[dict] = []
        if not self._inserted:
            return spans
        offsets, base = {}, 0  # where each non-empty block starts in `thinking`, and its lead
        for number in sorted(self._blocks):
            raw = _joined(self._blocks[number])
            stripped = raw.strip()
            if stripped:
                offsets[number] = (base, len(raw) - len(raw.lstrip()), len(stripped))
                base += len(stripped) + 2  # the blank line between blocks
        for block, start, end, kind in self._inserted:
            if block not in offsets:
                continue
            at, lead, length = offsets[block]
            start, end = max(0, start - lead), min(length, end - lead)
            if end <= start:
                continue
            if spans and spans[-1]["kind"] == kind and spans[-1]["end"] == at + start:
                spans[-1]["end"] = at + end
            else:
                spans.append({"field": "thinking", "start": at + start, "end": at + end,
                              "by": INSERTED[kind], "kind": kind})
        closes = [{**span, "start": span["end"], "kind": "close"} for span in spans if span["kind"] == "wrap_up"]
        return sorted(spans + closes, key=lambda span: (span["start"], span["kind"] != "close")) if closes else spans

    def block(self, number: int) -> str:
        """Think block `number`, stripped ("" if it has no text)."""
        return _joined(self._blocks.get(number, [])).strip()

    @property
    def thinking(self) -> str:
        """The non-empty think blocks, stripped, separated by a blank line."""
        blocks = (self.block(n) for n in sorted(self._blocks))
        return "\n\n".join(block for block in blocks if block)

    @property
    def answer(self) -> str:
        """All answer text, stripped."""
        return _joined(self._answer).strip()

    @property
    def has_thinking(self) -> bool:
        return any(parts for parts in self._blocks.values())


class ThinkSplitter:
    """Incremental think/answer splitter for one generated message."""

    def __init__(self, prompt_opens_thinking: bool) -> None:
        self._thinking = prompt_opens_thinking
        self._block_has_text = False  # has the current block emitted non-whitespace
        self._held = ""  # a proper tag prefix at the end of the last delta
        self._block_count = 1 if prompt_opens_thinking else 0  # think blocks opened, empty ones too
        self._text = TraceText()
        self._flags: set[str] = set()
        self._finished = False
        self._out: list[Segment] = []

    def feed(self, text: str) -> list[Segment]:
        """Take the next delta; return the segments it completes (maybe none)."""
        if self._finished:
            raise RuntimeError("ThinkSplitter.feed() called after finish()")
        self._out = []
        if self._held:
            text = self._held + text
            self._held = ""
        start = 0
        while True:
            lt = text.find("<", start)
            if lt < 0:
                self._emit(text[start:])
                break
            self._emit(text[start:lt])
            if text.startswith(OPEN_TAG, lt):
                self._open_tag()
                start = lt + len(OPEN_TAG)
            elif text.startswith(CLOSE_TAG, lt):
                self._close_tag()
                start = lt + len(CLOSE_TAG)
            elif len(text) - lt < _LONGEST_TAG and text[lt:] in _TAG_PREFIXES:
                self._held = text[lt:]  # the next delta decides
                break
            else:
                self._emit("<")
                start = lt + 1
        return self._out

    def insert(self, text: str, inserted: str | None, *, close_thinking: bool = False) -> list[Segment]:
        """Put text the model did not write into the stream, as it is (no tags are looked for):
        segments of the current kind marked `inserted` (a key of INSERTED; None: text the
        model wrote earlier, e.g. the kept start of a thought). `close_thinking` then ends the
        think block as ``</think>`` would. A tag prefix held from the model's last delta is
        its text: it is emitted first."""
        if self._finished:
            raise RuntimeError("ThinkSplitter.insert() called after finish()")
        if inserted is not None and inserted not in INSERTED:
            raise ValueError(f"inserted must be one of {sorted(INSERTED)}, not {inserted!r}")
        by = inserted
        self._out = []
        if self._held:
            self._emit(self._held)
            self._held = ""
        self._emit(text, by)
        if close_thinking and self._thinking:
            self._close_tag()
        return self._out

    def finish(self) -> list[Segment]:
        """End of stream: emit held text and settle the end-of-stream flags."""
        if self._finished:
            return []
        self._finished = True
        self._out = []
        if self._held:
            self._emit(self._held)
            self._held = ""
        if self._thinking:
            self._flags.add("unclosed_thinking")
        if not self._block_count:
            self._flags.add("no_thinking")
        return self._out

    @property
    def in_thinking(self) -> bool:
        """Whether text fed so far leaves us inside a think block."""
        return self._thinking

    @property
    def thinking_blocks(self) -> list[str]:
        """Every think block (empty ones included), each stripped."""
        return [self._text.block(n) for n in range(self._block_count)]

    @property
    def thinking(self) -> str:
        """The non-empty think blocks, stripped, separated by a blank line."""
        return self._text.thinking

    @property
    def answer(self) -> str:
        """All answer text, stripped."""
        return self._text.answer

    @property
    def spans(self) -> list[dict]:
        """Inserted stretches of `thinking` (TraceText.spans)."""
        return self._text.spans

    @property
    def flags(self) -> list[str]:
        """Sorted anomaly flags (see FLAGS and the module docstring)."""
        return sorted(self._flags)

    def _open_tag(self) -> None:
        if self._thinking:
            if self._block_has_text:
                self._flags.add("multiple_think_blocks")  # nested tag, dropped
            return  # before any thought: the same opening tag, dropped
        if self._block_count:
            self._flags.add("multiple_think_blocks")
        elif self._block_has_text:
            self._flags.add("text_before_think")
        self._thinking = True
        self._block_count += 1
        self._block_has_text = False

    def _close_tag(self) -> None:
        if not self._thinking:
            self._flags.add("orphan_close")  # dropped, the answer goes on
            return
        if not self._block_has_text:
            self._flags.add("skipped_thinking")
        self._thinking = False
        self._block_has_text = False

    def _emit(self, text: str, by: str | None = None) -> None:
        if not text:
            return
        if not self._block_has_text:
            text = text.lstrip()
            if not text:
                return
            self._block_has_text = True
        if self._thinking:
            segment = Segment("think", text, self._block_count - 1, by)
        else:
            segment = Segment("answer", text, 0, by)
        self._text.add(segment)
        out = self._out
        last = out[-1] if out else None
        if last is not None and last.kind == segment.kind and last.block == segment.block \
                and last.inserted == by and not _spells_tag(last.text, text):
            out[-1] = Segment(segment.kind, last.text + text, segment.block, by)
        else:
            out.append(segment)


def split_text(text: str, prompt_opens_thinking: bool) -> tuple[str, str, list[str]]:
    """(thinking, answer, flags) of a whole output text, e.g. a stored message."""
    splitter = ThinkSplitter(prompt_opens_thinking)
    splitter.feed(text)
    splitter.finish()
    return splitter.thinking, splitter.answer, splitter.flags


def _joined(parts: list[str]) -> str:
    """Join parts in place, so the next read only joins what came since."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def _spells_tag(left: str, right: str) -> bool:
    """Would left + right contain a tag across their junction?"""
    junction = left[1 - _LONGEST_TAG :] + right[: _LONGEST_TAG - 1]
    return OPEN_TAG in junction or CLOSE_TAG in junction
