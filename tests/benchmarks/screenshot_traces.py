"""Screenshots of the prompt inspector and of search highlighting (run by hand, under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_traces.py OUT_DIR [--theme dark]

A scripted GGUF (real llama.cpp) answers twice in one chat; the second prompt is sent with
Chat → Send earlier thinking back on. Writes OUT_DIR/inspector.png (the second answer's
Prompt window: the first answer's thinking highlighted in the prompt) and OUT_DIR/search.png
(a search hit opened in the thinking, every occurrence marked, the match bar after F3).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from app.ui.prompt_inspector import PromptInspector  # noqa: E402
from tests.benchmarks.screenshot_window import ANSWER, PROMPT, THINKING  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, write_scripted_gguf  # noqa: E402


def run_loop(ms: int) -> None:
    """Run a real event loop for `ms` (processEvents alone never runs deleteLater, so views of a
    chat that was left would linger on screen)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        run_loop(10)


def settle(seconds: float = 0.5) -> None:
    run_loop(int(seconds * 1000))


def send(window, text: str) -> None:
    window.prompt_input.setPlainText(text)
    window.send_prompt()
    wait_until(lambda: not window.session.busy)
    settle()


def shot(path: Path) -> None:
    QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        model = Path(tmp) / "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf"
        write_scripted_gguf(model, split_script(THINKING + "</think>" + ANSWER), name="DeepSeek-R1-Distill-Qwen-7B")
        save_settings(data, Settings(n_ctx=8192, n_gpu_layers=0, theme=args.theme))
        create_app()
        window = open_window(str(data), str(model))
        window.resize(1280, 800)
        window.move(0, 0)
        wait_until(lambda: window.client.info is not None)
        send(window, PROMPT)
        window.menus.keep_thinking.trigger()  # Chat → Send earlier thinking back
        send(window, "Now make it work for a list of words instead of a string.")

        second = window.transcript.assistant_views()[-1]
        second.footer.prompt_button.click()
        inspector = next(w for w in window.findChildren(PromptInspector) if w.isVisible())
        inspector.resize(900, 680)
        inspector.move(190, 60)
        cursor = inspector.prompt_view.textCursor()
        cursor.setPosition(inspector.thinking_spans[0][0])
        inspector.prompt_view.setTextCursor(cursor)
        inspector.prompt_view.centerCursor()
        settle(1.0)
        shot(args.out_dir / "inspector.png")
        inspector.close()
        settle()

        window.new_chat()
        window.conversations.focus_search()
        window.conversations.search_input.setText("palindrome")
        hits = window.conversations.hits
        wait_until(lambda: hits.count() > 0 and hits.item(0).data(Qt.ItemDataRole.UserRole + 1) is not None)
        thinking_hit = next(i for i in range(hits.count())
                            if hits.item(i).data(Qt.ItemDataRole.UserRole + 1).field == "thinking")
        hits.itemActivated.emit(hits.item(thinking_hit))
        settle()
        window.chats.next_match()
        window.chats.next_match()
        settle(1.0)
        shot(args.out_dir / "search.png")
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
