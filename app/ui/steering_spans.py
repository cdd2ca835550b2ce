"""How the thinking pane shows text the model did not write (app/core/steering.py): each
inserted stretch in its own style with a tooltip saying who put it there, and Ponder's
``</think>`` shown where it ended the thought (in the data a zero-width "close" span).

Plain helpers, no widgets: thinking_pane.py's ThinkingBody uses them.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QTextCharFormat

from app.ui.theme import Colors

CLOSE_MARK = "</think>"

TIPS = {
    "wrap_up": "Inserted by Ponder: it ended the thought here (the thinking budget ran out, or you pressed "
               "Answer now). The model answered after it.",
    "close": "Inserted by Ponder: the </think> that ended the thought.",
    "nudge": "Inserted by you: a note put into the thought as the model's own words; it thought on from here.",
    "edit": "Written by you: the thinking as you edited it; the model continued from its end.",
}


def span_format(kind: str, colors: Colors) -> QTextCharFormat:
    """The look of inserted text of `kind`: Ponder's in the accent colour, the user's in amber
    on a light wash, both italic, with a tooltip."""
    fmt = QTextCharFormat()
    fmt.setFontItalic(True)
    by_user = kind in ("nudge", "edit")
    fmt.setForeground(QColor(colors.warn_text if by_user else colors.accent))
    if by_user:
        fmt.setBackground(QColor(colors.warn_bg))
    if kind == "close":
        fmt.setFontWeight(QFont.Weight.DemiBold)
    fmt.setToolTip(TIPS.get(kind, "Inserted text"))
    return fmt


def display_pieces(thinking: str, spans) -> list[tuple[str, str | None]]:
    """The pane's text for a stored thought: (text, kind or None) pieces in order, with a
    CLOSE_MARK on its own line at each "close" span. Spans outside the text are ignored."""
    pieces: list[tuple[str, str | None]] = []
    at = 0
    for span in sorted((s for s in spans or () if s.get("field", "thinking") == "thinking"),
                       key=lambda s: (s["start"], s.get("kind") != "close")):
        start, end = int(span["start"]), int(span["end"])
        if not at <= start <= end <= len(thinking):
            continue
        if start > at:
            pieces.append((thinking[at:start], None))
        kind = span.get("kind") or ("wrap_up" if span.get("by") == "ponder" else "edit")
        if kind == "close":
            before = pieces[-1][0] if pieces else ""
            pieces.append((("" if before.endswith("\n") or not before else "\n") + CLOSE_MARK, "close"))
        elif end > start:
            pieces.append((thinking[start:end], kind))
        at = end
    if at < len(thinking):
        pieces.append((thinking[at:], None))
    return pieces
