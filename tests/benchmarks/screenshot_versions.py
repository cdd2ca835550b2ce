"""Screenshots of versions and the compare view in the real window (run by hand, under Xvfb).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tests/benchmarks/screenshot_versions.py OUT_DIR [--theme dark]

A chat whose answer has three versions (stored as regenerations make them, with their own
stats and seeds) is shown at version 2 of 3; then a chat whose two versions each think
~15,000 words (about a 20k-token R1 trace, bench_compare.r1_like_trace) is opened in the
compare view, scrolled to where the two thoughts part. A scripted GGUF is loaded so the
status bar shows a model. Writes OUT_DIR/versions.png and OUT_DIR/compare.png (the whole X
screen, with ImageMagick's `import`, as a user would see it).
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
from app.core.storage import ChatStore, store_path  # noqa: E402
from app.ui.compare_view import _diff_colors  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from tests.benchmarks.bench_compare import r1_like_trace  # noqa: E402
from tests.benchmarks.screenshot_common import grab, run_until_closed, shot_args  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, write_scripted_gguf  # noqa: E402

PROMPT = "In how many ways can a committee of 3 be chosen from 10 people?"
VERSIONS = [
    ("The user asks for the number of ways to choose 3 people out of 10, where order does not matter. "
     "That is a combination: C(10, 3) = 10! / (3! · 7!).\n\n"
     "10 · 9 · 8 = 720, and 3! = 6, so 720 / 6 = 120.\n\n"
     "Let me double-check by counting ordered choices first: 720 ordered triples, each committee counted 6 times. "
     "Yes, 120.",
     "There are **120** ways: C(10, 3) = (10 · 9 · 8) / (3 · 2 · 1) = 120.", 1734512, 96, 4.1),
    ("Choosing a committee means the order does not matter, so I need a binomial coefficient.\n\n"
     "C(10, 3) = 10 · 9 · 8 / 6. 10 · 9 = 90, 90 · 8 = 720, 720 / 6 = 120.\n\n"
     "Wait, should I consider roles like chair and secretary? The question says only \"a committee\", so no roles. "
     "If there were three distinct roles it would be 720. I will mention that.",
     "**120.** A committee has no order, so the count is C(10, 3) = 120. "
     "(If the three seats were distinct roles, it would be 10 · 9 · 8 = 720.)", 2851,
     141, 6.3),
    ("Okay, 3 people from 10, unordered. The formula is n! / (k! (n − k)!).\n\n"
     "10! / (3! 7!) = (10 · 9 · 8) / 6 = 120.",
     "You can choose the committee in **120** ways (10 choose 3).", 90210, 52, 2.2),
]


def stats(thinking_tokens: int, answer_tokens: int, thinking_s: float) -> dict:
    return {"thinking_tokens": thinking_tokens, "answer_tokens": answer_tokens, "thinking_s": thinking_s,
            "answer_s": round(answer_tokens / 38.0, 1), "total_s": round(thinking_s + answer_tokens / 38.0, 1),
            "time_to_first_token_s": 0.18, "decode_tokens_per_s": 38.4, "finish_reason": "stop",
            "prompt_tokens": 24}


def main() -> int:
    args = shot_args()

    work = Path(tempfile.mkdtemp(prefix="ponder-shot-"))
    model = write_scripted_gguf(work / "DeepSeek-R1-Distill-Qwen-7B.gguf", split_script("Hm.</think>Hi."),
                                name="DeepSeek-R1-Distill-Qwen-7B (scripted)")
    data = work / "data"
    save_settings(data, Settings(n_ctx=4096, n_gpu_layers=0, theme=args.theme))
    with ChatStore(store_path(data)) as store:
        long_chat = store.create_conversation()
        store.add_message(long_chat, "user", "How many ways are there to choose the items? Think it through.")
        for n, seed in enumerate((1, 2)):
            if n:
                store.start_version(long_chat, 0)
            thinking = r1_like_trace(15000, seed, shared_with=1 if n else None)
            store.add_message(long_chat, "assistant", f"The answer is **{391 + n}**.", thinking,
                              stats=stats(20113 - 240 * n, 9, 512.0 + 7 * n), model="DeepSeek-R1-Distill-Qwen-7B",
                              sampling={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "seed": 4242 + n})
        chat = store.create_conversation()
        store.add_message(chat, "user", PROMPT)
        for n, (thinking, answer, seed, tokens, seconds) in enumerate(VERSIONS):
            if n:
                store.start_version(chat, 0)
            store.add_message(chat, "assistant", answer, thinking, stats=stats(tokens, 30 + 10 * n, seconds),
                              model="DeepSeek-R1-Distill-Qwen-7B",
                              sampling={"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "seed": seed})
        middle = store.get_conversation(chat).versions_of(0)[1].id
        store.switch_version(chat, middle)  # version 2 of 3: both arrows

    qapp = create_app()
    window = open_window(str(data), str(model))
    window.resize(1280, 800)
    window.move(0, 0)

    def show_versions() -> None:
        window.chats.list.set_current(chat)
        window.session.open_conversation(chat)
        window.transcript.assistant_views()[0].set_thinking_expanded(True)
        QTimer.singleShot(800, lambda: (grab(args.out / "versions.png"), show_compare()))

    def show_compare() -> None:
        window.session.open_conversation(long_chat)
        window.versions.compare_last()
        dialog = window.versions.compare_dialog
        dialog.resize(1200, 740)
        dialog.move(40, 20)
        dialog.compared.connect(lambda: QTimer.singleShot(300, lambda: scroll_to_difference(dialog)))

    def scroll_to_difference(dialog) -> None:
        removed = _diff_colors(window.settings.theme == "dark")[0]
        browser = dialog.browsers[0]
        block = browser.document().begin()
        while block.isValid():  # the first paragraph with a word only on the left
            it = block.begin()
            found = False
            while not it.atEnd():
                if it.fragment().charFormat().background().color().name() == removed:
                    found = True
                    break
                it += 1
            if found:
                break
            block = block.next()
        # As a user scrolling down to it would: just above the first difference.
        browser.verticalScrollBar().setValue(max(0, block.firstLineNumber() - 2))
        QTimer.singleShot(600, lambda: (grab(args.out / "compare.png"), dialog.close(), window.close()))

    window.client.loaded.connect(lambda _info: QTimer.singleShot(600, show_versions))
    return run_until_closed(qapp, window)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    sys.exit(main())
