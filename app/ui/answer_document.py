"""The answer's document, as it streams and once it is finished.

Streaming cost stays flat however long the answer grows: each markdown block is
rendered to HTML once, when it is complete (app.core.render.StreamRenderer), and
spliced in after the blocks before it (document_splice.py); only the unfinished tail
is shown as plain text, and it is appended to, never set again. `finish()` renders
the tail and re-renders only the runs of blocks that a render of the whole answer
joins (a list or a quote that went on after a blank line): the finished document is
exactly what a render of the whole answer gives, for about the cost of one streamed
block instead of the whole answer's.

Maths (docs/maths.md): a rendered block shows each formula as an image that
`AnswerBrowser.formula_images` typesets off the GUI thread; in the unfinished tail, a formula
whose closing delimiter has arrived (app.core.maths.find_maths with final=False) replaces its
source as soon as it is typeset, in order. Until then it shows as the source it is.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)

from app.core.formula import FormulaError
from app.core.maths import find_maths, resource_name
from app.core.render import (
    Patch,
    Rendered,
    StreamRenderer,
    StreamStep,
    patches,
    render_markdown,
    warm_up,
)
from app.ui import theme
from app.ui.answer_browser import AnswerBrowser
from app.ui.background import BackgroundJob, run_in_background
from app.ui.document_splice import replace_blocks
from app.ui.formula_images import FormulaStyle, image_format

log = logging.getLogger(__name__)

SYNC_RENDER_MAX_CHARS = 6000  # longer answers get their finishing fixes over several event loop passes
_CODE_FENCES = ("```", "~~~")


class StreamedAnswer(QObject):
    """Fills an `AnswerBrowser`: `append` streamed markdown, then `finish` with the whole answer.

    Signals:
      rendered(): the document shows the final render (after `finish`; for a long answer
        whose lists or quotes need rendering again, a few event loop passes later).
    """

    rendered = Signal()

    def __init__(self, browser: AnswerBrowser) -> None:
        super().__init__(browser)
        self.browser = browser
        self._scratch = QTextDocument(self)  # parses HTML before it goes into the answer (see replace_blocks)
        self._scratch.setUndoRedoEnabled(False)
        self._code_block_format = QTextBlockFormat()  # how an open code block's tail looks
        self._code_char_format = QTextCharFormat()
        self._final: str | None = None  # the finished answer; None while it streams
        self._fixes: list[Patch | tuple[int, int]] = []  # still to apply to the streamed answer (see finish)
        self._final_code_blocks: list[str] = []
        self._render_pending = False
        self.formulas = browser.formula_images
        self.formulas.formula_ready.connect(self._on_formula_ready)
        self._colors: theme.Colors | None = None
        browser.device_pixel_ratio_changed.connect(self._on_device_pixel_ratio_changed)
        self._restart_stream()
        _warm_up_renderer(self)

    @property
    def render_pending(self) -> bool:
        """True between `finish` of a long answer and its final render (see `rendered`)."""
        return self._render_pending

    # --- streaming ------------------------------------------------------------------

    def append(self, delta: str) -> None:
        """Streamed answer text; blocks it completes are rendered, the rest shows as text."""
        edit = QTextCursor(self.browser.document())
        edit.beginEditBlock()  # one layout pass for all the step's edits, not one per edit
        try:
            self._show_step(self._stream.feed(delta))
        finally:
            edit.endEditBlock()

    def _restart_stream(self) -> None:
        self.browser.clear()
        self.formulas.reset()
        self._stream = StreamRenderer()
        self._piece_ends: list[int] = []  # the last block of each streamed piece (in _stream.html_parts)
        self._tail_block = 0  # the document's block where the shown tail starts
        self._tail_shown = 0  # how much of the renderer's tail is in the document
        self._tail_is_code = False  # ...shown as an open code block
        self._restart_tail_maths()

    def _restart_tail_maths(self) -> None:
        self._tail_formulas = 0  # how many settled formulas of the tail are shown typeset (or failed)
        self._tail_shrink = 0  # how many characters fewer the shown tail has than its text (images)

    def _show_step(self, step: StreamStep) -> None:
        """Blocks completed: their HTML replaces the plain tail; then the new tail is shown.

        The streamed document is kept exactly as a render of its pieces would make it, so
        that `finish` only has to fix the pieces a render of the whole answer shows differently.
        """
        self.browser.code_blocks = self._stream.code_blocks
        doc = self.browser.document()
        if step.html:
            after = self._piece_ends[-1] if self._piece_ends else -1
            self._piece_ends.append(replace_blocks(doc, self._scratch, after, doc.blockCount() - 1, step.html))
            self.formulas.attach(after + 1, self._piece_ends[-1])
            cursor = QTextCursor(doc)
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())  # the tail's own block
            self._tail_block, self._tail_shown, self._tail_is_code = doc.blockCount() - 1, 0, False
            self._restart_tail_maths()
        self._show_tail(step.tail)
        self._typeset_tail()

    def _show_tail(self, tail: str) -> None:
        """The unfinished block as plain text, appending only what is new; an open code fence
        already looks like code (without its fence line)."""
        is_code = self._stream.in_code and tail.startswith(_CODE_FENCES)
        cursor = QTextCursor(self.browser.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if is_code != self._tail_is_code:  # the tail turned out to be code (or stopped being): show it again, once
            cursor.setPosition(self.browser.document().findBlockByNumber(self._tail_block).position(),
                               QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.setBlockFormat(self._code_block_format if is_code else QTextBlockFormat())
            self._tail_shown = tail.find("\n") + 1 if is_code else 0  # the fence line itself is not shown
            self._tail_is_code = is_code
            self._restart_tail_maths()
        if len(tail) > self._tail_shown:
            cursor.insertText(tail[self._tail_shown:], self._code_char_format if is_code else QTextCharFormat())
        self._tail_shown = len(tail)

    def _typeset_tail(self) -> None:
        """Settled formulas of the shown tail replace their source, in order, once typeset (one
        not typeset yet holds back the ones after it until `formula_ready`)."""
        tail = self._stream.tail
        if self._tail_is_code or self._final is not None or ("$" not in tail and "\\" not in tail):
            return
        found = find_maths(tail, final=False)
        if len(found) <= self._tail_formulas:
            return
        doc = self.browser.document()
        start = doc.findBlockByNumber(self._tail_block).position() - self._tail_shrink
        cursor = QTextCursor(doc)
        for formula in found[self._tail_formulas:]:
            name = resource_name(formula)
            result = self.formulas.ready(name)
            if result is None:
                return  # typeset on the render lane; _on_formula_ready comes back here
            cursor.setPosition(start + formula.start)
            cursor.setPosition(start + formula.end, QTextCursor.MoveMode.KeepAnchor)
            if isinstance(result, FormulaError):
                cursor.setCharFormat(self.formulas.source_format())
            else:
                self.formulas.ensure_resource(name)
                cursor.insertImage(image_format(name))
                self._tail_shrink += formula.end - formula.start - 1
                start -= formula.end - formula.start - 1
            self._tail_formulas += 1

    @Slot(str)
    def _on_formula_ready(self, _name: str) -> None:
        if self._final is None:
            self._typeset_tail()

    def _close_stream(self) -> None:
        """The end of the streamed answer: render its tail and drop the tail's block."""
        self._show_step(self._stream.close())
        doc = self.browser.document()
        if self._piece_ends:
            replace_blocks(doc, self._scratch, self._piece_ends[-1], doc.blockCount() - 1, "")
        else:
            self.browser.clear()

    # --- finishing ------------------------------------------------------------------

    def finish(self, answer: str) -> None:
        """Show exactly the render of the whole `answer` (stripped), keeping what streamed in
        where that renders the same. Call once; a stored message calls it without streaming."""
        self._final = answer
        streamed = self._stream.source
        if not streamed or streamed.rstrip() != answer:
            self._render_whole()
        elif len(answer) <= SYNC_RENDER_MAX_CHARS:
            self._finish_streamed_answer(answer)  # only the tail and the pieces that differ change
        else:  # the pass that ends a long stream has shown its last text; closing it waits for the next
            self._render_pending = True
            QTimer.singleShot(0, self, self._finish_long_streamed_answer)

    @Slot()
    def _finish_long_streamed_answer(self) -> None:
        if self._render_pending and self._final is not None:  # else rendered another way meanwhile
            self._finish_streamed_answer(self._final)

    def _finish_streamed_answer(self, answer: str) -> None:
        """Make the streamed document equal to a render of the whole answer, changing only
        the pieces that come out differently there: runs of pieces that continue one list
        or quote are rendered together (see StreamRenderer.continued_runs). A long answer
        gets one such fix per pass of the event loop, so no single step takes long."""
        self._close_stream()
        runs = self._stream.continued_runs()
        short = len(answer) <= SYNC_RENDER_MAX_CHARS
        if runs is None and not short:
            self._render_whole_in_background(answer)
            return
        if runs is None:  # reference links: compare with a render of the whole text
            rendered = render_markdown(answer)
            self._fixes = patches(self._stream.html_parts, rendered.html)
            self._final_code_blocks = list(rendered.code_blocks)
        else:
            self._fixes = list(runs)
            self._final_code_blocks = list(self._stream.code_blocks)
        if short:
            while self._fixes:
                self._apply_fix(self._fixes.pop())
            self._fixes_done()
        else:
            self._render_pending = True
            self._apply_fixes_in_turn()

    def _render_whole_in_background(self, answer: str) -> None:
        """A long answer with reference links: markdown of the whole text, and finding the
        pieces it shows differently, run on the render lane."""
        self._render_pending = True
        pieces = self._stream.html_parts

        def render_and_compare(_job: BackgroundJob) -> tuple[str, Rendered, list[Patch]]:
            rendered = render_markdown(answer)
            return answer, rendered, patches(pieces, rendered.html)

        run_in_background(render_and_compare, owner=self, on_done=self._on_whole_rendered,
                          on_failed=self._on_whole_render_failed, lane="render", name="answer render")

    def _on_whole_rendered(self, result: tuple[str, Rendered, list[Patch]]) -> None:
        answer, rendered, found = result
        if answer != self._final or not self._render_pending:
            return  # shown another way meanwhile (a theme change renders the whole answer)
        self._fixes = found
        self._final_code_blocks = list(rendered.code_blocks)
        self._apply_fixes_in_turn()

    def _on_whole_render_failed(self, message: str) -> None:
        log.warning("the finished answer stays as it streamed in: %s", message)
        if self._render_pending:
            self._final_code_blocks = list(self._stream.code_blocks)
            self._fixes_done()

    @Slot()
    def _apply_fixes_in_turn(self) -> None:
        if not self._render_pending:
            return  # rendered another way meanwhile
        if self._fixes:
            self._apply_fix(self._fixes.pop())  # from the last: earlier block numbers stay valid
        if self._fixes:
            QTimer.singleShot(0, self, self._apply_fixes_in_turn)
        else:
            self._fixes_done()

    def _apply_fix(self, fix: Patch | tuple[int, int]) -> None:
        """Replace streamed pieces: a Patch says with what; a run (start, end) is rendered together."""
        if not isinstance(fix, Patch):
            start, end = fix
            html = self._stream.render_run(start, end)
            if html == "\n".join(self._stream.html_parts[start:end]):
                return
            fix = Patch(start, end, html)
        ends = self._piece_ends
        after = ends[fix.start - 1] if fix.start > 0 else -1
        through = ends[fix.end - 1] if fix.end > fix.start else after
        last = replace_blocks(self.browser.document(), self._scratch, after, through, fix.html)
        self.formulas.attach(after + 1, last)

    def _fixes_done(self) -> None:
        self.browser.code_blocks = self._final_code_blocks
        self._render_pending = False
        self._fixes = []
        self.rendered.emit()

    def _render_whole(self) -> None:
        """The whole answer at once (a stored message, a theme change): one setHtml."""
        rendered = render_markdown(self._final or "")
        self.browser.clear()  # (drops the document's images too: they may be another theme's)
        self.formulas.reset()
        self.browser.setHtml(rendered.html)
        self.formulas.attach(0, self.browser.document().blockCount() - 1)
        self._final_code_blocks = list(rendered.code_blocks)
        self._fixes_done()

    # --- theme ----------------------------------------------------------------------

    def set_colors(self, colors: theme.Colors) -> None:
        """Style the document for `colors` and show the answer again in them (rendered HTML
        keeps the colours it was inserted with)."""
        self._colors = colors
        css = theme.document_css(colors)
        self.browser.document().setDefaultStyleSheet(css)
        self.formulas.set_style(FormulaStyle.for_text(
            self.browser.document().defaultFont(), colors.text, colors.text_dim,
            self.browser.devicePixelRatioF(), theme.mono_family()))
        self._scratch.setDefaultStyleSheet(css)
        self._code_block_format = QTextBlockFormat()
        self._code_block_format.setBackground(QColor(colors.code_bg))
        code_font = QFont(theme.mono_family())
        code_font.setPixelSize(theme.BASE_FONT_PX - 1)
        self._code_char_format = QTextCharFormat()
        self._code_char_format.setFont(
            code_font, QTextCharFormat.FontPropertiesInheritanceBehavior.FontPropertiesSpecifiedOnly
        )
        if self._final is not None:
            self._render_whole()
        elif streamed := self._stream.source:  # mid-stream: the same text again, in the new colours
            self._restart_stream()
            self.append(streamed)


    @Slot()
    def _on_device_pixel_ratio_changed(self) -> None:
        """On a screen of another pixel density, formulas are typeset again to stay sharp."""
        style = self.formulas.style
        if self._colors is not None and style is not None and style.dpr != max(1.0, round(self.browser.devicePixelRatioF(), 2)):
            self.set_colors(self._colors)

_warm_up_started = False


def _warm_up_renderer(owner: QObject) -> None:
    """Once per run, before the first answer streams: import the renderer's lazily loaded
    parts on the render lane (pygments lexers would otherwise stall the first code block)."""
    global _warm_up_started
    if not _warm_up_started:
        _warm_up_started = True
        run_in_background(lambda _job: warm_up(), owner=owner, lane="render", name="renderer warm-up")
