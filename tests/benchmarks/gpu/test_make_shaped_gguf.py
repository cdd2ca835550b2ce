"""The shaped-model generator makes files real llama.cpp loads, with the real vocabulary layout
and random (not zero) quantised weights. The GPU measurements rest on it."""

import sys
from pathlib import Path

import llama_cpp
import numpy as np
import gguf
import pytest
from gguf.quants import dequantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import make_shaped_gguf as msg  # noqa: E402

from tests.fixtures.r1_template import R1_TEMPLATE  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("shaped") / "tiny-qwen.gguf"
    info = msg.make_shaped_gguf("tiny-qwen", path, threads=2)
    return path, info


@pytest.mark.parametrize("name", ["qwen-1.5b", "qwen-7b", "llama-8b", "llama-70b"])
def test_vocabulary_has_the_real_size_unique_tokens_and_reachable_merges(name):
    shape = msg.SHAPES[name]
    tokens, types, merges, bos, eos = msg.build_vocab(shape)
    assert len(tokens) == len(types) == shape.n_vocab
    assert len(set(tokens)) == len(tokens)
    known = set(tokens)
    assert merges and all(a in known and b in known and a + b in known for a, b in (m.split(" ") for m in merges))
    assert types[bos] == types[eos] == gguf.TokenType.CONTROL
    assert {"<think>", "</think>", "<｜User｜>", "<｜Assistant｜>"} <= known


def test_file_has_the_q4_k_m_mix_and_random_weights(tiny):
    path, info = tiny
    assert info["types"] == {"Q4_K": 13, "Q6_K": 3, "F32": 11}  # output, one attn_v, one ffn_down at Q6_K
    reader = gguf.GGUFReader(path)
    # The quick header walk used for filling agrees with gguf's own reader.
    assert [(n, q, off, nb) for n, _, q, off, nb in msg.tensor_layout(path)] == [
        (t.name, t.tensor_type, t.data_offset, t.n_bytes) for t in reader.tensors]
    for t in reader.tensors:
        values = dequantize(t.data, t.tensor_type)
        assert np.isfinite(values).all(), t.name
        if t.name.endswith(".weight") and len(t.shape) == 2:
            assert 0.015 < values.std() < 0.025, t.name  # Gaussian std 0.02, not zeros
        if t.name.endswith("norm.weight"):
            assert (values == 1).all()


def test_llama_cpp_loads_it_and_generates_word_like_text(tiny):
    path, _ = tiny
    llm = llama_cpp.Llama(str(path), n_ctx=512, n_threads=2, verbose=True, seed=1)  # (unseeded: 3 words in 8 tokens, once)
    assert llm.n_vocab() == 151936
    assert (llm.token_bos(), llm.token_eos()) == (151646, 151643)
    assert llm.metadata["tokenizer.chat_template"] == R1_TEMPLATE
    assert llm.tokenize("<think>".encode(), add_bos=False, special=True) == [151648]
    prompt = llm.tokenize("<｜User｜>Hi there<｜Assistant｜><think>\n".encode(), add_bos=True, special=True)
    out = []
    for token in llm.generate(prompt, temp=0.6, top_k=40, top_p=0.95, min_p=0.0):
        out.append(token)
        if len(out) == 8:
            break
    text = llm.detokenize(out).decode("utf-8")
    assert len(text.split()) >= 4


def test_a_successor_model_keeps_types_and_sizes_and_its_greedy_next_token_is_sigma(tiny, tmp_path):
    """bench_speculative's robust target: same tensors (so the same kernels and cost), block
    weights all zero, and greedy next(t) = sigma(t) over the word ids, by a clear margin."""
    import shutil

    path = tmp_path / "successor.gguf"
    shutil.copy(tiny[0], path)
    before = msg.tensor_layout(path)
    sigma = msg.make_successor_model(path)
    after = msg.tensor_layout(path)
    assert [(n, s, q, o, b) for n, s, q, o, b in before] == [(n, s, q, o, b) for n, s, q, o, b in after]
    data = np.memmap(path, mode="r")
    for name, shape, qtype, offset, nbytes in after:
        if name.startswith("blk.") and len(shape) == 2:
            assert not data[offset : offset + nbytes].any(), name
    first_word, first_special = 256 + 26 + 26 * 26, msg.first_special_id(len(sigma))
    assert sorted(sigma[first_word:first_special]) == list(range(first_word, first_special))  # a permutation
    assert (sigma >= first_word).all() and (sigma < first_special).all()  # specials lead to words too
    del data

    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 256
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    n_vocab = len(sigma)
    try:
        one = (llama_cpp.llama_token * 1)()
        for start in (1000, 151643, 151935, 70):  # a word, the EOS, a padding id, a byte
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            t = start
            for _ in range(4):
                one[0] = t
                assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) == 0
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
                top2 = np.sort(logits)[-2:]
                assert int(logits.argmax()) == sigma[t] and top2[1] - top2[0] > 1.0, (start, t)
                t = int(sigma[t])
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
