"""GGUFs without a chat template: llama.cpp's built-in template chosen from the header.

The files are scripted models dressed as each family (tests/fixtures/template_gguf.py):
the family's architecture, pre-tokenizer and special tokens, no tokenizer.chat_template.
"""

from __future__ import annotations

import re

import pytest

from app.core import prompt as prompt_module
from app.core.engine import Engine, LoadOptions, Sampling
from app.core.modelfile import CHAT_MARKER_TOKENS, inspect_gguf
from app.core.prompt import PromptBuilder, builtin_template_names, choose_builtin_template, render_builtin
from tests.fixtures.template_gguf import ANSWER, Family, write_family_gguf

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "<think>They greet me.</think>Hello"},
    {"role": "user", "content": "Capital of France?"},
]

# family -> (template, what it was chosen from, the exact prompt for CONVERSATION)
EXPECTED = {
    "llama3": (
        "llama3", "its tokenizer's <|start_header_id|>, <|end_header_id|> and <|eot_id|> tokens",
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nCapital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "gemma2": (  # Gemma has no system role: llama.cpp puts it at the head of the first user turn
        "gemma", "its tokenizer's <start_of_turn> and <end_of_turn> tokens",
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n",
    ),
    "gemma_bare": (
        "gemma", "its architecture (gemma)",
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n",
    ),
    "mistral_v3": (
        "mistral-v3", "its tokenizer's [INST] and [/INST] tokens",
        "[INST] Be brief.\n\nHi[/INST] Hello</s>[INST] Capital of France?[/INST]",
    ),
    "mistral_nemo": (
        "mistral-v3-tekken", "its tokenizer's [INST] and [/INST] tokens and its tekken pre-tokenizer",
        "[INST]Be brief.\n\nHi[/INST]Hello</s>[INST]Capital of France?[/INST]",
    ),
    "mistral_small3": (
        "mistral-v7-tekken", "its tokenizer's [INST], [/INST] and [SYSTEM_PROMPT] tokens and its tekken pre-tokenizer",
        "[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello</s>[INST]Capital of France?[/INST]",
    ),
    "phi3": (
        "phi3", "its tokenizer's <|user|>, <|assistant|> and <|end|> tokens",
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n"
        "<|user|>\nCapital of France?<|end|>\n<|assistant|>\n",
    ),
    "phi4": (
        "phi4", "its tokenizer's <|im_start|> and <|im_sep|> tokens",
        "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>"
        "<|im_start|>assistant<|im_sep|>Hello<|im_end|><|im_start|>user<|im_sep|>Capital of France?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>",
    ),
    "qwen2": (
        "chatml", "its tokenizer's <|im_start|> and <|im_end|> tokens",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    "llama3_chatml": (  # a Llama 3 fine-tune that added <|im_start|> was trained on ChatML
        "chatml", "its tokenizer's <|im_start|> and <|im_end|> tokens",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    "command_r": (
        "command-r", "its tokenizer's <|START_OF_TURN_TOKEN|>, <|USER_TOKEN|> and <|CHATBOT_TOKEN|> tokens",
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Be brief.<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Capital of France?<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    ),
    "deepseek_r1": (  # R1's rules: system folded into the first user turn, old reasoning dropped, <think>\n
        "deepseek3", "its tokenizer's <｜User｜> and <｜Assistant｜> tokens",
        "<｜User｜>Be brief.\n\nHi<｜Assistant｜>Hello<｜end▁of▁sentence｜>"
        "<｜User｜>Capital of France?<｜Assistant｜><think>\n",
    ),
    "deepseek_v2": (
        "deepseek2", "its architecture (deepseek2)",
        "Be brief.\n\nUser: Hi\n\nAssistant: Hello<｜end▁of▁sentence｜>User: Capital of France?\n\nAssistant:",
    ),
    "deepseek_coder": (
        "deepseek", "its tokenizer (deepseek-coder)",
        "Be brief.### Instruction:\nHi\n### Response:\nHello\n<|EOT|>\n### Instruction:\nCapital of France?\n"
        "### Response:\n",
    ),
}  # fmt: skip
CHATML_LIKE = {"chatml", "phi4"}


@pytest.fixture(scope="module")
def family_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    built = {}

    def build(name: str):
        if name not in built:
            built[name] = write_family_gguf(folder / f"{name}.gguf", name)
        return built[name]

    return build


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_template_is_chosen_from_the_header(family_file, family):
    summary = inspect_gguf(family_file(family))
    assert summary.chat_template is None
    name, basis, _ = EXPECTED[family]
    choice = choose_builtin_template(summary)
    assert choice is not None and (choice.name, choice.basis) == (name, basis)
    assert choice.note == (
        f"This model file has no chat template; Ponder uses llama.cpp's built-in '{name}' template, "
        f"chosen from {basis}."
    )


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_prompt_is_rendered_exactly(family_file, family):
    summary = inspect_gguf(family_file(family))
    name, _, expected = EXPECTED[family]
    builder = PromptBuilder.builtin(choose_builtin_template(summary).name, is_reasoning=summary.is_reasoning)
    assert builder.builtin_name == name
    prompt = builder.render(CONVERSATION)
    assert prompt.text == expected
    assert prompt.opens_thinking == (family == "deepseek_r1")
    assert "They greet me" not in prompt.text  # earlier reasoning is never sent back
    if name not in CHATML_LIKE:
        assert "<|im_start|>" not in prompt.text and "<|im_end|>" not in prompt.text


def test_a_file_that_names_no_format_keeps_the_generic_fallback(family_file):
    summary = inspect_gguf(family_file("unknown_spm"))
    assert summary.chat_marker_tokens == frozenset()
    assert choose_builtin_template(summary) is None


def test_header_gives_the_tokenizer_facts(family_file):
    summary = inspect_gguf(family_file("llama3"))
    assert (summary.tokenizer_model, summary.tokenizer_pre) == ("gpt2", "llama-bpe")
    assert summary.chat_marker_tokens == {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}


def test_markers_are_whole_tokens(tmp_path):
    # A token that only contains a marker's text ("<|im_start|>x") is not that marker.
    near = Family("qwen2", "<|endoftext|>", "<|im_end|>x", ("<|im_start|>x", "x<|im_start|>"), tokenizer_pre="qwen2")
    summary = inspect_gguf(write_family_gguf(tmp_path / "near.gguf", near))
    assert summary.chat_marker_tokens == frozenset()
    assert choose_builtin_template(summary) is None


def test_smolvlm_vocabulary_is_not_chatml(tmp_path):
    smol = Family("llama", "<|im_start|>", "<end_of_utterance>", ("<|im_end|>",))
    assert choose_builtin_template(inspect_gguf(write_family_gguf(tmp_path / "smol.gguf", smol))) is None


def test_every_rule_names_a_template_llama_cpp_has():
    names = set(builtin_template_names())
    rules = {name for name, _ in prompt_module._TOKEN_RULES} - {"mistral"}
    rules |= {"mistral-v3", "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "exaone4"}
    rules |= set(prompt_module._ARCH_RULES.values()) | {name for name, _ in prompt_module._PRE_RULES.values()}
    assert rules <= names, rules - names
    for _, tokens in prompt_module._TOKEN_RULES:
        assert set(tokens) <= set(CHAT_MARKER_TOKENS)
    with pytest.raises(ValueError):
        PromptBuilder.builtin("no-such-template", is_reasoning=False)


def test_long_messages_and_nul_bytes_render():
    long = "word " * 5000
    text = render_builtin("llama3", [{"role": "user", "content": long + "\0tail"}])
    assert long + "tail<|eot_id|>" in text and text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


# --- end to end, real llama.cpp ----------------------------------------------------------------

SMALL = LoadOptions(n_ctx=2048, n_gpu_layers=0)


def test_engine_uses_the_builtin_template_and_answers_cleanly(tmp_path):
    eng = Engine.load(write_family_gguf(tmp_path / "llama3.gguf", "llama3"), SMALL)
    try:
        info = eng.info
        assert info.template_name == "llama3"
        assert info.template_note == (
            "This model file has no chat template; Ponder uses llama.cpp's built-in 'llama3' template, chosen "
            "from its tokenizer's <|start_header_id|>, <|end_header_id|> and <|eot_id|> tokens."
        )
        assert info.to_dict()["template_name"] == "llama3"
        ask = [{"role": "user", "content": "Hi"}]
        prompt = eng._prompts.render(ask).text
        assert prompt == EXPECTED_LLAMA3_HI
        # The markers reach llama.cpp as single control tokens, after the BOS the tokenizer adds:
        # BOS, header, 4 bytes "user", header end, "\n\n", "Hi", eot, header, 9 bytes "assistant", header end, "\n\n".
        bos = eng._tokenize_exact("<|begin_of_text|>")
        tokens = eng._tokenize(prompt, add_special=True)
        assert tokens[0] == bos and len(tokens) == 1 + 1 + 4 + 1 + 2 + 2 + 1 + 1 + 9 + 1 + 2
        run = eng.chat(ask, Sampling(seed=3)).run()
        assert run.stats.prompt_tokens == len(tokens)
        assert run.answer == ANSWER and run.thinking == "" and run.flags == ["no_thinking"]  # normal, not a warning
        assert not re.search(r"<\|(im_start|im_end|start_header_id|eot_id)\|>", run.answer)
    finally:
        eng.close()


EXPECTED_LLAMA3_HI = (
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)


def test_engine_keeps_the_generic_fallback_for_an_unknown_format(tmp_path):
    plain = Family("llama", "<s>", "</s>", ())  # byte-level BPE, no chat tokens, an architecture that says nothing
    eng = Engine.load(write_family_gguf(tmp_path / "plain.gguf", plain), SMALL)
    try:
        assert eng.info.template_name is None
        assert eng.info.template_note == (
            "The model file has no chat template; Ponder uses a generic one, so answers may be off."
        )
        assert eng._prompts.render([{"role": "user", "content": "Hi"}]).text.endswith("<|im_start|>assistant\n")
        assert eng.chat([{"role": "user", "content": "Hi"}]).run().answer == ANSWER
    finally:
        eng.close()


def test_engine_r1_without_template_uses_deepseek3_with_r1_rules(tmp_path):
    from tests.fixtures.scripted_gguf import BOS, STANDARD_ANSWER, STANDARD_THINKING

    path = write_family_gguf(tmp_path / "r1.gguf", "deepseek_r1", STANDARD_THINKING + "</think>" + STANDARD_ANSWER)
    eng = Engine.load(path, SMALL)
    try:
        assert eng.info.is_reasoning and eng.info.template_name == "deepseek3"
        prompt = eng._prompts.render(CONVERSATION)
        assert prompt.text == EXPECTED["deepseek_r1"][2] and prompt.opens_thinking
        tokens = eng._tokenize(prompt.text, add_special=True)
        bos = eng._tokenize_exact(BOS)
        assert tokens[0] == bos and tokens.count(bos) == 1  # one BOS, from the tokenizer
        run = eng.chat(CONVERSATION, Sampling(seed=5)).run()
        assert run.thinking == STANDARD_THINKING.strip() and run.answer == STANDARD_ANSWER.strip()
    finally:
        eng.close()


OLD_SPM = Family("llama", "<s>", "</s>", (), tokenizer_model="llama")  # 32000 tokens, no chat tokens


@pytest.mark.parametrize(
    "filename,general_name,expected",
    [
        ("m.gguf", "mistralai_mistral-7b-instruct-v0.2", "mistral-v1"),  # TheBloke's conversion
        ("mixtral-8x7b-instruct-v0.1.Q4_K_M.gguf", "mistralai_mixtral-8x7b-v0.1", "mistral-v1"),
        ("llama-2-7b-chat.Q4_K_M.gguf", "LLaMA v2", "llama2-sys-bos"),
        ("m.gguf", "Llama-2-13b-chat-hf", "llama2-sys-bos"),
        ("m.gguf", "mistralai_mistral-7b-v0.1", None),  # a base model
        ("nous-hermes-llama2-13b.Q4_K_M.gguf", "NousResearch_Nous-Hermes-Llama2-13b", None),  # Alpaca format
        ("m.gguf", "Llama-3.2-1B-chat", None),  # not Llama 2
    ],
)
def test_old_sentencepiece_files_are_told_apart_by_name(tmp_path, filename, general_name, expected):
    summary = inspect_gguf(write_family_gguf(tmp_path / filename, OLD_SPM, **{"general.name": general_name}))
    choice = choose_builtin_template(summary)
    assert (choice.name if choice else None) == expected
    if choice:
        assert choice.basis in (f"its name ({general_name})", f"its name ({filename})")


def test_name_rules_yield_to_the_vocabulary(tmp_path):
    # Mistral-7B-Instruct-v0.3 has [INST] tokens: its v3 format, whatever the name says.
    path = write_family_gguf(tmp_path / "v3.gguf", "mistral_v3", **{"general.name": "Mistral-7B-Instruct-v0.3"})
    assert choose_builtin_template(inspect_gguf(path)).name == "mistral-v3"


def test_old_mistral_prompt_is_exact():
    text = PromptBuilder.builtin("mistral-v1", is_reasoning=False).render(CONVERSATION).text
    assert text == " [INST] Be brief.\n\nHi [/INST] Hello</s> [INST] Capital of France? [/INST]"
    assert "<|im_start|>" not in text
