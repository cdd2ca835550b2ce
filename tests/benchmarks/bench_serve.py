"""`ponder serve` overhead on the scripted models: the engine directly vs through the server
(uvicorn + Starlette on loopback, the official openai client). Run:

    .venv/bin/python -m tests.benchmarks.bench_serve

Prints time to first token, decode rate and requests/s; the model is tiny, so what it shows
is the server's own cost per token and per request.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import app  # noqa: F401

import openai

from app.core.engine import Engine, LoadOptions
from app.core.server.api import build_app, make_server
from app.core.server.service import EngineService
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
    service = EngineService(path, LoadOptions(n_ctx=4096)).start()
    server = make_server(build_app(service), log_level="warning")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1", api_key="x", max_retries=0)
    ttft, total = [], []
    n = 0
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            first = None
            for chunk in client.chat.completions.create(model="m", messages=QUESTION, stream=True,
                                                        stream_options={"include_usage": True}):
                if first is None and chunk.choices and (
                        getattr(chunk.choices[0].delta, "reasoning_content", None) or chunk.choices[0].delta.content):
                    first = time.perf_counter() - t0
                if chunk.usage:
                    n = chunk.usage.completion_tokens
            total.append(time.perf_counter() - t0)
            ttft.append(first)
        t0 = time.perf_counter()
        k = repeats * 2
        for _ in range(k):
            client.chat.completions.create(model="m", messages=QUESTION, max_tokens=1)
        rps = k / (time.perf_counter() - t0)
    finally:
        service.close()
        server.should_exit = True
        thread.join(10)
    return ttft, total, n, rps


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
                  f"{rps:.0f} requests/s (max_tokens=1, one client)")


if __name__ == "__main__":
    main()
