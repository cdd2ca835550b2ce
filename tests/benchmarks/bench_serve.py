"""`ponder serve` overhead on the scripted models: the engine directly vs through the server
(uvicorn + Starlette on loopback, the official openai client). Run:

    .venv/bin/python -m tests.benchmarks.bench_serve

Prints time to first token, decode rate and requests/s; the model is tiny, so what it shows
is the server's own cost per token and per request. The server runs in its own process.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import app  # noqa: F401

import httpx2

from app.core.engine import Engine, LoadOptions
from tests.fixtures.scripted_gguf import SCRIPTS

QUESTION = [{"role": "user", "content": "What is 17 × 23?"}]


def direct(path: Path, repeats: int) -> tuple[list[float], list[float], int]:
    engine = Engine.load(path, LoadOptions(n_ctx=4096))
    ttft, total = [], []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            first = None
            n = 0
            run = engine.chat(QUESTION)
            for _segment in run:
                if first is None:
                    first = time.perf_counter() - t0
            total.append(time.perf_counter() - t0)
            ttft.append(first)
            n = run.stats.thinking_tokens + run.stats.answer_tokens
    finally:
        engine.close()
    return ttft, total, n


def served(path: Path, repeats: int) -> tuple[list[float], list[float], int, float]:
    """Through `ponder serve` in its own process (as a client would meet it), read with httpx2 as
    raw SSE: in one process the client's threads would fight the engine's for the GIL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--model", str(path), "--port", str(port),
                             "--ctx", "4096"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ttft, total = [], []
    n = 0
    try:
        with httpx2.Client(timeout=120) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.get(f"http://127.0.0.1:{port}/v1/models").raise_for_status()
                    break
                except httpx2.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(proc.stderr.read().decode()) from None
                    time.sleep(0.1)
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                first = None
                body = {"messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
                with client.stream("POST", url, json=body) as response:
                    for line in response.iter_lines():
                        if not line.startswith("data: {"):
                            continue
                        chunk = json.loads(line[6:])
                        if first is None and chunk["choices"] and (
                                chunk["choices"][0]["delta"].get("reasoning_content")
                                or chunk["choices"][0]["delta"].get("content")):
                            first = time.perf_counter() - t0
                        if chunk.get("usage"):
                            n = chunk["usage"]["completion_tokens"]
                total.append(time.perf_counter() - t0)
                ttft.append(first)
            k = repeats * 5
            t0 = time.perf_counter()
            for _ in range(k):
                client.post(url, json={"messages": QUESTION, "max_tokens": 1}).raise_for_status()
            rps = k / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
    return ttft[1:], total[1:], n, rps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, repeats in (("standard_r1", 20), ("long_trace", 5)):
            path = SCRIPTS[name].write(Path(folder) / f"{name}.gguf")
            d_ttft, d_total, n = direct(path, repeats)
            s_ttft, s_total, n2, rps = served(path, repeats)
            med = statistics.median
            print(f"{name}: {n} tokens ({n2} through the server)")
            print(f"  engine direct: ttft {med(d_ttft) * 1000:.1f} ms, {n / med(d_total):.0f} tok/s")
            print(f"  through serve: ttft {med(s_ttft) * 1000:.1f} ms, {n2 / med(s_total):.0f} tok/s (streamed), "
                  f"{rps:.0f} requests/s (max_tokens=1, one keep-alive client)")


if __name__ == "__main__":
    main()
