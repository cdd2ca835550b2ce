"""The engine end to end: real llama.cpp running scripted GGUF models."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from app.core import engine as engine_module
from app.core.engine import Engine, LoadOptions, Sampling
from app.core.errors import ContextOverflow, LoadCancelled, ModelFileError, ModelLoadError, PonderError
from tests.fixtures.scripted_gguf import (
    LONG_TRACE_THINKING_TOKENS,
    Script,
    split_script,
    MALFORMED_KINDS,
    NON_REASONING_ANSWER,
    SCRIPTS,
    STANDARD_ANSWER,
    STANDARD_THINKING,
    UNCLOSED_THINKING,
)

SMALL = LoadOptions(n_ctx=2048)
ORPHAN_AFTER_ANSWER = Script(
    "orphan_after_answer", tuple(split_script("A thought.\n</think>\n\nThe answer.\n</think>\nMore answer."))
)
ASK = [{"role": "user", "content": "What is 17 × 23?"}]


@pytest.fixture(scope="module")
def standard(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), SMALL)
    yield eng
    eng.close()


def kinds_in_order(segments):
    order = []
    for s in segments:
        if not order or order[-1] != s.kind:
            order.append(s.kind)
    return order


def test_standard_r1_streams_thinking_then_answer(standard):
    run = standard.chat(ASK, Sampling(seed=1))
    segments = list(run)
    assert kinds_in_order(segments) == ["think", "answer"]
    assert run.thinking == STANDARD_THINKING.strip()
    assert run.answer == STANDARD_ANSWER.strip()
    assert run.flags == []
    assert "".join(s.text for s in segments if s.kind == "answer").strip() == run.answer


def test_model_info_describes_the_file(standard):
    info = standard.info
    assert info.is_reasoning
    assert info.architecture == "llama"
    assert info.n_ctx == 2048
    assert info.backend == "CPU" and info.n_gpu_layers == 0
    assert info.template_note is None


@pytest.mark.parametrize("temperature,seed", [(0.6, 1), (1.0, 7), (0.0, None)])
def test_output_follows_script_at_any_sampling(standard, temperature, seed):
    run = standard.chat(ASK, Sampling(temperature=temperature, seed=seed)).run()
    assert run.answer == STANDARD_ANSWER.strip()


def test_stats_come_from_the_run(standard):
    run = standard.chat(ASK, Sampling(seed=3)).run()
    s = run.stats
    assert s.finish_reason == "stop"
    assert s.prompt_tokens > 5
    assert s.thinking_tokens > 10 and s.answer_tokens > 10
    assert s.thinking_tokens + s.answer_tokens == run.thinking_tokens + run.answer_tokens
    assert 0 < s.time_to_first_token_s < s.total_s
    assert 0 < s.thinking_s < s.total_s
    assert s.decode_tokens_per_s > 0
    # Everything generated except the final end-of-sequence token sits in the context.
    assert s.context_used == s.prompt_tokens + s.thinking_tokens + s.answer_tokens


def test_stop_ends_stream_within_one_token_and_engine_stays_usable(standard):
    stop = threading.Event()
    run = standard.chat(ASK, Sampling(seed=2), stop)
    seen_after_stop = 0
    for i, _segment in enumerate(run):
        if stop.is_set():
            seen_after_stop += 1
        if i == 5:
            stop.set()
    assert seen_after_stop <= 1
    assert run.stats.finish_reason == "cancelled"
    assert run.thinking and STANDARD_THINKING.startswith(run.thinking[:20])
    assert run.answer == ""
    again = standard.chat(ASK, Sampling(seed=2)).run()
    assert again.answer == STANDARD_ANSWER.strip()
    assert again.stats.finish_reason == "stop"


def test_stop_before_prompt_evaluation_generates_nothing(standard):
    stop = threading.Event()
    stop.set()
    run = standard.chat(ASK, Sampling(), stop).run()
    assert run.stats.finish_reason == "cancelled"
    assert run.thinking_tokens == run.answer_tokens == 0
    assert standard.chat(ASK).run().answer == STANDARD_ANSWER.strip()


def test_max_tokens_limits_the_answer(standard):
    run = standard.chat(ASK, Sampling(max_tokens=7)).run()
    assert run.stats.finish_reason == "length"
    assert run.thinking_tokens + run.answer_tokens == 7
    assert "unclosed_thinking" in run.flags


def test_follow_up_turn_reuses_cached_prompt_and_drops_old_reasoning(standard):
    first = standard.chat(ASK).run()
    history = ASK + [
        {"role": "assistant", "content": f"<think>\n{first.thinking}\n</think>\n\n{first.answer}"},
        {"role": "user", "content": "And 17 × 24?"},
    ]
    first_prompt = standard._prompts.render(ASK).text
    prompt = standard._prompts.render(history).text
    assert first.answer in prompt
    assert first.thinking not in prompt
    # The prompts agree up to the first turn's "<think>\n"; its answer follows in the second.
    shared = first_prompt.removesuffix("<think>\n")
    assert prompt.startswith(shared) and not prompt.startswith(first_prompt)
    second = standard.chat(history).run()
    assert second.answer == STANDARD_ANSWER.strip()
    reused = second.stats.prompt_reused_tokens
    assert reused == len(standard._tokenize(shared)) > 10
    # llama.cpp's own counter: only the tokens after the shared prefix were evaluated.
    lc = standard._lc
    assert lc.llama_perf_context(standard._ctx).n_p_eval == second.stats.prompt_tokens - reused


def test_context_overflow_is_a_clear_error(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=64))
    try:
        with pytest.raises(ContextOverflow, match=r"needs \d+ tokens but the context holds \d+"):
            eng.chat([{"role": "user", "content": "word " * 200}])
    finally:
        eng.close()


def test_generation_stops_when_context_is_full(scripted_model):
    eng = Engine.load(scripted_model("long_trace"), LoadOptions(n_ctx=256))
    try:
        run = eng.chat(ASK).run()
        assert run.stats.finish_reason == "context_full"
        assert run.stats.context_used == 256
        assert "unclosed_thinking" in run.flags
    finally:
        eng.close()


def test_long_trace_streams_thousands_of_thinking_tokens(scripted_model):
    eng = Engine.load(scripted_model("long_trace"), LoadOptions(n_ctx=8192))
    try:
        run = eng.chat(ASK, Sampling(seed=5))
        n_segments = sum(1 for _ in run)
        assert n_segments > LONG_TRACE_THINKING_TOKENS / 2  # streamed, not delivered at the end
        assert run.thinking_tokens >= LONG_TRACE_THINKING_TOKENS
        assert run.answer == "After long thought: the answer is **42**."
        assert run.flags == []
    finally:
        eng.close()


@pytest.mark.parametrize(
    "script,thinking,answer,flags",
    [
        ("explicit_think", STANDARD_THINKING.strip(), STANDARD_ANSWER.strip(), []),
        ("old_template", STANDARD_THINKING.strip(), STANDARD_ANSWER.strip(), []),
        ("unclosed", UNCLOSED_THINKING.strip(), "", ["unclosed_thinking"]),
        ("skipped_think", "", "Hello! How can I help you today?", ["skipped_thinking"]),
        (ORPHAN_AFTER_ANSWER, "A thought.", "The answer.\n\nMore answer.", ["orphan_close"]),
        ("repeated_think", "First idea: try 6.\n\nWait, check again", "Maybe 6.\n\nIt is 7, final answer.",
         ["multiple_think_blocks"]),
        ("split_tags", "Thinking about it.", "Done thinking.", []),
    ],
)
def test_trace_shapes_and_pathologies(scripted_model, script, thinking, answer, flags):
    eng = Engine.load(scripted_model(script), SMALL)
    try:
        run = eng.chat(ASK)
        segments = list(run)
        assert run.thinking == thinking
        assert run.answer == answer
        assert sorted(run.flags) == sorted(flags)
        # The stream carries the same split as the totals, and never a tag.
        assert "".join(s.text for s in segments if s.kind == "answer").strip() == answer
        assert not any("<think>" in s.text or "</think>" in s.text for s in segments)
    finally:
        eng.close()


# --- one owner thread; ended runs stay ended ----------------------------------------


def on_another_thread(call):
    """Run `call` on a new thread; return what it raised (None if nothing)."""
    raised = []

    def target():
        try:
            call()
        except BaseException as exc:  # noqa: BLE001  (handed back to the test)
            raised.append(exc)

    thread = threading.Thread(target=target, name="intruder")
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return raised[0] if raised else None


OWNER_RULE = r"thread 'intruder', but an Engine belongs to the thread that loaded it \('MainThread'\)"


def test_engine_refuses_chat_and_close_from_another_thread(standard):
    for call in (lambda: standard.chat(ASK), standard.close):
        error = on_another_thread(call)
        assert isinstance(error, RuntimeError)
        assert re.search(OWNER_RULE, str(error))
    assert standard.chat(ASK).run().answer == STANDARD_ANSWER.strip()  # untouched by the attempts


def test_a_run_cannot_be_iterated_on_another_thread(standard):
    run = standard.chat(ASK)
    error = on_another_thread(lambda: next(iter(run)))
    assert isinstance(error, RuntimeError) and re.search(OWNER_RULE, str(error))
    run.close()


def test_a_closed_run_raises_instead_of_touching_the_context(standard):
    run = standard.chat(ASK, Sampling(seed=4))
    stream = iter(run)
    for _ in range(5):
        next(stream)
    run.close()
    with pytest.raises(RuntimeError, match="ChatRun was closed"):
        next(stream)
    assert run.thinking and STANDARD_THINKING.startswith(run.thinking)  # what came stays readable
    assert standard.chat(ASK).run().answer == STANDARD_ANSWER.strip()


def test_a_new_chat_ends_the_run_before_it(standard):
    old = standard.chat(ASK)
    old_stream = iter(old)
    next(old_stream)
    new = standard.chat(ASK).run()
    assert new.answer == STANDARD_ANSWER.strip() and new.thinking == STANDARD_THINKING.strip()
    with pytest.raises(RuntimeError, match="ChatRun was closed"):
        next(old_stream)


def test_closing_the_engine_ends_its_run(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), SMALL)
    run = eng.chat(ASK)
    stream = iter(run)
    next(stream)
    eng.close()
    with pytest.raises(RuntimeError, match="ChatRun was closed"):
        next(stream)  # the context is freed: this must not reach llama.cpp
    with pytest.raises(PonderError, match="unloaded"):
        eng.chat(ASK)


def test_old_template_without_opening_tag_still_splits(scripted_model):
    # The old template's prompt ends at <｜Assistant｜>; Ponder appends "<think>\n",
    # so a trace that only closes the block is an ordinary one, not an orphan tag.
    eng = Engine.load(scripted_model("orphan_close"), SMALL)
    try:
        run = eng.chat(ASK).run()
        assert run.thinking == "The user greets me. I should greet back."
        assert run.answer == "Hello there!"
        assert run.flags == []
    finally:
        eng.close()


def test_explicit_think_tag_gives_same_split_as_prompt_tag(scripted_model):
    eng = Engine.load(scripted_model("explicit_think"), SMALL)
    try:
        run = eng.chat(ASK).run()
        assert run.thinking == STANDARD_THINKING.strip()
        assert run.answer == STANDARD_ANSWER.strip()
    finally:
        eng.close()


def test_non_reasoning_model_is_all_answer(scripted_model):
    eng = Engine.load(scripted_model("non_reasoning"), SMALL)
    try:
        assert not eng.info.is_reasoning
        run = eng.chat([{"role": "system", "content": "Be brief."}] + ASK)
        kinds = {s.kind for s in run}
        assert kinds == {"answer"}
        assert run.answer == NON_REASONING_ANSWER
        assert run.thinking == "" and run.thinking_tokens == 0
        assert run.stats.thinking_s is None
    finally:
        eng.close()


def test_utf8_split_across_tokens_is_decoded_whole(scripted_model):
    eng = Engine.load(scripted_model("split_utf8"), SMALL)
    try:
        run = eng.chat(ASK)
        texts = [s.text for s in run]
        assert all("\ufffd" not in t for t in texts)
        assert run.thinking == "Café au lait 😀…"
        assert run.answer == "Naïve."
    finally:
        eng.close()


def test_file_without_template_gets_fallback_and_note(scripted_model):
    eng = Engine.load(scripted_model("no_template"), SMALL)
    try:
        assert "no chat template" in eng.info.template_note
        run = eng.chat(ASK).run()
        assert run.answer == STANDARD_ANSWER.strip()
    finally:
        eng.close()


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_file_raises_clear_error_without_crashing(malformed_model, kind):
    with pytest.raises(ModelFileError) as info:
        Engine.load(malformed_model(kind), SMALL)
    message = str(info.value)
    assert len(message) > 20 and "\n" not in message.strip()


def test_missing_file_raises_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="nope.gguf"):
        Engine.load(tmp_path / "nope.gguf", SMALL)


def test_gpu_request_on_cpu_build_runs_on_cpu_and_says_why(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=512, n_gpu_layers=99))
    try:
        assert eng.info.backend == "CPU" and eng.info.n_gpu_layers == 0
        assert "no GPU support" in eng.info.gpu_note
    finally:
        eng.close()


def test_gpu_load_failure_falls_back_to_cpu(scripted_model, monkeypatch):
    # A CPU build cannot fail a GPU load, so pretend the build has CUDA and the GPU open fails.
    real_open = Engine._open
    attempts = []

    def open_failing_on_gpu(self, path, options, n_gpu_layers, progress):
        attempts.append(n_gpu_layers)
        if n_gpu_layers > 0:
            raise ModelLoadError("out of device memory")
        return real_open(self, path, options, n_gpu_layers, progress)

    monkeypatch.setattr(engine_module, "gpu_backend_name", lambda: "CUDA")
    monkeypatch.setattr(Engine, "_open", open_failing_on_gpu)
    eng = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=512, n_gpu_layers=-1))
    try:
        assert attempts == [2, 0]  # all layers (1 + output), then none
        assert eng.info.backend == "CPU"
        assert "CUDA GPU failed" in eng.info.gpu_note and "out of device memory" in eng.info.gpu_note
        assert eng.chat(ASK).run().answer == STANDARD_ANSWER.strip()
    finally:
        eng.close()


def test_load_progress_is_reported_and_can_cancel(scripted_model):
    seen = []
    eng = Engine.load(scripted_model("standard_r1"), SMALL, progress=lambda f: seen.append(f) or True)
    eng.close()
    assert seen and seen[-1] == pytest.approx(1.0)
    with pytest.raises(LoadCancelled):
        Engine.load(scripted_model("standard_r1"), SMALL, progress=lambda f: False)


def test_llama_log_goes_to_python_logging(scripted_model, caplog):
    with caplog.at_level(logging.DEBUG, logger="llama.cpp"):
        Engine.load(scripted_model("standard_r1"), SMALL).close()
    assert any(r.name == "llama.cpp" and "llama" in r.getMessage() for r in caplog.records)


def test_backend_sampling_follows_the_script_and_detaches(scripted_model):
    # On by default only for GPUs; forced on here to run the same chain inside llama.cpp's graph.
    eng = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=2048, backend_sampling=True))
    try:
        for seed in (1, 2):
            run = eng.chat(ASK, Sampling(seed=seed)).run()
            assert run.answer == STANDARD_ANSWER.strip()
            assert run.thinking == STANDARD_THINKING.strip()
    finally:
        eng.close()


def test_auto_offload_uses_the_memory_plan(scripted_model, monkeypatch):
    from app.core import hardware

    attempts = []
    real_open = Engine._open
    monkeypatch.setattr(engine_module, "gpu_backend_name", lambda: "CUDA")
    monkeypatch.setattr(Engine, "_open", lambda self, p, o, n, pr: attempts.append(n) or real_open(self, p, o, 0, pr))
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(vram_gb=8, ram_gb=16, gpu_name="RTX 4060"))
    Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=512)).close()
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(vram_gb=0.5, ram_gb=16, gpu_name="RTX 4060"))
    Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=512)).close()
    # ggml has a GPU the probe cannot size: offload all, a failed load falls back to the CPU
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=16))
    Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=512)).close()
    assert attempts == [2, 0, 2]


def test_model_too_big_for_this_computer_is_refused_before_loading(scripted_model, monkeypatch):
    from app.core import hardware

    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=0.1))
    with pytest.raises(ModelLoadError, match=r"needs about .* GB of memory .* this computer has 0\.1 GB"):
        Engine.load(scripted_model("standard_r1"), SMALL)


def test_a_context_too_big_for_this_computer_falls_back_to_8k_with_a_note(scripted_model, monkeypatch):
    """As the recommendation plans it (16k, else 8k): the model loads at 8k and says why, instead
    of being refused, when 8k fits this computer's memory and the asked context does not."""
    from app.core import hardware, sizing
    from app.core.modelfile import inspect_gguf

    path = scripted_model("standard_r1")
    summary = inspect_gguf(path)

    def need(n_ctx: int) -> int:
        return sizing.plan(summary, n_ctx=n_ctx, kv_type="f16", n_gpu_layers=0,
                           hw=hardware.describe(ram_gb=64)).ram_bytes

    between = (need(8192) + need(16384)) / 2 / 1024**3
    assert need(16384) > need(8192)
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=between))
    eng = Engine.load(path, LoadOptions(n_ctx=16384, n_gpu_layers=0))
    try:
        assert eng.info.n_ctx == 8192
        assert eng.info.context_note.startswith("Loaded with an 8k-token context: the model needs about ")
        assert "with a 16384-token context" in eng.info.context_note
        assert list(eng.chat([{"role": "user", "content": "Hi"}], Sampling(max_tokens=4)))  # and it answers
    finally:
        eng.close()
    # When 8k does not fit either, the refusal names the asked context.
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=need(8192) / 2 / 1024**3))
    with pytest.raises(ModelLoadError, match=r"needs about .* with a 16384-token context"):
        Engine.load(path, LoadOptions(n_ctx=16384, n_gpu_layers=0))
    # Where the asked context fits, nothing changes.
    monkeypatch.setattr(hardware, "probe", lambda: hardware.describe(ram_gb=64))
    eng = Engine.load(path, LoadOptions(n_ctx=16384, n_gpu_layers=0))
    try:
        assert eng.info.n_ctx == 16384 and eng.info.context_note is None
    finally:
        eng.close()


def test_context_is_capped_at_what_the_model_was_trained_for(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), LoadOptions(n_ctx=65536))
    try:
        assert eng.info.n_ctx == eng.info.n_ctx_train == 32768
    finally:
        eng.close()


def test_template_that_raises_gives_a_clear_error(scripted_model):
    script = Script("raising_template", SCRIPTS["standard_r1"].pieces,
                    chat_template="{{ raise_exception('Only user and assistant roles are supported') }}")
    eng = Engine.load(scripted_model(script), SMALL)
    try:
        with pytest.raises(PonderError, match="chat template could not format.*Only user and assistant"):
            eng.chat(ASK)
        assert eng.info.template_note is None
    finally:
        eng.close()


def test_run_keeps_the_exact_prompt_text_and_the_seed_it_drew(standard):
    run = standard.chat(ASK, Sampling(seed=None)).run()
    assert run.prompt_text == standard._prompts.render(ASK).text
    assert run.prompt_text.endswith("<think>\n") and "What is 17 × 23?" in run.prompt_text
    # The text is what was tokenized: the same tokens, so the same count.
    has_bos = run.prompt_text.startswith(standard._bos_text)  # else the tokenizer adds it
    assert len(standard._tokenize(run.prompt_text, add_special=not has_bos)) == run.stats.prompt_tokens
    assert isinstance(run.sampling.seed, int) and 0 <= run.sampling.seed < engine_module.LLAMA_SEED_LIMIT
    again = standard.chat(ASK, Sampling(seed=None)).run()
    assert again.sampling.seed != run.sampling.seed  # drawn each time (1 in 4 billion to collide)
    given = standard.chat(ASK, Sampling(seed=1234)).run()
    assert given.sampling.seed == 1234


def test_keep_thinking_sends_earlier_reasoning_to_the_model(standard):
    first = standard.chat(ASK).run()
    history = ASK + [
        {"role": "assistant", "content": first.answer, "thinking": first.thinking},
        {"role": "user", "content": "And 17 × 24?"},
    ]
    stripped = standard.chat(history).run()
    kept = standard.chat(history, keep_thinking=True).run()
    assert first.thinking.strip() not in stripped.prompt_text
    assert f"<think>\n{first.thinking.strip()}\n</think>\n\n{first.answer}" in kept.prompt_text
    assert kept.stats.prompt_tokens > stripped.stats.prompt_tokens
    assert kept.answer == STANDARD_ANSWER.strip()
