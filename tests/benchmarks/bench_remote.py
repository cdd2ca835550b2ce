"""What Ponder's remote engine costs per token over the bare `openai` client.

A Starlette app on loopback streams N chunks as fast as it can (R1-shaped: reasoning_content
deltas, then content deltas, then usage), so the client is the bottleneck. Each round reads the
whole stream once with the plain openai client (the baseline: parse every chunk, touch its
deltas) and once through RemoteEngine (splitting, counting, the watcher, Stop support).

    .venv/bin/python tests/benchmarks/bench_remote.py [--chunks 5000] [--rounds 5]

Prints the median time per stream and per chunk of both, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import app  # noqa: F401
import openai
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from app.core.remote import Endpoint, RemoteEngine, RemoteModel
from app.core.server.api import bind_socket, make_server


def make_app(n: int) -> Starlette:
    think = n * 3 // 4
    lines = ['data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
             '[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n']
    for i in range(n):
        field = "reasoning_content" if i < think else "content"
        lines.append('data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
                     f'[{{"index":0,"delta":{{"{field}":" w{i}"}},"finish_reason":null}}]}}\n\n')
    lines.append('data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
                 '[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5,
             "completion_tokens_details": {"reasoning_tokens": think}}
    lines.append(f'data: {json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [], "usage": usage})}\n\n')
    lines.append("data: [DONE]\n\n")
    body = [line.encode() for line in lines]

    async def chat(request):
        async def stream():
            for i in range(0, len(body), 64):
                yield b"".join(body[i:i + 64])
        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/models", models, methods=["GET"])])


def bare(base_url: str) -> int:
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
    n = 0
    for chunk in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True}):
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            if extra.get("reasoning_content") or choice.delta.content:
                n += 1
    client.close()
    return n


def remote(engine: RemoteEngine) -> int:
    run = engine.chat([{"role": "user", "content": "hi"}]).run()
    assert run.error is None, run.error
    return run.thinking_tokens + run.answer_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = make_server(make_app(args.chunks), log_level="warning")
    sock = bind_socket()
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    engine = RemoteEngine(Endpoint(base_url, "m"), [RemoteModel("m", "vllm")])
    bare(base_url), remote(engine)  # warm up (imports, first connection)
    times = {"bare openai client": [], "RemoteEngine": []}
    for _ in range(args.rounds):
        for name, fn in (("bare openai client", lambda: bare(base_url)), ("RemoteEngine", lambda: remote(engine))):
            t = time.perf_counter()
            count = fn()
            times[name].append(time.perf_counter() - t)
            assert count == args.chunks, (name, count)
    base = statistics.median(times["bare openai client"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:20s} median {med * 1000:8.1f} ms per stream of {args.chunks} chunks "
              f"({med / args.chunks * 1e6:6.1f} µs per chunk), {med / base:.2f}x the bare client")
    server.should_exit = True


if __name__ == "__main__":
    main()
