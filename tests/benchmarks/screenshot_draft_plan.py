"""Screenshot of the Models window planning models with their draft model (run by hand, under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_draft_plan.py OUT_DIR \
        [--theme dark] [--vram-gb 24 --gpu-name "RTX 4090" --ram-gb 64]

Drafting on (the default setting). The real catalog (models.json) is planned for a described
machine; R1-Distill-Qwen-32B and its draft, R1-Distill-Qwen-1.5B, are downloaded (scripted GGUFs
under the catalog's file names) and the 32B is loaded, so the status bar says it drafts. Writes
- loading-draft.png: the status bar while the draft loads ("Loading draft 1.5B…", Cancel); the
  draft's load is held for 2 s here, as a big draft on a slow disk would take;
- draft-plan.png: the 32B's row and the 14B's say "+ … for the 1.5B draft"; the 70B's names its 8B
  draft (not downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QScrollArea  # noqa: E402

from app.core import speculative, survey  # noqa: E402
from app.core.hardware import describe  # noqa: E402
from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from tests.benchmarks.screenshot_common import grab, run_until_closed, shot_args  # noqa: E402
from tests.fixtures.scripted_gguf import SCRIPTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vram-gb", type=float, default=24)
    parser.add_argument("--ram-gb", type=float, default=64)
    parser.add_argument("--gpu-name", default="NVIDIA GeForce RTX 4090")
    args = shot_args(parser)

    hw = describe(vram_gb=args.vram_gb or None, ram_gb=args.ram_gb, gpu_name=args.gpu_name or None, cpu_cores=16)
    survey.probe = lambda: hw
    data = Path(tempfile.mkdtemp(prefix="ponder-draft-shot-")) / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme, draft="auto"))
    models = data / "models"
    models.mkdir(parents=True)
    big = SCRIPTS["standard_r1"].write(models / "DeepSeek-R1-Distill-Qwen-32B-Q4_K_M.gguf")
    SCRIPTS["standard_r1"].write(models / "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")  # same script: same tokenizer

    real_open_drafter = speculative.open_drafter

    def slow_open_drafter(eng, spec, hw=None):
        time.sleep(2)
        return real_open_drafter(eng, spec, hw)

    speculative.open_drafter = slow_open_drafter
    qapp = create_app()
    window = open_window(str(data), None)
    window.resize(1280, 800)
    window.move(0, 0)

    def open_manager(_info) -> None:
        dialog = window.open_model_manager()
        dialog.resize(900, 700)
        dialog.move(190, 40)
        QTimer.singleShot(1500, lambda: show_rows(dialog))

    def show_rows(dialog) -> None:
        scroll = dialog.findChild(QScrollArea, "managerScroll")
        row = dialog.catalog_rows.get("r1-distill-qwen-14b")
        if scroll is not None and row is not None:  # the local rows, then the big distills' catalog rows
            scroll.verticalScrollBar().setValue(max(0, row.y() - 260))
        QTimer.singleShot(500, lambda: (grab(args.out / "draft-plan.png"), window.close()))

    window.client.load_phase.connect(
        lambda name: QTimer.singleShot(500, lambda: grab(args.out / "loading-draft.png")) if name == "draft" else None)
    window.client.loaded.connect(open_manager)
    window.load_model(big)
    return run_until_closed(qapp, window)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    sys.exit(main())
