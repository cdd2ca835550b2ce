"""Stream a very long scripted answer through the real window and measure the GUI thread (run by hand).

    .venv/bin/python tests/benchmarks/bench_window_stream.py [--thinking 15000] [--answer plain|maths|both] [--nudges N] [--draft auto|off]

A scripted GGUF under real llama.cpp writes ~15k tokens of thinking and a long
markdown answer with code blocks and tables, unpaced (thousands of tokens/s, much
faster than a real model: the worst case for the GUI). The window runs offscreen.
`--answer maths` streams a maths-heavy answer instead (300+ distinct formulas: inline,
display, boxed; each one typeset cold on the render lane); `both` (the default) runs the
plain answer and then the maths one, each in a fresh process, and prints both.

Prints:
- event loop stalls while streaming: a 1 ms precise timer records the gaps between
  its ticks; the longest gap and the 99th percentile are the stalls a user would feel;
- the cost of one live update of the message view (the throttled ~30 Hz apply),
  averaged over the first and the last 30 updates: flat means the cost does not grow
  with the message;
- the one-off cost of finishing the message (full markdown render).
Targets (issue 8): p99 stall <= 8 ms, longest <= 33 ms (two frames at 60 Hz), per-update
cost flat in the answer's length (last 30 / first 30 <= 1.2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from PySide6.QtCore import Qt, QTimer  # noqa: E402

from app.core.maths import find_maths  # noqa: E402
from app.core.settings import Settings, save_settings  # noqa: E402
from app.ui import message_view  # noqa: E402
from app.ui.main import create_app, open_window  # noqa: E402
from tests.fixtures.scripted_gguf import split_script, words_script, write_scripted_gguf  # noqa: E402


def long_answer(sections: int) -> str:
    parts = []
    for n in range(sections):
        parts.append(
            f"## Part {n}\n\nStep {n} explains why value{n} matters, with `inline{n}` code and **bold{n}** text.\n\n"
            f"- item{n}a is first\n- item{n}b is second\n\n"
            f"```python\ndef step_{n}(x):\n    return x * {n} + {n + 1}\n```\n\n"
            f"| case{n} | result{n} |\n|---|---|\n| a{n} | {n * 7} |\n\n"
        )
    return "".join(parts)


def maths_answer(sections: int) -> str:
    """An R1-shaped maths answer: every section has distinct inline, display and boxed maths."""
    parts = []
    for n in range(sections):
        parts.append(
            f"## Step {n}\n\nLet $f_{{{n}}}(x) = x^{{{n + 2}}} + \\frac{{{n}}}{{x}}$, so $f_{{{n}}}'(x) = "
            f"{n + 2}x^{{{n + 1}}} - \\frac{{{n}}}{{x^2}}$ and the cost is $5 or $10 here.\n"
            f"\\[\n\\sum_{{k=1}}^{{{n + 3}}} k^2 = \\frac{{{n + 3}({n + 4})(2 \\cdot {n + 3} + 1)}}{{6}}\n\\]\n\n"
            f"- with \\(\\sqrt{{{n + 1}}} \\approx {(n + 1) ** 0.5:.3f}\\) and `$PATH{n}` untouched\n\n"
            f"**Result {n}:** \\boxed{{{n * n + 1}}}\n\n"
        )
    return "".join(parts)


NUDGE_EVERY = 400  # thinking tokens between two --nudges


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--thinking", type=int, default=13000, help="thinking tokens (the script holds 16383 pieces in all)")
    parser.add_argument("--sections", type=int, default=150, help="markdown sections in the answer")
    parser.add_argument("--answer", choices=("plain", "maths", "both"), default="both")
    parser.add_argument("--draft", choices=("auto", "off"), default="auto",
                        help="the drafting setting (auto, the default, drafts from the text on this model)")
    parser.add_argument("--maths-sections", type=int, default=60, help="sections of the maths answer (5 formulas each)")
    parser.add_argument("--nudges", type=int, default=0,
                        help=f"notes put into the thought, one every {NUDGE_EVERY} thinking tokens (issue 9); the "
                             "scripted model starts its script again after each, so the trace grows by as much")
    args = parser.parse_args()
    if args.answer == "both":
        code = 0
        for variant in ("plain", "maths"):
            print(f"=== {variant} answer ===", flush=True)
            command = [sys.executable, __file__, "--thinking", str(args.thinking),
                       "--sections", str(args.sections), "--maths-sections", str(args.maths_sections),
                       "--answer", variant, "--nudges", str(args.nudges), "--draft", args.draft]
            code = code or subprocess.run(command).returncode
        return code

    work = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    answer = long_answer(args.sections) if args.answer == "plain" else maths_answer(args.maths_sections)
    pieces = words_script(args.thinking) + ["\n\n", "</think>"] + split_script("\n\n" + answer.rstrip())
    model = write_scripted_gguf(work / "long.gguf", pieces, name="Bench-long-trace")
    n_tokens = len(pieces)
    data = work / "data"
    extra = args.nudges * (NUDGE_EVERY + 128)  # each nudge: its note, and the script again up to the next
    save_settings(data, Settings(n_ctx=n_tokens + extra + 1024, n_gpu_layers=0, max_tokens=n_tokens + extra + 100,
                                 theme="light", draft=args.draft))

    # Time every live update and the final render of the message view.
    updates: list[float] = []
    finishes: list[float] = []
    original_apply = message_view.AssistantMessageView._apply_pending
    original_finish = message_view.AssistantMessageView.finish

    def timed_apply(self):
        phase = "answer" if self._pending_answer else "thinking"
        t0 = time.perf_counter()
        original_apply(self)
        updates.append((phase, time.perf_counter() - t0))

    def timed_finish(self, *a, **kw):
        t0 = time.perf_counter()
        original_finish(self, *a, **kw)
        finishes.append(time.perf_counter() - t0)

    message_view.AssistantMessageView._apply_pending = timed_apply
    message_view.AssistantMessageView.finish = timed_finish

    qapp = create_app()
    window = open_window(str(data), str(model))
    window.resize(1200, 800)

    ticks: list[float] = []
    probe = QTimer(interval=1, timerType=Qt.TimerType.PreciseTimer)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    state: dict[str, float] = {}

    def start() -> None:
        state["t0"] = time.perf_counter()
        probe.start()
        window.prompt_input.setPlainText("Think for a long time, then explain.")
        window.send_prompt()

    def finished(message) -> None:
        state["stream_end"] = time.perf_counter()
        state["answer_start"] = state.get("answer_start", 0)
        state["stats"] = message.stats
        QTimer.singleShot(200, wait_for_formulas)

    def wait_for_formulas() -> None:
        """The maths answer: keep measuring until every formula is typeset."""
        view = window.transcript.assistant_views()[-1]
        images = view.answer_view.formula_images
        if images.pending_count and time.perf_counter() - state["stream_end"] < 120:
            QTimer.singleShot(20, wait_for_formulas)
            return
        state["typeset_end"] = time.perf_counter()
        state["formulas"] = len(find_maths(view.answer_text))
        probe.stop()
        window.close()
        qapp.quit()

    def nudge(thinking: int, _answer: int) -> None:
        sent = state.setdefault("nudges", 0)
        if sent < args.nudges and thinking >= (sent + 1) * NUDGE_EVERY:
            state["nudges"] = sent + 1
            window.session.nudge(f"note {sent + 1}: check the last step again.")

    window.session.stream_counts.connect(nudge)
    window.client.loaded.connect(lambda _info: QTimer.singleShot(200, start))
    window.client.load_failed.connect(lambda m: (print(m), qapp.exit(1)))
    window.session.answer_finished.connect(finished)
    QTimer.singleShot(600_000, lambda: qapp.exit(2))
    code = qapp.exec()
    window.store.close()
    if code:
        return code

    gaps_ms = [(b - a) * 1000 for a, b in zip(ticks, ticks[1:])]
    stats = state["stats"]
    if args.nudges:
        print(f"nudges: {state.get('nudges', 0)} sent, {stats.get('inserted_tokens', 0)} tokens inserted")
    print(f"streamed {stats['thinking_tokens']} thinking + {stats['answer_tokens']} answer tokens "
          f"in {stats['total_s']:.1f} s ({stats['decode_tokens_per_s']:.0f} tokens/s), {len(updates)} live updates")
    print(f"event loop: longest stall {max(gaps_ms):.1f} ms, p99 {percentile(gaps_ms, 0.99):.1f} ms, "
          f"p50 {percentile(gaps_ms, 0.5):.1f} ms over {len(gaps_ms)} ticks")
    gaps_streaming = [(b - a) * 1000 for a, b in zip(ticks, ticks[1:]) if b <= state["stream_end"]]
    print(f"while streaming only: longest {max(gaps_streaming):.1f} ms, p99 {percentile(gaps_streaming, 0.99):.1f} ms")
    for phase in ("thinking", "answer"):
        costs = [u * 1000 for p, u in updates if p == phase]
        if len(costs) < 20:
            continue
        head, tail = costs[:30], costs[-30:]
        print(f"live {phase} update ({len(costs)}): first 30 mean {statistics.mean(head):.2f} ms "
              f"(max {max(head):.2f}), last 30 mean {statistics.mean(tail):.2f} ms (max {max(tail):.2f}), "
              f"last/first {statistics.mean(tail) / statistics.mean(head):.2f}; medians "
              f"{statistics.median(head):.2f} / {statistics.median(tail):.2f} ms "
              f"(last/first {statistics.median(tail) / statistics.median(head):.2f})")
    t0, t_end = state["t0"], state["stream_end"]
    worst = sorted(((b - a) * 1000, a - t0) for a, b in zip(ticks, ticks[1:]))[-3:]
    print("worst stalls (ms, starting s after send; the stream ended at "
          f"{t_end - t0:.2f} s):", ", ".join(f"{g:.1f} at {at:.2f}" for g, at in reversed(worst)))
    print(f"final render (finish): {finishes[-1] * 1000:.1f} ms")
    print(f"formulas in the answer: {state['formulas']}; all typeset "
          f"{(state['typeset_end'] - state['stream_end']) * 1000:.0f} ms after the stream ended "
          "(including a 200 ms wait)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
