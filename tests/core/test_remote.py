"""Remote engines against real servers on loopback, started by the tests:

- Ponder's own `serve` (uvicorn + Starlette over a scripted GGUF): the `reasoning_content` path,
  usage with reasoning tokens, 401, 429, 404, Stop;
- llama-cpp-python's own server (`python -m llama_cpp.server`, its [server] extra) over scripted
  GGUFs: the thought in `content`, opened by the server's template (only `</think>` comes) or
  by the model (`<think>` comes too), and a plain answer.

States no real server here can be made to produce (a cut stream, garbage bytes, silence, a
llama-server with its control endpoint) are in test_remote_failures.py.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import httpx2
import pytest

from app.__main__ import main
from app.core import secrets
from app.core.engine import Sampling
from app.core.errors import RemoteError, RemoteUnsupported
from app.core.remote import Endpoint, RemoteEngine, list_models, normalise_base_url
from app.core.server.service import ChatRequest
from app.core.steering import Steering
from tests.core.test_serve import engine_held
from tests.fixtures.scripted_gguf import (
    LONG_TRACE_THINKING_TOKENS,
    NON_REASONING_ANSWER,
    SCRIPTS,
    STANDARD_ANSWER,
    STANDARD_THINKING,
)

THINKING = STANDARD_THINKING.strip()
ANSWER = STANDARD_ANSWER.strip()
PIECES = SCRIPTS["standard_r1"].pieces
REASONING_TOKENS = PIECES.index("</think>") + 1  # the closing tag is the thinking's last token
QUESTION = [{"role": "user", "content": "What is 17 × 23?"}]


@contextlib.contextmanager
def server_full(served):
    """The engine busy and its one waiting place taken: the next request gets 429."""
    with engine_held(served.service):
        waiter = served.service.submit(ChatRequest(QUESTION, Sampling(max_tokens=1)), lambda kind, payload: None)
        served.wait_for(lambda: served.service.waiting == 1)
        try:
            yield
        finally:
            waiter.cancel()


def kinds(segments) -> str:
    """'think' and 'answer' runs in order, e.g. 'think,answer'."""
    out: list[str] = []
    for s in segments:
        if not out or out[-1] != s.kind:
            out.append(s.kind)
    return ",".join(out)


# --- Ponder's own serve: reasoning_content --------------------------------------------------


def test_reasoning_content_from_ponder_serve_splits_and_counts_from_usage(ponder_served):
    engine = RemoteEngine.connect(Endpoint(ponder_served.base_url))
    assert engine.info.server_kind == "Ponder"
    assert engine.info.name == ponder_served.service.model_id  # the first listed model
    run = engine.chat(QUESTION, Sampling(seed=3))
    segments = list(run)
    assert kinds(segments) == "think,answer"
    assert "".join(s.text for s in segments if s.kind == "think").strip() == THINKING
    assert run.thinking == THINKING and run.answer == ANSWER
    assert run.flags == [] and run.error is None and not run.resplit
    stats = run.stats
    assert stats.finish_reason == "stop"
    assert stats.counts_from == "server usage"
    assert stats.thinking_tokens == REASONING_TOKENS  # usage.completion_tokens_details.reasoning_tokens
    assert stats.thinking_tokens + stats.answer_tokens == len(PIECES)
    assert stats.prompt_tokens > 5 and stats.context_used == stats.prompt_tokens + len(PIECES)
    assert stats.source == f"remote: 127.0.0.1:{ponder_served.port} · {ponder_served.service.model_id}"
    assert stats.time_to_first_token_s is not None and stats.total_s >= stats.time_to_first_token_s
    assert engine.reasoning_learned is True and engine.info.is_reasoning is True


def test_list_models_and_the_address_forms_a_person_types(ponder_served):
    port = ponder_served.port
    for typed in (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/v1/chat/completions"):
        assert normalise_base_url(typed) == f"http://127.0.0.1:{port}/v1"
        models = list_models(typed)
        assert [m.id for m in models] == [ponder_served.service.model_id]
        assert models[0].owned_by == "ponder"
    assert normalise_base_url("api.deepseek.com") == "https://api.deepseek.com/v1"
    with pytest.raises(RemoteError, match="not a server address"):
        normalise_base_url("ftp://x")


def test_stop_closes_the_stream_within_a_token_and_the_server_stops_generating(serve):
    served = serve("long_trace")
    engine = RemoteEngine.connect(Endpoint(served.base_url))
    stop = threading.Event()
    run = engine.chat(QUESTION, stop=stop)
    it = iter(run)
    for _ in range(5):
        next(it)
    stop.set()
    stopped_at = time.monotonic()
    rest = list(it)
    assert time.monotonic() - stopped_at < 1.0  # at most a chunk already on its way
    assert len(rest) <= 2
    assert run.stats.finish_reason == "cancelled" and run.error is None
    assert run.thinking and run.thinking_tokens < LONG_TRACE_THINKING_TOKENS  # the part received is kept
    # the server saw the connection close and cancelled the generation
    result = served.wait_for(lambda: served.service.recent and served.service.recent[-1])
    assert result.finish_reason == "cancelled"
    assert result.stats.thinking_tokens < LONG_TRACE_THINKING_TOKENS


def test_a_new_chat_or_closing_the_engine_ends_the_run_before(serve):
    served = serve("long_trace")
    engine = RemoteEngine.connect(Endpoint(served.base_url))
    first = engine.chat(QUESTION)
    it = iter(first)
    next(it)
    engine.close()
    list(it)
    assert first.stats.finish_reason == "cancelled"


def test_wrong_or_missing_key_is_a_401_sentence_and_the_right_key_works(serve):
    served = serve(api_key="s3cret")
    with pytest.raises(RemoteError) as info:
        RemoteEngine.connect(Endpoint(served.base_url, api_key="wrong"))
    assert info.value.kind == "auth"
    assert "refused the API key (401)" in str(info.value) and "Check the key" in str(info.value)
    with pytest.raises(RemoteError, match="401"):
        list_models(served.base_url)
    run = RemoteEngine.connect(Endpoint(served.base_url, api_key="s3cret")).chat(QUESTION).run()
    assert run.answer == ANSWER


def test_a_busy_server_429_ends_the_run_with_retry_advice(serve):
    served = serve(max_waiting=1)
    engine = RemoteEngine.connect(Endpoint(served.base_url))
    with server_full(served):
        run = engine.chat(QUESTION).run()
    assert run.stats.finish_reason == "error"
    assert run.error.kind == "busy" and run.error.retry_after_s == 1.0
    assert "(429)" in str(run.error) and "wait 1 s" in str(run.error)
    assert run.answer == "" and run.thinking == ""


def test_a_wrong_path_is_a_404_sentence(ponder_served):
    engine = RemoteEngine.connect(Endpoint(f"http://127.0.0.1:{ponder_served.port}/nothing-here", "m"))
    run = engine.chat(QUESTION).run()
    assert run.stats.finish_reason == "error" and run.error.kind == "not_found"
    assert "(404)" in str(run.error) and "/v1" in str(run.error)


def test_nothing_listening_is_an_unreachable_sentence():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteError) as info:
        RemoteEngine.connect(Endpoint(f"http://127.0.0.1:{port}/v1"))
    assert info.value.kind == "unreachable"
    assert f"Could not reach 127.0.0.1:{port} (connection refused" in str(info.value)
    run = RemoteEngine(Endpoint(f"http://127.0.0.1:{port}/v1", "m")).chat(QUESTION).run()
    assert run.stats.finish_reason == "error" and run.error.kind == "unreachable"


def test_answer_now_and_budget_say_so_where_the_server_cannot(ponder_served):
    engine = RemoteEngine.connect(Endpoint(ponder_served.base_url))
    caps = engine.capabilities
    assert not caps.answer_now and not caps.budget
    assert "can't end the thinking early" in caps.answer_now_note
    assert "can't limit the thinking" in caps.budget_note
    steering = Steering()
    steering.answer_now()
    steering.nudge("Check 17 × 3 again.")
    run = engine.chat(QUESTION, Sampling(thinking_budget=10), steering=steering)
    with pytest.raises(RemoteUnsupported, match="can't end the thinking early"):
        run.answer_now()
    run.run()
    assert run.answer == ANSWER and "answer_now" not in run.flags  # nothing was cut short
    assert caps.budget_note in run.notices and caps.answer_now_note in run.notices
    assert steering.unused == ["Check 17 × 3 again."]


# --- llama-cpp-python's server: the thought in content ------------------------------------------


class LlamaCppServer:
    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc, self.port = proc, port
        self.base_url = f"http://127.0.0.1:{port}/v1"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_cpp_server(scripted_model, tmp_path_factory):
    """llama_cpp_server(script) -> `python -m llama_cpp.server` over that script's GGUF, listed as
    "scripted-model" (a name that says nothing about reasoning). One process per script."""
    pytest.importorskip("sse_starlette", reason="llama-cpp-python's [server] extra is not installed")
    started: dict[str, LlamaCppServer] = {}
    logs = tmp_path_factory.mktemp("llama_cpp_server")

    def start(script: str) -> LlamaCppServer:
        if script not in started:
            port = _free_port()
            log = open(logs / f"{script}.log", "wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(scripted_model(script)),
                 "--model_alias", "scripted-model", "--host", "127.0.0.1", "--port", str(port),
                 "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False"],
                stdout=log, stderr=subprocess.STDOUT)
            server = LlamaCppServer(proc, port)
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx2.get(server.base_url + "/models", timeout=2).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"llama_cpp.server did not start: {(logs / f'{script}.log').read_text()}")
                time.sleep(0.1)
            started[script] = server
        return started[script]

    yield start
    for server in started.values():
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()


def test_llama_cpp_server_sends_content_only_and_no_opening_tag(llama_cpp_server):
    """What the splitting below rests on: llama-cpp-python's server with an R1 template streams the
    thought in `content`, no `reasoning_content`, and no opening `<think>`."""
    server = llama_cpp_server("standard_r1")
    body = {"model": "scripted-model", "messages": QUESTION, "stream": True}
    with httpx2.stream("POST", server.base_url + "/chat/completions", json=body, timeout=30) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
    assert not any("reasoning_content" in d or "reasoning" in d for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert "</think>" in content and "<think>" not in content


def test_template_opened_thought_is_split_live_when_the_name_says_r1(llama_cpp_server):
    server = llama_cpp_server("standard_r1")
    # llama-cpp-python serves its one model under any name; this one says "R1".
    engine = RemoteEngine.connect(Endpoint(server.base_url, "DeepSeek-R1-Distill-Qwen-7B"))
    assert engine.info.server_kind == "llama-cpp-python"
    assert engine.info.is_reasoning and engine.info.reasoning_source == "name"
    assert any("does not list 'DeepSeek-R1-Distill-Qwen-7B'" in n for n in engine.notices)
    run = engine.chat(QUESTION)
    segments = list(run)
    assert kinds(segments) == "think,answer"
    assert run.thinking == THINKING and run.answer == ANSWER
    assert run.flags == [] and not run.resplit and run.error is None
    stats = run.stats
    assert stats.counts_from == "stream chunks"  # this server sends no usage in a stream
    assert stats.thinking_tokens + stats.answer_tokens == len(PIECES)  # one chunk, one token
    assert stats.thinking_tokens == REASONING_TOKENS
    assert stats.finish_reason == "stop" and stats.decode_tokens_per_s > 0
    assert stats.thinking_s is not None and stats.answer_s is not None


def test_the_first_stream_teaches_that_an_unnamed_model_reasons(llama_cpp_server):
    server = llama_cpp_server("standard_r1")
    engine = RemoteEngine.connect(Endpoint(server.base_url))  # "scripted-model": no hint in the name
    assert engine.info.name == "scripted-model" and engine.info.is_reasoning is False
    first = engine.chat(QUESTION)
    live = list(first)
    assert kinds(live) == "answer"  # streamed as answer until the orphan </think> showed otherwise
    assert first.resplit  # ... so the whole text was split again at the end
    assert first.thinking == THINKING and first.answer == ANSWER and first.flags == []
    assert engine.reasoning_learned is True
    assert engine.info.is_reasoning and engine.info.reasoning_source == "stream"
    second = engine.chat(QUESTION)
    assert kinds(list(second)) == "think,answer" and not second.resplit
    assert second.thinking == THINKING and second.answer == ANSWER


def test_the_users_setting_wins_over_the_name(llama_cpp_server):
    server = llama_cpp_server("standard_r1")
    engine = RemoteEngine.connect(Endpoint(server.base_url, reasoning=True))
    assert engine.info.reasoning_source == "setting"
    run = engine.chat(QUESTION)
    assert kinds(list(run)) == "think,answer" and run.answer == ANSWER


def test_think_tags_in_content_are_split(llama_cpp_server):
    """An older template leaves the opening tag to the model: `<think>` arrives in content."""
    server = llama_cpp_server("explicit_think")
    engine = RemoteEngine.connect(Endpoint(server.base_url))
    run = engine.chat(QUESTION)
    assert kinds(list(run)) == "think,answer"
    assert run.thinking == THINKING and run.answer == ANSWER and run.flags == [] and not run.resplit
    assert engine.reasoning_learned is True


def test_a_plain_answer_under_an_r1_name_is_re_split_as_answer(llama_cpp_server):
    server = llama_cpp_server("non_reasoning")
    engine = RemoteEngine.connect(Endpoint(server.base_url, "deepseek-r1-but-not-really"))
    assert engine.info.is_reasoning
    run = engine.chat([{"role": "user", "content": "Capital of France?"}])
    list(run)
    assert run.resplit and run.thinking == "" and run.answer == NON_REASONING_ANSWER
    assert run.flags == ["no_thinking"]
    assert engine.reasoning_learned is False and engine.info.is_reasoning is False
    again = engine.chat([{"role": "user", "content": "Capital of France?"}])
    assert kinds(list(again)) == "answer" and not again.resplit


# --- ponder ask --endpoint --------------------------------------------------------------------


def ask(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["ask", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_endpoint_json_has_the_local_shape(ponder_served, scripted_model, capsys):
    code, out, err = ask(capsys, "--endpoint", ponder_served.base_url, "--seed", "5", "--json", "What is 17 × 23?")
    assert code == 0, err
    remote = json.loads(out)
    code, out, _ = ask(capsys, "--model", str(scripted_model("standard_r1")), "--ctx", "2048", "--seed", "5",
                       "--json", "What is 17 × 23?")
    local = json.loads(out)
    assert set(remote) == set(local)
    assert set(local["stats"]) <= set(remote["stats"])
    for key in ("thinking", "answer", "flags"):
        assert remote[key] == local[key]
    assert remote["stats"]["thinking_tokens"] == local["stats"]["thinking_tokens"]
    assert remote["stats"]["answer_tokens"] == local["stats"]["answer_tokens"]
    assert remote["stats"]["source"].startswith("remote: 127.0.0.1:")
    assert remote["model"]["label"] == remote["stats"]["source"] and remote["model"]["is_reasoning"] is True
    assert remote["sampling"]["seed"] == 5


def test_ask_endpoint_streams_like_a_local_model(ponder_served, capsys):
    code, out, err = ask(capsys, "--endpoint", ponder_served.base_url, "Hi")
    assert code == 0
    assert out.strip() == ANSWER
    assert THINKING in err and "thinking +" in err


def test_ask_endpoint_key_from_the_environment_or_the_keychain(serve, capsys, monkeypatch):
    served = serve(api_key="k-123")
    monkeypatch.delenv("PONDER_API_KEY", raising=False)
    monkeypatch.setattr(secrets, "_store", secrets.KeyStore(MemoryKeyring()))
    code, _, err = ask(capsys, "--endpoint", served.base_url, "Hi")
    assert code == 2 and "refused the API key (401)" in err
    monkeypatch.setenv("PONDER_API_KEY", "k-123")
    assert ask(capsys, "--endpoint", served.base_url, "Hi")[0] == 0
    monkeypatch.delenv("PONDER_API_KEY")
    assert secrets.key_store().set(served.base_url, "k-123") is True
    assert ask(capsys, "--endpoint", served.base_url, "--json", "Hi")[0] == 0


def test_ask_refuses_both_a_local_model_and_an_endpoint(capsys):
    code, _, err = ask(capsys, "--model", "x.gguf", "--endpoint", "http://127.0.0.1:9/v1", "Hi")
    assert code == 2 and "not both" in err


def test_ask_endpoint_failure_keeps_the_part_received_and_exits_1(serve, capsys):
    served = serve(max_waiting=1)
    with server_full(served):
        code, out, err = ask(capsys, "--endpoint", served.base_url, "--json", "Hi")
    assert code == 1
    data = json.loads(out)
    assert data["stats"]["finish_reason"] == "error" and "(429)" in data["error"]
    assert "ponder: " in err and "(429)" in err


# --- keys ---------------------------------------------------------------------------------------


import keyring.backend  # noqa: E402
import keyring.errors  # noqa: E402


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keychain that lives in memory: this machine has no OS keychain to test against."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such key")


class LockedKeyring(MemoryKeyring):
    def set_password(self, service, username, password):
        raise keyring.errors.PasswordSetError("the keychain is locked")


def test_keys_go_to_the_keychain_per_server_and_never_to_settings(tmp_path):
    from app.core.settings import Settings, save_settings

    backend = MemoryKeyring()
    store = secrets.KeyStore(backend)
    assert store.persistent and store.note is None
    assert store.set("gpu-box:8000", "sk-abc") is True
    assert backend.items == {("Ponder", "http://gpu-box:8000/v1"): "sk-abc"}
    assert store.get("http://gpu-box:8000/v1/") == "sk-abc"  # one server, however it is typed
    assert store.get("http://other:8000/v1") is None
    assert secrets.KeyStore(backend).get("gpu-box:8000") == "sk-abc"  # outlives the session
    store.delete("gpu-box:8000")
    store.delete("gpu-box:8000")  # twice is fine
    assert store.get("gpu-box:8000") is None
    assert store.set("ponder-window-server", "own-key") is True  # a plain name is its own account
    assert ("Ponder", "ponder-window-server") in backend.items
    save_settings(tmp_path, Settings())
    assert "sk-abc" not in (tmp_path / "settings.json").read_text()


def test_without_a_keychain_the_key_lasts_the_session_and_it_says_so():
    import keyring.backends.fail
    import keyring.backends.null

    for backend in (keyring.backends.fail.Keyring(), keyring.backends.null.Keyring()):
        store = secrets.KeyStore(backend)
        assert not store.persistent
        assert store.note == secrets.NO_KEYCHAIN and "this session only" in store.note
        assert store.set("http://h:1/v1", "k") is False
        assert store.get("http://h:1/v1") == "k"
        assert secrets.KeyStore(backend).get("http://h:1/v1") is None  # gone with the session


def test_a_keychain_that_refuses_falls_back_to_the_session_with_a_sentence():
    store = secrets.KeyStore(LockedKeyring())
    assert store.set("http://h:1/v1", "k") is False
    assert store.get("http://h:1/v1") == "k"
    assert "could not save the API key" in store.note and "this session only" in store.note


# --- privacy -------------------------------------------------------------------------------------

NO_NETWORK = r"""
import socket, sys
connections = []
def hook(event, args):
    if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
        connections.append(args[1])
    if event == "socket.getaddrinfo":
        connections.append(args[:2])
sys.addaudithook(hook)
from app.__main__ import main
import app.core.remote, app.core.remote_presets, app.core.secrets
app.core.secrets.key_store()
code = main(sys.argv[1:])
print("CONNECTIONS", connections, file=sys.stderr)
sys.exit(3 if connections else code)
"""


def test_without_a_remote_engine_no_network_request_is_made(scripted_model):
    """A local answer, with the remote and keychain modules loaded, opens no internet socket."""
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, "ask", "--model", str(scripted_model("standard_r1")),
         "--ctx", "2048", "--json", "Hi"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CONNECTIONS []" in result.stderr
    assert json.loads(result.stdout)["answer"] == ANSWER


# --- presets and names ---------------------------------------------------------------------------


def test_presets_cover_the_usual_engines_with_their_default_ports():
    from app.core.remote import capabilities_for, guess_reasoning
    from app.core.remote_presets import PRESETS, preset_named

    by_name = {p.name: p for p in PRESETS}
    assert set(by_name) == {"DeepSeek API", "vLLM", "SGLang", "llama-server", "Ollama", "LM Studio"}
    assert by_name["DeepSeek API"].base_url == "https://api.deepseek.com/v1"
    assert by_name["DeepSeek API"].model == "deepseek-reasoner" and by_name["DeepSeek API"].needs_key
    ports = {name: p.base_url.rsplit(":", 1)[1] for name, p in by_name.items() if name != "DeepSeek API"}
    assert ports == {"vLLM": "8000/v1", "SGLang": "30000/v1", "llama-server": "8080/v1",
                     "Ollama": "11434/v1", "LM Studio": "1234/v1"}
    for preset in PRESETS:
        endpoint = preset.endpoint()
        assert endpoint.normalised().base_url == preset.base_url
        assert endpoint.server_kind == preset.server_kind
    assert preset_named("llama-server").endpoint("m").server_kind == "llama-server"
    assert capabilities_for("llama-server").answer_now and capabilities_for("llama-server").budget
    assert guess_reasoning("deepseek-reasoner") and guess_reasoning("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf")
    assert guess_reasoning("deepseek-r1:14b") and guess_reasoning("QwQ-32B")
    assert not guess_reasoning("deepseek-chat") and not guess_reasoning("llama3.1:8b")
    assert not guess_reasoning("gpt-4o-mini") and not guess_reasoning("mistral-r128")
