"""Remote engines in the states a real server here cannot be made to produce, from a tiny
Starlette app served by uvicorn on loopback: a stream cut mid-answer, bytes that are not JSON,
a server that goes quiet or never sends [DONE], 5xx with Retry-After, an error event, a TLS
certificate the client cannot trust, a response that waits before its headers, vLLM's
`reasoning` field, and llama-server's thinking budget and control endpoint (the fake speaks its
protocol, read in llama.cpp's tools/server source: `POST /v1/chat/completions/control`, so the
default test run covers it; test_remote_llama_server.py runs the real llama-server where its
binaries are built).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.remote import Endpoint, RemoteEngine
from app.core.server.api import bind_socket, make_server
from app.core.steering import Steering

QUESTION = [{"role": "user", "content": "Hi"}]


def chunk(delta: dict | None = None, finish: str | None = None, cid: str = "chatcmpl-fake", **extra) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": "fake", "choices": choices, **extra}
    return f"data: {json.dumps(data)}\n\n"


class Fake:
    """The fake server: behaviour by the request's model name; records requests and controls."""

    def __init__(self, owned_by: str = "fake", ssl_files: tuple[str, str] | None = None) -> None:
        self.owned_by = owned_by
        self.requests: list[dict] = []
        self.controls: list[dict] = []
        self.disconnected = threading.Event()
        self._ends: dict[str, asyncio.Event] = {}
        app = Starlette(routes=[
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/chat/completions/control", self.control, methods=["POST"]),
        ])
        self.server = make_server(app, log_level="warning")
        if ssl_files:
            self.server.config.ssl_certfile, self.server.config.ssl_keyfile = ssl_files
            self.server.config.load()
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake server did not start"
            time.sleep(0.01)
        self.base_url = f"{'https' if ssl_files else 'http'}://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def engine(self, model: str, **kwargs) -> RemoteEngine:
        timeouts = {k: kwargs.pop(k) for k in ("first_token_timeout_s", "idle_timeout_s", "done_grace_s") if k in kwargs}
        return RemoteEngine(Endpoint(self.base_url, model, **kwargs), server_kind_models(self.owned_by), **timeouts)

    async def models(self, request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": self.owned_by}]})

    async def control(self, request: Request):
        body = await request.json()
        self.controls.append(body)
        if self.owned_by != "llamacpp":
            return JSONResponse({"error": {"message": "Not Found"}}, status_code=404)
        end = self._ends.get(body.get("id"))
        if end is None:
            return JSONResponse({"success": False, "message": "no such completion"})
        end.set()
        return JSONResponse({"success": True})

    async def chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        behaviour = body["model"]
        if behaviour == "500":
            return JSONResponse({"error": {"message": "CUDA out of memory", "type": "server_error"}},
                                status_code=503, headers={"Retry-After": "7"})
        if behaviour == "unknown-model":  # vLLM's answer for a model it does not serve
            return JSONResponse({"object": "error", "message": "The model `unknown-model` does not exist.",
                                 "type": "NotFoundError", "param": None, "code": 404}, status_code=404)
        if behaviour == "forbidden":
            return JSONResponse({"error": {"message": "This key may not use this model."}}, status_code=403)
        if behaviour == "html":
            return Response("<html>Welcome to nginx!</html>", media_type="text/html")
        if behaviour == "slow_headers":  # a long prompt: no byte of the response for 30 s
            for _ in range(300):
                if await request.is_disconnected():
                    self.disconnected.set()
                    break
                await asyncio.sleep(0.1)
            return JSONResponse({})
        return StreamingResponse(self.stream(behaviour, request), media_type="text/event-stream")

    async def stream(self, behaviour: str, request: Request):
        if behaviour == "llama":
            end = self._ends["chatcmpl-llama"] = asyncio.Event()
        yield chunk({"role": "assistant", "content": ""}, cid="chatcmpl-llama" if behaviour == "llama" else "chatcmpl-fake")
        if behaviour == "vllm":  # vLLM's newer field name, usage with reasoning tokens
            for word in ("Let", " me", " think."):
                yield chunk({"reasoning": word})
            for word in ("Hello", " there."):
                yield chunk({"content": word})
            yield chunk({}, "stop")
            yield chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 25, "total_tokens": 34,
                                     "completion_tokens_details": {"reasoning_tokens": 20},
                                     "prompt_tokens_details": {"cached_tokens": 4}})
            yield "data: [DONE]\n\n"
            return
        if behaviour == "llama":  # llama-server: reasoning_content until ended, timings at the end
            for i in range(2000):
                if end.is_set():
                    break
                yield chunk({"reasoning_content": f" step{i}"}, cid="chatcmpl-llama")
                await asyncio.sleep(0.005)
            yield chunk({"content": "The answer."}, cid="chatcmpl-llama")
            yield chunk({}, "stop", cid="chatcmpl-llama",
                        timings={"prompt_n": 12, "cache_n": 30, "predicted_n": 77, "predicted_per_second": 41.5})
            yield "data: [DONE]\n\n"
            return
        if behaviour == "slow_first_token":  # the role chunk at once, then a long prompt
            await asyncio.sleep(1.0)
        yield chunk({"content": "Partial"})
        yield chunk({"content": " answer"})
        if behaviour == "cut":  # the connection drops mid-answer
            raise RuntimeError("connection dropped")
        if behaviour == "ends_early":  # a body that ends cleanly, before any finish_reason
            return
        if behaviour == "garbage":
            yield "data: {this is not json\x00\xff\n\n"
            return
        if behaviour == "error_event":
            yield 'data: {"error": {"message": "the engine crashed", "type": "server_error"}}\n\n'
            return
        if behaviour in ("idle", "no_done"):
            if behaviour == "no_done":
                yield chunk({}, "stop")
            try:
                await asyncio.sleep(60)  # silence, never [DONE]
            finally:
                self.disconnected.set()
            return
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"


def server_kind_models(owned_by: str):
    from app.core.remote import RemoteModel

    return [RemoteModel("fake", owned_by)]


@contextlib.contextmanager
def fake_servers():
    """start(**Fake options) -> a Fake on loopback; every one started is stopped on leaving.
    The fixtures here and in tests/ui/test_remote_window.py are this."""
    servers: list[Fake] = []

    def start(**options) -> Fake:
        servers.append(Fake(**options))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def fake():
    with fake_servers() as start:
        yield start


def test_a_stream_cut_mid_answer_keeps_the_part_received(fake):
    run = fake().engine("cut").chat(QUESTION).run()
    assert run.answer == "Partial answer"
    assert run.stats.finish_reason == "error" and run.error.kind == "cut"
    assert "broke in the middle of the answer" in str(run.error) and "kept" in str(run.error)


def test_a_stream_that_ends_before_its_finish_is_reported(fake):
    run = fake().engine("ends_early").chat(QUESTION).run()
    assert run.answer == "Partial answer" and run.error.kind == "cut"
    assert "ended before the answer was complete" in str(run.error)


def test_bytes_that_are_not_json_end_the_run_with_a_sentence(fake):
    run = fake().engine("garbage").chat(QUESTION).run()
    assert run.answer == "Partial answer"
    assert run.error.kind == "garbage" and "not JSON" in str(run.error)


def test_a_page_that_is_not_a_stream_is_named(fake):
    run = fake().engine("html").chat(QUESTION).run()
    assert run.error.kind == "garbage" and "text/html" in str(run.error) and "/v1" in str(run.error)


def test_a_server_error_gives_the_wait_it_asked_for(fake):
    run = fake().engine("500").chat(QUESTION).run()
    assert run.stats.finish_reason == "error" and run.error.kind == "server"
    assert run.error.retry_after_s == 7.0
    text = str(run.error)
    assert "(503)" in text and "CUDA out of memory" in text and "wait 7 s" in text and "server's log" in text


def test_an_error_event_mid_stream_is_reported_and_the_part_kept(fake):
    run = fake().engine("error_event").chat(QUESTION).run()
    assert run.answer == "Partial answer"
    assert run.error.kind == "server" and "the engine crashed" in str(run.error)


def test_a_server_that_goes_quiet_times_out_with_the_part_kept(fake):
    server = fake()
    started = time.monotonic()
    run = server.engine("idle", idle_timeout_s=0.5).chat(QUESTION).run()
    assert time.monotonic() - started < 5
    assert run.answer == "Partial answer"
    assert run.error.kind == "idle" and "sent nothing for 0.5 s" in str(run.error)
    assert server.disconnected.wait(5)  # the connection was closed, not left hanging


def test_a_finished_stream_without_done_counts_as_complete(fake):
    server = fake()
    started = time.monotonic()
    run = server.engine("no_done", done_grace_s=0.3, idle_timeout_s=30).chat(QUESTION).run()
    assert time.monotonic() - started < 5
    assert run.error is None and run.stats.finish_reason == "stop" and run.answer == "Partial answer"
    assert server.disconnected.wait(5)


def test_stop_before_the_first_byte_closes_the_connection(fake):
    server = fake()
    stop = threading.Event()
    run = server.engine("slow_headers").chat(QUESTION, stop=stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    run.run()
    assert time.monotonic() - started < 10  # not the server's 30 s (slack: the first run imports openai)
    assert run.stats.finish_reason == "cancelled" and run.error is None
    assert server.disconnected.wait(5)


def test_vllm_reasoning_field_and_usage(fake):
    engine = fake(owned_by="vllm").engine("vllm")
    assert engine.info.server_kind == "vLLM"
    run = engine.chat(QUESTION)
    segments = list(run)
    assert [s.kind for s in segments] == ["think"] * 3 + ["answer"] * 2
    assert run.thinking == "Let me think." and run.answer == "Hello there." and run.flags == []
    s = run.stats
    assert (s.thinking_tokens, s.answer_tokens, s.prompt_tokens, s.prompt_reused_tokens) == (20, 5, 9, 4)
    assert s.counts_from == "server usage"


def test_llama_server_budget_and_answer_now_through_its_control_endpoint(fake):
    server = fake(owned_by="llamacpp")
    engine = server.engine("llama")
    assert engine.info.server_kind == "llama-server"
    assert engine.capabilities.budget and engine.capabilities.answer_now
    steering = Steering()
    run = engine.chat(QUESTION, __import__("app.core.engine", fromlist=["Sampling"]).Sampling(thinking_budget=512),
                      steering=steering)
    it = iter(run)
    for _ in range(5):
        assert next(it).kind == "think"
    steering.answer_now()  # as the window's button does, from the GUI thread
    rest = list(it)
    assert rest[-1].kind == "answer" and run.answer == "The answer."
    assert server.controls == [{"id": "chatcmpl-llama", "action": "reasoning_end", "model": "llama"}]
    assert "answer_now" in run.flags
    assert run.thinking_tokens < 2000  # the thought ended early
    sent = server.requests[-1]
    assert sent["reasoning_budget_tokens"] == 512 and sent["reasoning_control"] is True
    s = run.stats
    assert s.counts_from == "llama-server timings"
    assert s.decode_tokens_per_s == 41.5 and s.prompt_tokens == 42 and s.prompt_reused_tokens == 30
    assert s.thinking_tokens + s.answer_tokens == 77


def test_answer_now_called_directly_ends_the_thought(fake):
    server = fake(owned_by="llamacpp")
    run = server.engine("llama").chat(QUESTION)
    it = iter(run)
    next(it)
    run.answer_now()
    list(it)
    assert run.answer == "The answer." and "answer_now" in run.flags and len(server.controls) == 1


def test_an_older_llama_server_without_the_control_says_so(fake):
    from app.core.errors import RemoteUnsupported

    server = fake(owned_by="vllm")  # answers 404 on the control path, like a llama-server before it
    engine = RemoteEngine(Endpoint(server.base_url, "llama", server_kind="llama-server"))
    run = engine.chat(QUESTION)
    it = iter(run)
    next(it)
    with pytest.raises(RemoteUnsupported, match="no control endpoint"):
        run.answer_now()
    run.close()


def test_other_servers_get_no_llama_server_fields(fake):
    server = fake(owned_by="vllm")
    server.engine("vllm").chat(QUESTION).run()
    assert "reasoning_control" not in server.requests[-1] and "reasoning_budget_tokens" not in server.requests[-1]
    assert "max_tokens" not in server.requests[-1]  # the default: the server fits it to its context


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def test_an_untrusted_certificate_is_a_tls_sentence(fake, self_signed):
    server = fake(ssl_files=self_signed)
    run = server.engine("plain").chat(QUESTION).run()
    assert run.error.kind == "tls"
    assert "secure connection to 127.0.0.1" in str(run.error) and "certificate" in str(run.error)
    assert isinstance(ssl.SSLError("x"), OSError)  # what the mapping rests on


def test_an_unknown_model_is_a_404_sentence_with_the_servers_words(fake):
    run = fake(owned_by="vllm").engine("unknown-model").chat(QUESTION).run()
    assert run.stats.finish_reason == "error" and run.error.kind == "not_found"
    text = str(run.error)
    assert "has no 'unknown-model' (404)" in text and "The model `unknown-model` does not exist" in text
    assert "Choose a model the server lists" in text


def test_a_forbidden_key_is_a_403_sentence(fake):
    run = fake().engine("forbidden").chat(QUESTION).run()
    assert run.error.kind == "forbidden" and "(403)" in str(run.error) and "may not use this model" in str(run.error)


def test_a_long_prompt_before_the_first_token_is_waited_for(fake):
    """The silence allowed between tokens does not apply before the first one."""
    run = fake().engine("slow_first_token", idle_timeout_s=0.3, first_token_timeout_s=20).chat(QUESTION).run()
    assert run.error is None and run.answer == "Partial answer"
    assert run.stats.time_to_first_token_s >= 1.0
