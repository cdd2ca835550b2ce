"""Cost of ThinkSplitter.feed over a long R1-shaped stream (run by hand).

    .venv/bin/python tests/benchmarks/bench_reasoning.py

Feeds 50k token-sized deltas (thinking, then `</think>` at 80 %, then answer,
with a `<` now and then) and prints microseconds per feed for the first and
last 10 %: they should match, since feed never re-scans earlier text.
"""

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file from anywhere

from app.core.reasoning import ThinkSplitter

N_DELTAS = 50_000
WORDS = ["the", " sum", " of", " x", " is", ",", " wait", " so", ".\n\n", " 2", " <", " b", "'s"]


def deltas() -> list[str]:
    rng = random.Random(0)
    out = [rng.choice(WORDS) for _ in range(N_DELTAS)]
    out[int(N_DELTAS * 0.8)] = "</think>"
    out[int(N_DELTAS * 0.5)] = "</th"  # a split tag that turns out not to be one
    out[int(N_DELTAS * 0.5) + 1] = "ing"
    return out


def main() -> None:
    stream = deltas()
    splitter = ThinkSplitter(prompt_opens_thinking=True)
    times_ns = []
    for delta in stream:
        t0 = time.perf_counter_ns()
        splitter.feed(delta)
        times_ns.append(time.perf_counter_ns() - t0)
    splitter.finish()
    tenth = N_DELTAS // 10
    first = statistics.median(times_ns[:tenth]) / 1000  # median: the machine is shared
    last = statistics.median(times_ns[-tenth:]) / 1000
    t0 = time.perf_counter()
    thinking, answer = splitter.thinking, splitter.answer
    props_ms = (time.perf_counter() - t0) * 1000
    print(f"{N_DELTAS} feeds: first 10% {first:.2f} us/feed, last 10% {last:.2f} us/feed (median)")
    print(f"thinking {len(thinking)} chars, answer {len(answer)} chars, read in {props_ms:.2f} ms")


if __name__ == "__main__":
    main()
