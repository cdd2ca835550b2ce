"""The scripted GGUF fixtures really do make llama.cpp emit their script, token by token."""

import app  # noqa: F401  (llama_cpp before numpy)
import llama_cpp
import numpy as np
import pytest
from gguf import GGUFReader
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from tests.fixtures.r1_template import R1_TEMPLATE, R1_TEMPLATE_OLD, V3_TEMPLATE
from tests.fixtures.scripted_gguf import (
    LONG_TRACE,
    SCRIPTS,
    STANDARD_ANSWER,
    STANDARD_R1,
    STANDARD_THINKING,
    BYTE_TO_CHAR,
    TARGET_LOGIT,
    split_script,
    words_script,
    write_scripted_gguf,
    write_split_scripted_gguf,
)

QUESTION = [{"role": "user", "content": "What is 17 * 23?"}]


def load(path, n_ctx=8192):
    return llama_cpp.Llama(str(path), n_ctx=n_ctx, verbose=True)


def render_prompt(llm, messages=QUESTION):
    """The prompt as the engine builds it: the GGUF's own template, or plain text without one."""
    template = llm.metadata.get("tokenizer.chat_template")
    if template is None:
        return "What is 17 * 23?\n<think>\n"
    bos = llm.detokenize([llm.token_bos()], special=True).decode()
    eos = llm.detokenize([llm.token_eos()], special=True).decode()
    return Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(messages=messages).prompt


def generate_pieces(llm, prompt, *, temperature, seed, limit):
    """Sample until end of generation; return each token's bytes."""
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.set_seed(seed)
    pieces = []
    # top_k 0 and min_p 0 leave the whole distribution to sample from: the hardest case.
    for token in llm.generate(tokens, temp=temperature, top_p=0.95, top_k=0, min_p=0.0, reset=True):
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            break
        pieces.append(llm.detokenize([token], special=False))
        if len(pieces) > limit:
            break
    return pieces


def as_bytes(piece):
    return piece.encode() if isinstance(piece, str) else piece


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_is_reproduced_token_by_token_at_any_temperature_and_seed(scripted_model, name):
    script = SCRIPTS[name]
    llm = load(scripted_model(name))
    prompt = render_prompt(llm)
    expected = [as_bytes(p) for p in script.pieces]
    for temperature in (0.6, 1.0):
        for seed in (1, 2):
            pieces = generate_pieces(llm, prompt, temperature=temperature, seed=seed, limit=len(expected) + 5)
            assert pieces == expected, f"temperature {temperature}, seed {seed}"
    assert b"".join(expected).decode() == script.text


def test_create_completion_streams_the_script(scripted_model):
    llm = load(scripted_model("standard_r1"))
    prompt = llm.tokenize(render_prompt(llm).encode(), add_bos=False, special=True)  # the template has BOS
    for seed in (3, 4):
        chunks = llm.create_completion(prompt, max_tokens=500, temperature=0.8, top_p=0.95, seed=seed, stream=True)
        assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == STANDARD_R1.text


def test_max_tokens_cuts_the_script_short(scripted_model):
    llm = load(scripted_model("unclosed"))
    prompt = llm.tokenize(render_prompt(llm).encode(), add_bos=False, special=True)
    result = llm.create_completion(prompt, max_tokens=5, temperature=0.6, seed=1)
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["choices"][0]["text"] == "".join(SCRIPTS["unclosed"].pieces[:5])


def test_r1_template_prompt_ends_with_open_think_tag(scripted_model):
    llm = load(scripted_model("standard_r1"))
    assert llm.metadata["tokenizer.chat_template"] == R1_TEMPLATE
    prompt = render_prompt(llm)
    assert prompt == "<｜begin▁of▁sentence｜><｜User｜>What is 17 * 23?<｜Assistant｜><think>\n"


def test_r1_template_drops_earlier_reasoning_from_history(scripted_model):
    llm = load(scripted_model("standard_r1"))
    history = QUESTION + [
        {"role": "assistant", "content": STANDARD_THINKING + "</think>" + STANDARD_ANSWER},
        {"role": "user", "content": "And 18 * 23?"},
    ]
    prompt = render_prompt(llm, history)
    assert "Let me work it out" not in prompt
    assert f"<｜Assistant｜>{STANDARD_ANSWER}<｜end▁of▁sentence｜><｜User｜>And 18 * 23?" in prompt
    assert prompt.endswith("<｜Assistant｜><think>\n")


def test_old_and_missing_templates_are_offered(scripted_model):
    old = load(scripted_model("old_template"))
    assert old.metadata["tokenizer.chat_template"] == R1_TEMPLATE_OLD
    assert render_prompt(old).endswith("<｜Assistant｜>")
    assert "tokenizer.chat_template" not in load(scripted_model("no_template")).metadata
    assert load(scripted_model("non_reasoning")).metadata["tokenizer.chat_template"] == V3_TEMPLATE


def test_token_types_match_the_r1_distill(scripted_model):
    llm = load(scripted_model("standard_r1"))
    vocab = llm._model.vocab
    think_open, think_close = (llm.tokenize(tag, add_bos=False, special=True) for tag in (b"<think>", b"</think>"))
    assert len(think_open) == len(think_close) == 1
    for token in think_open + think_close:  # user-defined: rendered as text
        assert llama_cpp.llama_vocab_get_attr(vocab, token) & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        assert llm.detokenize([token], special=False) in (b"<think>", b"</think>")
    for token in (llm.token_bos(), llm.token_eos()):  # control: not rendered
        assert llama_cpp.llama_vocab_get_attr(vocab, token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        assert llm.detokenize([token], special=False) == b""
    user, assistant = (llm.tokenize(t.encode(), add_bos=False, special=True) for t in ("<｜User｜>", "<｜Assistant｜>"))
    assert len(user) == len(assistant) == 1
    assert llm.detokenize([llm.token_bos()], special=True).decode() == "<｜begin▁of▁sentence｜>"


@pytest.mark.parametrize("name", ["standard_r1", "long_trace", "split_utf8", "non_reasoning"])
def test_tokenizing_the_script_text_never_yields_a_script_token(scripted_model, name):
    """Only generation reaches the script's tokens, so no prompt can start the script midway."""
    script = SCRIPTS[name]
    llm = load(scripted_model(name))
    tokens = llm.tokenize(script.text.encode(), add_bos=False, special=True)
    assert tokens and max(tokens) < script.first_piece_id


def test_split_model_loads_from_its_first_part(tmp_path):
    parts = write_split_scripted_gguf(tmp_path / "split.gguf", list(STANDARD_R1.pieces), parts=3)
    assert [p.name for p in parts] == [f"split-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    llm = load(parts[0])
    pieces = generate_pieces(llm, render_prompt(llm), temperature=0.6, seed=7, limit=200)
    assert b"".join(pieces).decode() == STANDARD_R1.text


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
@pytest.mark.parametrize("weight_type", ["F16", "Q8_0"])
def test_script_survives_other_architectures_and_weight_types(tmp_path, architecture, weight_type):
    path = STANDARD_R1.write(tmp_path / "m.gguf", architecture=architecture, weight_type=weight_type)
    llm = load(path)
    assert llm.metadata["general.architecture"] == architecture
    pieces = generate_pieces(llm, render_prompt(llm), temperature=1.0, seed=5, limit=200)
    assert b"".join(pieces).decode() == STANDARD_R1.text


@pytest.mark.parametrize("name", ["standard_r1", "long_trace"])
def test_scripted_token_outscores_every_other_token_by_a_wide_margin(scripted_model, name):
    """Recompute the logits from the written weights: after each state the next piece wins by >= 40."""
    script = SCRIPTS[name]
    reader = GGUFReader(scripted_model(name))
    weights = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    embedding, output = weights["token_embd.weight"], weights["output.weight"]
    vocab = {text: i for i, text in enumerate(reader.fields["tokenizer.ggml.tokens"].contents())}
    ids = [vocab[p] if p in ("<think>", "</think>") else vocab["".join(BYTE_TO_CHAR[b] for b in as_bytes(p))]
           for p in script.pieces]  # fmt: skip
    eos = reader.fields["tokenizer.ggml.eos_token_id"].contents()
    states = embedding[[0] + ids]  # token 0 is a byte token: state 0, where every prompt leaves the model
    hidden = states / np.sqrt(np.mean(states**2, axis=1, keepdims=True))  # RMSNorm, weight 1
    logits = hidden @ output.T
    assert list(logits.argmax(axis=1)) == ids + [eos]
    top_two = np.sort(logits, axis=1)[:, -2:]
    assert np.all(top_two[:, 1] > TARGET_LOGIT - 1)
    assert np.all(top_two[:, 1] - top_two[:, 0] >= 40)


def test_long_trace_has_thousands_of_thinking_tokens_then_an_answer():
    assert len(LONG_TRACE.pieces) > 3000 > 256  # beyond one-hot width: the two-hot code is in use
    thinking, answer = LONG_TRACE.text.split("</think>")
    assert len(thinking.split()) >= 3000 and "42" in answer


def test_words_script_gives_unique_pieces_and_disjoint_ranges():
    first, second = words_script(2000), words_script(500, start=2000)
    assert len(set(first + second)) == 2500
    assert all(len(p.encode()) >= 2 for p in first + second)
    assert "\n\n" in "".join(first) and "." in "".join(first)


def test_split_script_keeps_text_and_gives_first_tags_their_own_piece():
    text = "A b a b.\n</think>\n\nA b </think> again."
    pieces = split_script(text)
    assert "".join(pieces) == text
    assert len(set(pieces)) == len(pieces)
    assert pieces.count("</think>") == 1
    assert all(len(p.encode()) >= 2 for p in pieces)


@pytest.mark.parametrize(
    "pieces, problem",
    [
        (["ab", "ab"], "repeats"),
        (["ab", "c"], "at least 2"),
        (["ab", "  "], "spelled like a token"),
        (["ab", b"<think>"], "spelled like a token"),
        (["ab", "<｜User｜>"], "control token"),
    ],
)
def test_generator_refuses_scripts_llama_cpp_could_not_follow(tmp_path, pieces, problem):
    with pytest.raises(ValueError, match=problem):
        write_scripted_gguf(tmp_path / "bad.gguf", pieces)
