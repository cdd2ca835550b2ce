"""Prompt building: R1 guidance on templates, system prompts and old reasoning."""

from app.core.prompt import (
    GENERIC_FALLBACK_TEMPLATE,
    R1_FALLBACK_TEMPLATE,
    PromptBuilder,
    prepare_messages,
    strip_reasoning,
)
from tests.fixtures.r1_template import R1_TEMPLATE, R1_TEMPLATE_OLD, V3_TEMPLATE

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"


def builder(template, reasoning=True):
    return PromptBuilder(template, bos_token=BOS, eos_token=EOS, is_reasoning=reasoning)


def test_current_r1_template_already_opens_thinking():
    p = builder(R1_TEMPLATE).render([{"role": "user", "content": "Hi"}])
    assert p.text.endswith("<｜Assistant｜><think>\n")
    assert p.text.count("<think>") == 1
    assert p.opens_thinking


def test_old_r1_template_gets_think_tag_appended():
    p = builder(R1_TEMPLATE_OLD).render([{"role": "user", "content": "Hi"}])
    assert p.text.endswith("<｜Assistant｜><think>\n")
    assert p.opens_thinking


def test_non_reasoning_template_is_left_alone():
    p = builder(V3_TEMPLATE, reasoning=False).render([{"role": "user", "content": "Hi"}])
    assert "<think>" not in p.text
    assert not p.opens_thinking


def test_system_prompt_is_folded_into_first_user_turn_for_r1():
    msgs = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "Again"},
    ]
    prepared = prepare_messages(msgs, is_reasoning=True)
    assert [m["role"] for m in prepared] == ["user", "assistant", "user"]
    assert prepared[0]["content"] == "Answer in French.\n\nHi"
    assert prepared[2]["content"] == "Again"
    text = builder(R1_TEMPLATE).render(msgs).text
    assert text.index("Answer in French.") > text.index("<｜User｜>")


def test_system_prompt_kept_for_non_reasoning_models():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert prepare_messages(msgs, is_reasoning=False) == msgs


def test_earlier_reasoning_is_not_sent_back():
    assert strip_reasoning("<think>\nlong thoughts\n</think>\n\nThe answer.") == "The answer."
    assert strip_reasoning("mid-thought\n</think>\n\nOK") == "OK"
    assert strip_reasoning("No tags here.") == "No tags here."
    msgs = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "<think>secret plan</think>A1"},
        {"role": "user", "content": "Q2"},
    ]
    text = builder(R1_TEMPLATE).render(msgs).text
    assert "secret plan" not in text and "A1" in text


def test_fallback_templates_render():
    msgs = [{"role": "user", "content": "Hi"}]
    r1 = builder(R1_FALLBACK_TEMPLATE).render(msgs)
    assert r1.text == f"{BOS}<｜User｜>Hi<｜Assistant｜><think>\n" and r1.opens_thinking
    generic = builder(GENERIC_FALLBACK_TEMPLATE, reasoning=False).render(msgs)
    assert generic.text.endswith("<|im_start|>assistant\n") and not generic.opens_thinking


def test_template_cannot_escape_the_sandbox():
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    import pytest
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        builder(evil).render([{"role": "user", "content": "x"}])


KEEP_HISTORY = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4.", "thinking": "Two plus two.\n</think> is just text here"},
    {"role": "user", "content": "And 3+3?"},
]


def test_earlier_thinking_is_left_out_by_default_even_when_given():
    text = builder(R1_TEMPLATE).render(KEEP_HISTORY).text
    assert "Two plus two" not in text
    assert "<｜Assistant｜>It is 4.<｜end▁of▁sentence｜>" in text


def test_keep_thinking_puts_earlier_reasoning_back_despite_the_r1_template():
    # R1's own template cuts assistant turns at '</think>'; the kept turn must survive it whole.
    text = builder(R1_TEMPLATE).render(KEEP_HISTORY, keep_thinking=True).text
    turn = "<think>\nTwo plus two.\n</think> is just text here\n</think>\n\nIt is 4."
    assert f"<｜Assistant｜>{turn}<｜end▁of▁sentence｜>" in text
    assert text.endswith("<｜User｜>And 3+3?<｜Assistant｜><think>\n")
    assert "\ue000" not in text and "ponder-kept-turn" not in text


def test_keep_thinking_changes_only_the_earlier_assistant_turn():
    stripped = builder(R1_TEMPLATE).render(KEEP_HISTORY).text
    kept = builder(R1_TEMPLATE).render(KEEP_HISTORY, keep_thinking=True).text
    prefix = stripped[: stripped.index("It is 4.")]
    assert kept.startswith(prefix) and kept != stripped
    assert kept.replace("<think>\nTwo plus two.\n</think> is just text here\n</think>\n\n", "", 1) == stripped


def test_keep_thinking_works_with_other_templates_and_turns_without_thinking():
    history = [*KEEP_HISTORY, {"role": "assistant", "content": "6", "thinking": ""}, {"role": "user", "content": "Ok"}]
    text = builder(GENERIC_FALLBACK_TEMPLATE, reasoning=False).render(history, keep_thinking=True).text
    assert "<|im_start|>assistant\n<think>\nTwo plus two." in text
    assert "<|im_start|>assistant\n6<|im_end|>" in text
