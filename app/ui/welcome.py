"""The centre page of an empty chat: which model is loaded (or loading, or why not).

With no model it shows what this computer has, the model recommended for it (with the
reason and a fit badge), the other catalog models with theirs, and one primary button
that downloads the chosen model with progress and then starts a chat. A GGUF already on
disk can be chosen with "Choose a GGUF file…" or dropped onto the window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.downloads import Progress, format_bytes
from app.core.sizing import Alternative
from app.core.survey import DownloadRequest, MachineSurvey
from app.core.wording import describe_plan, hardware_text, speed_text
from app.ui import theme
from app.ui.model_library import ModelLibrary
from app.ui.model_widgets import DownloadProgressRow, FitBadge, library_css
from app.ui.plain_text import as_plain_text, plain_label

CHOOSE_LABEL = "Choose a GGUF file…"
NO_MODEL_TEXT = ("No model is loaded. Download the model that suits this computer, "
                 "or choose a GGUF file you already have.")


class AlternativeRow:
    """One catalog model as this computer would run it, as a row of the alternatives grid:
    a radio button with its name, quantisation, size, expected speed and a fit badge."""

    def __init__(self, alternative: Alternative, group: QButtonGroup) -> None:
        self.alternative = alternative
        p = alternative.plan
        self.radio = QRadioButton(alternative.name, objectName="alternativeChoice")
        group.addButton(self.radio)
        self.quant = plain_label(p.quant)
        self.size = plain_label(format_bytes(p.file_size))
        self.size.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.detail = plain_label(speed_text(p))
        self.detail.setProperty("dim", True)
        self.badge = FitBadge(p.fit)
        self.widgets = [self.radio, self.quant, self.size, self.detail, self.badge]
        tip = f"{alternative.description}\nHere: {describe_plan(p)}."
        if alternative.recommended:
            tip = f"Recommended for this computer. {tip}"
            font = self.radio.font()
            font.setBold(True)
            self.radio.setFont(font)
        for widget in self.widgets:
            widget.setToolTip(as_plain_text(tip))  # the catalog's description
        self.radio.setEnabled(p.fit != "too_big")  # too big to run here: shown, not offered

    def add_to(self, grid: QGridLayout, row: int) -> None:
        for column, widget in enumerate(self.widgets):
            grid.addWidget(widget, row, column)
        grid.setAlignment(self.badge, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)  # not stretched

    def remove_from(self, grid: QGridLayout) -> None:
        for widget in self.widgets:
            grid.removeWidget(widget)
            widget.hide()
            widget.deleteLater()


class SetupPanel(QWidget):
    """Hardware, recommendation, alternatives and the download button (a view of a ModelLibrary).

    Signals: load_requested(str path): the chosen model is already downloaded; start chatting.
    """

    load_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setupPanel")
        self.library: ModelLibrary | None = None
        self.survey: MachineSurvey | None = None
        self.rows: list[AlternativeRow] = []

        self.hardware = plain_label("Checking this computer…", "hardwareSummary")  # names the GPU
        self.hardware.setWordWrap(True)
        self.hardware.setProperty("dim", True)
        self.hardware.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.heading = QLabel(objectName="recommendationHeading")
        self.model_title = plain_label(name="recommendedModel")
        self.badge = FitBadge()
        self.reason = plain_label(name="recommendationReason")
        self.reason.setWordWrap(True)
        self.primary_button = QPushButton(objectName="downloadButton")
        self.primary_button.clicked.connect(self._on_primary)
        self.progress = None  # DownloadProgressRow, made when bound to a library
        self.error = plain_label(name="downloadError")  # a DownloadError's sentence names hub files
        self._error_request: DownloadRequest | None = None  # the download `error` is about
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        title_row = QHBoxLayout()
        title_row.setSpacing(10)
        title_row.addWidget(self.model_title)
        title_row.addWidget(self.badge)
        title_row.addStretch(1)
        self.card = QFrame(objectName="recommendationCard")
        self._card_layout = QVBoxLayout(self.card)
        self._card_layout.setContentsMargins(18, 14, 18, 16)
        self._card_layout.setSpacing(8)
        self._card_layout.addWidget(self.heading)
        self._card_layout.addLayout(title_row)
        self._card_layout.addWidget(self.reason)
        self._card_layout.addSpacing(4)
        self._card_layout.addWidget(self.primary_button, 0, Qt.AlignmentFlag.AlignLeft)
        self._card_layout.addWidget(self.error)
        self.card.hide()

        self.alternatives_title = QLabel("Other models", objectName="alternativesHeading")
        self.alternatives = QWidget(objectName="alternatives")
        self._grid = QGridLayout(self.alternatives)
        self._grid.setContentsMargins(4, 0, 4, 0)
        self._grid.setHorizontalSpacing(14)
        self._grid.setVerticalSpacing(6)
        self._grid.setColumnStretch(0, 1)
        self.group = QButtonGroup(self)
        self.group.buttonToggled.connect(self._on_choice)
        self.alternatives_title.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addWidget(self.hardware)
        layout.addWidget(self.card)
        layout.addSpacing(4)
        layout.addWidget(self.alternatives_title)
        layout.addWidget(self.alternatives)

    def bind(self, library: ModelLibrary) -> None:
        self.library = library
        self.progress = DownloadProgressRow(library.downloads)
        self.progress.hide()
        self._card_layout.insertWidget(self._card_layout.indexOf(self.error), self.progress)
        library.survey_changed.connect(self.set_survey)
        d = library.downloads
        d.started.connect(self._on_download_started)
        d.progress.connect(self._on_download_progress)
        d.failed.connect(self._on_download_failed)
        d.cancelled.connect(self._on_download_ended)
        d.finished.connect(self._on_download_ended)
        if library.survey is not None:
            self.set_survey(library.survey)

    # --- what is chosen -------------------------------------------------------------

    @property
    def selected(self) -> Alternative | None:
        row = next((r for r in self.rows if r.radio.isChecked()), None)
        return row.alternative if row else None

    def request_for(self, alternative: Alternative) -> DownloadRequest:
        model = self.survey.catalog.get(alternative.model_id)
        return DownloadRequest.for_catalog(model, model.quant(alternative.plan.quant))

    def select(self, model_id: str) -> None:
        for row in self.rows:
            if row.alternative.model_id == model_id and row.radio.isEnabled():
                row.radio.setChecked(True)

    @Slot(object)
    def set_survey(self, result: MachineSurvey) -> None:
        previous = self.selected
        self.survey = result
        self.hardware.setText(hardware_text(result.hardware))
        for row in self.rows:
            self.group.removeButton(row.radio)
            row.remove_from(self._grid)
        self.rows = []
        rec = result.recommendation
        alternatives = rec.alternatives if rec is not None else []
        for alternative in alternatives:
            row = AlternativeRow(alternative, self.group)
            row.add_to(self._grid, len(self.rows))
            self.rows.append(row)
        self.alternatives_title.setVisible(bool(self.rows))
        wanted = previous.model_id if previous else rec.model_id if rec else None
        if wanted:
            self.select(wanted)
        self._update()

    @Slot()
    def _on_choice(self, *_args) -> None:
        # The survey after a failed download rebuilds the rows and selects the same model again: keep its
        # sentence (e.g. "will not fit this computer, so nothing was downloaded") until another is chosen.
        chosen = self.selected
        if chosen is None or self.request_for(chosen) != self._error_request:
            self.error.hide()
        self._update()

    def _update(self) -> None:
        result = self.survey
        if result is None:
            return
        self.card.show()
        if result.catalog_error:
            self._show_card("Downloads are not available", "", None, result.catalog_error)
            self.primary_button.hide()
            return
        rec = result.recommendation
        chosen = self.selected
        if chosen is None:
            self._show_card("No model fits this computer", "", None, rec.reason if rec else "")
            self.primary_button.hide()
            return
        heading = "Recommended for this computer" if chosen.recommended else "Your choice"
        if chosen.recommended:
            reason = rec.reason
        else:
            reason = f"{chosen.description} Here it runs {describe_plan(chosen.plan)}."
        model = self.survey.catalog.get(chosen.model_id) if self.survey.catalog is not None else None
        with_draft = self.library.draft_plan(chosen.plan, model) if self.library is not None else None
        if with_draft is not None:  # drafting on, and the catalog pairs a draft: "It uses about 25.5 GB (the …)."
            reason += f" It {with_draft.text()}."
        self._show_card(heading, f"{chosen.name} · {chosen.plan.quant}", chosen.plan.fit, reason)
        self._update_button(self.request_for(chosen))

    def _show_card(self, heading: str, title: str, fit: str | None, reason: str) -> None:
        self.heading.setText(heading)
        self.model_title.setText(title)
        self.model_title.setVisible(bool(title))
        self.badge.set_fit(fit)
        self.reason.setText(reason)

    def _update_button(self, request: DownloadRequest) -> None:
        downloads = self.library.downloads if self.library else None
        running = downloads is not None and downloads.current is not None
        self.primary_button.setVisible(not running)
        self.progress.setVisible(running)
        local = self.survey.local_model(request)
        partial = self.survey.partial(request)
        if local is not None:
            self.primary_button.setText(f"Start chatting with {local.name}")
        elif partial is not None:
            self.primary_button.setText(
                f"Resume download ({format_bytes(partial.downloaded)} of {format_bytes(partial.total)})")
        else:
            self.primary_button.setText(f"Download and start chatting ({format_bytes(request.size_bytes)})")

    @Slot()
    def _on_primary(self) -> None:
        chosen = self.selected
        if chosen is None or self.library is None:
            return
        request = self.request_for(chosen)
        local = self.survey.local_model(request)
        if local is not None:
            self.load_requested.emit(str(local.path))
            return
        self.error.hide()
        self.library.start_download(request)

    # --- download reports -----------------------------------------------------------

    @Slot(object)
    def _on_download_started(self, request: DownloadRequest) -> None:
        self.error.hide()
        self.progress.start(request)
        self._update()

    @Slot(object, object)
    def _on_download_progress(self, _request: DownloadRequest, progress: Progress) -> None:
        self.progress.show_progress(progress)

    @Slot(object, str)
    def _on_download_failed(self, request: DownloadRequest, message: str) -> None:
        self._error_request = request
        self.error.setText(message)
        self.error.show()
        self._update()

    @Slot(object, str)
    def _on_download_ended(self, _request: DownloadRequest, _message: str) -> None:
        self._update()  # the button says "Resume" once the new survey lists the partial file


class WelcomePage(QWidget):
    """Signals: choose_model_requested(), models_requested(), load_requested(str path),
    connect_requested() ("Connect to a server…": a model on vLLM, llama-server, DeepSeek's API…),
    cancel_load_requested() (Cancel under the load's progress)"""

    cancel_load_requested = Signal()
    choose_model_requested = Signal()
    models_requested = Signal()
    connect_requested = Signal()
    load_requested = Signal(str)

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

        self.message = plain_label(name="welcomeMessage")  # model names and error sentences
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.progress = QProgressBar(objectName="loadProgress")
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(360)
        self.progress.hide()
        self.cancel_load_button = QPushButton("Cancel", objectName="cancelLoadButton")
        self.cancel_load_button.setToolTip("Stop loading; nothing stays loaded")
        self.cancel_load_button.clicked.connect(self.cancel_load_requested)
        self.cancel_load_button.hide()

        self.setup = SetupPanel()
        self.setup.load_requested.connect(self.load_requested)
        # Everything offered when no model is loaded: the setup panel and the local-file choices.
        self.download_area = QWidget(objectName="downloadArea")
        self.choose_button = QPushButton(CHOOSE_LABEL, objectName="chooseModelButton")
        self.choose_button.setToolTip("Use a GGUF model you already have; it is checked, then copied "
                                      "(or linked) into Ponder's models folder.")
        self.choose_button.clicked.connect(self.choose_model_requested)
        self.models_button = QPushButton("Models…", objectName="modelsButton")
        self.models_button.setToolTip("Downloaded models, partial downloads and every model Ponder offers")
        self.models_button.clicked.connect(self.models_requested)
        self.connect_button = QPushButton("Connect to a server…", objectName="connectServerButton")
        self.connect_button.setToolTip("Chat through a model on another machine: vLLM, SGLang, llama-server, "
                                       "Ollama, LM Studio or DeepSeek's API")
        self.connect_button.clicked.connect(self.connect_requested)
        self.drop_hint = QLabel("You can also drop a .gguf file onto this window.", objectName="dropHint")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        local_row = QHBoxLayout()
        local_row.setSpacing(8)
        local_row.addStretch(1)
        local_row.addWidget(self.choose_button)
        local_row.addWidget(self.models_button)
        local_row.addWidget(self.connect_button)
        local_row.addStretch(1)
        area = QVBoxLayout(self.download_area)
        area.setContentsMargins(0, 0, 0, 0)
        area.setSpacing(12)
        area.addWidget(self.setup)
        area.addSpacing(6)
        area.addLayout(local_row)
        area.addWidget(self.drop_hint)

        # A centred column of readable width; the labels fill it (so word wrap gets its height right).
        column = QWidget(objectName="welcomeColumn")
        column.setMaximumWidth(640)
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(14)
        layout.addStretch(2)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addWidget(self.progress, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.cancel_load_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.download_area)
        layout.addStretch(3)
        inner = QWidget(objectName="welcomeInner")
        row = QHBoxLayout(inner)
        row.setContentsMargins(32, 24, 32, 24)
        row.addStretch(1)
        row.addWidget(column, 100)
        row.addStretch(1)
        # Scrolls when the window is too short for the whole list of models.
        scroll = QScrollArea(objectName="welcomeScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._apply_colors()
        self.show_no_model()

    def bind(self, library: ModelLibrary) -> None:
        """Show `library`'s survey and downloads, and start its downloads."""
        self.setup.bind(library)

    # --- states ---------------------------------------------------------------------

    def show_no_model(self, note: str | None = None) -> None:
        self._show(f"{note}\n\n{NO_MODEL_TEXT}" if note else NO_MODEL_TEXT, busy=False, choose=True)

    def show_loading(self, path: str) -> None:
        self.progress.setRange(0, 0)
        self._show(f"Loading {Path(path).name}…", busy=True, choose=False)

    def show_load_step(self, text: str) -> None:
        """A later part of the load, e.g. "Loading draft 1.5B…" (busy until its progress arrives)."""
        self.message.setText(text)
        self.progress.setRange(0, 0)

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
        self.cancel_load_button.setVisible(busy)
        self.choose_button.setVisible(choose)
        self.download_area.setVisible(choose)

    # --- looks ----------------------------------------------------------------------

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()

    def _apply_colors(self) -> None:
        c = theme.colors_for(self)
        self.setStyleSheet(f"""
#welcomeScroll, #welcomeInner {{ background: transparent; }}
#welcomeMessage, #dropHint {{ color: {c.text_dim}; }}
#recommendationCard {{ background-color: {c.thinking_bg}; border: 1px solid {c.border}; border-radius: 12px; }}
#recommendationHeading {{ color: {c.text_dim}; font-size: {theme.BASE_FONT_PX - 2}px; font-weight: 600; }}
#recommendedModel {{ font-size: {theme.BASE_FONT_PX + 3}px; font-weight: 600; }}
#alternativesHeading {{ color: {c.text_dim}; font-weight: 600; }}
QPushButton#downloadButton {{ background-color: {c.accent}; color: {c.accent_text}; border: none;
                             border-radius: 10px; padding: 9px 20px; font-weight: 600; }}
QPushButton#chooseModelButton, QPushButton#modelsButton, QPushButton#connectServerButton, QPushButton#cancelDownloadButton,
QPushButton#cancelLoadButton {{
    background-color: {c.base}; color: {c.text}; border: 1px solid {c.border}; border-radius: 8px;
    padding: 6px 14px; }}
QPushButton#chooseModelButton:hover, QPushButton#modelsButton:hover, QPushButton#connectServerButton:hover,
QPushButton#cancelDownloadButton:hover, QPushButton#cancelLoadButton:hover {{
    background-color: {c.hover}; }}
{library_css(c)}""")
