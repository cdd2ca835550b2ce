"""The window's status bar: which model, where it runs, how full its context is, how fast.

It shows what it is told (the window forwards model and answer events to it). The live
context count of a streaming answer arrives with every batch of tokens; it is drawn on a
`Throttle`, so the bar repaints a few times a second however fast the model writes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton, QWidget

from app.core.engine import ModelInfo
from app.ui.plain_text import as_plain_text
from app.ui.throttle import Throttle

LIVE_COUNT_INTERVAL_MS = 250  # a number that changes faster than this cannot be read anyway
CONTEXT_TIP = ("Tokens of the model's context window in use: this chat's prompt, then the thinking and "
               "the answer as they are written. When it is full, the answer stops.")


def device_summary(info: ModelInfo) -> str:
    """Where the model runs, for the status bar: "CUDA · 29/29 layers on GPU · KV q8_0"."""
    kv = f"KV {info.kv_type}"
    if info.backend == "CPU" or info.n_gpu_layers <= 0:
        return f"CPU · {kv}" + (f" · drafting ({info.drafter})" if getattr(info, "drafter", None) else "")
    total = info.n_layers + 1  # the output layer counts as one more
    drafting = f" · drafting ({info.drafter})" if getattr(info, "drafter", None) else ""
    return f"{info.backend} · {info.n_gpu_layers}/{total} layers on GPU · {kv}{drafting}"


def device_details(info: ModelInfo) -> str:
    """The status bar's tooltip on where the model runs and what its memory holds."""
    total = info.n_layers + 1
    if info.backend == "CPU" or info.n_gpu_layers <= 0:
        lines = ["Runs on the CPU: no layers on a GPU."]
    elif info.n_gpu_layers >= total:
        lines = [f"Runs on the GPU ({info.backend}): all {total} layers (the output layer counts as one)."]
    else:
        lines = [f"Runs on the GPU ({info.backend}) and the CPU: {info.n_gpu_layers} of {total} layers "
                 "on the GPU, the rest on the CPU (slower)."]
    kv_words = {"f16": "16-bit (full precision)", "q8_0": "8-bit (half the memory of 16-bit)"}
    lines.append(f"KV cache (the context's memory): {kv_words.get(info.kv_type, info.kv_type)}, "
                 f"{info.n_ctx:,} tokens.")
    if info.gpu_note:
        lines.append(info.gpu_note)
    if getattr(info, "drafter", None):
        lines.append(f"Drafting ahead ({info.drafter}): proposed tokens are checked several at a time; "
                     "the answers are the same, only faster. Settings turns it off.")
    if getattr(info, "draft_note", None):
        lines.append(info.draft_note)
    return "\n".join(lines)


class ModelStatusBar(QStatusBar):
    """Model name, load progress, device, context used and speed, left to right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusBar")
        self.model_label = QLabel(objectName="statusModel")
        self.device_label = QLabel(objectName="statusDevice")
        self.context_label = QLabel(objectName="statusContext")
        self.speed_label = QLabel(objectName="statusSpeed")
        self.progress_bar = QProgressBar(objectName="statusProgress")
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setMaximumHeight(14)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.hide()
        # Cancel while a model loads (its draft model too); the window connects it (model_switching.py).
        self.cancel_load_button = QToolButton(objectName="cancelLoadButton", text="Cancel")
        self.cancel_load_button.setToolTip("Stop loading; nothing stays loaded")
        self.cancel_load_button.hide()
        # A long name (a remote "remote: host · model", a long file name while loading) is clipped
        # rather than making the window wider than the screen; the tooltip has it whole.
        self.model_label.setMinimumWidth(120)
        self.addWidget(self.model_label)
        self.addWidget(self.progress_bar)
        self.addWidget(self.cancel_load_button)
        for label in (self.device_label, self.context_label, self.speed_label):
            self.addPermanentWidget(label)
        # The window's server (app/ui/server_switch.py): "● Serving on http://…", a menu on click.
        self.server_indicator = QToolButton(objectName="serverIndicator", autoRaise=True)
        self.server_indicator.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.server_indicator.hide()
        self.addPermanentWidget(self.server_indicator)
        self._n_ctx = 0
        self._live_used = 0
        self._live_redraw = Throttle(self._draw_live_context, LIVE_COUNT_INTERVAL_MS, self)
        self.show_model(None)

    # --- loading --------------------------------------------------------------------

    def show_loading(self, path: str) -> None:
        self.model_label.setText(f"Loading {Path(path).name}…")
        self.progress_bar.setRange(0, 0)  # busy until the first fraction arrives
        self.progress_bar.show()
        self.cancel_load_button.show()

    def show_load_step(self, text: str) -> None:
        """A later part of the load, e.g. "Loading draft 1.5B…" (busy until its progress arrives)."""
        self.model_label.setText(text)
        self.progress_bar.setRange(0, 0)

    def show_load_progress(self, fraction: float) -> None:
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(fraction * 1000))

    def show_model(self, info: ModelInfo | None) -> None:
        """The loaded model (None: nothing loaded, or a load failed)."""
        self.progress_bar.hide()
        self.cancel_load_button.hide()
        self._live_redraw.cancel()
        if info is None:
            self._n_ctx = 0
            self._set_remote(False)
            self.model_label.setText("No model loaded")
            for label in (self.model_label, self.device_label, self.context_label):
                label.setToolTip("")
            for label in (self.device_label, self.context_label, self.speed_label):
                label.setText("")
            return
        self._set_remote(getattr(info, "backend", "") == "remote")
        if self.model_label.property("remote"):
            self._show_remote(info)
            return
        self._n_ctx = info.n_ctx
        self.model_label.setText(f"{info.name} · {info.quantization}")
        self.model_label.setToolTip(as_plain_text(str(info.path)))
        self.device_label.setText(device_summary(info))
        self.device_label.setToolTip(as_plain_text(device_details(info)))
        self.context_label.setToolTip(CONTEXT_TIP)
        # As wide as it can get, so the labels beside it do not shift while the count grows.
        widest = self.context_label.fontMetrics().horizontalAdvance(f"Context {info.n_ctx:,} / {info.n_ctx:,}")
        self.context_label.setMinimumWidth(widest + 16)  # + the stylesheet's padding

    def _set_remote(self, remote: bool) -> None:
        """A remote engine's label is styled apart (theme.py: #statusModel[remote="true"])."""
        if bool(self.model_label.property("remote")) != remote:
            self.model_label.setProperty("remote", remote)
            self.model_label.style().unpolish(self.model_label)
            self.model_label.style().polish(self.model_label)

    def _show_remote(self, info) -> None:
        """A model on a server (app.core.remote.RemoteModelInfo): "remote: host · model", always."""
        self._n_ctx = info.n_ctx
        self.model_label.setText(info.label)
        self.model_label.setToolTip(as_plain_text(
            f"Answers come from {info.server_kind} at {info.base_url} (model {info.name}). "
            "Your prompts are sent there; nothing runs on this computer."))
        self.device_label.setText(info.server_kind)
        self.device_label.setToolTip(as_plain_text(
            "A reasoning model: its thinking is shown apart." if info.is_reasoning else
            "Not a reasoning model: everything is answer."))
        self.context_label.setToolTip(CONTEXT_TIP if info.n_ctx else "")
        self.context_label.setText(f"Context 0 / {info.n_ctx:,}" if info.n_ctx else "")
        self.context_label.setMinimumWidth(0)  # not a local model's reserved width: the label is long

    def show_serving(self, address: str | None, tip: str = "") -> None:
        """The server switch: on at `address`, or off (None)."""
        self.server_indicator.setVisible(address is not None)
        self.server_indicator.setText(f"●  Serving on {address}" if address else "")
        self.server_indicator.setToolTip(as_plain_text(tip) if tip else "")

    # --- context and speed ----------------------------------------------------------

    def show_last_answer(self, stats: dict | None) -> None:
        """Context used as of a finished answer (None: none yet), and that answer's speed."""
        if not self._n_ctx and not self.model_label.property("remote"):  # no model (a server may not say its context)
            return
        self._live_redraw.cancel()
        self._set_context(stats.get("context_used", 0) if stats else 0)
        speed = stats.get("decode_tokens_per_s") if stats else None
        self.speed_label.setText(f"{speed:.1f} tokens/s" if speed else "")

    def show_live_context(self, used: int) -> None:
        """A streaming answer's context so far; drawn at most every LIVE_COUNT_INTERVAL_MS."""
        self._live_used = used
        self._live_redraw.request()

    def _draw_live_context(self) -> None:
        self._set_context(self._live_used)

    def _set_context(self, used: int) -> None:
        if self._n_ctx:
            self.context_label.setText(f"Context {used:,} / {self._n_ctx:,}")
