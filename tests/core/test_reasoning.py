"""ThinkSplitter: think/answer splitting of streamed R1 output, cut anywhere."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.reasoning import FLAGS, Segment, ThinkSplitter, split_text

TAG = re.compile(r"</?think>")


def run(chunks, prompt_opens_thinking):
    """Feed chunks then finish; return (splitter, all segments in order)."""
    splitter = ThinkSplitter(prompt_opens_thinking)
    segments = []
    for chunk in chunks:
        segments += splitter.feed(chunk)
    segments += splitter.finish()
    return splitter, segments


def merged(segments):
    """(kind, text) runs with adjacent same-kind segments joined."""
    runs = []
    for seg in segments:
        if runs and runs[-1][0] == seg.kind:
            runs[-1] = (seg.kind, runs[-1][1] + seg.text)
        else:
            runs.append((seg.kind, seg.text))
    return runs


def outcome(splitter, segments):
    return (
        merged(segments),
        splitter.thinking,
        splitter.answer,
        splitter.thinking_blocks,
        splitter.flags,
        splitter.in_thinking,
    )


# --- prompt opens thinking (current R1 template) -----------------------------


def test_prompt_opened_thinking_runs_until_close_then_answer():
    s, segs = run(["Let me think.\n</think>\n\nThe answer is 4."], True)
    assert merged(segs) == [("think", "Let me think.\n"), ("answer", "The answer is 4.")]
    assert (s.thinking, s.answer, s.flags) == ("Let me think.", "The answer is 4.", [])


def test_opening_tag_repeated_by_model_is_the_same_block():
    s, segs = run(["\n<think>\nHmm.</think>Yes."], True)
    assert merged(segs) == [("think", "Hmm."), ("answer", "Yes.")]
    assert s.thinking_blocks == ["Hmm."]
    assert s.flags == []


def test_in_thinking_follows_the_tags():
    s = ThinkSplitter(True)
    assert s.in_thinking
    s.feed("a")
    assert s.in_thinking
    s.feed("</think>")
    assert not s.in_thinking
    s.feed("b<think>")
    assert s.in_thinking


def test_in_thinking_unchanged_while_a_tag_is_half_received():
    s = ThinkSplitter(True)
    s.feed("a</thi")
    assert s.in_thinking
    s.feed("nk>")
    assert not s.in_thinking


# --- prompt does not open thinking (older templates, other models) ----------


def test_old_template_output_opens_with_think_tag():
    s, segs = run(["<think>\nStep.\n</think>\n\nDone."], False)
    assert merged(segs) == [("think", "Step.\n"), ("answer", "Done.")]
    assert (s.thinking, s.answer, s.flags) == ("Step.", "Done.", [])


def test_whitespace_before_first_think_tag_is_not_text_before_think():
    s, _ = run(["\n  <think>x</think>y"], False)
    assert s.flags == []


def test_text_before_think_stays_answer_and_is_flagged():
    s, segs = run(["Sure! <think>plan</think>Result"], False)
    assert merged(segs) == [("answer", "Sure! "), ("think", "plan"), ("answer", "Result")]
    assert s.answer == "Sure! Result"
    assert s.thinking == "plan"
    assert s.flags == ["text_before_think"]


def test_no_tags_at_all_is_all_answer_with_no_thinking():
    s, segs = run(["Paris is the ", "capital of France."], False)
    assert merged(segs) == [("answer", "Paris is the capital of France.")]
    assert s.thinking == ""
    assert s.thinking_blocks == []
    assert s.flags == ["no_thinking"]


def test_no_thinking_is_reported_only_at_finish():
    s = ThinkSplitter(False)
    s.feed("Hello")
    assert s.flags == []
    s.finish()
    assert s.flags == ["no_thinking"]


# --- pathologies ------------------------------------------------------------


def test_skipped_thinking_block_of_only_whitespace():
    s, segs = run(["<think>\n\n</think>\n\nHi there."], False)
    assert merged(segs) == [("answer", "Hi there.")]
    assert s.thinking_blocks == [""]
    assert s.thinking == ""
    assert s.flags == ["skipped_thinking"]


def test_skipped_thinking_when_prompt_opened_it():
    s, _ = run(["\n\n</think>\n\nHi."], True)
    assert s.flags == ["skipped_thinking"]
    assert s.answer == "Hi."


def test_unclosed_thinking_reported_by_finish_text_stays_thinking():
    s = ThinkSplitter(True)
    assert s.feed("Still going") == [Segment("think", "Still going")]
    assert s.flags == []
    s.finish()
    assert s.flags == ["unclosed_thinking"]
    assert (s.thinking, s.answer) == ("Still going", "")


def test_empty_stream_with_opened_prompt_is_unclosed_not_skipped():
    s, segs = run([], True)
    assert segs == []
    assert s.flags == ["unclosed_thinking"]


def test_orphan_close_is_dropped_and_text_stays_answer():
    s, segs = run(["<think>a</think>b</think>c"], False)
    assert merged(segs) == [("think", "a"), ("answer", "bc")]
    assert s.flags == ["orphan_close"]


def test_orphan_close_without_any_block_is_also_no_thinking():
    s, _ = run(["x</think>y"], False)
    assert s.answer == "xy"
    assert s.flags == ["no_thinking", "orphan_close"]


def test_second_think_block_after_answer():
    s, segs = run(["one</think>A\n\n<think>two</think>B"], True)
    assert merged(segs) == [
        ("think", "one"),
        ("answer", "A\n\n"),
        ("think", "two"),
        ("answer", "B"),
    ]
    assert s.thinking_blocks == ["one", "two"]
    assert s.thinking == "one\n\ntwo"
    assert s.answer == "A\n\nB"
    assert s.flags == ["multiple_think_blocks"]


def test_thinking_skips_empty_blocks_when_joining():
    s, _ = run(["<think> </think>a<think>b</think>c"], False)
    assert s.thinking_blocks == ["", "b"]
    assert s.thinking == "b"
    assert s.flags == ["multiple_think_blocks", "skipped_thinking"]


def test_nested_open_tag_is_dropped_and_stays_thinking():
    s, segs = run(["first <think>inner</think>answer"], True)
    assert merged(segs) == [("think", "first inner"), ("answer", "answer")]
    assert s.thinking_blocks == ["first inner"]
    assert s.flags == ["multiple_think_blocks"]


# --- streaming display ------------------------------------------------------


def test_leading_whitespace_of_each_block_is_never_emitted():
    s = ThinkSplitter(True)
    assert s.feed("\n") == []
    assert s.feed("  ") == []
    assert s.feed(" Ok") == [Segment("think", "Ok")]
    assert s.feed("</think>") == []
    assert s.feed("\n\n") == []
    assert s.feed("\nYes") == [Segment("answer", "Yes")]


def test_trailing_whitespace_is_emitted_but_stripped_from_properties():
    s = ThinkSplitter(True)
    assert s.feed("idea \n") == [Segment("think", "idea \n")]
    assert s.feed("</think>Answer.\n") == [Segment("answer", "Answer.\n")]
    assert (s.thinking, s.answer) == ("idea", "Answer.")


def test_one_feed_merges_adjacent_same_kind_text():
    s = ThinkSplitter(True)
    assert s.feed("a<b </think>c <d") == [Segment("think", "a<b "), Segment("answer", "c <d")]


def test_lone_less_than_waits_only_for_the_next_delta():
    s = ThinkSplitter(False)
    assert s.feed("if a <") == [Segment("answer", "if a ")]
    assert s.feed(" b") == [Segment("answer", "< b")]


def test_less_than_not_starting_a_tag_is_emitted_at_once():
    s = ThinkSplitter(False)
    assert s.feed("x <y") == [Segment("answer", "x <y")]
    assert s.feed("<thinker") == [Segment("answer", "<thinker")]
    assert s.feed("</thin>") == [Segment("answer", "</thin>")]


def test_held_prefix_grows_across_deltas():
    s = ThinkSplitter(True)
    assert s.feed("t<") == [Segment("think", "t")]
    assert s.feed("/") == []
    assert s.feed("thi") == []
    assert s.feed("nk") == []
    assert s.feed(">a") == [Segment("answer", "a")]


def test_finish_emits_held_prefix_as_text_of_current_kind():
    s = ThinkSplitter(False)
    assert s.feed("5 </th") == [Segment("answer", "5 ")]
    assert s.finish() == [Segment("answer", "</th")]
    assert s.answer == "5 </th"


def test_tag_case_must_match_exactly():
    s, _ = run(["<THINK>x</Think>"], False)
    assert s.answer == "<THINK>x</Think>"
    assert s.flags == ["no_thinking"]


def test_segment_never_spells_a_tag_across_a_dropped_tag():
    s = ThinkSplitter(True)
    segs = s.feed("go <thi<think>nk> on")
    assert all("<think>" not in seg.text for seg in segs)
    assert "".join(seg.text for seg in segs) == "go <think> on"


def test_feed_after_finish_is_a_bug():
    s = ThinkSplitter(False)
    s.finish()
    with pytest.raises(RuntimeError):
        s.feed("late")
    assert s.finish() == []


def test_properties_readable_mid_stream_and_keep_growing():
    s = ThinkSplitter(True)
    s.feed("a")
    s.feed("b")
    assert s.thinking == "ab"
    s.feed("c</think>x")
    s.feed("y")
    assert (s.thinking, s.answer) == ("abc", "xy")
    s.feed("z")
    assert s.answer == "xyz"


def test_split_text_matches_streaming():
    text = "\n<think>\nplan\n</think>\n\nresult"
    assert split_text(text, False) == ("plan", "result", [])
    assert split_text("plan</think>result", True) == ("plan", "result", [])
    assert split_text("plain", False) == ("", "plain", ["no_thinking"])


# --- cuts at every position -------------------------------------------------

CUT_CASES = [
    ("a<think>b</think>c", False),
    ("x</think>\n\ny", True),
    ("\n<think>\nq</think>r<think>s</think>t", True),
    ("pre <think>in <think>deep</think>post</think>end <", False),
    ("a < b <th </thinker> c", False),
]


@pytest.mark.parametrize(("text", "opens"), CUT_CASES)
def test_every_single_cut_gives_the_same_result(text, opens):
    expected = outcome(*run([text], opens))
    for i in range(len(text) + 1):
        assert outcome(*run([text[:i], text[i:]], opens)) == expected, i


@pytest.mark.parametrize(("text", "opens"), CUT_CASES)
def test_every_pair_of_cuts_gives_the_same_result(text, opens):
    expected = outcome(*run([text], opens))
    n = len(text)
    for i in range(n + 1):
        for j in range(i, n + 1):
            got = outcome(*run([text[:i], text[i:j], text[j:]], opens))
            assert got == expected, (i, j)


@pytest.mark.parametrize(("text", "opens"), CUT_CASES)
def test_char_by_char_gives_the_same_result(text, opens):
    assert outcome(*run(list(text), opens)) == outcome(*run([text], opens))


# --- property: any text, any chunking ---------------------------------------

PIECES = [
    "<think>", "</think>", "<", "</", "<th", "<thi", "</think", "think>", "nk>", ">",
    " ", "\n", "\n\n", "\t", "a", "word", "é", "2 < 3", "x<y", "<b>",
]  # fmt: skip


def only_whitespace_deleted(source, result):
    """Is result source with some whitespace characters removed (and nothing else)?"""
    j = 0
    for ch in source:
        if j < len(result) and ch == result[j]:
            j += 1
        elif not ch.isspace():
            return False
    return j == len(result)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), pieces=st.lists(st.sampled_from(PIECES), max_size=30), opens=st.booleans())
def test_any_chunking_matches_whole_text(data, pieces, opens):
    text = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]

    whole, whole_segs = run([text], opens)
    chunked, chunked_segs = run(chunks, opens)
    expected = outcome(whole, whole_segs)
    assert outcome(chunked, chunked_segs) == expected
    assert outcome(*run(list(text), opens)) == expected
    assert split_text(text, opens) == (whole.thinking, whole.answer, whole.flags)

    for seg in whole_segs + chunked_segs:
        assert seg.text
        assert "<think>" not in seg.text and "</think>" not in seg.text
    assert set(whole.flags) <= set(FLAGS)
    assert ("no_thinking" in whole.flags) == (whole.thinking_blocks == [])
    assert ("unclosed_thinking" in whole.flags) == whole.in_thinking

    emitted = "".join(seg.text for seg in chunked_segs)
    assert only_whitespace_deleted(TAG.sub("", text), emitted)
