"""Typeset formulas inside a QTextDocument (an answer, a finished thought): images typeset off
the GUI thread and dropped into the document where they belong.

A rendered answer names each formula's image after its LaTeX (`formula:<kind>/<base64>`,
app.core.maths.resource_name), so the name alone says what to typeset and what to copy.
`FormulaImages`, one per document:

- `image(name)` (for `loadResource`): the typeset image if it is ready, else a placeholder (the
  source in the monospace font, dimmed) while a render is queued on the "render" lane;
- `attach(first, last)`, after HTML went into those blocks: formulas not typeset yet are
  remembered (a QTextCursor each, which follows later edits) and queued; a formula that does not
  parse becomes its source as monospace text there, the rest of the message untouched;
- when a render arrives, the document's resource is replaced and only the characters that show
  it are laid out again (`markContentsDirty`); `formula_ready(name)` tells the streamed tail.

Typeset images are cached by (name, style): `FormulaStyle` holds the size (from the text's
font), the colour (from the theme) and the device pixel ratio, so a theme change or another
screen gets new images and a repaint never typesets again. QTextDocument centres an object
with `vertical-align: middle` half an x-height above the baseline; `rasterise` pads the image so
that the formula's own baseline (FormulaImage.depth) lands on the text's.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QMimeData, QObject, QRectF, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextImageFormat,
)
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QPlainTextEdit

from app.core.formula import FormulaError, FormulaImage, render_formula
from app.core.maths import RESOURCE_SCHEME, parse_resource_name, written
from app.ui.background import BackgroundJob, run_in_background

log = logging.getLogger(__name__)

IMAGE_RESOURCE = QTextDocument.ResourceType.ImageResource.value
OBJECT_CHAR = "\ufffc"  # what an image is in a QTextDocument's text
MATHS_SCALE = 1.12  # STIX Two Math's x-height is smaller than a UI font's: this matches them
READY_CACHE_SIZE = 600  # typeset images kept for reuse (a few tens of kB each at 2x)
PLACEHOLDER_MAX_CHARS = 48
_PREFIX = RESOURCE_SCHEME + ":"


@dataclass(frozen=True)
class FormulaStyle:
    """How a document's formulas look: part of the cache key."""

    size_px: float  # font size handed to the typesetter
    color: str  # "#rrggbb"
    dim_color: str  # the placeholder's text while a formula is being typeset
    dpr: float  # device pixel ratio the image is rasterised at
    half_x: float  # half the x-height of the text's font (see the module docstring)
    mono_family: str

    @classmethod
    def for_text(cls, font: QFont, color: str, dim_color: str, dpr: float, mono_family: str) -> FormulaStyle:
        px = font.pixelSize() if font.pixelSize() > 0 else font.pointSizeF() * 96 / 72
        half_x = QFontMetricsF(font).xHeight() / 2
        return cls(round(px * MATHS_SCALE, 2), QColor(color).name(), QColor(dim_color).name(),
                   max(1.0, round(dpr, 2)), round(half_x, 3), mono_family)


def _baseline_image(width: float, ascent: float, depth: float, style: FormulaStyle) -> tuple[QImage, float]:
    """A transparent image for content `width` wide reaching `ascent` above and `depth` below its
    baseline, padded so that QTextDocument's middle alignment puts that baseline on the text's;
    returns it and the y (logical px) of the content's top."""
    # QTextDocument gives an AlignMiddle object of height H: ascent (H + h)/2, descent (H - h)/2,
    # h = half the x-height. The content's baseline must sit at y = (H + h)/2 from the top.
    height = max(2 * ascent - style.half_x, 2 * depth + style.half_x, 1.0)
    image = QImage(max(1, math.ceil((width + 2) * style.dpr)), max(1, math.ceil(height * style.dpr)),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    image.setDevicePixelRatio(style.dpr)
    logical_height = image.height() / style.dpr
    return image, (logical_height + style.half_x) / 2 - ascent


def rasterise(formula: FormulaImage, style: FormulaStyle) -> QImage:
    """The typeset formula as an image at the style's device pixel ratio (any thread)."""
    image, top = _baseline_image(formula.width, formula.ascent, formula.depth, style)
    renderer = QSvgRenderer(QByteArray(formula.svg))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(1, top, formula.width, formula.height))
    painter.end()
    return image


def typeset(name: str, style: FormulaStyle) -> QImage | FormulaError:
    """Typeset and rasterise the formula an image name stands for (any thread; never raises)."""
    formula = parse_resource_name(name)
    if formula is None:
        return FormulaError(name, "not a formula")
    # A bare \boxed{} is R1's final answer: typeset in display style (full-size fractions).
    result = render_formula(formula.source, formula.display or formula.boxed, style.size_px, style.color)
    if isinstance(result, FormulaError):
        return result
    try:
        return rasterise(result, style)
    except Exception as exc:  # noqa: BLE001 (a formula must never take the view down)
        return FormulaError(formula.source, f"could not draw it: {exc}")


def placeholder(name: str, style: FormulaStyle) -> QImage:
    """The formula's source, dimmed, while it is being typeset (GUI thread)."""
    formula = parse_resource_name(name)
    text = written(formula) if formula is not None else name
    text = " ".join(text.split())
    if len(text) > PLACEHOLDER_MAX_CHARS:
        text = text[:PLACEHOLDER_MAX_CHARS - 1] + "\u2026"
    font = QFont(style.mono_family)
    font.setPixelSize(max(1, round(style.size_px / MATHS_SCALE) - 1))
    metrics = QFontMetricsF(font)
    image, top = _baseline_image(metrics.horizontalAdvance(text), metrics.ascent(), metrics.descent(), style)
    painter = QPainter(image)
    painter.setFont(font)
    painter.setPen(QColor(style.dim_color))
    painter.drawText(QRectF(1, top, image.width(), metrics.height()), text)
    painter.end()
    return image


def image_format(name: str) -> QTextImageFormat:
    """The character format of a formula image put in by code (the HTML path writes the same)."""
    fmt = QTextImageFormat()
    fmt.setName(name)
    fmt.setVerticalAlignment(QTextCharFormat.VerticalAlignment.AlignMiddle)
    return fmt


# Typeset images by (name, style), shared by every document; GUI thread only.
_ready: OrderedDict[tuple[str, FormulaStyle], QImage | FormulaError] = OrderedDict()


def _remember(key: tuple[str, FormulaStyle], result: QImage | FormulaError) -> None:
    _ready[key] = result
    _ready.move_to_end(key)
    while len(_ready) > READY_CACHE_SIZE:
        _ready.popitem(last=False)


class FormulaImages(QObject):
    """The formula images of one document (see the module docstring).

    Signals:
      formula_ready(str name): a formula was typeset (or failed) in the current style.
    """

    formula_ready = Signal(str)

    def __init__(self, doc: QTextDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.style: FormulaStyle | None = None
        self._added: dict[str, bool] = {}  # names whose resource the document has: True if typeset
        self._pending: dict[str, list[QTextCursor]] = {}  # where formulas not typeset yet are shown
        self._jobs: dict[str, BackgroundJob] = {}
        self._batch: list[str] | None = None  # while `attach` runs: formulas to typeset in one job

    # --- style and state -------------------------------------------------------------

    def set_style(self, style: FormulaStyle) -> bool:
        """Use `style` from now on; True if it changed (then show the document again: its old
        images stay until `reset`, which `QTextDocument.clear` calls for)."""
        if style == self.style:
            return False
        self.style = style
        self.reset()
        return True

    def reset(self) -> None:
        """The document was cleared: forget what it held, drop queued renders."""
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        self._added.clear()
        self._pending.clear()

    def ready(self, name: str) -> QImage | FormulaError | None:
        """The typeset image (or the failure) if known; else None, and a render is queued."""
        if self.style is None:
            return None
        result = _ready.get((name, self.style))
        if result is None:
            self._request(name)
        return result

    def is_typeset(self, name: str) -> bool:
        """The document shows formula `name` typeset (not its placeholder)."""
        return bool(self._added.get(name))

    @property
    def pending_count(self) -> int:
        """Formulas shown as placeholders, waiting for their images."""
        return len(self._pending)

    # --- the document ----------------------------------------------------------------

    def image(self, name: str) -> QImage:
        """What the document shows for formula `name` now (from `loadResource`)."""
        result = self.ready(name)
        if isinstance(result, QImage):
            self._added[name] = True
            return result
        self._added.setdefault(name, False)
        if self.style is None:
            return QImage()
        return placeholder(name, self.style)

    def ensure_resource(self, name: str) -> None:
        """Give the document its image for `name` (placeholder or typeset) before it lays it out."""
        typeset_now = isinstance(self.ready(name), QImage)
        if self._added.get(name) is None or (typeset_now and not self._added[name]):
            self.doc.addResource(IMAGE_RESOURCE, QUrl(name), self.image(name))

    def attach(self, first_block: int, last_block: int) -> None:
        """Blocks `first_block`..`last_block` were just filled: queue their formulas, remember
        where the ones not typeset yet are, and show the failed ones as monospace source."""
        found: list[tuple[int, str]] = []
        block = self.doc.findBlockByNumber(max(0, first_block))
        while block.isValid() and block.blockNumber() <= last_block:
            if OBJECT_CHAR in block.text():
                it = block.begin()
                while not it.atEnd():
                    fragment = it.fragment()
                    fmt = fragment.charFormat()
                    if fmt.isImageFormat() and fmt.toImageFormat().name().startswith(_PREFIX):
                        name = fmt.toImageFormat().name()
                        found.extend((fragment.position() + k, name) for k in range(fragment.length()))
                    it += 1
            block = block.next()
        self._batch = []  # one render job (and one layout pass when it is done) for all of them
        try:
            for position, name in reversed(found):  # from the end: text put in leaves earlier positions
                self.ensure_resource(name)
                result = self.ready(name)
                if isinstance(result, FormulaError):
                    self._show_as_source(position, name)
                elif result is None:
                    cursor = QTextCursor(self.doc)
                    cursor.setPosition(position)
                    self._pending.setdefault(name, []).append(cursor)
        finally:
            batch, self._batch = self._batch, None
        self._submit(list(reversed(batch)))

    def _show_as_source(self, position: int, name: str) -> None:
        formula = parse_resource_name(name)
        cursor = QTextCursor(self.doc)
        cursor.setPosition(position)
        cursor.setPosition(position + 1, QTextCursor.MoveMode.KeepAnchor)
        # A line separator, not a new block, for a formula written over several lines: callers
        # count blocks (answer_document.py), and copying gives "\n" back (selected_text).
        cursor.insertText(written(formula).replace("\n", "\u2028") if formula else "", self.source_format())

    def source_format(self) -> QTextCharFormat:
        """How a formula that could not be typeset looks: its source in monospace."""
        fmt = QTextCharFormat()
        if self.style is not None:
            fmt.setFontFamilies([self.style.mono_family])
        return fmt

    # --- rendering -------------------------------------------------------------------

    def _request(self, name: str) -> None:
        if name in self._jobs or self.style is None:
            return
        if self._batch is not None:
            if name not in self._batch:
                self._batch.append(name)
            return
        self._submit([name])

    def _submit(self, names: list[str]) -> None:
        """One job on the render lane typesets `names` in order."""
        if not names or self.style is None:
            return
        style = self.style

        def work(job: BackgroundJob) -> tuple[FormulaStyle, list[tuple[str, QImage | FormulaError]]]:
            return style, [(name, typeset(name, style)) for name in names if not job.cancelled]

        job = run_in_background(work, owner=self, on_done=self._on_typeset,
                                on_failed=lambda message: log.warning("formulas not typeset: %s", message),
                                lane="render", name="formulas")
        for name in names:
            self._jobs[name] = job

    def _on_typeset(self, result: tuple[FormulaStyle, list[tuple[str, QImage | FormulaError]]]) -> None:
        style, images = result
        for name, image in images:
            _remember((name, style), image)
        if style != self.style:
            return
        dirty: list[QTextCursor] = []  # where typeset images replace placeholders: laid out again, once
        for name, image in images:
            self._jobs.pop(name, None)
            cursors = self._pending.pop(name, [])
            if isinstance(image, QImage):
                if name in self._added:
                    self.doc.addResource(IMAGE_RESOURCE, QUrl(name), image)
                    self._added[name] = True
                dirty.extend(c for c in cursors if self._shows(c.position(), name))
            else:
                for cursor in reversed(cursors):
                    if self._shows(cursor.position(), name):
                        self._show_as_source(cursor.position(), name)
        if dirty:  # (positions read after the failures' text went in: the cursors followed it)
            positions = [cursor.position() for cursor in dirty]
            self.doc.markContentsDirty(min(positions), max(positions) - min(positions) + 1)
        for name, _image in images:
            self.formula_ready.emit(name)

    def _shows(self, position: int, name: str) -> bool:
        """The character at `position` is still formula `name` (a later edit may have removed it)."""
        if self.doc.characterAt(position) != OBJECT_CHAR:
            return False
        cursor = QTextCursor(self.doc)
        cursor.setPosition(position + 1)
        fmt = cursor.charFormat()
        return fmt.isImageFormat() and fmt.toImageFormat().name() == name


# --- copying -------------------------------------------------------------------------


def selected_text(cursor: QTextCursor) -> str | None:
    """The selection's plain text with each formula image as its LaTeX source (as written), or
    None if the selection holds no formula (copy it the usual way)."""
    if not cursor.hasSelection():
        return None
    doc = cursor.document()
    start, end = cursor.selectionStart(), cursor.selectionEnd()
    sources: list[str] = []  # one per object character in the selection, in order
    block = doc.findBlock(start)
    while block.isValid() and block.position() < end:
        if OBJECT_CHAR in block.text():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                fmt = fragment.charFormat()
                if fmt.isImageFormat():
                    formula = parse_resource_name(fmt.toImageFormat().name())
                    first, last = max(start, fragment.position()), min(end, fragment.position() + fragment.length())
                    sources.extend([written(formula) if formula else ""] * max(0, last - first))
                it += 1
        block = block.next()
    if not any(sources):
        return None
    pieces = cursor.selection().toPlainText().replace("\u2028", "\n").split(OBJECT_CHAR)
    out = [pieces[0]]
    for k, piece in enumerate(pieces[1:]):
        out.append(sources[k] if k < len(sources) else "")
        out.append(piece)
    return "".join(out)


def with_sources(mime: QMimeData, cursor: QTextCursor) -> QMimeData:
    """Clipboard data for the selection (`mime`: Qt's own): plain text with each formula's LaTeX
    if the selection holds formulas (nobody wants to paste an image), else `mime` as it is.

    The data is made by Qt (a plain text edit's), not constructed in Python: the clipboard
    keeps it, and deletes it at exit, after Python is gone, which a Python-made object does not
    survive (a segfault in Shiboken at exit)."""
    text = selected_text(cursor)
    if text is None:
        return mime
    helper = QPlainTextEdit()
    helper.setPlainText(text)
    helper.selectAll()
    plain = helper.createMimeDataFromSelection()
    helper.deleteLater()
    return plain
