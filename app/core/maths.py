"""Finding LaTeX maths in markdown answer text (Qt-free; see docs/maths.md).

`find_maths(text)` returns every formula in `text`, in order, never overlapping:

- inline `$…$` and `\\(…\\)`, display `$$…$$` and `\\[…\\]`, and a bare `\\boxed{…}`
  (braces balanced, any depth), which is typeset as a boxed formula;
- `$…$` follows the usual rules (pandoc's): no space right after the opening `$`, none
  right before the closing one, no `$` inside, no line break inside, and the closing `$`
  is not followed by a digit. Ponder adds: nor by a letter or `_`, so shell variables
  (`$HOME/$USER`) stay text. "$5 and $10" is text;
- a backslash escapes the next character (`\\$5` is a dollar, `\\\\[` is no opener);
- never inside code: code spans (backtick runs, found first, as markdown does), fenced
  code blocks (indented fences and an unclosed fence included, as render.py reads them)
  and indented code blocks (4 spaces after a blank line; in a list, 8 past the marker);
- no formula crosses a blank line or a code block. So finding maths in each top-level
  block that `StreamRenderer` renders gives exactly what finding it in the whole text
  gives (tests/core/test_maths.py checks this), and render.py can work block by block.

Streaming: `find_maths(text, final=False)` returns only the formulas that more text can
no longer change (its closing delimiter has arrived, and for `$…$` one more character, which
could have been a digit). A formula found so is found the same in any longer text.
"""

from __future__ import annotations

import base64
import re
from bisect import bisect_right
from dataclasses import dataclass

# Fence lines exactly as app/core/render.py reads them (kept in step by the identity tests).
_FENCE_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
_FENCE_CLOSE_RE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t\r]*$")
_LIST_ITEM_RE = re.compile(r"^(?P<indent>[ \t]*)(?:[*+-]|\d+[.)])[ \t]+\S")

_CANDIDATE_RE = re.compile(r"[\\$]")
_BACKTICKS_RE = re.compile(r"`+")
_BOXED = "\\boxed"

INLINE_DOLLAR, DISPLAY_DOLLAR, INLINE_PAREN, DISPLAY_BRACKET, BOXED = "$", "$$", "\\(", "\\[", "\\boxed"
_PAIRED = {DISPLAY_DOLLAR: ("$$", True), INLINE_PAREN: ("\\)", False), DISPLAY_BRACKET: ("\\]", True)}  # closer, display


@dataclass(frozen=True)
class Maths:
    start: int  # index of the opening delimiter in the text searched
    end: int  # index just past the closing delimiter
    source: str  # the LaTeX to typeset (stripped); for BOXED the whole `\boxed{…}`
    display: bool  # a display formula ($$…$$, \[…\]): centred on a line of its own
    kind: str  # INLINE_DOLLAR, DISPLAY_DOLLAR, INLINE_PAREN, DISPLAY_BRACKET or BOXED

    @property
    def boxed(self) -> bool:
        return self.kind == BOXED


def _indent_width(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4 - width % 4
        else:
            break
    return width


def _open_fence(line: str) -> tuple[str, int] | None:
    m = _FENCE_OPEN_RE.match(line)
    if not m:
        return None
    fence = m.group("fence")
    if fence[0] == "`" and "`" in m.group("info"):  # ```x``` on one line is a code span
        return None
    return fence[0], len(fence)


def _closes_fence(line: str, char: str, length: int) -> bool:
    m = _FENCE_CLOSE_RE.match(line)
    return bool(m) and m.group("fence")[0] == char and len(m.group("fence")) >= length


def _prose_segments(text: str) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive lines that are neither blank nor code."""
    segments: list[tuple[int, int]] = []
    fence: tuple[str, int] | None = None
    items: list[int] = []  # marker indentation of the open list items, outermost first
    prev_blank = True  # the previous line was blank or a fence line, or there was none
    prev_code = False  # the previous line was indented code
    seg_start: int | None = None
    pos = 0
    for line in text.split("\n"):
        prose = False
        if fence is not None:
            if _closes_fence(line, *fence):
                fence = None
                prev_blank = True  # indented code may follow a fence directly
            else:
                prev_blank = False
            prev_code = False
        elif not line.strip():
            prev_blank = True  # (after indented code, prev_code stays: the block goes on)
        else:
            indent = _indent_width(line)
            opened = _open_fence(line)
            if opened is not None:
                fence = opened
                if indent == 0:
                    items = []
                prev_blank, prev_code = True, False
            else:
                if prev_blank:  # close the items this line is not inside of
                    while items and indent < items[-1] + 2:
                        items.pop()
                threshold = items[-1] + 8 if items else 4
                if (prev_blank or prev_code) and indent >= threshold:
                    prev_code = True
                else:
                    prose, prev_code = True, False
                    item = _LIST_ITEM_RE.match(line)
                    if item is not None and (items or indent <= 3):
                        while items and indent < items[-1] + 2:
                            items.pop()
                        items.append(indent)
                prev_blank = False
        if prose and seg_start is None:
            seg_start = pos
        elif not prose and seg_start is not None:
            segments.append((seg_start, pos - 1))  # (without the newline before this line)
            seg_start = None
        pos += len(line) + 1
    if seg_start is not None:
        segments.append((seg_start, len(text)))
    return segments


def _code_spans(text: str, start: int, end: int, final: bool) -> tuple[list[tuple[int, int]], int]:
    """Code spans in text[start:end], and where the first backtick run that more text could
    still close (or extend) begins (`end` if none; there is none when `final`).

    As Python-Markdown reads them: a run of n backticks not escaped by a backslash opens a
    span that the next run of exactly n backticks closes; a run that finds none is text."""
    runs: list[tuple[int, int, int]] = []  # (start, end, where it opens a span: after an escape)
    for m in _BACKTICKS_RE.finditer(text, start, end):
        backslashes = 0
        while m.start() - backslashes - 1 >= start and text[m.start() - backslashes - 1] == "\\":
            backslashes += 1
        runs.append((m.start(), m.end(), m.start() + backslashes % 2))
    by_length: dict[int, list[int]] = {}  # run length -> indexes of the runs that long, in order
    for n, (run_start, run_end, _) in enumerate(runs):
        by_length.setdefault(run_end - run_start, []).append(n)
    spans: list[tuple[int, int]] = []
    unsettled = end
    i = 0
    while i < len(runs):
        _, run_end, opens_at = runs[i]
        length = run_end - opens_at
        same = by_length.get(length, [])
        at = bisect_right(same, i)
        close = same[at] if length and at < len(same) else None
        if close is not None and (final or runs[close][1] < len(text)):
            spans.append((opens_at, runs[close][1]))
            i = close + 1
            continue
        if length and not final:
            return spans, opens_at  # what follows may yet be code
        i += 1
    return spans, unsettled


def _skip_to(text: str, i: int, end: int, target: str, stop_at_newline: bool = False) -> int:
    """Index of the first unescaped `target` in text[i:end], or -1."""
    first = target[0]
    while i < end:
        ch = text[i]
        if ch == "\\":
            if first == "\\" and i + len(target) <= end and text.startswith(target, i):
                return i
            i += 2
            continue
        if stop_at_newline and ch == "\n":
            return -1
        if ch == first and i + len(target) <= end and text.startswith(target, i):
            return i
        i += 1
    return -1


def _brace_pairs(text: str, start: int, end: int) -> dict[int, int]:
    """For each `{` in text[start:end] (not escaped), the index just past its matching `}`."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = start
    while i < end:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i + 1
        i += 1
    return pairs


def _maths_in(text: str, start: int, end: int, out: list[Maths]) -> int:
    """Appends the formulas in text[start:end] (no code in it); returns where the first
    opener that has not closed yet starts (`end` if none)."""
    unclosed = end
    braces: dict[int, int] | None = None  # computed on the first \boxed
    never_closed: set[str] = set()  # closing delimiters known to be absent from here to `end`
    i = start
    while True:
        m = _CANDIDATE_RE.search(text, i, end)
        if m is None:
            return unclosed
        i = m.start()
        two = text[i:i + 2]
        if two in _PAIRED and (two != DISPLAY_DOLLAR or i + 2 <= end):
            closing, display = _PAIRED[two]
            j = -1 if closing in never_closed else _skip_to(text, i + 2, end, closing)
            if j < 0:  # (every later scan is a tail of this one: it would fail too)
                never_closed.add(closing)
            source = text[i + 2:j].strip() if j >= 0 else ""
            if j >= 0 and source:
                out.append(Maths(i, j + 2, source, display, two))
                i = j + 2
                continue
            if j < 0:
                unclosed = min(unclosed, i)
            i += 2
            continue
        if text[i] == "\\":
            if text.startswith(_BOXED, i) and not text[i + 6:i + 7].isalpha():
                k = i + 6
                while k < end and text[k] in " \t":
                    k += 1
                if k < end and text[k] == "{":
                    if braces is None:
                        braces = _brace_pairs(text, k, end)
                    j = braces.get(k, -1)
                    if j >= 0:
                        if text[k + 1:j - 1].strip():
                            out.append(Maths(i, j, "\\boxed{" + text[k + 1:j - 1].strip() + "}", False, BOXED))
                        i = j
                        continue
                    unclosed = min(unclosed, i)
                elif k >= end:
                    unclosed = min(unclosed, i)
            i += 2  # an escaped character (or a command that is not ours)
            continue
        # A single dollar.
        if i + 1 < end and not text[i + 1].isspace():
            j = _skip_to(text, i + 1, end, "$", stop_at_newline=True)
            if j > i + 1 and not text[j - 1].isspace():
                after = text[j + 1:j + 2]
                if not (after.isalnum() or after == "_"):
                    out.append(Maths(i, j + 1, text[i + 1:j], False, INLINE_DOLLAR))
                    i = j + 1
                    continue
        i += 1


def find_maths(text: str, *, final: bool = True) -> list[Maths]:
    """The formulas in markdown `text`, in order (see the module docstring).

    `final=False`: `text` is still growing (a stream); only formulas that no later text can
    change are returned. Never raises.
    """
    found: list[Maths] = []
    for seg_start, seg_end in _prose_segments(text):
        # More text can change a segment until a complete line follows it (the last line,
        # blank so far, may yet get text, or turn out to be code or prose).
        open_segment = not final and "\n" not in text[seg_end + 1:]
        spans, unsettled = _code_spans(text, seg_start, seg_end, final or not open_segment)
        pos = seg_start
        for span_start, span_end in [*spans, (seg_end, seg_end)]:
            unclosed = _maths_in(text, pos, span_start, found)
            if open_segment and span_start == seg_end:  # (no opener closes past a code span)
                unsettled = min(unsettled, unclosed)
            pos = span_end
        if open_segment:
            while found and (
                found[-1].end > unsettled
                or (found[-1].kind == INLINE_DOLLAR and found[-1].end >= len(text))
            ):
                found.pop()
    return found


# --- formulas as document resources ----------------------------------------------------
# A rendered answer names each formula's image `formula:<kind code>/<source, base64url>`: the
# name alone says what to typeset and what to copy, so no table has to travel with the HTML.
RESOURCE_SCHEME = "formula"
_KIND_CODES = {INLINE_DOLLAR: "i", DISPLAY_DOLLAR: "d", INLINE_PAREN: "p", DISPLAY_BRACKET: "b", BOXED: "x"}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_DELIMITERS = {INLINE_DOLLAR: ("$", "$"), DISPLAY_DOLLAR: ("$$", "$$"), INLINE_PAREN: ("\\(", "\\)"),
               DISPLAY_BRACKET: ("\\[", "\\]"), BOXED: ("", "")}


def resource_name(formula: Maths) -> str:
    """The image name a rendered answer gives `formula` (see `parse_resource_name`)."""
    encoded = base64.urlsafe_b64encode(formula.source.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{RESOURCE_SCHEME}:{_KIND_CODES[formula.kind]}/{encoded}"


def parse_resource_name(name: str) -> Maths | None:
    """The formula an image name stands for (start and end are 0), or None for any other name."""
    if not name.startswith(RESOURCE_SCHEME + ":"):
        return None
    code, _, encoded = name[len(RESOURCE_SCHEME) + 1:].partition("/")
    kind = _CODE_KINDS.get(code)
    if kind is None or not encoded:
        return None
    try:
        source = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not source:
        return None
    return Maths(0, 0, source, kind in (DISPLAY_DOLLAR, DISPLAY_BRACKET), kind)


def written(formula: Maths) -> str:
    """The formula as LaTeX with its delimiters (what copying it gives)."""
    opening, closing = _DELIMITERS[formula.kind]
    return f"{opening}{formula.source}{closing}"
