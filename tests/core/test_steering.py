"""Steering a thought (issue 9) end to end: real llama.cpp on scripted models.

A scripted model's next token depends on its current token only (tests/fixtures/scripted_gguf.py):
after an inserted `</think>` (the real token, the script's own) it goes on with the script's
answer, and after any other inserted text (byte tokens) it starts its script again. So each
test knows the exact text that follows an insertion.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from app.core.engine import Engine, LoadOptions, Sampling
from app.core.reasoning import Segment, ThinkSplitter, TraceText
from app.core.steering import (
    ANSWER_NOW_WRAP_UP,
    BUDGET_WRAP_UP,
    Steering,
    SteeringError,
    check_budget,
    check_note,
    continued_prefix,
    nudge_text,
)
from tests.fixtures.scripted_gguf import LONG_TRACE, STANDARD_ANSWER, STANDARD_THINKING

ASK = [{"role": "user", "content": "What is 17 × 23?"}]
LONG_ANSWER = "After long thought: the answer is **42**."
OPTIONS = LoadOptions(n_ctx=4096)


@pytest.fixture(scope="module")
def standard(scripted_model):
    eng = Engine.load(scripted_model("standard_r1"), OPTIONS)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def long_trace(scripted_model):
    eng = Engine.load(scripted_model("long_trace"), OPTIONS)
    yield eng
    eng.close()


def n_tokens(eng: Engine, text: str) -> int:
    return len(eng._tokenize(text))


def prompt_evaluated(eng: Engine) -> int:
    """Tokens llama.cpp evaluated in batches (prompt, inserted text) since the run began."""
    return eng._lc.llama_perf_context(eng._ctx).n_p_eval


def inserted(segments, by):
    return "".join(s.text for s in segments if s.inserted_by == by)


# --- thinking budget --------------------------------------------------------------------


def test_budget_ends_the_thought_with_a_marked_wrap_up_and_the_model_answers(long_trace):
    run = long_trace.chat(ASK, Sampling(seed=1, thinking_budget=50))
    segments = list(run)
    s = run.stats
    wrap_up_tokens = n_tokens(long_trace, BUDGET_WRAP_UP + "</think>")
    assert "budget_reached" in run.flags
    assert s.thinking_tokens - s.inserted_tokens == 50  # what the model generated while thinking
    assert s.inserted_tokens == wrap_up_tokens
    assert s.thinking_tokens <= 50 + wrap_up_tokens
    assert run.thinking.endswith(BUDGET_WRAP_UP.strip())
    assert run.answer == LONG_ANSWER  # after the inserted </think> the model answers
    assert inserted(segments, "ponder") == BUDGET_WRAP_UP
    assert not [seg for seg in segments if seg.kind == "answer" and seg.inserted_by]
    span, close = run.spans
    assert span["by"] == "ponder" and span["kind"] == "wrap_up" and span["field"] == "thinking"
    assert run.thinking[span["start"]:span["end"]].strip() == BUDGET_WRAP_UP.strip()
    # Ponder's </think> is a zero-width span where the thought ends.
    assert close == {"field": "thinking", "start": len(run.thinking), "end": len(run.thinking),
                     "by": "ponder", "kind": "close"}
    assert s.finish_reason == "stop"


def test_a_budget_the_thought_stays_within_changes_nothing(standard):
    run = standard.chat(ASK, Sampling(seed=1, thinking_budget=10_000)).run()
    assert run.thinking == STANDARD_THINKING.strip() and run.answer == STANDARD_ANSWER.strip()
    assert run.flags == [] and run.spans == [] and run.stats.inserted_tokens == 0


@pytest.mark.parametrize("budget", [0, -3])
def test_a_budget_below_one_token_is_refused_with_a_sentence(standard, budget):
    with pytest.raises(SteeringError, match="at least 1 token"):
        standard.chat(ASK, Sampling(thinking_budget=budget))


def test_check_budget_accepts_off_and_whole_numbers_only():
    assert check_budget(None) is None and check_budget(7) == 7
    for bad in (1.5, "12", True):
        with pytest.raises(SteeringError, match="whole number"):
            check_budget(bad)


# --- answer now -------------------------------------------------------------------------


def test_answer_now_at_a_chosen_token_ends_the_thought_there(long_trace):
    steering = Steering()
    run = long_trace.chat(ASK, Sampling(seed=2), steering=steering)
    segments = []
    for seg in run:
        segments.append(seg)
        if run.thinking_tokens == 30 and not steering._answer_now.is_set() and "answer_now" not in run.flags:
            steering.answer_now()  # the check after the next token takes it
    s = run.stats
    assert "answer_now" in run.flags and "budget_reached" not in run.flags
    assert s.thinking_tokens - s.inserted_tokens == 30
    assert run.thinking.endswith(ANSWER_NOW_WRAP_UP.strip())
    assert inserted(segments, "ponder") == ANSWER_NOW_WRAP_UP
    assert run.answer == LONG_ANSWER


def test_answer_now_once_the_answer_has_begun_changes_nothing(standard):
    steering = Steering()
    run = standard.chat(ASK, Sampling(seed=2), steering=steering)
    for seg in run:
        if seg.kind == "answer":
            steering.answer_now()
    assert run.flags == [] and run.answer == STANDARD_ANSWER.strip()


# --- nudges -----------------------------------------------------------------------------


def test_a_nudge_mid_thought_goes_in_as_the_models_words_and_it_thinks_on(standard):
    steering = Steering()
    run = standard.chat(ASK, Sampling(seed=3), steering=steering)
    segments = []
    for seg in run:
        segments.append(seg)
        if len(segments) == 4:
            steering.nudge("  consider negative numbers too.  ")
    note = nudge_text("consider negative numbers too.")
    assert note == "\n\nWait, the user adds: consider negative numbers too.\n\n"
    assert inserted(segments, "user") == note
    assert "nudged" in run.flags
    before, after = run.thinking.split(note.strip())
    assert STANDARD_THINKING.startswith(before.strip())
    assert after.strip() == STANDARD_THINKING.strip()  # the model thought on (its script again)
    assert run.answer == STANDARD_ANSWER.strip()
    [span] = run.spans
    assert span["by"] == "user" and span["kind"] == "nudge"
    assert run.thinking[span["start"]:span["end"]].strip() == note.strip()
    # The KV cache was reused: llama.cpp evaluated the prompt once and the note once, nothing else again.
    s = run.stats
    assert s.inserted_tokens == n_tokens(standard, note)
    assert prompt_evaluated(standard) == s.prompt_tokens - s.prompt_reused_tokens + s.inserted_tokens
    assert s.context_used == s.prompt_tokens + s.thinking_tokens + s.answer_tokens


def test_a_nudge_after_the_thought_ended_is_handed_back(standard):
    steering = Steering()
    run = standard.chat(ASK, Sampling(seed=3), steering=steering)
    for seg in run:
        if seg.kind == "answer" and not steering._notes and not steering.unused:
            steering.nudge("too late")
    assert steering.unused == ["too late"]
    assert "nudged" not in run.flags and run.answer == STANDARD_ANSWER.strip()


@pytest.mark.parametrize("note,words", [("", "Type a note"), ("   ", "Type a note"),
                                        ("stop </think> now", "</think>"), ("<think>", "<think>"),
                                        ("x" * 5000, "at most")])
def test_bad_notes_are_refused_with_a_sentence(note, words):
    with pytest.raises(SteeringError, match=words):
        Steering().nudge(note)
    with pytest.raises(SteeringError):
        check_note(note)


def test_a_non_reasoning_model_takes_no_nudge_and_has_no_thought_to_continue(scripted_model):
    eng = Engine.load(scripted_model("non_reasoning"), OPTIONS)
    try:
        steering = Steering()
        steering.nudge("think harder")
        run = eng.chat(ASK, Sampling(seed=1, thinking_budget=3), steering=steering).run()
        assert steering.unused == ["think harder"] and run.flags == ["no_thinking"]
        with pytest.raises(SteeringError, match="not a reasoning model"):
            eng.continue_from(ASK, "Some thought")
    finally:
        eng.close()


# --- continuing a thought ---------------------------------------------------------------


def test_a_stopped_thought_continues_with_a_nudge_reusing_the_kv_cache(standard):
    stop = threading.Event()
    run = standard.chat(ASK, Sampling(seed=4), stop)
    for i, _ in enumerate(run):
        if i == 6:
            stop.set()
    assert run.stats.finish_reason == "cancelled"
    in_context = len(standard._cached)  # the prompt and every token the stopped run generated
    note = nudge_text("check it the other way round")
    prefix = continued_prefix(run.thinking, run.spans, run.thinking) + [Segment("think", note, 0, "nudge")]
    again = standard.continue_from(ASK, prefix, Sampling(seed=4))
    segments = list(again)
    assert again.stats.prompt_reused_tokens == in_context  # nothing the context held is evaluated again
    assert again.stats.prompt_tokens == run.stats.prompt_tokens
    assert again.thinking.startswith(run.thinking + note.rstrip())
    assert again.answer == STANDARD_ANSWER.strip()
    assert "continued" in again.flags
    assert [(s["by"], s["kind"]) for s in again.spans] == [("user", "nudge")]
    assert again.thinking[again.spans[0]["start"]:again.spans[0]["end"]].strip() == note.strip()
    assert "".join(s.text for s in segments if s.kind == "think").startswith(run.thinking)
    assert again.prompt_text.endswith(run.thinking + note)


def test_continue_from_an_edited_thought_keeps_the_model_part_and_marks_the_edit(standard):
    first = standard.chat(ASK, Sampling(seed=5)).run()
    edited = first.thinking[:40] + "? Hmm, or is it 400?"
    prefix = continued_prefix(first.thinking, first.spans, edited)
    assert [(s.text, s.inserted) for s in prefix] == [(first.thinking[:40], None), ("? Hmm, or is it 400?", "edit")]
    run = standard.continue_from(ASK, prefix, Sampling(seed=5)).run()
    assert run.thinking.startswith(edited)
    assert run.spans[0] == {"field": "thinking", "start": 40, "end": len(edited), "by": "user", "kind": "edit"}
    assert run.answer == STANDARD_ANSWER.strip()
    assert run.flags == ["continued"]
    # The unedited start is the first run's own tokens: reused from the KV cache.
    assert run.stats.prompt_reused_tokens > run.stats.prompt_tokens
    assert run.stats.thinking_tokens > run.stats.inserted_tokens > 0


def test_continue_from_a_plain_string_marks_it_the_users_and_refuses_tags(standard):
    run = standard.continue_from(ASK, "My own start.", Sampling(seed=6)).run()
    assert run.thinking.startswith("My own start.")
    assert run.spans[0] == {"field": "thinking", "start": 0, "end": len("My own start."), "by": "user", "kind": "edit"}
    with pytest.raises(SteeringError, match="</think>"):
        standard.continue_from(ASK, "cut </think> here")


def test_continued_prefix_keeps_earlier_marks_up_to_the_first_change():
    thinking = "Model text. Wait, the user adds: hi. More model text."
    spans = [{"field": "thinking", "start": 12, "end": 36, "by": "user", "kind": "nudge"}]
    same = continued_prefix(thinking, spans, thinking)
    assert [(s.text, s.inserted) for s in same] == [
        ("Model text. ", None), ("Wait, the user adds: hi.", "nudge"), (" More model text.", None)]
    cut = continued_prefix(thinking, spans, thinking[:20] + "!")
    assert [(s.text, s.inserted) for s in cut] == [("Model text. ", None), ("Wait, th", "nudge"), ("!", "edit")]
    assert [s.inserted_by for s in cut] == [None, "user", "user"]
    assert continued_prefix(thinking, spans, "") == []


# --- spans and stats --------------------------------------------------------------------


def test_trace_text_spans_are_offsets_into_the_joined_thinking():
    splitter = ThinkSplitter(prompt_opens_thinking=True)
    trace = TraceText()
    for seg in [*splitter.feed("  First thought."), *splitter.insert(" Mine.", "nudge"),
                *splitter.feed("</think>Answer.<think>Second"), *splitter.insert(" Ours.", "wrap_up", close_thinking=True),
                *splitter.feed("More answer."), *splitter.finish()]:
        trace.add(seg)
    assert trace.thinking == "First thought. Mine.\n\nSecond Ours."
    assert trace.spans == splitter.spans == [
        {"field": "thinking", "start": 14, "end": 20, "by": "user", "kind": "nudge"},
        {"field": "thinking", "start": 28, "end": 34, "by": "ponder", "kind": "wrap_up"},
        {"field": "thinking", "start": 34, "end": 34, "by": "ponder", "kind": "close"},
    ]
    assert trace.answer == "Answer.More answer."
    assert "multiple_think_blocks" in splitter.flags


def test_inserted_text_is_never_parsed_for_tags_and_a_held_tag_prefix_stays_text():
    splitter = ThinkSplitter(prompt_opens_thinking=True)
    out = splitter.feed("a <")
    out += splitter.insert("</think> is text here", "edit")
    assert splitter.in_thinking
    assert "".join(s.text for s in out) == "a <</think> is text here"
    with pytest.raises(ValueError):
        splitter.insert("x", "somebody")


def test_thinking_and_answer_have_their_own_stats(standard):
    s = standard.chat(ASK, Sampling(seed=7)).run().stats
    assert s.thinking_s > 0 and s.answer_s > 0 and s.time_to_first_token_s > 0
    assert s.thinking_tokens_per_s == pytest.approx(s.thinking_tokens / s.thinking_s)
    assert s.answer_tokens_per_s == pytest.approx(s.answer_tokens / s.answer_s)
    assert s.thinking_s + s.answer_s <= s.total_s


# --- the command line -------------------------------------------------------------------


def ponder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120)


def test_ask_thinking_budget_in_json(scripted_model):
    result = ponder("ask", "--model", str(scripted_model(LONG_TRACE.name)), "--ctx", "4096",
                    "--thinking-budget", "20", "--json", "Hi")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "budget_reached" in data["flags"]
    assert data["answer"] == LONG_ANSWER
    assert data["sampling"]["thinking_budget"] == 20
    assert [s["kind"] for s in data["spans"]] == ["wrap_up", "close"]
    stats = data["stats"]
    assert stats["thinking_tokens"] - stats["inserted_tokens"] == 20
    assert stats["answer_s"] > 0 and stats["thinking_s"] > 0


@pytest.mark.parametrize("value,words", [("0", "at least 1 token"), ("-4", "at least 1 token"),
                                         ("lots", "whole number")])
def test_ask_refuses_a_bad_thinking_budget_with_a_sentence(scripted_model, value, words):
    result = ponder("ask", "--model", str(scripted_model("standard_r1")), "--thinking-budget", value, "Hi")
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


# --- with speculative decoding ----------------------------------------------------------


def test_a_budget_cuts_inside_a_run_of_accepted_drafts(scripted_model, long_trace, tmp_path):
    """A copy of the model as its draft drafts perfectly: a step brings up to k+1 tokens, and the
    budget falls inside such a run. The drafts after the cut leave the KV cache."""
    path = scripted_model("long_trace")
    draft = tmp_path / "draft.gguf"
    shutil.copyfile(path, draft)
    eng = Engine.load(path, LoadOptions(n_ctx=4096, draft=str(draft)))
    try:
        eng.draft_fixed_k = 8
        run = eng.chat(ASK, Sampling(seed=1, thinking_budget=13)).run()
        plain = long_trace.chat(ASK, Sampling(seed=1, thinking_budget=13)).run()
        assert run.stats.draft_accepted > 13  # the budget did fall inside accepted runs
        assert (run.thinking, run.answer, run.flags, run.spans) == (plain.thinking, plain.answer, plain.flags, plain.spans)
        s = run.stats
        assert s.thinking_tokens - s.inserted_tokens == 13
        lc = eng._lc
        kv = lc.llama_memory_seq_pos_max(lc.llama_get_memory(eng._ctx), 0) + 1
        assert kv == s.context_used == s.prompt_tokens + s.thinking_tokens + s.answer_tokens
    finally:
        eng.close()
