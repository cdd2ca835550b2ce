"""Benchmark: stream a long R1-shaped trace into a message view and measure GUI stalls.

Run by hand (offscreen; not collected by pytest):

    .venv/bin/python tests/benchmarks/bench_render.py [--thinking-tokens 20000]
        [--answer-tokens 3000] [--rate 400] [--history 12]

A producer thread plays the engine worker: it emits batches of text pieces (~4
characters each, about one token) every 20 ms at `--rate` tokens/s through a queued
Qt signal, as app/ui/worker.py does. The GUI thread runs an AssistantMessageView at
the end of a QScrollArea transcript holding `--history` finished messages. A 1 ms
precise QTimer records how late the event loop serves it (the stall), and each
throttled view update is timed. Printed: longest and p99 stall, and the cost of one
update at the start and the end of the thinking and of the answer, plus finish().
Targets: p99 stall < 16 ms, longest < 50 ms, per-update cost flat.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (import order: llama_cpp before numpy)
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication, QScrollArea, QVBoxLayout, QWidget  # noqa: E402

from app.ui import theme  # noqa: E402
from app.ui.message_view import AssistantMessageView, UserMessageView  # noqa: E402

WORDS = (
    "the of and to a in is that for it as with was on be by this are or at from so we "
    "number prime modulo check case value function loop list index sum wait maybe let me "
    "consider approach result answer hmm actually first then next because therefore compute"
).split()

CODE = '''```python
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for d in range(2, int(n ** 0.5) + 1):
        if n % d == 0:
            return False
    return True
```'''

TABLE = "| n | prime? | reason |\n|---|---|---|\n| 2 | yes | only even prime |\n| 9 | no | 3 × 3 |\n| 13 | yes | no divisor ≤ 3 |"


def paragraph(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    if rng.random() < 0.3:
        text += f" so $x_{rng.randint(1, 9)} = {rng.randint(2, 99)}$"
    if rng.random() < 0.3:
        text = text.replace(" value ", " **value** ", 1)
    return text[0].upper() + text[1:] + "."


def markdown_text(rng: random.Random, target_chars: int, answer: bool) -> str:
    parts: list[str] = []
    size = 0
    while size < target_chars:
        r = rng.random()
        if r < 0.08:
            part = CODE
        elif r < 0.14:
            part = "\n".join(f"{i}. {paragraph(rng, rng.randint(5, 15))}" for i in range(1, rng.randint(3, 6)))
        elif answer and r < 0.18:
            part = TABLE
        elif answer and r < 0.22:
            part = f"## {paragraph(rng, 4)[:-1]}"
        else:
            part = paragraph(rng, rng.randint(20, 90))
        parts.append(part)
        size += len(part) + 2
    return "\n\n".join(parts)


def tokenize(text: str) -> list[str]:
    """Pieces of about one token (~4 characters), covering the text exactly."""
    pieces = []
    for word in re.findall(r"\s*\S+|\s+", text):
        pieces.extend(word[i:i + 4] for i in range(0, len(word), 4))
    return pieces


class Producer(QObject):
    """Plays the engine worker: batches of pieces every 20 ms at a steady token rate."""

    segment = Signal(str, str)
    counts = Signal(int, int)
    done = Signal()

    def __init__(self, thinking: list[str], answer: list[str], rate: float):
        super().__init__()
        self.thinking, self.answer, self.rate = thinking, answer, rate

    def run(self) -> None:
        stream = [("think", p) for p in self.thinking] + [("answer", p) for p in self.answer]
        start = time.perf_counter()
        sent = 0
        n_think = n_answer = 0
        while sent < len(stream):
            time.sleep(0.02)  # the worker's FLUSH_INTERVAL_S
            due = min(len(stream), int((time.perf_counter() - start) * self.rate))
            batch = stream[sent:due]
            sent = due
            i = 0
            while i < len(batch):  # one signal per run of the same kind, like the worker
                kind = batch[i][0]
                j = i
                while j < len(batch) and batch[j][0] == kind:
                    j += 1
                self.segment.emit(kind, "".join(p for _, p in batch[i:j]))
                if kind == "think":
                    n_think += j - i
                else:
                    n_answer += j - i
                i = j
            self.counts.emit(n_think, n_answer)
        self.done.emit()


class Bench(QObject):
    def __init__(self, view: AssistantMessageView, thinking: str, answer: str, n_think: int, n_answer: int):
        super().__init__()
        self.view, self.thinking, self.answer = view, thinking, answer
        self.n_think, self.n_answer = n_think, n_answer
        self.ticks: list[float] = []
        self.updates: list[tuple[str, float, int]] = []  # (phase, seconds, chars so far)
        self.finish_s = 0.0
        self.monitor = QTimer(self)
        self.monitor.setTimerType(Qt.TimerType.PreciseTimer)
        self.monitor.setInterval(1)
        self.monitor.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        original = view._throttle._func

        def timed_update() -> None:
            phase = "answer" if view._pending_answer or view._phase == "answering" else "thinking"
            t0 = time.perf_counter()
            original()
            self.updates.append((phase, time.perf_counter() - t0,
                                 len(view.thinking_text) + len(view.answer_text)))

        view._throttle._func = timed_update

    @Slot(str, str)
    def on_segment(self, kind: str, text: str) -> None:
        self.view.append(kind, text)

    @Slot(int, int)
    def on_counts(self, thinking_tokens: int, answer_tokens: int) -> None:
        self.view.set_live_counts(thinking_tokens, answer_tokens)

    @Slot()
    def on_done(self) -> None:
        t0 = time.perf_counter()
        self.view.finish(self.thinking, self.answer, [], {"thinking_tokens": self.n_think,
                         "answer_tokens": self.n_answer, "finish_reason": "stop"}, "complete")
        self.finish_s = time.perf_counter() - t0
        QTimer.singleShot(300, QApplication.instance().quit)  # let the final layout and paint run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thinking-tokens", type=int, default=20000)
    parser.add_argument("--answer-tokens", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=400, help="tokens per second")
    parser.add_argument("--history", type=int, default=12, help="finished messages above the live one")
    parser.add_argument("--theme", choices=theme.MODES, default="light")
    parser.add_argument("--screenshot", type=Path, help="save the transcript to this PNG at the end")
    args = parser.parse_args()

    rng = random.Random(7)
    thinking_pieces = tokenize(markdown_text(rng, args.thinking_tokens * 4, answer=False))[: args.thinking_tokens]
    answer_pieces = tokenize(markdown_text(rng, args.answer_tokens * 4, answer=True))[: args.answer_tokens]
    thinking, answer = "".join(thinking_pieces), "".join(answer_pieces)

    qapp = QApplication([])
    theme.apply_theme(qapp, args.theme)
    area = QScrollArea()
    area.setWidgetResizable(True)
    inner = QWidget()
    layout = QVBoxLayout(inner)
    layout.setContentsMargins(24, 16, 24, 16)
    layout.setSpacing(14)
    for i in range(args.history):
        old = markdown_text(rng, 1500, answer=True)
        layout.addWidget(UserMessageView(paragraph(rng, 12), 2 * i))
        view = AssistantMessageView(2 * i + 1)
        view.finish(markdown_text(rng, 2000, answer=False), old, [], {"thinking_tokens": 500}, "complete")
        layout.addWidget(view)
    layout.addWidget(UserMessageView("Is 2^61 - 1 prime? Explain and show code.", 2 * args.history))
    live = AssistantMessageView(2 * args.history + 1)
    layout.addWidget(live)
    layout.addStretch(1)
    area.setWidget(inner)
    area.resize(900, 1000)
    area.show()
    qapp.processEvents()
    # Follow the live message like a chat window does while the user has not scrolled away.
    bar = area.verticalScrollBar()
    bar.rangeChanged.connect(lambda _lo, hi: bar.setValue(hi))

    bench = Bench(live, thinking, answer, len(thinking_pieces), len(answer_pieces))
    producer = Producer(thinking_pieces, answer_pieces, args.rate)
    producer.segment.connect(bench.on_segment, Qt.ConnectionType.QueuedConnection)
    producer.counts.connect(bench.on_counts, Qt.ConnectionType.QueuedConnection)
    producer.done.connect(bench.on_done, Qt.ConnectionType.QueuedConnection)
    thread = threading.Thread(target=producer.run, daemon=True)

    print(f"streaming {len(thinking_pieces)} thinking + {len(answer_pieces)} answer tokens "
          f"({len(thinking):,} + {len(answer):,} chars) at {args.rate:.0f} tokens/s, "
          f"{args.history} messages above", flush=True)
    t0 = time.perf_counter()
    bench.monitor.start()
    thread.start()
    qapp.exec()
    wall = time.perf_counter() - t0
    if args.screenshot:
        area.grab().save(str(args.screenshot))

    gaps = [b - a for a, b in zip(bench.ticks, bench.ticks[1:])]
    stalls = [max(0.0, g - 0.001) for g in gaps]
    print(f"wall {wall:.1f} s, {len(gaps)} monitor ticks, {len(bench.updates)} view updates")
    print(f"event loop stall: longest {ms(max(stalls))}, p99 {ms(percentile(stalls, 0.99))}, "
          f"p99.9 {ms(percentile(stalls, 0.999))}, median {ms(statistics.median(stalls))}")
    for phase in ("thinking", "answer"):
        costs = [(s, n) for p, s, n in bench.updates if p == phase]
        if len(costs) < 20:
            continue
        tenth = max(1, len(costs) // 10)
        first, last = costs[:tenth], costs[-tenth:]
        print(f"{phase} updates ({len(costs)}): first 10% median {ms(statistics.median(s for s, _ in first))} "
              f"p99 {ms(percentile([s for s, _ in first], 0.99))} (at {first[-1][1]:,} chars) | "
              f"last 10% median {ms(statistics.median(s for s, _ in last))} "
              f"p99 {ms(percentile([s for s, _ in last], 0.99))} (at {last[-1][1]:,} chars) | "
              f"max {ms(max(s for s, _ in costs))}")
    print(f"finish (full markdown render of the answer): {ms(bench.finish_s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
