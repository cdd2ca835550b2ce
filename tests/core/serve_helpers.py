"""Ponder's own server (uvicorn + Starlette, an EngineService over a GGUF) started on loopback
for a test and stopped after it: used by test_serve.py, test_remote.py, tests/ui/test_remote_window.py and
the `serve` and `ponder_served` fixtures in tests/core/conftest.py."""

from __future__ import annotations

import contextlib
import threading
import time

import openai

from app.core.engine import LoadOptions
from app.core.server.api import bind_socket, build_app, make_server
from app.core.server.service import EngineService


class Served:
    def __init__(self, service: EngineService, server, thread: threading.Thread, port: int) -> None:
        self.service, self.server, self.thread, self.port = service, server, thread, port
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def client(self, api_key: str = "none") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, timeout=30)

    def wait_for(self, condition, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.005)
        raise AssertionError("condition not reached in time")


def start_server(model, *, max_waiting: int = 8, n_ctx: int = 4096, **app_options) -> Served:
    service = EngineService(model, LoadOptions(n_ctx=n_ctx), max_waiting=max_waiting).start()
    server = make_server(build_app(service, **app_options), log_level="warning")
    sock = bind_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    served = Served(service, server, thread, sock.getsockname()[1])
    try:
        served.wait_for(lambda: server.started)
    except AssertionError:
        stop_server(served)
        raise
    return served


def stop_server(served: Served) -> None:
    served.service.close()  # cancels what runs, so open streams end
    served.server.should_exit = True
    served.thread.join(10)
    assert not served.thread.is_alive(), "the server did not shut down"


@contextlib.contextmanager
def ponder_servers(scripted_model):
    """start(script, max_waiting=, n_ctx=, **build_app options) -> a fresh server of that scripted
    model; every one started is stopped on leaving."""
    started: list[Served] = []

    def start(script: str = "standard_r1", **options) -> Served:
        started.append(start_server(scripted_model(script), **options))
        return started[-1]

    try:
        yield start
    finally:
        for served in started:
            stop_server(served)
