"""Small widgets the welcome page and the model manager share, and their looks.

- `FitBadge`: 'fits' / 'partial offload' / 'too big', coloured by `library_css`.
- `DownloadProgressRow`: the running download's bar, 'x of y · speed · time left', and Cancel.
- `dim_label`: secondary text, always plain (names and sentences from files and the hub).
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.core.downloads import Progress
from app.core.survey import DownloadRequest
from app.core.wording import FIT_LABELS, FIT_TIPS, progress_text
from app.ui import theme
from app.ui.downloads import Downloads
from app.ui.plain_text import plain_label

# Green is not among the theme's colours; the others (warn, error) are.
_FITS_COLORS = {False: ("#dafbe1", "#116329"), True: ("#1c3d2a", "#7ee2a0")}


def library_css(c: theme.Colors) -> str:
    """Looks shared by the welcome page and the manager: badges, download progress, dim text."""
    fits_bg, fits_fg = _FITS_COLORS[c.dark]
    return f"""
QLabel[dim="true"] {{ color: {c.text_dim}; }}
#downloadError {{ color: {c.error_text}; }}
QProgressBar#downloadProgress {{ background-color: {c.border}; border: none; border-radius: 4px; }}
QProgressBar#downloadProgress::chunk {{ background-color: {c.accent}; border-radius: 4px; }}
#fitBadge {{ border-radius: 8px; padding: 1px 8px; font-size: {theme.BASE_FONT_PX - 2}px; font-weight: 600; }}
#fitBadge[fit="fits"] {{ background-color: {fits_bg}; color: {fits_fg}; }}
#fitBadge[fit="partial"] {{ background-color: {c.warn_bg}; color: {c.warn_text}; }}
#fitBadge[fit="too_big"] {{ background-color: {c.error_bg}; color: {c.error_text}; }}
"""


def dim_label(text: str = "", name: str | None = None) -> QLabel:
    """Secondary, word-wrapped plain text in the dim colour of `library_css`."""
    label = plain_label(text, name)
    label.setProperty("dim", True)
    label.setWordWrap(True)
    return label


class FitBadge(QLabel):
    """'fits' / 'partial offload' / 'too big'. Coloured by `library_css` in the enclosing
    page's stylesheet, through the `fit` property."""

    def __init__(self, fit: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fitBadge")
        self.fit: str | None = None
        self.set_fit(fit)

    def set_fit(self, fit: str | None) -> None:
        self.fit = fit
        self.setText(FIT_LABELS.get(fit, ""))
        self.setToolTip(FIT_TIPS.get(fit, ""))
        self.setProperty("fit", fit or "")
        self.style().unpolish(self)  # a property selector is matched only when polished
        self.style().polish(self)
        if fit is None:
            self.hide()
        elif self.parentWidget() is not None:  # show() on a parentless widget would open a window
            self.show()


class DownloadProgressRow(QWidget):
    """A progress bar, 'x of y · speed · time left', and Cancel."""

    def __init__(self, downloads: Downloads, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.bar = QProgressBar(objectName="downloadProgress")
        self.bar.setTextVisible(False)
        self.bar.setRange(0, 0)
        self.bar.setMaximumHeight(8)
        self.status = plain_label(name="downloadStatus")  # names the model: catalog or hub text
        self.status.setProperty("dim", True)
        self.cancel_button = QPushButton("Cancel", objectName="cancelDownloadButton")
        self.cancel_button.setToolTip("Stop the download; what has arrived is kept and the download can resume.")
        self.cancel_button.clicked.connect(self._on_cancel)
        text_row = QHBoxLayout()
        text_row.setContentsMargins(0, 0, 0, 0)
        text_row.addWidget(self.status, 1)
        text_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.bar)
        layout.addLayout(text_row)

    def start(self, request: DownloadRequest) -> None:
        self.bar.setRange(0, 0)  # busy until the first report (the hub's answer takes a moment)
        self.status.setText(f"Connecting to download {request.label}…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")

    def show_progress(self, p: Progress) -> None:
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * p.downloaded / p.total))
        self.status.setText(progress_text(p))

    @Slot()
    def _on_cancel(self) -> None:
        self.downloads.cancel()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Stopping…")
