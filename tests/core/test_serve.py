"""`ponder serve`: the real server (uvicorn + Starlette) on loopback, a scripted GGUF behind it,
and the official `openai` client in front of it (httpx2 for what the client will not send)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx2
import openai
import pytest

from app.core.engine import Engine, LoadOptions, Sampling
from app.core.reasoning import split_text
from app.core.server.api import parse_chat_request, ApiError
from app.core.server.service import ChatRequest, EngineService, ServerBusy, StopMatcher
from tests.fixtures.scripted_gguf import LONG_TRACE_THINKING_TOKENS, SCRIPTS, STANDARD_ANSWER, STANDARD_THINKING

THINKING = STANDARD_THINKING.strip()
ANSWER = STANDARD_ANSWER.strip()
PIECES = SCRIPTS["standard_r1"].pieces
REASONING_TOKENS = PIECES.index("</think>") + 1  # the closing tag is the thinking's last token
QUESTION = [{"role": "user", "content": "What is 17 × 23?"}]


# --- the openai client, stream and whole --------------------------------------------------


def test_whole_answer_splits_reasoning_and_counts_usage(ponder_served):
    served = ponder_served
    reply = served.client().chat.completions.create(model="anything", messages=QUESTION, seed=1)
    choice = reply.choices[0]
    assert choice.message.reasoning_content == THINKING
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    assert reply.object == "chat.completion" and reply.model == served.service.model_id
    usage = reply.usage
    assert usage.completion_tokens == len(PIECES)
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert usage.prompt_tokens > 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_sends_reasoning_then_content_then_usage(ponder_served):
    served = ponder_served
    stream = served.client().chat.completions.create(
        model="anything", messages=QUESTION, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert reasoning.strip() == THINKING
    assert content.strip() == ANSWER
    assert deltas[0].role == "assistant"
    # all the thinking arrives before any answer (chunks may merge when the client falls behind)
    kinds = [("r" if getattr(d, "reasoning_content", None) else "c") for d in deltas if
             getattr(d, "reasoning_content", None) or d.content]
    assert kinds[0] == "r" and "r" not in kinds[kinds.index("c"):]
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(PIECES)
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS


def test_stream_ends_with_done_marker_and_no_usage_unless_asked(ponder_served):
    served = ponder_served
    body = {"model": "m", "messages": QUESTION, "stream": True}
    with httpx2.stream("POST", served.base_url + "/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert not any("usage" in json.loads(line[6:]) for line in lines[:-1])


def test_models_lists_the_served_model(ponder_served, scripted_model):
    served = ponder_served
    models = served.client().models.list().data
    assert [m.id for m in models] == [scripted_model("standard_r1").stem]


def test_raw_reasoning_format_keeps_think_tags_in_content(serve):
    served = serve(reasoning_format="raw")
    reply = served.client().chat.completions.create(model="m", messages=QUESTION)
    message = reply.choices[0].message
    assert getattr(message, "reasoning_content", None) is None
    assert message.content.startswith("<think>\n") and "</think>" in message.content
    assert split_text(message.content, prompt_opens_thinking=False)[:2] == (THINKING, ANSWER)
    stream = served.client().chat.completions.create(model="m", messages=QUESTION, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.strip() == message.content


def test_max_tokens_ends_with_length(ponder_served):
    served = ponder_served
    reply = served.client().chat.completions.create(model="m", messages=QUESTION, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5 == reply.usage.completion_tokens_details.reasoning_tokens
    assert reply.choices[0].message.content == ""


def test_stop_string_ends_the_answer_before_it(ponder_served):
    served = ponder_served
    client = served.client()
    reply = client.chat.completions.create(model="m", messages=QUESTION, stop=["| step"])
    assert reply.choices[0].message.content == "**17 × 23 = 391**"
    assert reply.choices[0].message.reasoning_content == THINKING  # stop strings are matched in the answer
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < len(PIECES)  # the run ended there
    stream = client.chat.completions.create(model="m", messages=QUESTION, stop="| step", stream=True)
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert content.strip() == "**17 × 23 = 391**"


def test_sampling_fields_reach_the_engine_and_r1_defaults_fill_the_rest():
    request, stream, usage = parse_chat_request({
        "messages": QUESTION, "temperature": 0.3, "top_p": 0.5, "max_tokens": 77, "seed": 9, "stop": ["x", "y"],
        "stream": True, "stream_options": {"include_usage": True},
    })
    assert (request.sampling.temperature, request.sampling.top_p, request.sampling.max_tokens,
            request.sampling.seed) == (0.3, 0.5, 77, 9)
    assert request.stop_strings == ("x", "y") and stream and usage
    default, stream, usage = parse_chat_request({"messages": QUESTION})
    assert default.sampling == Sampling() and default.sampling.temperature == 0.6 and default.sampling.top_p == 0.95
    assert not stream and not usage
    with pytest.raises(ApiError):
        parse_chat_request({"messages": QUESTION, "temperature": True})


def test_seed_makes_sampling_repeatable_through_the_server(ponder_served):
    # A scripted model follows its script at any temperature, so a high temperature with a seed
    # must still give the one answer: the fields get through without breaking the run.
    served = ponder_served
    client = served.client()
    replies = [client.chat.completions.create(model="m", messages=QUESTION, temperature=1.5, top_p=0.9, seed=7)
               for _ in range(2)]
    assert [r.choices[0].message.content for r in replies] == [ANSWER, ANSWER]


def test_stop_matcher_holds_back_a_possible_start_of_a_stop_string():
    matcher = StopMatcher(("STOP",))
    assert matcher.feed("abcST") == ("abc", False)
    assert matcher.feed("Ox") == ("STOx", False)
    assert matcher.feed("yyST") == ("yy", False)
    assert matcher.feed("OPzz") == ("", True)
    tail = StopMatcher(("END",))
    assert tail.feed("aE") == ("a", False) and tail.flush() == "E"


# --- the queue --------------------------------------------------------------------------


def test_concurrent_requests_queue_and_all_complete(serve):
    served = serve(max_waiting=8)
    results: list = [None] * 6

    def ask(i: int) -> None:
        results[i] = served.client().chat.completions.create(model="m", messages=QUESTION)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [(r.choices[0].message.reasoning_content, r.choices[0].message.content) for r in results] == \
        [(THINKING, ANSWER)] * len(results)
    assert served.service.counters["completed"] == len(results)
    assert served.service.counters["rejected"] == 0


@contextlib.contextmanager
def engine_held(service: EngineService):
    """Keep the engine thread busy, deterministically: a job submitted to the service directly
    (as the window's own chats will be) whose listener blocks on its first segment until the
    block ends."""
    started, release = threading.Event(), threading.Event()

    def on_event(kind, payload):
        if kind == "segment" and not started.is_set():
            started.set()
            release.wait(30)

    job = service.submit(ChatRequest(QUESTION, Sampling(max_tokens=5)), on_event)
    assert started.wait(10)
    try:
        yield job
    finally:
        release.set()


def test_a_full_queue_answers_429_with_json(serve):
    served = serve(max_waiting=1)
    client = served.client()
    waiting: dict = {}

    def second() -> None:
        reply = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=3)
        waiting["finish"] = reply.choices[0].finish_reason

    with engine_held(served.service):
        t = threading.Thread(target=second)
        t.start()
        served.wait_for(lambda: served.service.waiting == 1)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="m", messages=QUESTION)
        assert info.value.status_code == 429
        assert info.value.body["code"] == "queue_full" and "busy" in info.value.body["message"]
        with pytest.raises(openai.RateLimitError):  # a stream too, before any event
            client.chat.completions.create(model="m", messages=QUESTION, stream=True)
    t.join(30)
    assert waiting == {"finish": "length"}  # the one that waited ran once the engine was free
    assert served.service.counters["rejected"] == 2


def test_disconnect_mid_stream_stops_the_generation_within_a_token(serve):
    served = serve("long_trace")
    stream = served.client().chat.completions.create(model="m", messages=QUESTION, stream=True)
    chunks = iter(stream)
    for _ in range(5):
        next(chunks)
    closed_at = time.monotonic()
    stream.close()
    result = served.wait_for(lambda: served.service.recent and served.service.recent[-1])
    assert result.finish_reason == "cancelled"
    assert result.stats.thinking_tokens < LONG_TRACE_THINKING_TOKENS  # cut mid-thought
    assert result.ended_at - closed_at < 2.0  # typically a few ms; slack for a loaded machine
    # the engine is free again and answers the next request in full
    reply = served.client().chat.completions.create(model="m", messages=QUESTION, max_tokens=10)
    assert reply.usage.completion_tokens == 10


def test_disconnect_while_waiting_drops_the_job(serve):
    served = serve()
    quick = openai.OpenAI(base_url=served.base_url, api_key="none", max_retries=0, timeout=0.3)
    with engine_held(served.service):
        with pytest.raises(openai.APITimeoutError):
            quick.chat.completions.create(model="m", messages=QUESTION)  # waits, then the client gives up
        served.wait_for(lambda: served.service.waiting == 1)
    served.wait_for(lambda: served.service.counters["cancelled"] == 1)
    dropped = served.service.recent[-1]
    assert dropped.finish_reason == "cancelled" and dropped.stats.thinking_tokens == 0  # it never ran
    assert served.service.counters["completed"] == 1  # the job that held the engine


# --- bad requests and auth ------------------------------------------------------------


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (b"\xff\xfe", None),
    (b"[" * 200_000, None),
    (json.dumps({"model": "m"}).encode(), "messages"),
    (json.dumps({"messages": []}).encode(), "messages"),
    (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), "messages[0].role"),
    (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "messages[0].content"),
    (json.dumps({"messages": QUESTION, "temperature": "hot"}).encode(), "temperature"),
    (json.dumps({"messages": QUESTION, "max_tokens": 0}).encode(), "max_tokens"),
    (json.dumps({"messages": QUESTION, "stop": [1]}).encode(), "stop"),
    (json.dumps({"messages": QUESTION, "stream": "yes"}).encode(), "stream"),
    (json.dumps({"messages": QUESTION, "tools": []}).encode(), "tools"),
    (json.dumps({"messages": QUESTION, "n": 3}).encode(), "n"),
])
def test_bad_bodies_get_400_json_and_the_server_keeps_serving(ponder_served, body, param):
    served = ponder_served
    response = httpx2.post(served.base_url + "/chat/completions", content=body,
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert "Traceback" not in response.text
    assert served.client().chat.completions.create(model="m", messages=QUESTION).choices[0].message.content == ANSWER


def test_oversized_body_gets_413_and_unknown_paths_json_errors(serve):
    served = serve(max_body_bytes=1000)
    big = {"messages": [{"role": "user", "content": "x" * 2000}]}
    response = httpx2.post(served.base_url + "/chat/completions", json=big, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"

    def chunked():
        for _ in range(10):
            yield b" " * 200

    response = httpx2.post(served.base_url + "/chat/completions", content=chunked(), timeout=10)
    assert response.status_code == 413  # no Content-Length: counted while reading
    assert httpx2.get(served.base_url + "/nowhere", timeout=10).json()["error"]["code"] == "404"
    assert httpx2.get(served.base_url + "/chat/completions", timeout=10).status_code == 405
    assert served.client().chat.completions.create(model="m", messages=QUESTION).choices[0].message.content == ANSWER


def test_a_conversation_longer_than_the_context_gets_400(serve):
    served = serve(n_ctx=256)
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 400}])
    assert info.value.body["code"] == "context_length_exceeded"


def test_api_key_is_required_when_set(serve):
    served = serve(api_key="s3cret")
    with pytest.raises(openai.AuthenticationError):
        served.client("wrong").chat.completions.create(model="m", messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):
        served.client("wrong").models.list()
    response = httpx2.post(served.base_url + "/chat/completions", json={"messages": QUESTION}, timeout=10)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    reply = served.client("s3cret").chat.completions.create(model="m", messages=QUESTION)
    assert reply.choices[0].message.content == ANSWER
    assert served.service.counters["completed"] == 1


def test_no_key_needed_without_api_key(ponder_served):
    served = ponder_served
    response = httpx2.get(served.base_url + "/models", timeout=10)
    assert response.status_code == 200


# --- the command --------------------------------------------------------------------------


def test_serve_command_warns_when_binding_beyond_loopback_without_a_key(tmp_path):
    result = subprocess.run([sys.executable, "-m", "app", "serve", "--model", str(tmp_path / "missing.gguf"),
                             "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "WARNING" in result.stderr and "WITHOUT an API key" in result.stderr


def test_serve_command_serves_on_loopback(scripted_model):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--model", str(scripted_model("standard_r1")),
                             "--port", str(port), "--ctx", "2048"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PONDER_API_KEY": "k"})
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.1)
        reply = client.chat.completions.create(model="m", messages=QUESTION)
        assert (reply.choices[0].message.reasoning_content, reply.choices[0].message.content) == (THINKING, ANSWER)
        assert httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).status_code == 401
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), err  # uvicorn re-raises the SIGTERM it handled, after a clean shutdown
    assert "Shutting down" in err and "Traceback" not in err
    assert "WARNING" not in err and f"http://127.0.0.1:{port}/v1" in err


# --- numbers --------------------------------------------------------------------------


def test_engine_direct_baseline_matches_the_server(scripted_model):
    engine = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=4096))
    try:
        run = engine.chat(QUESTION).run()
        assert (run.thinking, run.answer) == (THINKING, ANSWER)
        assert run.stats.thinking_tokens == REASONING_TOKENS
    finally:
        engine.close()


def test_bridge_merges_waiting_segments_of_one_kind_only():
    import asyncio

    from app.core.reasoning import Segment
    from app.core.server.api import _Bridge

    async def scenario():
        bridge = _Bridge()
        for event in [("segment", Segment("think", "a")), ("segment", Segment("think", "b")),
                      ("segment", Segment("answer", "c")), ("segment", Segment("answer", "d")), ("done", None)]:
            bridge._put(event)
        return [await bridge.get_merged() for _ in range(3)]

    assert asyncio.run(scenario()) == [("segment", Segment("think", "ab")), ("segment", Segment("answer", "cd")),
                                       ("done", None)]


def test_run_job_stops_within_a_token_of_cancel(scripted_model):
    from app.core.server.service import Job, run_job

    engine = Engine.load(scripted_model("long_trace"), LoadOptions(n_ctx=4096))
    try:
        job = Job(ChatRequest(QUESTION), on_event=lambda kind, payload: None)
        seen = []

        def emit(kind, payload):
            seen.append(kind)
            if seen.count("segment") == 3:
                job.cancel()

        result = run_job(engine, job, emit)
        assert result.finish_reason == "cancelled"
        assert 3 <= result.stats.thinking_tokens <= 4  # the engine checks the stop event before each token
        assert seen[0] == "started" and seen.count("segment") == 3
        late = Job(ChatRequest(QUESTION), on_event=lambda kind, payload: None)
        late.cancel()
        assert run_job(engine, late, emit).finish_reason == "cancelled"  # cancelled while waiting: never runs
    finally:
        engine.close()


def test_a_job_cancelled_with_a_reason_ends_unavailable_and_the_api_says_503(scripted_model):
    """The window's server cancels jobs with a reason when its model goes away (app/ui/server_switch.py)."""
    from app.core.server.api import _job_error
    from app.core.server.service import Job, WaitingRoom, serve_job

    engine = Engine.load(scripted_model("long_trace"), LoadOptions(n_ctx=4096))
    try:
        done = []

        def on_event(kind, payload):
            if kind == "segment":
                job.cancel("The model was unloaded.")  # as WindowJobs.release does
            elif kind == "done":
                done.append(payload)

        job = Job(ChatRequest(QUESTION), on_event)
        result = serve_job(engine, job)
        assert done == [result] and result.finish_reason == "error" and result.error_kind == "unavailable"
        assert result.thinking  # what it wrote before is kept
        error = _job_error(result)
        assert (error.status, error.code, error.message) == (503, "model_not_loaded", "The model was unloaded.")
        assert serve_job(None, Job(ChatRequest(QUESTION), lambda k, p: None), "Nothing loaded.").error == \
            "Nothing loaded."
    finally:
        engine.close()
    room = WaitingRoom(1)
    room.enter()
    with pytest.raises(ServerBusy):
        room.enter()
    room.leave()
    room.enter()
