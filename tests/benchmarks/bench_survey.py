"""How long the welcome page's survey takes (hardware probe, catalog, recommendation, local models),
and how long the GUI thread is busy with it (it runs on a worker thread).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/bench_survey.py [--local N]

`--local N` puts N distill-shaped GGUF headers (R1-Distill-Qwen-1.5B's 152k-token vocabulary,
sparse tensor data) in the models folder, as downloaded models the survey must inspect.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import app  # noqa: E402,F401  (llama_cpp before numpy)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, default=0, help="distill-shaped local models to inspect")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ponder-bench-survey-"))
    models = work / "data" / "models"
    models.mkdir(parents=True)
    if args.local:
        from tests.benchmarks.make_shaped_gguf import SHAPES, write_source_gguf

        first = models / "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
        write_source_gguf(SHAPES["qwen-1.5b"], first)
        for i in range(1, args.local):
            os.link(first, models / f"copy-{i}.gguf")

    # Each step once, cold (as at the first start), then the whole survey warm.
    start = time.perf_counter()
    from app.core.hardware import probe

    hw = probe()
    t_probe = time.perf_counter() - start
    from app.core.catalog import load_catalog
    from app.core.sizing import recommend

    start = time.perf_counter()
    catalog = load_catalog()
    t_catalog = time.perf_counter() - start
    start = time.perf_counter()
    recommend(hw, catalog)
    t_recommend = time.perf_counter() - start

    from app.core.survey import survey

    start = time.perf_counter()
    result = survey(models, 16384)
    t_survey = time.perf_counter() - start
    start = time.perf_counter()
    survey(models, 16384, hw)
    t_survey_cached = time.perf_counter() - start

    # The window: GUI-thread time spent starting the survey, and the wait until the page shows it.
    from PySide6.QtWidgets import QApplication

    from app.core.settings import Settings, save_settings
    from app.core.storage import ChatStore, store_path
    from app.ui.main import build_window

    qapp = QApplication.instance() or QApplication([])
    save_settings(work / "data", Settings(theme="light"))
    store = ChatStore(store_path(work / "data"))
    start = time.perf_counter()
    window = build_window(store, Settings(theme="light"), work / "data")
    t_window = time.perf_counter() - start
    start = time.perf_counter()
    window.library.refresh()
    t_refresh_call = time.perf_counter() - start
    start = time.perf_counter()
    before = window.library.survey
    while window.library.survey is before or window.library.refreshing:
        qapp.processEvents()
        time.sleep(0.001)
    t_shown = time.perf_counter() - start
    window.close()
    store.close()

    print(f"machine: {hw.summary()}; {len(result.local)} local model(s)")
    print(f"probe (cold, first import of pynvml/psutil) {ms(t_probe)}")
    print(f"load_catalog                           {ms(t_catalog)}")
    print(f"recommend                              {ms(t_recommend)}")
    print(f"survey (probe + all of the above)      {ms(t_survey)}")
    print(f"survey with the cached probe           {ms(t_survey_cached)}")
    print(f"MainWindow() construction              {ms(t_window)}")
    print(f"GUI thread in library.refresh()        {ms(t_refresh_call)}")
    print(f"refresh until the page has the survey  {ms(t_shown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
