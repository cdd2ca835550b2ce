"""Benchmark: what opening a big conversation file costs, and what `PRAGMA quick_check` costs.

Run by hand (not collected by pytest; a few minutes, most of it building the file):

    .venv/bin/python tests/benchmarks/bench_store_open.py [--size-gb 1.0] [--keep PATH]

It builds a conversation file of about `--size-gb` in a temporary folder under /tmp, the way
the app fills one: ChatStore creates the schema and search index, then conversations of
prompts and R1-shaped answers (long thinking, a markdown answer) go in through the same
triggers. Then, with the file evicted from the OS page cache ("cold", as after a reboot) and
again with it cached ("warm", as on a second start), it times separately:

- open: `ChatStore(path)` as the window's start does it, plus the first `list_conversations`;
- quick_check: `PRAGMA quick_check` on a connection of its own (`ChatStore.check_integrity`);
- streaming scan: the start's look-up of messages a crash left streaming, as schema v1 ran it
  (no index: it reads every message), for comparison with the open.

The file is deleted at the end unless --keep names where to move it. Results: docs/architecture.md
("Saved conversations").
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.core.storage import ChatStore  # noqa: E402

WORDS = (
    "the of and to a in is that for it as with was on be by this are or at from so we "
    "number prime modulo check case value function loop list index sum wait maybe let me "
    "consider approach result answer hmm actually first then next because therefore compute "
    "triangle integral derivative bound assume suppose contradiction lemma proof verify again "
    "recursion base step induction array pointer memory cache latency throughput estimate"
).split()
MARKDOWN = (
    "\n\n**Result:** the value is $\\boxed{391}$.\n\n| step | value |\n|---|---|\n| a | 340 |\n| b | 51 |\n\n"
    "```python\ndef f(n):\n    return sum(range(n))\n```\n\n- first point\n- second point\n"
)
MiB = 1024**2


def text_pool(rng: random.Random, chars: int) -> str:
    """Paragraphs of reasoning-like prose; messages are slices of it (building is then fast)."""
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def piece(rng: random.Random, pool: str, low: int, high: int) -> str:
    length = rng.randint(low, high)
    start = rng.randrange(0, len(pool) - length)
    return pool[start : start + length]


def build(path: Path, size_bytes: int, seed: int = 1) -> dict[str, int]:
    """Fill `path` with conversations until the file is about `size_bytes`."""
    rng = random.Random(seed)
    pool = text_pool(rng, 8 * MiB)
    ChatStore(path).close()  # the app's schema, triggers and search index
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    counts = {"conversations": 0, "messages": 0, "text_bytes": 0}
    now = time.time() - 3 * 365 * 86400
    while path.stat().st_size < size_bytes:
        conn.execute("BEGIN")
        for _ in range(50):
            now += rng.uniform(600, 86400)
            cur = conn.execute(
                "INSERT INTO conversations (title, custom_title, created_at, updated_at, model) VALUES (?, 0, ?, ?, ?)",
                (piece(rng, pool, 20, 60).strip(), now, now, "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M"),
            )
            conv_id = cur.lastrowid
            for turn in range(rng.randint(1, 8)):
                prompt = piece(rng, pool, 40, 1500)
                thinking = piece(rng, pool, 2_000, 60_000)  # R1 traces: hundreds to thousands of tokens
                answer = piece(rng, pool, 200, 4_000) + MARKDOWN
                stats = '{"prompt_tokens": 812, "thinking_tokens": 2403, "answer_tokens": 377}'
                rows = [
                    (conv_id, 2 * turn, "user", prompt, "", None, None, now),
                    (conv_id, 2 * turn + 1, "assistant", answer, thinking, stats, '{"temperature": 0.6}', now),
                ]
                conn.executemany(
                    """INSERT INTO messages (conversation_id, position, role, content, thinking, stats,
                           sampling, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'complete')""",
                    rows,
                )
                counts["messages"] += 2
                counts["text_bytes"] += len(prompt) + len(thinking) + len(answer)
            counts["conversations"] += 1
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


def evict_from_cache(path: Path) -> None:
    """Drop the file's pages from the OS page cache, as after a reboot (Linux; no root needed)."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists() and hasattr(os, "posix_fadvise"):
            fd = os.open(name, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def time_open(path: Path) -> float:
    t0 = time.perf_counter()
    store = ChatStore(path)
    store.list_conversations()
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed


def time_quick_check(path: Path, cold: bool) -> float:
    store = ChatStore(path)  # the check runs next to the app's open store, on its own connection
    try:
        if cold:
            evict_from_cache(path)
        t0 = time.perf_counter()
        store.check_integrity()
        return time.perf_counter() - t0
    finally:
        store.close()


def time_streaming_scan_without_index(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        t0 = time.perf_counter()
        conn.execute("SELECT id, flags FROM messages NOT INDEXED WHERE status = 'streaming'").fetchall()
        return time.perf_counter() - t0
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of the conversation file (GB)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each measurement")
    parser.add_argument("--keep", type=Path, default=None, help="move the built file here instead of deleting it")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ponder-bench-store-", dir="/tmp"))
    path = folder / "conversations.db"
    try:
        t0 = time.perf_counter()
        counts = build(path, int(args.size_gb * 1e9))
        print(f"built {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s: "
              f"{counts['conversations']} conversations, {counts['messages']} messages, "
              f"{counts['text_bytes'] / 1e6:.0f} MB of text (the rest is the search index)")
        results: dict[str, list[float]] = {}
        for _ in range(args.runs):
            evict_from_cache(path)
            results.setdefault("open, cold", []).append(time_open(path))
            results.setdefault("open, warm", []).append(time_open(path))
            results.setdefault("quick_check, cold", []).append(time_quick_check(path, cold=True))
            results.setdefault("quick_check, warm", []).append(time_quick_check(path, cold=False))
            evict_from_cache(path)
            results.setdefault("v1 scan, cold", []).append(time_streaming_scan_without_index(path))
            results.setdefault("v1 scan, warm", []).append(time_streaming_scan_without_index(path))
        for name, values in results.items():
            ms = [v * 1000 for v in values]
            print(f"{name:18s} median {statistics.median(ms):8.1f} ms   (runs: {', '.join(f'{v:.1f}' for v in ms)})")
        if args.keep:
            shutil.move(str(path), args.keep)
            print(f"kept the file at {args.keep}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
