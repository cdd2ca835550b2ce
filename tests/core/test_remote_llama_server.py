"""Remote engine against a real llama-server whose layers run on a real `ggml-rpc-server` worker
(llama.cpp's distributed setup of docs/cluster.md, both on loopback), serving a scripted R1 GGUF.

Skipped unless the two binaries exist: llama.cpp is not built as programs by `pip install`.
Build them once from the llama.cpp that llama-cpp-python vendors (CPU, ~1 h on 2 busy cores):

    tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B /tmp/lbuild -DGGML_RPC=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
    cmake --build /tmp/lbuild --target llama-server ggml-rpc-server -j2
    PONDER_LLAMA_CPP_BIN=/tmp/lbuild/bin pytest tests/core/test_remote_llama_server.py

It checks what the fake in test_remote_failures.py stands in for: `reasoning_content`, usage and
`timings`, the per-request `reasoning_budget_tokens`, and the control endpoint that ends a thought.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from app.core.engine import Sampling
from app.core.remote import Endpoint, RemoteEngine
from app.core.steering import Steering
from tests.fixtures.scripted_gguf import SCRIPTS, STANDARD_ANSWER, STANDARD_THINKING

QUESTION = [{"role": "user", "content": "What is 17 × 23?"}]
PIECES = SCRIPTS["standard_r1"].pieces


def _binary(name: str) -> str | None:
    folder = os.environ.get("PONDER_LLAMA_CPP_BIN")
    if folder and (Path(folder) / name).exists():
        return str(Path(folder) / name)
    return shutil.which(name)


LLAMA_SERVER = _binary("llama-server")
RPC_SERVER = _binary("ggml-rpc-server") or _binary("rpc-server")
pytestmark = pytest.mark.skipif(not (LLAMA_SERVER and RPC_SERVER),
                                reason="llama-server and ggml-rpc-server are not built (see the module docstring)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def _start_rpc_worker(log: Path) -> tuple[subprocess.Popen, int]:
    """A ggml-rpc-server on loopback (it serves one llama-server at a time: one each)."""
    port = _free_port()
    proc = subprocess.Popen([RPC_SERVER, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:  # it speaks its own protocol: wait until it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"ggml-rpc-server did not start: {log.read_text()}") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def llama_server(scripted_model, tmp_path_factory):
    """llama_server(script) -> base URL of llama-server --rpc with its own ggml-rpc-server worker."""
    logs = tmp_path_factory.mktemp("llama_server")
    procs: list[subprocess.Popen] = []
    started: dict[str, str] = {}

    def start(script: str) -> str:
        if script not in started:
            rpc, rpc_port = _start_rpc_worker(logs / f"{script}-rpc.log")
            procs.append(rpc)
            port = _free_port()
            log = logs / f"{script}.log"
            proc = subprocess.Popen(
                [LLAMA_SERVER, "--model", str(scripted_model(script)), "--rpc", f"127.0.0.1:{rpc_port}",
                 "--n-gpu-layers", "99", "--ctx-size", "4096", "--threads", "1", "--parallel", "1",
                 "--jinja", "--reasoning-format", "deepseek", "--alias", "deepseek-r1-scripted",
                 "--host", "127.0.0.1", "--port", str(port), "--verbose"],
                stdout=open(log, "wb"), stderr=subprocess.STDOUT)
            procs.append(proc)
            _wait(f"http://127.0.0.1:{port}/health", proc, log)
            started[script] = f"http://127.0.0.1:{port}/v1"
            text = log.read_text(errors="replace")
            assert "assigned to device RPC0" in text, "the layers were not offloaded to the RPC worker"
        return started[script]

    yield start
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_reasoning_content_usage_and_timings_from_llama_server(llama_server):
    engine = RemoteEngine.connect(Endpoint(llama_server("standard_r1")))
    assert engine.info.server_kind == "llama-server"
    assert engine.capabilities.budget and engine.capabilities.answer_now
    run = engine.chat(QUESTION, Sampling(seed=1))
    kinds = [s.kind for s in run]
    assert kinds[0] == "think" and kinds[-1] == "answer"
    assert run.thinking == STANDARD_THINKING.strip() and run.answer == STANDARD_ANSWER.strip()
    assert run.flags == [] and run.error is None
    s = run.stats
    assert s.counts_from == "server usage"
    assert s.thinking_tokens + s.answer_tokens in (len(PIECES), len(PIECES) + 1)  # llama-server counts the EOS
    assert s.prompt_tokens > 5
    assert s.decode_tokens_per_s and s.decode_tokens_per_s > 0  # from llama-server's timings
    assert engine.reasoning_learned is True


def test_the_thinking_budget_reaches_llama_server(llama_server):
    engine = RemoteEngine.connect(Endpoint(llama_server("long_trace")))
    run = engine.chat(QUESTION, Sampling(thinking_budget=20)).run()
    assert run.error is None and run.stats.finish_reason == "stop"
    assert run.thinking_tokens < 100  # of the script's 3000
    assert "budget_reached" in run.flags
    assert run.answer.endswith("the answer is **42**.")


def test_answer_now_ends_the_thought_through_the_control_endpoint(llama_server):
    engine = RemoteEngine.connect(Endpoint(llama_server("long_trace")))
    steering = Steering()
    run = engine.chat(QUESTION, steering=steering)
    it = iter(run)
    for _ in range(10):
        assert next(it).kind == "think"
    steering.answer_now()
    list(it)
    assert run.error is None, run.error
    assert "answer_now" in run.flags and run.notices == []
    assert run.thinking_tokens < 1000
    assert run.answer.endswith("the answer is **42**.")
