"""The centre page of an empty chat: which model is loaded (or loading, or why not).

With no model it says so plainly and offers "Choose a GGUF file…". The area
below that button (`download_area`) is where the download/recommendation flow
puts its widget (`set_download_widget`); until then it is empty.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

CHOOSE_LABEL = "Choose a GGUF file…"


class WelcomePage(QWidget):
    """Signals: choose_model_requested()"""

    choose_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")

        self.title = QLabel("Ponder", objectName="welcomeTitle")
        font = self.title.font()
        if font.pixelSize() > 0:  # the theme sets sizes in pixels
            font.setPixelSize(round(font.pixelSize() * 2.2))
        else:
            font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.message = QLabel(objectName="welcomeMessage")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.progress = QProgressBar(objectName="loadProgress")
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(360)
        self.progress.hide()

        self.choose_button = QPushButton(CHOOSE_LABEL, objectName="chooseModelButton")
        self.choose_button.clicked.connect(self.choose_model_requested)

        # Reserved for the download / recommendation flow (its own issue).
        self.download_area = QWidget(objectName="downloadArea")
        self._download_layout = QVBoxLayout(self.download_area)
        self._download_layout.setContentsMargins(0, 0, 0, 0)

        # A centred column of readable width; the labels fill it (so word wrap gets its height right).
        column = QWidget()
        column.setMaximumWidth(620)
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(14)
        layout.addStretch(2)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addWidget(self.progress, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.choose_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.download_area)
        layout.addStretch(3)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(32, 32, 32, 32)
        outer.addStretch(1)
        outer.addWidget(column, 100)
        outer.addStretch(1)
        self.show_no_model()

    def set_download_widget(self, widget: QWidget) -> None:
        self._download_layout.addWidget(widget)

    # --- states ---------------------------------------------------------------------

    def show_no_model(self, note: str | None = None) -> None:
        text = "No model is loaded. Choose a GGUF file (for example a DeepSeek-R1 distill) to start chatting."
        self._show(f"{note}\n\n{text}" if note else text, busy=False, choose=True)

    def show_loading(self, path: str) -> None:
        self.progress.setRange(0, 0)
        self._show(f"Loading {Path(path).name}…", busy=True, choose=False)

    def set_progress(self, fraction: float) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1000)
        self.progress.setValue(int(fraction * 1000))

    def show_failed(self, message: str) -> None:
        self._show(f"The model could not be loaded.\n\n{message}", busy=False, choose=True)

    def show_ready(self, model_name: str) -> None:
        self._show(f"{model_name} is ready. Ask anything below.", busy=False, choose=False)

    def _show(self, text: str, *, busy: bool, choose: bool) -> None:
        self.message.setText(text)
        self.progress.setVisible(busy)
        self.choose_button.setVisible(choose)
        self.download_area.setVisible(choose)
