"""What versions of a turn cost in the store, with 20k-token traces (run by hand).

    .venv/bin/python tests/benchmarks/bench_versions.py [--versions 5] [--words 15000] [--runs 5]

A chat whose one turn has --versions versions, each thinking --words words
(bench_compare.r1_like_trace: ~90k characters, about a 20k-token R1 trace), in a real
conversation file. Prints the median time of:
- switch_version (the shown tail moves out, the chosen one moves in, both re-indexed for
  search: one transaction) and opening the chat (get_conversation, every version's text);
- the baseline in the same run: saving one such answer as it ends (update_message with its
  full text and status 'complete', which indexes it for search).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.core.storage import ChatStore  # noqa: E402
from tests.benchmarks.bench_compare import r1_like_trace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--words", type=int, default=15000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    traces = [r1_like_trace(args.words, seed) for seed in range(args.versions)]
    with tempfile.TemporaryDirectory() as folder, ChatStore(Path(folder) / "conversations.db") as store:
        conv = store.create_conversation()
        store.add_message(conv, "user", "How many ways are there to choose the items?")
        for n, trace in enumerate(traces):
            if n:
                store.start_version(conv, 0)
            store.add_message(conv, "assistant", f"The answer is {n}.", trace)

        switches, opens, saves = [], [], []
        for run in range(args.runs):
            target = store.get_conversation(conv).versions_of(0)[run % (args.versions - 1)].id
            t = time.perf_counter()
            store.switch_version(conv, target)
            switches.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.get_conversation(conv)
            opens.append(time.perf_counter() - t)

            other = store.create_conversation()
            msg = store.add_message(other, "assistant", "", status="streaming")
            t = time.perf_counter()
            store.update_message(msg, thinking=traces[run % args.versions], content="The answer.", status="complete")
            saves.append(time.perf_counter() - t)

    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"{args.versions} versions of {args.words:,} words ({len(traces[0]):,} characters) each; "
          f"median of {args.runs}, search index {'on' if store.has_fts else 'off'}")
    print(f"switch_version:                      {ms(switches):6.1f} ms = {ms(switches) / ms(saves):.1f}x the baseline")
    print(f"open the chat (all versions' text):  {ms(opens):6.1f} ms")
    print(f"baseline, save one finished answer:  {ms(saves):6.1f} ms")


if __name__ == "__main__":
    main()
