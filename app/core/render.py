"""Markdown → HTML for chat messages, shaped for QTextDocument, plus incremental streaming.

Model output is untrusted: raw HTML is escaped (shown as text), images become links
(nothing remote is ever loaded), and links keep their href for the view to open on
click. Fenced code is highlighted by pygments with CSS classes (`hl-*`), so the
theme decides the colours (see `code_css`) and rendered HTML stays theme-free.
Each code block gets a `copy:<n>` anchor; `Rendered.code_blocks[n]` is its raw text.
Lists nested with 2 or 3 spaces, as models write them, nest as written (markdown alone
wants 4; see `_ListIndentPreprocessor`).

Streaming: `StreamRenderer.feed(delta)` renders each top-level block once, when it
is complete, and hands back the unfinished tail as plain text. Between calls the
scanner keeps its place (even inside a long line), so a call examines only the new
text: apart from rendering a block that completes, its cost depends on the delta,
not on the open block or the message. Blocks
rendered one by one can differ from a render of the whole text where a construct
spans blocks (a list with blank lines between its items, a reference link defined
later); `patches(pieces, full_html)` says which streamed pieces to replace, and with
what, so that a view can fix those alone instead of showing everything again.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import markdown
from markdown.blockprocessors import HRProcessor
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from app.core.maths import Maths, find_maths, resource_name

CODE_CLASS_PREFIX = "hl-"
COPY_SCHEME = "copy"

# A fence line: up to any indentation (models indent fences inside list items),
# three or more backticks or tildes, then an info string (no backticks for ``` fences).
_FENCE_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
_FENCE_CLOSE_RE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t\r]*$")


_local = threading.local()  # per thread: a markdown converter and a pygments formatter, built once


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...]  # raw code of each block; anchor copy:<first_code_index + i>


def _open_fence(line: str) -> tuple[str, int, str, str] | None:
    """(fence char, fence length, indent, language) if `line` opens a fenced code block."""
    m = _FENCE_OPEN_RE.match(line)
    if not m:
        return None
    fence, info = m.group("fence"), m.group("info").strip()
    if fence[0] == "`" and "`" in info:  # ```x``` on one line is inline code, not a fence
        return None
    lang = info.split()[0].lstrip(".{").rstrip("}") if info else ""
    return fence[0], len(fence), m.group("indent"), lang


def _closes_fence(line: str, char: str, length: int) -> bool:
    m = _FENCE_CLOSE_RE.match(line)
    return bool(m) and m.group("fence")[0] == char and len(m.group("fence")) >= length


def highlight_code(code: str, lang: str) -> str:
    """HTML (spans with hl-* classes) for `code`; escaped plain text if the language is unknown."""
    try:
        lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return html.escape(code, quote=False)
    formatter = getattr(_local, "formatter", None)
    if formatter is None:  # building one costs about as much as highlighting a short block
        formatter = _local.formatter = HtmlFormatter(nowrap=True, classprefix=CODE_CLASS_PREFIX)
    return highlight(code, lexer, formatter)


def code_css(style_name: str) -> str:
    """CSS rules (`.hl-k { color: ... }`) giving pygments style `style_name` to highlighted code."""
    formatter = HtmlFormatter(style=style_name, classprefix=CODE_CLASS_PREFIX)
    rules = []
    for cls, (style, _ttype, _level) in formatter.class2style.items():
        # Backgrounds and borders of single tokens look like rendering glitches in Qt.
        parts = [p for p in style.split(";") if p.strip() and not p.strip().startswith(("background", "border"))]
        if cls and parts:
            rules.append(f".{cls} {{ {'; '.join(p.strip() for p in parts)} }}")
    return "\n".join(rules)


def code_block_html(code: str, lang: str, index: int) -> str:
    """One code block: a header row with the language and a Copy link, then the code."""
    body = highlight_code(code, lang).rstrip("\n")
    label = html.escape(lang) if lang else "&nbsp;"
    return (
        # Margins inline: QTextDocument ignores class-selected margins on tables.
        '<table class="code" width="100%" cellspacing="0" cellpadding="0"'
        ' style="margin-top: 8px; margin-bottom: 12px;">'
        f'<tr><td class="code-lang">{label}</td>'
        f'<td class="code-copy" align="right"><a href="{COPY_SCHEME}:{index}">Copy</a></td></tr>'
        f'<tr><td class="code-body" colspan="2"><pre class="code">{body}</pre></td></tr>'
        "</table>"
    )


@dataclass
class _Fence:
    start: int  # index of the opening fence line
    end: int  # index just past the closing fence line (or the last line, if unclosed)
    indent: str
    lang: str
    code: str


def _find_fences(lines: list[str]) -> list[_Fence]:
    """Fenced code blocks, indented fences included; an unclosed one runs to the end."""
    fences: list[_Fence] = []
    i = 0
    while i < len(lines):
        opened = _open_fence(lines[i])
        if opened is None:
            i += 1
            continue
        char, length, indent, lang = opened
        start, body = i, []
        i += 1
        while i < len(lines) and not _closes_fence(lines[i], char, length):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip(" \t"))
            i += 1
        if i >= len(lines):  # unclosed: trailing blank lines are not code
            while body and not body[-1].strip():
                body.pop()
        i += 1  # past the closing fence
        fences.append(_Fence(start, min(i, len(lines)), indent, lang, "\n".join(body)))
    return fences


class _FencePreprocessor(Preprocessor):
    """Replaces fenced code with stashed HTML and records the raw code for Copy.

    Unlike markdown's own fenced_code it accepts indented fences (common inside list
    items in model output) and an unclosed fence (runs to the end of the text).
    """

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        done = 0
        for n, fence in enumerate(_find_fences(lines)):
            out.extend(lines[done:fence.start])
            done = fence.end
            # Markdown has expanded tabs by now; Copy gets the code exactly as the model wrote it.
            raw = self.md.raw_code[n] if n < len(self.md.raw_code) else fence.code
            index = self.md.first_code_index + len(self.md.code_blocks)
            self.md.code_blocks.append(raw)
            placeholder = self.md.htmlStash.store(code_block_html(fence.code, fence.lang, index))
            self.md.fence_indents[placeholder] = len(fence.indent)  # for _ListIndentPreprocessor
            # Blank lines make the placeholder its own block; an indented fence stays in
            # its list item (markdown wants multiples of 4 spaces for that).
            depth = -(-len(fence.indent) // 4) * 4
            out.extend(["", " " * depth + placeholder, "", ""])
        out.extend(lines[done:])
        return out


# A list item as Python-Markdown reads one (sane_lists: `1)` is not a marker), and the lines
# it splits off as blocks of their own, which end a list: headings (`#` or a setext
# underline, in the first column) and rules.
_LIST_ITEM_RE = re.compile(r"^ *(?:[*+-]|\d+\.) +")
_BLOCK_SPLITTING_RE = re.compile(rf"#|(?:=+|-+) *$|{HRProcessor.RE}")
# CommonMark: a list may start right under a paragraph line if it is a bullet or starts
# at 1, and its item is not empty ("1999. was a year" under a line stays text).
_INTERRUPTING_ITEM_RE = re.compile(r"^ {0,3}(?:[*+-]|1\.) +\S")


@dataclass
class _OpenItem:
    src: int  # indentation of its marker as written
    out: int  # indentation of its marker as emitted


class _ListIndentPreprocessor(Preprocessor):
    """Nests list items the way they were written with 2 or 3 spaces per level.

    Models indent a nested item (or a further paragraph of an item) under its parent's
    text, as CommonMark has it: 2 spaces under `- `, 3 under `1. `. Python-Markdown only
    nests at 4 spaces per level and shows the rest flat. Items and paragraphs after a blank
    line that sit at least 2 columns right of an open item's marker belong to it; they are
    re-indented to the parent's emitted indentation plus 4 (a paragraph indented 4 or more
    past its item's marker keeps that offset, so code indented in an item stays code). A
    list written with 4 spaces per level comes out unchanged. Lazy continuation lines (no
    blank line before them) are left alone: markdown ignores their indentation.

    It also starts a list right under a paragraph line, as CommonMark does ("Steps:" then
    "1. Install"): markdown wants a blank line there and shows one paragraph without it.
    Only a bullet or a list starting at 1 interrupts a paragraph; under a table, a heading
    or a list item nothing changes (in a list such a line is the item's lazy continuation).

    Runs after the fence preprocessor: code is already a placeholder, placed here by the
    fence's own indentation. What happens at a line without indentation after a blank line
    depends on that line alone, so a text rendered block by block (`StreamRenderer`)
    nests exactly as a render of the whole.
    """

    def run(self, lines: list[str]) -> list[str]:
        fence_indents: dict[str, int] = self.md.fence_indents
        out: list[str] = []
        items: list[_OpenItem] = []  # the open items of the current list, outermost first
        block_start = True  # the line starts a markdown block: a list can start here
        head_is_item, head_indent = True, 0  # the first line of the current block in a list
        head: list[str] = []  # the first two lines of the current block outside a list
        for line in lines:
            text = line.lstrip(" ")
            if not text:
                out.append(line)
                block_start = True
                continue
            if _BLOCK_SPLITTING_RE.match(line):
                items = []
                out.append(line)
                block_start = True
                continue
            indent = fence_indents.get(text, len(line) - len(text))
            is_item = _LIST_ITEM_RE.match(line) is not None
            if block_start:
                head = []
            elif not items and self._interrupts_paragraph(head, line):
                out.append("")
                block_start, head = True, []
            if len(head) < 2:
                head.append(line)
            if not items or not (is_item or block_start):  # outside a list, or a lazy line
                if not items and is_item and indent <= 3 and block_start:
                    items = [_OpenItem(indent, indent)]
                    head_is_item, head_indent = True, indent
                out.append(line)
                block_start = False
                continue
            # Close the items it is not inside of (4 spaces or more is never a new top-level item).
            while items and indent < items[-1].src + 2 and (len(items) > 1 or indent <= 3):
                items.pop()
            if not items:  # a new top-level item, or text after the list
                if is_item:
                    items = [_OpenItem(indent, indent)]
                    new_indent = indent
                else:
                    out.append(line)
                    block_start = False
                    continue
            elif is_item and indent - items[-1].src < 8:  # (8 or more: code in a 4-space list)
                items.append(_OpenItem(indent, items[-1].out + 4))
                new_indent = items[-1].out
            else:  # a further paragraph or a code block of the item
                owner = items[-1]
                new_indent = owner.out + (4 if text in fence_indents else max(4, indent - owner.src))
            if block_start:
                head_is_item, head_indent = is_item, new_indent
            elif is_item and (not head_is_item or new_indent < head_indent):
                # Markdown reads a block that starts indented as one piece of the item above:
                # an item that is not inside that piece needs a block of its own.
                out.append("")
                head_is_item, head_indent = True, new_indent
            out.append(" " * new_indent + text)
            block_start = False
        return out

    def _interrupts_paragraph(self, head: list[str], line: str) -> bool:
        """`line` starts a list right under a block of text (a paragraph or a quote) begun by `head`."""
        if not _INTERRUPTING_ITEM_RE.match(line) or head[0].startswith("    "):
            return False  # (under code indented 4 spaces markdown starts the list already)
        # Under "a | b", "- | -" is a table's separator row; a table's rows are no paragraph.
        # (A table's header row has a pipe: a block without one in its first line is no table.)
        tables = self.md.parser.blockprocessors["table"]
        return "|" not in head[0] or not tables.test(None, "\n".join([*head, line][:2]))


# A display formula that is not alone on its lines is split out of them (into a paragraph
# of its own) unless its line is a heading, a quote or may be a table row, or it starts a list
# item, or is indented so far that a paragraph of its own would read as code.
_NO_SPLIT_LINE_RE = re.compile(r"^[ \t]*(?:[#>]|.*\|)")
_ITEM_MARKER_RE = re.compile(r"^[ \t]*(?:[*+-]|\d+\.)[ \t]+")


def formula_html(formula: Maths, *, own_paragraph: bool) -> str:
    """The HTML of one formula: an image named after it (app.core.maths.resource_name), which
    the view typesets; QTextDocument centres it on the text (vertical-align: middle: the view
    pads the image so that its baseline lands on the text's)."""
    img = f'<img src="{resource_name(formula)}" style="vertical-align: middle" />'
    return f'<p align="center" class="maths-display">{img}</p>' if own_paragraph else img


def _paragraph_indent(text: str, formula: Maths) -> str | None:
    """The indentation a paragraph of its own for display `formula` gets, or None if it stays inline."""
    line_start = text.rfind("\n", 0, formula.start) + 1
    line_end = text.find("\n", line_start)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    if _NO_SPLIT_LINE_RE.match(line):
        return None
    marker = _ITEM_MARKER_RE.match(line)
    if marker is not None:
        if line_start + marker.end() >= formula.start:
            return None  # the formula starts the item: it stays the item's text
        return " " * marker.end()
    indent = line[:len(line) - len(line.lstrip(" "))]
    return None if len(indent) >= 4 or "\t" in line[:len(indent) + 1] else indent


class _MathsPreprocessor(Preprocessor):
    """Each formula (app.core.maths.find_maths: code excluded, `$` rules applied) becomes an
    htmlStash placeholder before markdown reads the text, so emphasis and escapes never touch
    LaTeX. Display maths gets a centred paragraph of its own. Runs first (before the fences):
    find_maths reads code exactly as render.py does, so no formula is found inside code."""

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        found = find_maths(text)
        if not found:
            return lines
        out: list[str] = []
        pos = 0
        for formula in found:
            indent = _paragraph_indent(text, formula) if formula.display else None
            html = formula_html(formula, own_paragraph=indent is not None)
            placeholder = self.md.htmlStash.store(html)
            if indent is None:
                out.append(text[pos:formula.start])
                out.append(placeholder)
                pos = formula.end
                continue
            out.append(text[pos:formula.start].rstrip(" \t"))
            out.append(f"\n\n{indent}{placeholder}\n\n")
            rest = len(text) - len(text[formula.end:].lstrip(" \t"))
            if rest < len(text) and text[rest] != "\n":
                out.append(indent)  # the text after it on its line: a paragraph of its own
            pos = rest
        out.append(text[pos:])
        return "".join(out).split("\n")


class _ImagesAsLinks(Treeprocessor):
    """`![alt](src)` becomes a link reading "image: alt": no remote image is ever fetched."""

    def run(self, root):
        for el in root.iter("img"):
            src, alt = el.get("src", ""), el.get("alt", "") or el.get("title", "")
            el.attrib.clear()
            el.tag = "a"
            el.set("href", src)
            el.text = AtomicString(f"[image: {alt}]" if alt else "[image]")


class _TableMarkup(Treeprocessor):
    """Markdown tables get a class and cell padding QTextDocument understands."""

    def run(self, root):
        for el in root.iter("table"):
            if el.get("class") is None:
                el.set("class", "md")
                el.set("cellspacing", "0")
                el.set("cellpadding", "6")
                el.set("style", "margin-top: 6px; margin-bottom: 12px;")


class _PonderMarkdown(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (markdown's API)
        # Raw HTML in model output is shown as text, never interpreted.
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.preprocessors.register(_MathsPreprocessor(md), "ponder_maths", 26)
        md.preprocessors.register(_FencePreprocessor(md), "ponder_fences", 25)
        md.preprocessors.register(_ListIndentPreprocessor(md), "ponder_list_indent", 24)
        md.treeprocessors.register(_ImagesAsLinks(md), "ponder_images", 15)
        md.treeprocessors.register(_TableMarkup(md), "ponder_tables", 14)


def _converter() -> markdown.Markdown:
    md = getattr(_local, "md", None)
    if md is None:  # building one costs a few ms; keep one per thread
        md = markdown.Markdown(extensions=["tables", "sane_lists", "nl2br", _PonderMarkdown()])
        _local.md = md
    return md


def render_markdown(text: str, *, first_code_index: int = 0) -> Rendered:
    """HTML for chat markdown `text`; code blocks are numbered from `first_code_index`."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    md = _converter()
    md.reset()
    md.code_blocks = []
    md.fence_indents = {}
    md.raw_code = [fence.code for fence in _find_fences(text.split("\n"))]
    md.first_code_index = first_code_index
    out = md.convert(text)
    return Rendered(out, tuple(md.code_blocks))


class _BlockScanner:
    """Tracks open code fences and blank lines to find where top-level blocks end.

    A block is complete once a blank line (outside a fence) is followed by a line
    that starts without indentation: an indented line could still continue a list
    item, and inside a fence blank lines are part of the code. A top-level code
    block is complete as soon as its closing fence is.
    """

    def __init__(self) -> None:
        self.fence: tuple[str, int, str] | None = None  # (char, length, indent) of the open fence
        self.prev_blank = False
        self._no_newline_before = 0  # the incomplete line has no newline before this index

    def scan(self, text: str, pos: int) -> tuple[int, int]:
        """Scan complete lines of `text` from line start `pos`.

        Returns (start of the first incomplete line, start of the last block that
        began in the scanned text or -1). The incomplete last line is only peeked
        at: its first character is enough to know a new block started. Called again
        with the returned position on a longer `text`, it examines only the new text.
        """
        boundary = -1
        while True:
            nl = text.find("\n", max(pos, self._no_newline_before))
            if self.fence is None and self.prev_blank and pos < len(text) and not text[pos].isspace():
                boundary = pos
            if nl < 0:
                self._no_newline_before = len(text)
                return pos, boundary
            line = text[pos:nl]
            if self.fence is not None:
                if _closes_fence(line, self.fence[0], self.fence[1]):
                    if not self.fence[2]:  # top level: nothing can continue this block
                        boundary = nl + 1
                    self.fence = None
            else:
                opened = _open_fence(line)
                if opened is not None:
                    self.fence = (opened[0], opened[1], opened[2])
                    self.prev_blank = False
                else:
                    self.prev_blank = not line.strip()
            pos = nl + 1

    def moved(self, by: int) -> None:
        """The text it scans lost its first `by` characters (rendered and cut off)."""
        self._no_newline_before = max(0, self._no_newline_before - by)


def split_stable_blocks(text: str) -> tuple[str, str]:
    """(stable_prefix, tail): the complete top-level blocks of `text`, and what follows.

    `stable_prefix` renders the same now as it will when more text arrives (up to
    list numbering and references defined later); `tail` is still being written.
    """
    _, boundary = _BlockScanner().scan(text, 0)
    cut = max(boundary, 0)
    return text[:cut], text[cut:]


@dataclass
class StreamStep:
    html: str  # HTML of blocks completed by this feed ("" if none), to append after earlier ones
    tail: str  # the whole unfinished text after all rendered blocks, to show as plain text


@dataclass(frozen=True)
class _Piece:
    start: int  # where the markdown it was rendered from starts in `StreamRenderer.source`
    end: int
    html: str
    first_code: int  # the number of its first code block


# Python-Markdown continues a list or a quote across a blank line: a block of list items
# right after a list of the same kind joins it (making it "loose"), a quote joins a quote.
_CONTINUED_TAGS = frozenset({"ol", "ul", "blockquote"})
_FIRST_TAG_RE = re.compile(r"\s*<([A-Za-z][A-Za-z0-9]*)")
_LAST_TAG_RE = re.compile(r"</([A-Za-z][A-Za-z0-9]*)>\s*$")
_REFERENCE_RE = re.compile(r"^ {0,3}\[[^\[\]\n]+\]:", re.M)  # `[id]: url`, usable anywhere in the text


@dataclass
class StreamRenderer:
    """Renders a growing markdown text block by block (see module docstring)."""

    code_blocks: list[str] = field(default_factory=list)
    tail: str = ""
    _pieces: list[_Piece] = field(default_factory=list)
    _has_references: bool = False
    _scanner: _BlockScanner = field(default_factory=_BlockScanner)
    _scan_pos: int = 0  # start of the first line in `tail` not yet fully scanned
    _rendered: list[str] = field(default_factory=list)  # the text before `tail` (joined when read)
    _rendered_len: int = 0

    def feed(self, delta: str) -> StreamStep:
        self.tail += delta
        self._scan_pos, boundary = self._scanner.scan(self.tail, self._scan_pos)
        if boundary <= 0:
            return StreamStep("", self.tail)
        stable, self.tail = self.tail[:boundary], self.tail[boundary:]
        self._scan_pos -= boundary
        self._scanner.moved(boundary)
        return StreamStep(self._render(stable), self.tail)

    def close(self) -> StreamStep:
        """End of text: render the tail too. Costs only the tail, however long the text."""
        stable, self.tail = self.tail, ""
        self._scanner, self._scan_pos = _BlockScanner(), 0
        return StreamStep(self._render(stable) if stable.strip() else "", "")

    @property
    def source(self) -> str:
        """All the text fed so far."""
        return self._rendered_text() + self.tail

    def _rendered_text(self) -> str:
        if len(self._rendered) > 1:  # joined in place: the next read joins only what came since
            self._rendered[:] = ["".join(self._rendered)]
        return self._rendered[0] if self._rendered else ""

    @property
    def in_code(self) -> bool:
        """The tail is inside an open code fence."""
        return self._scanner.fence is not None

    @property
    def html_parts(self) -> list[str]:
        """The HTML of each rendered piece, in order."""
        return [piece.html for piece in self._pieces]

    @property
    def html(self) -> str:
        """Everything rendered so far; equals `render_markdown` of the same text unless a
        construct spans blocks (see `continued_runs`)."""
        return "\n".join(piece.html for piece in self._pieces)

    def continued_runs(self) -> list[tuple[int, int]] | None:
        """Runs of pieces (start, end: indexes into `html_parts`) that a render of the whole
        text joins into one list or quote, so they must be rendered together (`render_run`);
        every other piece already renders as in the whole. None when the text defines
        reference links: they can change any piece, and only `render_markdown` of the
        whole text (then `patches`) tells which."""
        if self._has_references:
            return None
        runs, start = [], 0
        for i in range(1, len(self._pieces) + 1):
            if i < len(self._pieces) and _continues(self._pieces[i - 1].html, self._pieces[i].html):
                continue
            if i - start > 1:
                runs.append((start, i))
            start = i
        return runs

    def render_run(self, start: int, end: int) -> str:
        """HTML of pieces `start`..`end` (exclusive) rendered together, as in the whole text."""
        pieces = self._pieces[start:end]
        source = self._rendered_text()[pieces[0].start:pieces[-1].end]
        return render_markdown(source, first_code_index=pieces[0].first_code).html

    def _render(self, text: str) -> str:
        first_code = len(self.code_blocks)
        rendered = render_markdown(text, first_code_index=first_code)
        self.code_blocks.extend(rendered.code_blocks)
        self._has_references = self._has_references or bool(_REFERENCE_RE.search(text))
        start = self._rendered_len
        self._rendered.append(text)
        self._rendered_len += len(text)
        if rendered.html:
            self._pieces.append(_Piece(start, self._rendered_len, rendered.html, first_code))
        return rendered.html


def _continues(before: str, after: str) -> bool:
    last, first = _LAST_TAG_RE.search(before), _FIRST_TAG_RE.match(after)
    return bool(last and first) and last.group(1) == first.group(1) and last.group(1) in _CONTINUED_TAGS


# Tags in rendered HTML; attribute values never hold a raw ">" (the serializer escapes it).
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>")
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "col", "area", "base", "link", "meta", "wbr"})


def top_level_elements(html: str) -> list[str]:
    """The top-level elements of rendered HTML, in order ("\\n".join of them gives it back)."""
    elements: list[str] = []
    depth, start = 0, 0
    for m in _TAG_RE.finditer(html):
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            depth -= 1
        elif not self_closing and name not in _VOID_TAGS:
            depth += 1
        if depth == 0:  # a top-level element ends here
            elements.append(html[start:m.end()].strip("\n"))
            start = m.end()
    if html[start:].strip("\n"):  # (never in markdown's output, but nothing may be lost)
        elements.append(html[start:].strip("\n"))
    return elements


@dataclass(frozen=True)
class Patch:
    """Streamed pieces `start` to `end` (exclusive) are to be replaced by `html`."""

    start: int
    end: int  # start == end: `html` goes in before piece `start` (at the end if start == len(pieces))
    html: str


def patches(pieces: Sequence[str], full_html: str) -> list[Patch]:
    """How to turn streamed pieces (`StreamRenderer.html_parts`) into `full_html`, the render of
    the whole text: the pieces not listed stay as they are. Empty when they already match.

    Pieces and the full render are compared element by element; after a difference, the
    next piece found again in the full render (at an element boundary) ends the patch.
    Whatever the pieces hold, applying the patches gives exactly `full_html`.
    """
    if "\n".join(pieces) == full_html:
        return []
    full = top_level_elements(full_html)
    where: dict[str, list[int]] = {}  # element -> its indexes in `full`
    for index, element in enumerate(full):
        where.setdefault(element, []).append(index)
    split = [top_level_elements(piece) for piece in pieces]

    def found_at(i: int, at: int) -> bool:
        return full[at:at + len(split[i])] == split[i]

    def next_match(i: int, at: int) -> tuple[int, int]:
        """The first piece from `i` on that appears whole in `full` at `at` or later."""
        for j in range(i, len(pieces)):
            for candidate in where.get(split[j][0], ()) if split[j] else ():
                if candidate >= at and found_at(j, candidate):
                    return j, candidate
        return len(pieces), len(full)

    spans: list[tuple[int, int, int, int]] = []  # (first piece, end piece, first element, end element)
    i = at = 0
    while i < len(pieces):
        if found_at(i, at):
            i, at = i + 1, at + len(split[i])
            continue
        j, match = next_match(i + 1, at)
        start = at
        if match == at and j < len(pieces):  # pieces i..j-1 only go away: take in piece j, as it is
            j, match = j + 1, at + len(split[j])
        elif match == at:  # the full render ends here: widen the patch backwards instead
            if spans and spans[-1][1] == i:
                i, _, start, _ = spans.pop()
            elif i > 0:
                i, start = i - 1, at - len(split[i - 1])
        spans.append((i, j, start, match))
        i, at = j, match
    if at < len(full):
        spans.append((len(pieces), len(pieces), at, len(full)))
    return [Patch(i, j, "\n".join(full[a:b])) for i, j, a, b in spans]


def warm_up() -> None:
    """Import the lazily loaded parts (markdown extensions, common pygments lexers) ahead
    of time, so the first code block of a stream does not stall it. Safe on any thread."""
    langs = ("python", "bash", "javascript", "typescript", "c", "cpp", "java", "rust", "go", "json", "sql")
    sample = "\n\n".join(f"```{lang}\nx = 1\n```" for lang in langs)
    everything_else = "# T\n\n*a* `b` $c$ [d](https://e.org) ![f](g)\n\n| h | i |\n|---|---|\n| 1 | 2 |\n\n1. j"
    render_markdown(f"{everything_else}\n\n{sample}")
