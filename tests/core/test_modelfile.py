"""inspect_gguf: every broken file gets a sentence a person can act on; good files a true summary."""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import app  # noqa: F401  (llama_cpp before numpy/gguf)
import numpy as np
import pytest
from gguf import GGUFReader

from app.core.errors import ModelFileError
from app.core.modelfile import ModelSummary, inspect_gguf
from tests.fixtures.r1_template import R1_TEMPLATE, V3_TEMPLATE
from tests.fixtures.scripted_gguf import (
    MALFORMED_KINDS,
    SCRIPTS,
    STANDARD_R1,
    write_malformed,
    write_scripted_gguf,
    write_split_scripted_gguf,
)

REPO = Path(__file__).resolve().parents[2]


def rejects(path, *fragments) -> str:
    with pytest.raises(ModelFileError) as caught:
        inspect_gguf(path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert message.endswith("."), message
    return message


def variant(tmp_path, filename="variant.gguf", **options) -> Path:
    """The standard scripted model with one thing changed (see write_scripted_gguf)."""
    return STANDARD_R1.write(tmp_path / filename, **options)


# --- good files ------------------------------------------------------------------------


def test_summary_of_a_scripted_r1_model_matches_the_file(scripted_model):
    path = scripted_model("standard_r1")
    summary = inspect_gguf(path)
    reader = GGUFReader(path)  # an independent reading of the same header
    assert summary == ModelSummary(
        path=path,
        file_size=path.stat().st_size,
        architecture="llama",
        name="Scripted-standard_r1",
        n_layers=1,
        n_ctx_train=32768,
        n_embd=256,
        n_head=4,
        n_head_kv=4,
        head_dim=64,
        n_ff=32,
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data),
        file_type="F32",
        chat_template=R1_TEMPLATE,
        is_reasoning=True,
        n_params=sum(t.n_elements for t in reader.tensors),
        split_count=1,
    )


def test_summary_reads_architecture_context_and_name_from_the_file(tmp_path):
    path = variant(tmp_path, architecture="qwen2", context_length=131072, name="DeepSeek R1 Distill Qwen 1.5B")
    summary = inspect_gguf(path)
    assert (summary.architecture, summary.n_ctx_train, summary.name) == ("qwen2", 131072, "DeepSeek R1 Distill Qwen 1.5B")


def test_name_falls_back_to_the_file_name(tmp_path):
    path = variant(tmp_path, filename="DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", metadata={"general.name": None})
    assert inspect_gguf(path).name == "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M"


@pytest.mark.parametrize(
    "options, label",
    [
        ({}, "F32"),
        ({"weight_type": "F16"}, "F16"),
        ({"weight_type": "Q8_0"}, "Q8_0"),
        ({"metadata": {"general.file_type": 15}}, "Q4_K_M"),
        ({"weight_type": "Q8_0", "metadata": {"general.file_type": None}}, "Q8_0"),  # guessed from tensors
        ({"metadata": {"general.file_type": 9999}}, "F32"),  # unknown code: guessed too
    ],
)
def test_file_type_label_names_the_quantisation(tmp_path, options, label):
    assert inspect_gguf(variant(tmp_path, **options)).file_type == label


@pytest.mark.parametrize(
    "name, options, reasoning",
    [
        ("standard_r1", {}, True),  # current template
        ("old_template", {}, True),  # older template still strips </think>
        ("non_reasoning", {}, False),  # V3-style template, no think tokens
        ("no_template", {}, True),  # no template: the vocabulary has <think>
        ("non_reasoning", {"chat_template": None}, False),  # neither template nor vocabulary
        ("standard_r1", {"chat_template": V3_TEMPLATE}, False),  # the template decides over the vocabulary
    ],
)
def test_reasoning_models_are_recognised_by_template_then_vocabulary(tmp_path, name, options, reasoning):
    path = SCRIPTS[name].write(tmp_path / "m.gguf", **options)
    assert inspect_gguf(path).is_reasoning is reasoning


def test_per_layer_head_counts_and_explicit_head_dim(tmp_path):
    path = variant(tmp_path, metadata={"llama.attention.head_count": [4], "llama.attention.head_count_kv": [2],
                                       "llama.attention.key_length": 128})  # fmt: skip
    summary = inspect_gguf(path)
    assert (summary.n_head, summary.n_head_kv, summary.head_dim) == (4, 2, 128)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_scripted_model_passes(scripted_model, name):
    assert inspect_gguf(scripted_model(name)).n_layers == 1


def test_bounds_check_uses_sizes_not_tensor_data(tmp_path):
    """A sparse file (data never written) of the right size passes: nothing but the header is read."""
    path = variant(tmp_path)
    size = path.stat().st_size
    with path.open("r+b") as f:  # zero the data region behind the header
        header_end = GGUFReader(path).data_offset
        f.seek(header_end)
        f.truncate(header_end)
        f.truncate(size)
    assert inspect_gguf(path).file_size == size


# --- broken files ----------------------------------------------------------------------

MALFORMED_MESSAGES = {
    "truncated": ("is incomplete (", " of ", "Download it again"),
    "random_bytes": ("is not a GGUF model file", "does not start with 'GGUF'"),
    "garbage_header": ("is damaged", "Download it again"),
    "zero_blocks": ("llama.block_count", "would crash llama.cpp"),
    "unknown_arch": ("'nonsense-arch'", "does not run"),
    "empty": ("is empty (0 bytes)", "Download it again"),
    "bad_magic": ("is not a GGUF model file", "web page"),
    "old_version": ("GGUF version 1",),
    "missing_key": ("number of layers (llama.block_count)",),
    "no_tokenizer": ("has no tokenizer",),
    "tensor_out_of_bounds": ("is damaged", "'output.weight'"),
    "zero_dim_tensor": ("is damaged", "dimension of size 0"),
    "bad_rope_scaling": ("llama.rope.scaling.type", "would crash llama.cpp"),
    "vision_projector": ("vision projector (mmproj)",),
}


def test_every_malformed_kind_has_an_expected_message():
    assert set(MALFORMED_MESSAGES) == set(MALFORMED_KINDS)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_file_is_rejected_with_a_plain_sentence(malformed_model, kind):
    path = malformed_model(kind)
    message = rejects(path, *MALFORMED_MESSAGES[kind])
    assert path.name in message


def test_truncated_message_gives_both_sizes(tmp_path):
    path = variant(tmp_path, filename="DeepSeek-R1.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    rejects(path, "The file 'DeepSeek-R1.gguf' is incomplete (0.9 MB of 1.8 MB): the download was probably cut off.")


@pytest.mark.parametrize("abort_kind", ["zero_blocks", "bad_rope_scaling"])
def test_files_rejected_here_would_abort_llama_cpp(malformed_model, abort_kind):
    """Why validation exists: llama.cpp kills the whole process on these (SIGABRT, not an exception)."""
    code = f"import app, llama_cpp; llama_cpp.Llama({str(malformed_model(abort_kind))!r}, verbose=False)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode not in (0, 1), result.stderr[-2000:]
    with pytest.raises(ModelFileError):
        inspect_gguf(malformed_model(abort_kind))


def test_any_cut_through_the_header_is_reported_as_incomplete(tmp_path):
    path = variant(tmp_path, filename="cut.gguf")
    header_end = GGUFReader(path).data_offset
    with path.open("r+b") as f:
        for length in range(header_end - 1, 0, -1):  # every length inside the header
            f.truncate(length)
            with pytest.raises(ModelFileError) as caught:
                inspect_gguf(path)
            assert "incomplete" in str(caught.value) or "not a GGUF" in str(caught.value), length


def test_corrupted_header_bytes_never_escape_as_other_errors(tmp_path):
    """Random byte flips in the header: either a clean summary or ModelFileError, nothing else."""
    path = variant(tmp_path, filename="flip.gguf")
    header_end = GGUFReader(path).data_offset
    rng = np.random.default_rng(7)
    rejected = 0
    with path.open("r+b") as f:
        for _ in range(400):
            position = int(rng.integers(0, header_end))
            f.seek(position)
            original = f.read(1)
            f.seek(position)
            f.write(bytes([int(rng.integers(0, 256))]))
            f.flush()
            try:
                inspect_gguf(path)
            except ModelFileError:
                rejected += 1
            f.seek(position)
            f.write(original)
            f.flush()
    assert rejected > 0


@pytest.mark.parametrize(
    "start, fragment",
    [
        (b"PK\x03\x04" + bytes(60), "zip archive"),
        (struct.pack("<Q", 100) + b'{"__metadata__": {}}' + bytes(80), "safetensors"),
        (b"tjgg" + bytes(60), "old GGML format"),
        (b'{"error": "Repository not found"}', "web page or error message"),
        (b"GG", "only 2 bytes long"),
        (b"ZZZZ" + bytes(60), "starts with 'ZZZZ'"),
    ],
)
def test_other_file_formats_are_named(tmp_path, start, fragment):
    path = tmp_path / "model.gguf"
    path.write_bytes(start)
    rejects(path, "'model.gguf' is not a GGUF model file", fragment)


@pytest.mark.parametrize(
    "version_bytes, fragment",
    [(struct.pack("<I", 4), "GGUF version 4"), (struct.pack(">I", 3), "big-endian")],
)
def test_unsupported_versions_are_named(tmp_path, version_bytes, fragment):
    path = variant(tmp_path)
    with path.open("r+b") as f:
        f.seek(4)
        f.write(version_bytes)
    rejects(path, fragment)


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        ({"llama.block_count": 513}, "llama.block_count (513"),
        ({"llama.block_count": "one"}, "must be a whole number"),
        ({"llama.context_length": 0}, "llama.context_length (0"),
        ({"llama.embedding_length": None}, "embedding width (llama.embedding_length)"),
        ({"llama.attention.head_count": 0}, "llama.attention.head_count (0"),
        ({"llama.attention.head_count": None}, "number of attention heads"),
        ({"llama.expert_count": 8}, "llama.expert_used_count"),  # experts but none used per token
        ({"llama.expert_count": 4, "llama.expert_used_count": 8}, "the model has 4 experts"),
        ({"llama.expert_count": 2000, "llama.expert_used_count": 2}, "at most 1024"),
        ({"general.architecture": ""}, "does not say which model architecture"),
        ({"general.architecture": "bert"}, "embedding or encoder model"),
        ({"general.alignment": 48}, "not a power of two"),
    ],
)
def test_bad_metadata_is_named(tmp_path, metadata, fragment):
    rejects(variant(tmp_path, metadata=metadata), fragment)


def test_missing_file_and_folder(tmp_path):
    rejects(tmp_path / "nowhere.gguf", "does not exist")
    rejects(tmp_path, "is a folder, not a model file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that bind")
def test_unreadable_file(tmp_path):
    path = variant(tmp_path)
    path.chmod(0)
    try:
        rejects(path, "not allowed to read")
    finally:
        path.chmod(0o644)


# --- multi-part files ------------------------------------------------------------------


@pytest.fixture
def split_parts(tmp_path):
    return write_split_scripted_gguf(tmp_path / "R1-Q4_K_M.gguf", list(STANDARD_R1.pieces), parts=3)


def test_split_model_is_summarised_from_its_first_part(split_parts, scripted_model):
    summary = inspect_gguf(split_parts[0])
    single = inspect_gguf(scripted_model("standard_r1"))
    assert summary.split_count == 3
    assert summary.n_params == single.n_params
    assert summary.file_size == sum(p.stat().st_size for p in split_parts)
    assert summary.chat_template == R1_TEMPLATE


def test_later_part_points_to_the_first(split_parts):
    rejects(split_parts[1], "part 2 of a 3-part model", "'R1-Q4_K_M-00001-of-00003.gguf'")


def test_missing_parts_are_listed(split_parts):
    split_parts[2].unlink()
    rejects(split_parts[0], "'R1-Q4_K_M-00003-of-00003.gguf' is missing", "Download all 3 parts")


def test_truncated_later_part_is_named(split_parts):
    data = split_parts[1].read_bytes()
    split_parts[1].write_bytes(data[: len(data) - 100])
    rejects(split_parts[0], "'R1-Q4_K_M-00002-of-00003.gguf' is incomplete")


def test_renamed_first_part_cannot_find_the_others(split_parts, tmp_path):
    renamed = tmp_path / "model.gguf"
    shutil.copy(split_parts[0], renamed)
    rejects(renamed, "does not end in '-00001-of-00003.gguf'")


def test_parts_of_different_models_are_refused(split_parts, tmp_path):
    four = write_split_scripted_gguf(tmp_path / "four.gguf", list(STANDARD_R1.pieces), parts=4)
    shutil.copy(four[1], split_parts[1])  # part 2 of a 4-part model
    rejects(split_parts[0], "is not part 2 of the model")


def test_scripted_helpers_reject_unknown_malformed_kind(tmp_path):
    with pytest.raises(ValueError, match="unknown malformed kind"):
        write_malformed(tmp_path / "x.gguf", "nonsense")
    with pytest.raises(ValueError, match="architecture"):
        write_scripted_gguf(tmp_path / "x.gguf", ["ab"], architecture="gpt9")


def test_a_header_summarised_from_the_first_bytes_matches_the_whole_file(tmp_path):
    """What a ranged request fetches before a download: too few bytes ask for more (HeaderIncomplete),
    enough give the same summary as the file on disk."""
    from app.core.modelfile import HeaderIncomplete, summarize_header
    from tests.fixtures.deepseek2_gguf import write_deepseek2_gguf

    path = write_deepseek2_gguf(tmp_path / "ds2.gguf", mla=True)
    data = path.read_bytes()
    with pytest.raises(HeaderIncomplete) as more:
        summarize_header(data[:2000], "ds2.gguf", len(data))
    assert more.value.needed >= 4000
    whole = inspect_gguf(path)
    got = summarize_header(data[:len(data) // 2], "ds2.gguf", len(data))  # the header, not all tensor data
    assert (got.mla, got.n_layers, got.n_head_kv, got.head_dim, got.n_expert, got.file_size, got.expert_tensor_bytes) == (
        whole.mla, whole.n_layers, whole.n_head_kv, whole.head_dim, whole.n_expert, whole.file_size,
        whole.expert_tensor_bytes)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        summarize_header(b"<html>" + data[6:5000], "ds2.gguf", len(data))
