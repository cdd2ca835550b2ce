"""Screenshots of steering a thought in the real window (run by hand, under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_steering.py OUT_DIR [--theme dark]

A scripted GGUF (real llama.cpp) thinks about a palindrome function, paced like a real model
(screenshot_window.py). While it thinks, a note is sent from the note box (a nudge), then
"Answer now" ends the thought. Writes:
- OUT_DIR/steering-live.png: mid-thought, the nudge in the pane, Answer now and the note box;
- OUT_DIR/steering-done.png: the finished answer, the thought open at its end: Ponder's
  wrap-up and </think>, the badges, the thinking / answer stats;
- OUT_DIR/steering-edit.png: the Edit thinking dialog on that answer.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import QTimer  # noqa: E402

from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from app.ui.steering_editor import ThinkingEditor  # noqa: E402
from tests.benchmarks.screenshot_common import grab, run_until_closed, send, shot_args  # noqa: E402
from tests.benchmarks.screenshot_window import ANSWER, PROMPT, THINKING, slow_down_stream  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, write_scripted_gguf  # noqa: E402

NOTE = "also handle accented letters like é, not just ASCII."
NUDGE_AT, LIVE_SHOT_AT, ANSWER_NOW_AT = 70, 150, 190  # thinking tokens


def main() -> int:
    args = shot_args()

    work = Path(tempfile.mkdtemp(prefix="ponder-steer-"))
    model = write_scripted_gguf(work / "DeepSeek-R1-Distill-Qwen-7B.gguf",
                                split_script(THINKING + "</think>" + ANSWER),
                                name="DeepSeek-R1-Distill-Qwen-7B (scripted)")
    data = work / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme, thinking_budget=2048))
    slow_down_stream()

    qapp = create_app()
    window = open_window(str(data), str(model))
    window.resize(1280, 800)
    window.move(0, 0)
    bar = window.steering_bar
    done: set[str] = set()

    def on_counts(thinking: int, _answer: int) -> None:
        if thinking >= NUDGE_AT and "nudge" not in done:
            done.add("nudge")
            bar.note_input.setText(NOTE)
            bar.note_input.returnPressed.emit()
        if thinking >= LIVE_SHOT_AT and "live" not in done:
            done.add("live")
            grab(args.out / "steering-live.png")
        if thinking >= ANSWER_NOW_AT and "answer_now" not in done:
            done.add("answer_now")
            bar.answer_now_button.click()

    def on_finished(_message) -> None:
        view = window.transcript.assistant_views()[-1]
        view.set_thinking_expanded(True)
        window.transcript.scroll_to_bottom()
        QTimer.singleShot(600, lambda: show_end(view))

    def show_end(view) -> None:
        body = view.thinking_body
        body.verticalScrollBar().setValue(body.verticalScrollBar().maximum())  # the end of the thought
        window.transcript.ensureWidgetVisible(view.thinking_pane, 0, 0)
        QTimer.singleShot(400, lambda: (grab(args.out / "steering-done.png"), open_editor(view)))

    def open_editor(view) -> None:
        message = window.session.messages[-1]
        editor = ThinkingEditor(message.thinking, window, message.spans)
        editor.show()
        editor.move(window.x() + 280, window.y() + 120)
        QTimer.singleShot(500, lambda: (grab(args.out / "steering-edit.png"), editor.close(), window.close()))

    window.session.stream_counts.connect(on_counts)
    window.session.answer_finished.connect(on_finished)
    window.client.loaded.connect(lambda _info: QTimer.singleShot(800, lambda: send(window, PROMPT)))
    return run_until_closed(qapp, window)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    sys.exit(main())
