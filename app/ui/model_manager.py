"""The model manager dialog: the models on this computer and in the catalog, for this machine.

Downloaded models (load, delete), partial downloads (resume, discard) and catalog models to
download, each with its fit badge. It is a view of a `ModelLibrary` (app/ui/model_library.py),
which does the work; the survey it shows comes from app/core/survey.py.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.catalog import CatalogModel, Quant
from app.core.downloads import Progress, format_bytes
from app.core.survey import DownloadRequest, LocalModel, MachineSurvey, PartialDownload
from app.core.wording import FIT_TIPS, describe_plan, hardware_text
from app.ui import theme
from app.ui.model_library import ModelLibrary
from app.ui.model_widgets import DownloadProgressRow, FitBadge, dim_label, library_css
from app.ui.plain_text import plain_label, as_plain_text


class _LocalRow(QFrame):
    def __init__(self, model: LocalModel, library: ModelLibrary, dialog: ModelManagerDialog) -> None:
        super().__init__(objectName="localModelRow")
        self.model = model
        self.title = _bold_title(model.name, model.quant)
        detail = f"{format_bytes(model.size_bytes)} · {model.path.name}"
        if model.plan is not None:
            entry = library.catalog_model_of(model.path)
            detail += f" · {plan_text(model.plan, library.draft_plan(model.plan, entry))}"
        self.detail = dim_label(detail)
        self.detail.setToolTip(as_plain_text(str(model.path)))
        self.error = plain_label(model.error or "", "modelError")
        self.error.setWordWrap(True)
        if model.error is None:
            self.error.hide()
        self.badge = FitBadge(model.fit)
        self.active_label = QLabel("in use", objectName="activeBadge")
        self.load_button = QPushButton("Load", objectName="loadModelButton")
        self.delete_button = QPushButton("Delete…", objectName="deleteModelButton")
        self.load_button.clicked.connect(self._on_load)
        self.delete_button.clicked.connect(self._on_delete)
        self.dialog = dialog
        self.library = library
        _row_layout(self, [self.title, self.detail, self.error], [self.badge, self.active_label, self.load_button,
                                                                   self.delete_button])
        self.update_state()

    def update_state(self) -> None:
        active = self.library.is_active(self.model.path)
        loading = self.library.is_loading(self.model.path)
        usable = self.model.error is None
        self.active_label.setVisible(active)
        self.load_button.setVisible(usable and not active)
        self.load_button.setEnabled(not self.library.client.loading)
        self.load_button.setText("Loading…" if loading else "Load")
        self.delete_button.setEnabled(not loading)

    @Slot()
    def _on_load(self) -> None:
        self.dialog.load_requested.emit(str(self.model.path))

    @Slot()
    def _on_delete(self) -> None:
        if self.dialog.confirm_delete(self.model, self.library.is_active(self.model.path)):
            self.library.delete_model(self.model.path)


class _PartialRow(QFrame):
    def __init__(self, partial: PartialDownload, library: ModelLibrary) -> None:
        super().__init__(objectName="partialDownloadRow")
        self.partial = partial
        self.library = library
        self.title = _bold_title(partial.request.label)
        self.detail = dim_label(f"{format_bytes(partial.downloaded)} of {format_bytes(partial.total)} downloaded")
        self.resume_button = QPushButton("Resume", objectName="resumeDownloadButton")
        self.discard_button = QPushButton("Discard", objectName="discardDownloadButton")
        self.resume_button.clicked.connect(self._on_resume)
        self.discard_button.clicked.connect(self._on_discard)
        _row_layout(self, [self.title, self.detail], [self.resume_button, self.discard_button])
        self.update_state()

    def update_state(self) -> None:
        running = self.library.downloads.current is not None
        self.resume_button.setEnabled(not running)
        self.discard_button.setEnabled(self.library.downloads.current != self.partial.request)

    @Slot()
    def _on_resume(self) -> None:
        self.library.start_download(self.partial.request)

    @Slot()
    def _on_discard(self) -> None:
        self.library.discard_partial(self.partial.request)


class _CatalogRow(QFrame):
    """A catalog model: a quantisation to pick, its size and fit here, and Download."""

    def __init__(self, model: CatalogModel, quant: Quant, library: ModelLibrary) -> None:
        super().__init__(objectName="catalogModelRow")
        self.model = model
        self.library = library
        self.title = _bold_title(model.short_name)
        self.title.setToolTip(as_plain_text(model.description))
        self.description = dim_label(model.description)
        self.detail = dim_label()
        self.quant_box = QComboBox(objectName="quantChoice")
        for q in model.quants:
            self.quant_box.addItem(q.name, q.name)
        self.quant_box.setCurrentIndex(model.quants.index(quant))
        self.quant_box.setToolTip("Quantisation: fewer bits are smaller and faster, more bits answer better.")
        self.quant_box.currentIndexChanged.connect(self.update_state)
        self.badge = FitBadge()
        self.download_button = QPushButton("Download", objectName="downloadModelButton")
        self.download_button.clicked.connect(self._on_download)
        self.progress = DownloadProgressRow(library.downloads)
        self.progress.hide()
        self.error = plain_label(name="downloadError")  # a DownloadError's sentence names hub files
        self.error.setWordWrap(True)
        self.error.hide()
        _row_layout(self, [self.title, self.description, self.detail],
                    [self.quant_box, self.badge, self.download_button], below=[self.progress, self.error])
        self.update_state()

    @property
    def quant(self) -> Quant:
        return self.model.quant(self.quant_box.currentData())

    @property
    def request(self) -> DownloadRequest:
        return DownloadRequest.for_catalog(self.model, self.quant)

    @Slot()
    def update_state(self, *_args) -> None:
        survey_ = self.library.survey
        request = self.request
        p = survey_.catalog_plan(self.model, self.quant) if survey_ else None
        self.badge.set_fit(p.fit if p else None)
        detail = format_bytes(self.quant.size_bytes)
        if p is not None:
            detail += f" · {plan_text(p, self.library.draft_plan(p, self.model))}"
        self.detail.setText(detail)
        downloading = self.library.downloads.current == request
        downloaded = survey_ is not None and survey_.local_model(request) is not None
        partial = survey_.partial(request) if survey_ else None
        self.progress.setVisible(downloading)
        self.download_button.setVisible(not downloading)
        if downloaded:
            self.download_button.setText("Downloaded")
        elif partial is not None:
            self.download_button.setText("Resume")
        else:
            self.download_button.setText("Download")
        too_big = p is not None and p.fit == "too_big"
        self.download_button.setEnabled(not downloaded and not too_big and self.library.downloads.current is None)
        self.download_button.setToolTip(FIT_TIPS["too_big"] if too_big and not downloaded else "")

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))

    @Slot()
    def _on_download(self) -> None:
        self.show_error(None)
        self.library.start_download(self.request)


def plan_text(p, with_draft) -> str:
    """'all on the GPU · ~60 tokens/s', and with drafting on for a model the catalog pairs with a
    draft, the memory of both: '… · uses about 9.4 GB + 1.3 GB for the 1.5B draft' (app/core/draft_plan.py)."""
    text = describe_plan(p)
    return f"{text} · {with_draft.text()}" if with_draft is not None else text


def _row_layout(row: QFrame, left: list[QWidget], right: list[QWidget], below: list[QWidget] = ()) -> None:
    text = QVBoxLayout()
    text.setSpacing(2)
    for widget in left:
        text.addWidget(widget)
    top = QHBoxLayout()
    top.setSpacing(8)
    top.addLayout(text, 1)
    for widget in right:
        top.addWidget(widget, 0, Qt.AlignmentFlag.AlignVCenter)
    layout = QVBoxLayout(row)
    layout.setContentsMargins(10, 8, 10, 8)
    layout.setSpacing(6)
    layout.addLayout(top)
    for widget in below:
        layout.addWidget(widget)


def _bold_title(name: str, detail: str = "") -> QLabel:
    """'<b>name</b> · detail', with the names (from model files, the catalog, the hub) escaped."""
    label = QLabel(f"<b>{html.escape(name, quote=False)}</b>"
                   + (f" · {html.escape(detail, quote=False)}" if detail else ""))
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


class ModelManagerDialog(QDialog):
    """Downloaded models, partial downloads and the catalog, for this machine.

    Signals: load_requested(str path), import_requested(), connect_requested() (a model on a server)
    """

    load_requested = Signal(str)
    import_requested = Signal()
    connect_requested = Signal()

    def __init__(self, library: ModelLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelManager")
        self.library = library
        self.local_rows: dict[Path, _LocalRow] = {}
        self.partial_rows: dict[tuple[str, ...], _PartialRow] = {}
        self.catalog_rows: dict[str, _CatalogRow] = {}
        # The last failed download and its sentence: the survey that follows a failure rebuilds the rows,
        # and the row must keep saying why (e.g. "will not fit this computer, so nothing was downloaded").
        self._failed: tuple[DownloadRequest, str] | None = None
        self._quant_choices: dict[str, str] = {}  # kept when the rows are rebuilt

        self.hardware = dim_label("Checking this computer…", "hardwareSummary")
        self.notice = plain_label(name="managerNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.content = QWidget(objectName="managerContent")
        self._content_layout = QVBoxLayout(self.content)
        self._content_layout.setContentsMargins(0, 0, 8, 0)
        self._content_layout.setSpacing(6)
        scroll = QScrollArea(objectName="managerScroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows wrap their text
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.content)

        self.import_button = QPushButton("Import a GGUF file…", objectName="importModelButton")
        self.import_button.clicked.connect(self.import_requested)
        self.connect_button = QPushButton("Connect to a server…", objectName="connectServerButton")
        self.connect_button.setToolTip("Chat through a model on vLLM, SGLang, llama-server, Ollama, LM Studio "
                                       "or DeepSeek's API instead of a file here")
        self.connect_button.clicked.connect(self.connect_requested)
        self.models_folder = dim_label(f"Models folder: {library.models_dir}")
        self.models_folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Close", objectName="closeManagerButton")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.models_folder, 1)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(self.hardware)
        layout.addWidget(self.notice)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.resize(820, 640)
        self._apply_colors()

        library.survey_changed.connect(self.set_survey)
        library.active_changed.connect(self._update_rows)
        library.problem.connect(self._show_problem)
        d = library.downloads
        d.started.connect(self._on_download_started)
        d.progress.connect(self._on_download_progress)
        d.failed.connect(self._on_download_failed)
        d.cancelled.connect(self._on_download_cancelled)
        d.finished.connect(self._on_download_finished)
        if library.survey is not None:
            self.set_survey(library.survey)

    # --- content --------------------------------------------------------------------

    @Slot(object)
    def set_survey(self, result: MachineSurvey) -> None:
        self.hardware.setText(hardware_text(result.hardware))
        while self._content_layout.count():
            item = self._content_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.local_rows, self.partial_rows, self.catalog_rows = {}, {}, {}

        self._section("On this computer")
        if not result.local:
            self._content_layout.addWidget(dim_label("No models downloaded yet.", "noLocalModels"))
        for model in result.local:
            row = _LocalRow(model, self.library, self)
            self.local_rows[model.path] = row
            self._content_layout.addWidget(row)

        if result.partials:
            self._section("Partial downloads")
            for partial in result.partials:
                row = _PartialRow(partial, self.library)
                self.partial_rows[partial.request.files] = row
                self._content_layout.addWidget(row)

        self._section("Available to download")
        if result.catalog_error:
            error = plain_label(result.catalog_error, "catalogError")
            error.setWordWrap(True)
            self._content_layout.addWidget(error)
        elif result.recommendation is not None and result.catalog is not None:
            for alternative in result.recommendation.alternatives:
                model = result.catalog.get(alternative.model_id)
                quant = self._quant_choices.get(model.id, alternative.plan.quant)
                row = _CatalogRow(model, model.quant(quant), self.library)
                row.quant_box.currentTextChanged.connect(self._remember_quants)
                self.catalog_rows[model.id] = row
                if self._failed is not None and self._failed[0] == row.request:
                    row.show_error(self._failed[1])
                self._content_layout.addWidget(row)
        self._content_layout.addStretch(1)
        self._apply_colors()
        current = self.library.downloads.current
        if current is not None:
            self._on_download_started(current)
            if self.library.downloads.last_progress is not None:
                self._on_download_progress(current, self.library.downloads.last_progress)

    @Slot()
    def _remember_quants(self, *_args) -> None:
        self._quant_choices = {model_id: row.quant.name for model_id, row in self.catalog_rows.items()}

    def _section(self, title: str) -> None:
        label = QLabel(title, objectName="managerSection")
        self._content_layout.addSpacing(6)
        self._content_layout.addWidget(label)

    def _catalog_row(self, request: DownloadRequest) -> _CatalogRow | None:
        row = self.catalog_rows.get(request.model_id or "")
        return row if row is not None and row.request == request else None

    @Slot()
    def _update_rows(self) -> None:
        for row in [*self.local_rows.values(), *self.partial_rows.values(), *self.catalog_rows.values()]:
            row.update_state()

    def confirm_delete(self, model: LocalModel, active: bool) -> bool:
        text = f"Delete {model.name} ({format_bytes(model.size_bytes)}) from this computer?"
        if active:
            text += " It is the model in use; it will be unloaded first."
        answer = QMessageBox.question(self, "Delete model", as_plain_text(text),  # names from the file
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    # --- downloads ------------------------------------------------------------------

    @Slot(object)
    def _on_download_started(self, request: DownloadRequest) -> None:
        self._show_problem(None)
        self._failed = None
        self._update_rows()
        row = self._catalog_row(request)
        if row is None:  # a resumed partial, or one started with another quantisation on show
            row = self.catalog_rows.get(request.model_id or "")
            if row is not None and request.quant:
                row.quant_box.setCurrentIndex(row.quant_box.findData(request.quant))
        if row is not None:
            row.progress.start(request)
            row.update_state()

    @Slot(object, object)
    def _on_download_progress(self, request: DownloadRequest, progress: Progress) -> None:
        row = self._catalog_row(request)
        if row is not None:
            row.progress.show_progress(progress)

    @Slot(object, str)
    def _on_download_failed(self, request: DownloadRequest, message: str) -> None:
        self._failed = (request, message)
        row = self._catalog_row(request)
        if row is not None:
            row.show_error(message)
        else:
            self._show_problem(message)
        self._update_rows()

    @Slot(object, str)
    def _on_download_cancelled(self, request: DownloadRequest, _message: str) -> None:
        self._update_rows()

    @Slot(object, str)
    def _on_download_finished(self, _request: DownloadRequest, _path: str) -> None:
        self._update_rows()

    @Slot(str)
    def _show_problem(self, message: str | None) -> None:
        self.notice.setText(message or "")
        self.notice.setVisible(bool(message))

    # --- looks ----------------------------------------------------------------------

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()

    def _apply_colors(self) -> None:
        c = theme.colors_for(self)
        self.setStyleSheet(f"""
#managerSection {{ font-weight: 600; font-size: {theme.BASE_FONT_PX + 1}px; }}
#localModelRow, #partialDownloadRow, #catalogModelRow {{ border: 1px solid {c.border}; border-radius: 8px; }}
#managerScroll, #managerContent {{ background: transparent; }}
#activeBadge {{ color: {c.accent_text}; background-color: {c.accent}; border-radius: 8px; padding: 1px 8px;
               font-size: {theme.BASE_FONT_PX - 2}px; font-weight: 600; }}
#modelError, #catalogError {{ color: {c.error_text}; }}
#managerNotice {{ color: {c.error_text}; background-color: {c.error_bg}; border-radius: 6px; padding: 6px 8px; }}
{library_css(c)}""")

