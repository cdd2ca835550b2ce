"""Screenshots of the first-run welcome page and the model manager (run by hand, under Xvfb).

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_models.py OUT_DIR \
        [--theme dark] [--vram-gb 12 --gpu-name "RTX 4070" --ram-gb 32]  (--vram-gb 0 --gpu-name "": no GPU)

The real catalog (models.json) is planned for a described machine (by default an RTX 4070
with 12 GB and 32 GB of RAM, so every fit badge appears). Writes:
- welcome.png: the first run, nothing downloaded;
- downloading.png: the same page while a download runs (the transfer is simulated: nothing
  here reaches Hugging Face, so progress reports are fed at a plausible speed);
- manager.png: the manager with two downloaded models (scripted GGUFs under catalog file
  names, one of them loaded) and a partial download.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.downloads import DownloadCancelled, Progress  # noqa: E402
from app.core.hardware import describe  # noqa: E402
from app.core.settings import Settings, save_settings  # noqa: E402
from app.core import survey  # noqa: E402
from app.ui import downloads  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from tests.benchmarks.screenshot_common import grab  # noqa: E402
from tests.fixtures.scripted_gguf import SCRIPTS  # noqa: E402

SPEED_BPS = 38e6  # a good home connection


def simulated_download(repo, files, dest, *, progress=None, cancel=None, **_kwargs):
    """Progress reports as download_model would send them, without a network."""
    total = 4_680_000_000
    done = 1_210_000_000
    while not (cancel and cancel.wait(0.1)):
        done = min(total, done + int(SPEED_BPS * 0.1))
        progress(Progress(done, total, SPEED_BPS, (total - done) / SPEED_BPS, Path(files[0]).name))
    raise DownloadCancelled("cancelled")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--vram-gb", type=float, default=12)
    parser.add_argument("--ram-gb", type=float, default=32)
    parser.add_argument("--gpu-name", default="NVIDIA GeForce RTX 4070")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    hw = describe(vram_gb=args.vram_gb or None, ram_gb=args.ram_gb, gpu_name=args.gpu_name or None, cpu_cores=8)
    survey.probe = lambda: hw
    downloads.download_model = simulated_download

    work = Path(tempfile.mkdtemp(prefix="ponder-models-shot-"))
    data = work / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme))

    qapp = create_app()
    window = open_window(str(data), None)
    window.resize(1280, 800)
    window.move(0, 0)
    models = data / "models"

    def welcome_shot() -> None:
        grab(args.out / "welcome.png")
        window.welcome.setup.primary_button.click()
        QTimer.singleShot(1500, downloading_shot)

    def downloading_shot() -> None:
        grab(args.out / "downloading.png")
        window.library.downloads.cancel()
        QTimer.singleShot(300, prepare_manager)

    def prepare_manager() -> None:
        # Two downloaded models under catalog names (scripted GGUFs) and a partial download.
        small = SCRIPTS["standard_r1"].write(models / "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")
        SCRIPTS["non_reasoning"].write(models / "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf")
        for leftover in models.glob("*.part*"):
            leftover.unlink()
        name = "DeepSeek-R1-Distill-Llama-8B-Q4_K_M.gguf"
        with open(models / f"{name}.part", "wb") as f:
            f.truncate(1_730_000_000)  # sparse: costs no disk
        (models / f"{name}.part.json").write_text(json.dumps({
            "repo_id": "unsloth/DeepSeek-R1-Distill-Llama-8B-GGUF", "filename": name, "etag": "0" * 64,
            "size": 4_920_000_000}))
        window.client.loaded.connect(lambda _info: QTimer.singleShot(400, open_manager))
        window.load_model(small)

    def open_manager() -> None:
        dialog = window.open_model_manager()
        dialog.move(260, 70)
        QTimer.singleShot(1200, lambda: (grab(args.out / "manager.png"), QApplication.exit(0)))

    QTimer.singleShot(1500, welcome_shot)
    QTimer.singleShot(60_000, lambda: QApplication.exit(2))
    code = qapp.exec()
    window.close()
    window.store.close()
    return code


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    sys.exit(main())
