"""What the window says about speculative decoding: the stats row, the status bar, the setting."""

from __future__ import annotations

from pathlib import Path

from app.core.engine import ModelInfo
from app.core.settings import Settings
from app.ui.message_wording import stats_details, stats_line
from app.ui.settings_dialog import SettingsDialog
from app.ui.status_bar import device_details, device_summary

STATS = {"time_to_first_token_s": 0.5, "decode_tokens_per_s": 30.0, "finish_reason": "stop",
         "drafter": "draft 1.5B", "draft_tokens": 400, "draft_accepted": 312, "draft_speedup": 1.43}


def test_the_stats_row_names_the_drafter_its_acceptance_and_the_estimated_speed_up():
    line = stats_line(STATS, 100, 50)
    assert "draft 1.5B · 78% accepted · 1.4× est." in line
    details = stats_details(STATS)
    assert "Drafting: draft 1.5B: 312 of 400 drafted tokens kept" in details
    assert "Speed-up from drafting: 1.43×" in details
    assert "draft" not in stats_line({**STATS, "draft_tokens": 0, "draft_accepted": 0, "draft_speedup": None}, 100, 50)
    assert "draft" not in stats_line({"finish_reason": "stop"}, 100, 50)  # older messages have no such stats


def _info(**changes) -> ModelInfo:
    base = dict(path=Path("m.gguf"), name="M", architecture="qwen2", quantization="Q4_K_M", file_size=1,
                n_ctx=4096, n_ctx_train=131072, n_layers=64, n_gpu_layers=65, kv_type="f16", backend="CUDA",
                gpu_note=None, is_reasoning=True, template_note=None)
    return ModelInfo(**{**base, **changes})


def test_the_status_bar_says_when_drafting_is_on_and_why_it_is_off():
    assert device_summary(_info(drafter="draft 1.5B")).endswith("· drafting (draft 1.5B)")
    assert "drafting" not in device_summary(_info())
    assert "drafting (n-gram)" in device_summary(_info(backend="CPU", n_gpu_layers=0, drafter="n-gram"))
    note = "The draft model 'x.gguf' cannot be used: its tokenizer does not match M's. Drafting is off."
    assert note in device_details(_info(draft_note=note))


def test_the_setting_turns_drafting_off_and_asks_for_a_reload(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    assert dialog.draft.isChecked()  # on by default: it stops itself where it does not pay
    assert not dialog.needs_reload()
    dialog.draft.setChecked(False)
    assert dialog.result_settings().draft == "off"
    assert dialog.needs_reload()
