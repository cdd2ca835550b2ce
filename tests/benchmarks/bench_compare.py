"""Compare two ~20k-token reasoning traces in the compare view and measure the GUI thread (run by hand).

    .venv/bin/python tests/benchmarks/bench_compare.py [--words 15000] [--runs 3]

Two R1-like traces (`r1_like_trace`: English sentences of a maths argument, 15,000 words
and ~90k characters each by default, about what a 20k-token R1 trace holds; they share
their first 30%, as two samples of one prompt often do) are stored as two versions of one
turn, and the compare view opens on them in an offscreen window.

Prints, median of --runs:
- the diff itself (`compare_texts`: sentences, then the words of differing stretches; on
  a worker thread in the app) against the baseline of one difflib pass over all the words
  (autojunk on and off);
- filling the two documents with the result (the only part on the GUI thread);
- event loop stalls from opening the view until both sides show the diff: a 1 ms timer
  records the gaps between its ticks (longest and 99th percentile), against the baseline
  of the same dialog computing the diff on the GUI thread.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)

_SENTENCES = [
    "Okay, so I need to figure out how many ways there are to choose {a} items from {b}.",
    "Let me start by writing down what the problem gives me.",
    "Wait, let me check that again: {a} times {b} is {ab}, not {ab1}.",
    "So the sum of the first {a} terms is {ab}.",
    "Hmm, maybe I should consider the case where n is {a} separately.",
    "Alternatively, I could factor the expression as ({a}x + {b})(x - {c}).",
    "That gives {ab}, which matches what I had before.",
    "But wait, the problem says the total must be divisible by {c}.",
    "Let me recount: there are {a} ways to pick the first one and {b} for the second.",
    "If I plug in x = {c}, the left side becomes {ab} and the right side {ab1}.",
    "That can't be right, so I must have made a mistake somewhere.",
    "Going back to the equation, {a}x = {ab}, so x = {b}.",
    "I think the key insight is that the pattern repeats every {c} steps.",
    "Let me verify with a smaller example, say n = {c}.",
    "Yes, that works: {a} + {b} = {apb}.",
    "So far I have {a} cases that satisfy the condition.",
    "Now, what about the remaining {b} cases?",
    "Each of them contributes {c} more, for a total of {ab}.",
    "Actually, I should double-check the boundary case where everything is zero.",
    "Putting it all together, the answer should be {ab}.",
]


def r1_like_trace(words: int, seed: int, *, shared_with: int | None = None, shared: float = 0.3) -> str:
    """About `words` words of an R1-style maths thought. With `shared_with` (another seed), its
    first `shared` share is that trace's, word for word."""
    rng = random.Random(seed)
    prefix = ""
    if shared_with is not None:
        other = r1_like_trace(words, shared_with)
        cut = other.split(" ")[: int(words * shared)]
        prefix = " ".join(cut) + " "
    out, count, in_paragraph = [prefix] if prefix else [], len(prefix.split()), 0
    while count < words:
        a, b, c = rng.randint(2, 40), rng.randint(2, 40), rng.randint(2, 9)
        sentence = rng.choice(_SENTENCES).format(a=a, b=b, c=c, ab=a * b, ab1=a * b + c, apb=a + b)
        in_paragraph += 1
        if in_paragraph > rng.randint(4, 8):
            out.append("\n\n")
            in_paragraph = 0
        out.append(sentence + " ")
        count += len(sentence.split())
    return "".join(out).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=15000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.storage import ChatStore
    from app.ui import compare_view
    from app.ui.compare_view import _WORD as WORD
    from app.ui.compare_view import CompareDialog, compare_texts, turn_texts

    left_text = r1_like_trace(args.words, seed=1)
    right_text = r1_like_trace(args.words, seed=2, shared_with=1)
    print(f"traces: {len(left_text.split()):,} and {len(right_text.split()):,} words, "
          f"{len(left_text):,} and {len(right_text):,} characters")

    app_ = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        store = ChatStore(Path(folder) / "conversations.db")
        conv = store.create_conversation()
        store.add_message(conv, "user", "How many ways are there to choose the items?")
        store.add_message(conv, "assistant", "The answer is **391**.", left_text)
        store.start_version(conv, 0)
        store.add_message(conv, "assistant", "The answer is **392**.", right_text)
        versions = store.get_conversation(conv).versions_of(0)
        store.close()

    texts = turn_texts(versions[0]), turn_texts(versions[1])

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    import difflib

    def one_pass(autojunk: bool) -> None:
        """The baseline: one difflib pass over all the words of the two thoughts."""
        words = [WORD.findall(t) for t in (left_text, right_text)]
        difflib.SequenceMatcher(None, *[[w.strip() for w in ws] for ws in words], autojunk=autojunk).get_opcodes()

    two_step = [timed(lambda: compare_texts(*texts)) for _ in range(args.runs)]
    junk = [timed(lambda: one_pass(True)) for _ in range(args.runs)]
    no_junk = [timed(lambda: one_pass(False)) for _ in range(args.runs)]
    comparison = compare_texts(*texts)
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"diff, sentences then words (the app):   {ms(two_step):7.0f} ms ({comparison.summary()})")
    print(f"diff, one pass over words, autojunk on: {ms(junk):7.0f} ms = {ms(junk) / ms(two_step):.0f}x")
    print(f"diff, one pass over words, autojunk off:{ms(no_junk):7.0f} ms = {ms(no_junk) / ms(two_step):.0f}x")

    def open_and_measure(on_gui_thread: bool) -> tuple[float, float, float]:
        """(longest stall, p99 stall, fill time) in ms from opening the view until it shows the diff."""
        real_run = compare_view.run_in_background
        if on_gui_thread:  # the baseline: the same work, done where the result is shown
            def inline(work, *, owner, on_done=None, **_kw):
                on_done(work(None))
            compare_view.run_in_background = inline
        fills: list[float] = []
        real_document = CompareDialog._document

        def document(self, side, parent):
            t = time.perf_counter()
            result = real_document(self, side, parent)
            fills.append(time.perf_counter() - t)
            return result

        CompareDialog._document = document
        gaps: list[float] = []
        clock = QElapsedTimer()
        ticker = QTimer()
        ticker.setTimerType(compare_view.Qt.TimerType.PreciseTimer)
        ticker.setInterval(1)
        last = [0]

        def tick() -> None:
            now = clock.elapsed()
            gaps.append(now - last[0])
            last[0] = now

        ticker.timeout.connect(tick)
        try:
            clock.start()
            ticker.start()
            for _ in range(20):  # settle
                app_.processEvents()
            gaps.clear()
            last[0] = clock.elapsed()
            dialog = CompareDialog(versions, 0, 1)
            dialog.show()
            deadline = time.monotonic() + 120
            while dialog.comparison is None and time.monotonic() < deadline:
                app_.processEvents()
                time.sleep(0.0005)
            for _ in range(20):
                app_.processEvents()
            ticker.stop()
            dialog.close()
            dialog.deleteLater()
            app_.processEvents()
        finally:
            compare_view.run_in_background = real_run
            CompareDialog._document = real_document
        ordered = sorted(gaps)
        p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
        return max(gaps, default=0.0), p99, sum(fills) * 1000

    worker = [open_and_measure(False) for _ in range(args.runs)]
    inline = [open_and_measure(True) for _ in range(args.runs)]
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"filling both documents (GUI thread):    {med(worker, 2):7.0f} ms")
    print(f"stalls, diff on a worker (the app):     longest {med(worker, 0):5.0f} ms, p99 {med(worker, 1):4.0f} ms")
    print(f"stalls, diff on the GUI thread (base):  longest {med(inline, 0):5.0f} ms, p99 {med(inline, 1):4.0f} ms"
          f"  -> the app's longest stall is {med(worker, 0) / max(med(inline, 0), 1):.2f}x the baseline's")


if __name__ == "__main__":
    main()
