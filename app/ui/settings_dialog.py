"""The settings dialog: sampling, context and GPU use, thinking panes, theme."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.settings import Settings

THEME_CHOICES = [("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")]
MAX_CONTEXT = 262_144
MAX_GPU_LAYERS = 999


def lay_out_form_dialog(dialog: QDialog, form: QFormLayout, note: QLabel) -> None:
    """The form, a greyed note under it and OK / Cancel: the Settings and Serve dialogs' layout."""
    note.setWordWrap(True)
    note.setEnabled(False)  # greyed: a hint, not a control
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addLayout(form)
    layout.addWidget(note)
    layout.addWidget(buttons)


class SettingsDialog(QDialog):
    """Edits a copy of the settings; `result_settings()` gives the edited copy after OK.

    Fields whose change needs the model reloaded (context size, GPU layers) are
    listed by `needs_reload()`; the window reloads the model when the dialog is accepted.
    """

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._original = settings

        self.temperature = QDoubleSpinBox(objectName="temperatureInput", decimals=2, singleStep=0.05)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setValue(settings.temperature)
        self.temperature.setToolTip("Randomness. DeepSeek recommends 0.6 (0.5-0.7) for R1 models; 0 is deterministic.")

        self.top_p = QDoubleSpinBox(objectName="topPInput", decimals=2, singleStep=0.01)
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setValue(settings.top_p)
        self.top_p.setToolTip("Nucleus sampling: pick from the smallest set of tokens whose probability reaches this.")

        self.max_tokens = QSpinBox(objectName="maxTokensInput", singleStep=1024)
        self.max_tokens.setRange(1, MAX_CONTEXT)
        self.max_tokens.setValue(settings.max_tokens)
        self.max_tokens.setToolTip("Longest answer, thinking included. Reasoning often takes thousands of tokens.")

        self.n_ctx = QSpinBox(objectName="contextSizeInput", singleStep=1024)
        self.n_ctx.setRange(512, MAX_CONTEXT)
        self.n_ctx.setValue(settings.n_ctx)
        self.n_ctx.setSuffix(" tokens")
        self.n_ctx.setToolTip("How much of the conversation the model sees. Bigger needs more memory.")

        auto = settings.n_gpu_layers == "auto"
        self.gpu_auto = QCheckBox("Automatic", objectName="gpuLayersAuto")
        self.gpu_auto.setChecked(auto)
        self.gpu_layers = QSpinBox(objectName="gpuLayersInput")
        self.gpu_layers.setRange(-1, MAX_GPU_LAYERS)
        self.gpu_layers.setSpecialValueText("all")  # shown for -1
        self.gpu_layers.setValue(-1 if auto else int(settings.n_gpu_layers))
        self.gpu_layers.setEnabled(not auto)
        self.gpu_layers.setToolTip("Layers to put on the GPU: 0 runs on the CPU only.")
        self.gpu_auto.toggled.connect(lambda checked: self.gpu_layers.setEnabled(not checked))
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_auto)
        gpu_row.addWidget(self.gpu_layers, 1)

        self.thinking_expanded = QCheckBox("Keep thinking panes open", objectName="thinkingExpandedInput")
        self.thinking_expanded.setChecked(settings.thinking_expanded)
        self.thinking_expanded.setToolTip("Finished thinking collapses to one line unless this is on.")
        self.thinking_maths = QCheckBox("Typeset maths in finished thinking", objectName="thinkingMathsInput")
        self.thinking_maths.setChecked(settings.thinking_maths)
        self.thinking_maths.setToolTip("Thinking streams as plain text; once it is finished, its formulas are typeset.")
        thinking_rows = QVBoxLayout()
        thinking_rows.setContentsMargins(0, 0, 0, 0)
        thinking_rows.addWidget(self.thinking_expanded)
        thinking_rows.addWidget(self.thinking_maths)

        # Speculative decoding (app/core/speculative.py): the text is the same either way.
        self.draft = QCheckBox("Draft ahead (speculative decoding)", objectName="draftInput")
        self.draft.setChecked(settings.draft == "auto")
        self.draft.setToolTip("A small model of the same family (when downloaded), or the text so far, proposes "
                              "tokens the model checks several at a time: the same answers, faster on big models. "
                              "Ponder stops drafting where it does not pay.")

        self.theme = QComboBox(objectName="themeInput")
        for value, label in THEME_CHOICES:
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))

        form = QFormLayout()
        form.addRow("Temperature", self.temperature)
        form.addRow("Top p", self.top_p)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Context size", self.n_ctx)
        form.addRow("GPU layers", gpu_row)
        form.addRow("Speed", self.draft)
        form.addRow("Thinking", thinking_rows)
        form.addRow("Theme", self.theme)

        note = QLabel("Context size, GPU layers and drafting take effect when the model is reloaded; OK reloads it.")
        lay_out_form_dialog(self, form, note)

    def result_settings(self) -> Settings:
        gpu = "auto" if self.gpu_auto.isChecked() else self.gpu_layers.value()
        return dataclasses.replace(
            self._original,
            temperature=round(self.temperature.value(), 2),
            top_p=round(self.top_p.value(), 2),
            max_tokens=self.max_tokens.value(),
            n_ctx=self.n_ctx.value(),
            n_gpu_layers=gpu,
            thinking_expanded=self.thinking_expanded.isChecked(),
            thinking_maths=self.thinking_maths.isChecked(),
            theme=self.theme.currentData(),
            draft="auto" if self.draft.isChecked() else "off",
        )

    def needs_reload(self) -> bool:
        new = self.result_settings()
        return (new.n_ctx, new.n_gpu_layers, new.draft) != (
            self._original.n_ctx, self._original.n_gpu_layers, self._original.draft)
