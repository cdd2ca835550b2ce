"""Replacing a run of top-level blocks of a QTextDocument with rendered HTML, so that the
result is exactly what one `setHtml` of all the HTML would make (answer_document.py
splices each streamed markdown block in, and later the pieces a whole render shows
differently)."""

from __future__ import annotations

from PySide6.QtGui import (
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
)

_OWN_BLOCK_STARTS = ("\u2029", "\ufdd0")  # a paragraph separator, the start of a frame (table)


def replace_blocks(doc: QTextDocument, scratch: QTextDocument, after: int, through: int, html: str) -> int:
    """Replace blocks `after`+1 .. `through` of `doc` with top-level `html`; returns the number
    of the last block the HTML became (`after` if it is empty). `after` -1: from the start.

    The result is the document `setHtml` of all the HTML would make. Qt merges an inserted
    fragment's first block into the block at the cursor, which keeps its own format, unless
    the fragment starts with a list item or a table (then they get blocks of their own). So
    the HTML goes into a fresh block that takes the fragment's first block format, or that
    is removed again. `scratch` (with `doc`'s default stylesheet) parses the HTML.
    """
    if after < 0:
        through = max(through, 0)  # a document always has a first block: it is replaced too
    count = doc.blockCount()
    cursor = QTextCursor(doc)
    keep = doc.findBlockByNumber(after)  # invalid when after is -1
    keep_formats = (keep.blockFormat(), keep.charFormat()) if keep.isValid() else None
    start = keep.position() + keep.length() - 1 if keep.isValid() else 0
    if through > after:
        last = doc.findBlockByNumber(through)
        cursor.setPosition(start)
        cursor.setPosition(last.position() + last.length() - 1, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        _restore_formats(doc, after, keep_formats)
    if not html and keep_formats is None:
        cursor.setBlockFormat(QTextBlockFormat())  # nothing left: a plain empty document
        cursor.setBlockCharFormat(QTextCharFormat())
    if html:
        scratch.setDefaultFont(doc.defaultFont())
        scratch.setHtml(html)
        first = scratch.firstBlock()
        fragment = QTextDocumentFragment(scratch)
        cursor.setPosition(start)
        if keep_formats is None:
            cursor.insertFragment(fragment)  # at the very start Qt gives it the fragment's format
        else:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            cursor.insertFragment(fragment)
            if first.textList() is None and fragment.toRawText()[:1] not in _OWN_BLOCK_STARTS:
                block_format = QTextBlockFormat(first.blockFormat())
                block_format.clearProperty(QTextFormat.Property.ObjectIndex)  # an object of `scratch`
                fix = QTextCursor(doc.findBlockByNumber(after + 1))
                fix.setBlockFormat(block_format)
                fix.setBlockCharFormat(first.charFormat())
            else:  # the fragment made its own first block: the fresh one goes again
                cursor.setPosition(start)
                cursor.setPosition(start + 1, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
                _restore_formats(doc, after, keep_formats)
    return through + doc.blockCount() - count


def _restore_formats(doc: QTextDocument, number: int, formats: tuple[QTextBlockFormat, QTextCharFormat] | None) -> None:
    """Give block `number` its formats back: merging away the separator after a block can
    leave the merged block with the next one's formats. (Found by number: a QTextBlock
    handle may name another block after an edit.)"""
    block = doc.findBlockByNumber(number)
    if formats is None or (block.blockFormat() == formats[0] and block.charFormat() == formats[1]):
        return
    cursor = QTextCursor(block)
    cursor.setBlockFormat(formats[0])
    cursor.setBlockCharFormat(formats[1])
