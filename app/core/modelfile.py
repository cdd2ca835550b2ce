"""Check a GGUF file before llama.cpp sees it, and summarise what it holds.

Some malformed files make llama.cpp abort() the whole process (block_count 0,
an unknown rope scaling type, a tensor dimension of 0 ... hit GGML_ASSERTs), and
the rest fail with a bare "Failed to load model". `inspect_gguf` reads only the
header (metadata and tensor table, never tensor data) and raises
ModelFileError with a sentence a person can act on.

It parses the header itself instead of using gguf.GGUFReader: the reader builds
numpy views for every vocabulary string and merge (8 s for a 152k-token
vocabulary on this machine), cannot say how much of a truncated file is missing,
and keeps the file memory-mapped (locked on Windows) for as long as it lives.
The format constants still come from the gguf package.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from gguf import GGML_QUANT_SIZES, MODEL_ARCH_NAMES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from app.core.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
HEADER_SIZE = 24  # magic, version, tensor count, key/value count
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME - 1
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS
ROPE_SCALING_TYPES = {"none", "linear", "yarn", "longrope"}

# Architectures the bundled llama.cpp runs: everything gguf-py names, plus the
# newer ones llama.cpp (llama-cpp-python 0.3.36) added before gguf-py caught up.
KNOWN_ARCHITECTURES = frozenset(MODEL_ARCH_NAMES.values()) | {
    "bailingmoe3", "cohere2moe", "deepseek32", "deepseek4", "dots3note", "glm5-next", "granite_swa",
    "graniteswitch", "hy_v3", "hy_v4", "kimi-k3", "laguna", "maple", "mellum", "minimax-01", "minimax-m3",
    "nanbeige", "qwen4exp", "spark2_5", "talkie",
}  # fmt: skip
NOT_CHAT_ARCHITECTURES = {  # valid GGUFs that cannot hold a conversation
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "neo-bert",
    "eurobert", "t5encoder", "wavtokenizer-dec", "gemma-embedding", "llama-embed",
}  # fmt: skip
RECURRENT_ARCHITECTURES = {"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"}  # no attention heads
# Multi-head Latent Attention: llama.cpp reads attention.key_length_mla / value_length_mla for these
# (llama-model.cpp, LLM_ARCH_DEEPSEEK2: DeepSeek-V2/V3/R1). With both present the file is an MLA
# conversion: one KV "head" of key_length = kv_lora_rank + rope dim, and no V cache (docs/sizing.md).
MLA_ARCHITECTURES = {"deepseek2"}
_EXPERTS_TENSOR = re.compile(r"\.ffn_(gate|up|down|gate_up)_exps\.")  # routed experts, not the shared (shexp)
SPLIT_SUFFIX = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
# Special tokens that give away a chat format (app/core/prompt.py picks llama.cpp's built-in
# template from them when a file has no tokenizer.chat_template). Only tokenizer.ggml.tokens is
# searched, for whole tokens (each string with its length prefix).
CHAT_MARKER_TOKENS = (
    "<｜User｜>", "<｜Assistant｜>",  # DeepSeek V2.5 / V3 / R1 and the R1 distills
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<end_of_utterance>",  # ChatML, Phi-4, SmolVLM
    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",  # Llama 3
    "<|header_start|>", "<|header_end|>", "<|eot|>",  # Llama 4
    "<start_of_turn>", "<end_of_turn>",  # Gemma
    "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",  # Command-R
    "<|user|>", "<|assistant|>", "<|end|>",  # Phi-3
    "[INST]", "[/INST]", "[SYSTEM_PROMPT]",  # Mistral v3 / v7
    "<|start_of_role|>", "<|end_of_role|>",  # Granite
    "[|assistant|]", "[|endofturn|]",  # EXAONE
    "<|EOT|>",  # DeepSeek-Coder
)  # fmt: skip

_SCALARS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_INTEGER_TYPES = {int(t) for t in _SCALARS} - {GGUFValueType.FLOAT32, GGUFValueType.FLOAT64, GGUFValueType.BOOL}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SMALL_ARRAY = 4096  # arrays up to this length are decoded (per-layer values); longer ones only measured


@dataclass(frozen=True)
class ModelSummary:
    """What a valid GGUF holds. For a multi-part model, sizes and counts cover all parts."""

    path: Path
    file_size: int
    architecture: str
    name: str
    n_layers: int
    n_ctx_train: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int  # feed-forward width (largest layer's), 0 if the file does not say
    vocab_size: int
    file_type: str  # quantisation label, e.g. "Q4_K_M"
    chat_template: str | None
    is_reasoning: bool  # emits <think> ... </think>
    n_params: int
    split_count: int  # number of parts, 1 if not split
    head_dim_v: int = 0  # per-head size of a cached value (attention.value_length), 0 = as head_dim
    mla: bool = False  # an MLA file (MLA_ARCHITECTURES with key_length_mla and value_length_mla): no V cache
    # Mixture of experts (all 0 for a dense model): expert counts, and the bytes of the repeating
    # layers' tensors (blk.*) and of the routed experts' among them (blk.*.ffn_*_exps).
    n_expert: int = 0
    n_expert_used: int = 0
    layer_tensor_bytes: int = 0
    expert_tensor_bytes: int = 0
    # Tokenizer facts for choosing a chat template when the file has none (app/core/prompt.py):
    # tokenizer.ggml.model ("gpt2", "llama"...), tokenizer.ggml.pre ("llama-bpe", "tekken"...),
    # and which CHAT_MARKER_TOKENS the vocabulary holds. Left out of ==: facts derived for the prompt.
    tokenizer_model: str = field(default="", compare=False)
    tokenizer_pre: str = field(default="", compare=False)
    chat_marker_tokens: frozenset[str] = field(default=frozenset(), compare=False)


def inspect_gguf(path: str | os.PathLike) -> ModelSummary:
    """Validate the GGUF at `path` (and its other parts, if split) and summarise it.

    Raises ModelFileError with a sentence saying what is wrong and what to do.
    """
    path = Path(path)
    header = _read_header(path)
    split_count = _as_int(header.kv, "split.count", default=1)
    split_no = _as_int(header.kv, "split.no", default=0)
    parts = [header]
    if split_count > 1:
        parts = _load_other_parts(header, split_no, split_count)
    return _summarize(path, header, parts, sum(part.file_size for part in parts))


class HeaderIncomplete(Exception):
    """`summarize_header` was given fewer bytes than the header takes: fetch at least `needed`."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"the header needs more than {needed // 2} bytes")
        self.needed = needed


def summarize_header(data: bytes, name: str, total_size: int) -> ModelSummary:
    """Summarise a GGUF from the first bytes of its (first) file, as a ranged request fetches them
    before a download: metadata and tensor table only. `total_size` is the whole model's size (all
    parts). For a split model only the first part's tensors are listed; its layer and expert byte
    counts are scaled to `total_size`, which keeps their ratio (the planner's MoE numbers) right.

    Raises HeaderIncomplete (fetch more) or ModelFileError (not a usable GGUF)."""
    path = Path(name)
    _check_magic_and_version(path.name, data[:HEADER_SIZE], max(len(data), total_size))
    cursor = _Cursor(data, len(data))
    cursor.claim_limit = max(len(data), total_size)
    try:
        header = _parse(path, cursor, check_data=False)
    except _Truncated:
        raise HeaderIncomplete(max(2 * len(data), HEADER_SIZE)) from None
    except _Damaged as problem:
        raise ModelFileError(f"The file '{path.name}' is damaged ({problem}).") from None
    if _as_int(header.kv, "split.no", default=0) != 0:
        raise ModelFileError(f"'{path.name}' is not the first part of its model; its header is in part 1.")
    summary = _summarize(path, header, [header], total_size)
    listed = sum(t.n_bytes for t in header.tensors)
    if _as_int(header.kv, "split.count", default=1) > 1 and listed:
        scale = total_size / (header.data_start + listed)
        summary = replace(summary, layer_tensor_bytes=int(summary.layer_tensor_bytes * scale),
                          expert_tensor_bytes=int(summary.expert_tensor_bytes * scale))
    return summary


def _summarize(path: Path, header: _Header, parts: list[_Header], file_size: int) -> ModelSummary:
    kv = header.kv
    split_count = _as_int(kv, "split.count", default=1)
    arch = _architecture(header)
    n_layers = _required_int(header, f"{arch}.block_count", "number of layers")
    if not 0 < n_layers <= MAX_LAYERS:
        raise _invalid(header, f"{arch}.block_count", n_layers, f"a model has 1 to {MAX_LAYERS} layers")
    n_ctx_train = _required_int(header, f"{arch}.context_length", "training context length")
    n_embd = _required_int(header, f"{arch}.embedding_length", "embedding width")
    for key, value in ((f"{arch}.context_length", n_ctx_train), (f"{arch}.embedding_length", n_embd)):
        if value <= 0:
            raise _invalid(header, key, value, "it must be above zero")
    n_head = _max_int(header, f"{arch}.attention.head_count")
    if arch not in RECURRENT_ARCHITECTURES:
        if n_head is None:
            raise _missing(header, f"{arch}.attention.head_count", "number of attention heads")
        if n_head <= 0:
            raise _invalid(header, f"{arch}.attention.head_count", n_head, "it must be above zero")
    n_head = n_head or 0
    n_head_kv = _max_int(header, f"{arch}.attention.head_count_kv")
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    key_length = _as_int(header.kv, f"{arch}.attention.key_length", default=0)
    head_dim = key_length or (n_embd // n_head if n_head else 0)
    head_dim_v = _as_int(header.kv, f"{arch}.attention.value_length", default=0)
    mla = arch in MLA_ARCHITECTURES and all(
        _as_int(header.kv, f"{arch}.attention.{key}", default=0) > 0 for key in ("key_length_mla", "value_length_mla"))
    n_ff = _max_int(header, f"{arch}.feed_forward_length") or 0
    _check_loader_asserts(header, arch, n_layers)
    n_expert = _as_int(kv, f"{arch}.expert_count", default=0)
    n_expert_used = (_max_int(header, f"{arch}.expert_used_count") or 0) if n_expert else 0
    layer_tensors = [t for part in parts for t in part.tensors if t.name.startswith("blk.")] if n_expert else []

    tokens = kv.get("tokenizer.ggml.tokens")
    if "tokenizer.ggml.model" not in kv or not isinstance(tokens, _Array) or tokens.count == 0:
        raise ModelFileError(
            f"'{path.name}' has no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens), so it cannot "
            "turn text into tokens. Download a complete GGUF of this model."
        )

    template = kv.get("tokenizer.chat_template")
    chat_template = template if isinstance(template, str) and template.strip() else None
    if chat_template is not None:
        is_reasoning = "<think>" in chat_template or "</think>" in chat_template
    else:  # no template to go by: a vocabulary with think tags is a reasoning model's
        is_reasoning = tokens.has_think_tag

    name = kv.get("general.name")
    return ModelSummary(
        path=path,
        file_size=file_size,
        architecture=arch,
        name=name.strip() if isinstance(name, str) and name.strip() else _display_stem(path),
        n_layers=n_layers,
        n_ctx_train=n_ctx_train,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_ff=n_ff,
        vocab_size=tokens.count,
        file_type=_file_type_label(kv, [t for part in parts for t in part.tensors]),
        chat_template=chat_template,
        is_reasoning=is_reasoning,
        n_params=sum(t.n_elements for part in parts for t in part.tensors),
        split_count=split_count,
        head_dim_v=head_dim_v,
        mla=mla,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        layer_tensor_bytes=sum(t.n_bytes for t in layer_tensors),
        expert_tensor_bytes=sum(t.n_bytes for t in layer_tensors if _EXPERTS_TENSOR.search(t.name)),
        tokenizer_model=_as_str(kv, "tokenizer.ggml.model"),
        tokenizer_pre=_as_str(kv, "tokenizer.ggml.pre"),
        chat_marker_tokens=tokens.markers,
    )


# --- header parsing --------------------------------------------------------------------


@dataclass(frozen=True)
class _Array:
    """A metadata array: its length, element type, and values when it is short."""

    count: int
    item_type: int
    values: list | None
    has_think_tag: bool = False  # a string array containing "<think>" or "</think>"
    markers: frozenset[str] = frozenset()  # the CHAT_MARKER_TOKENS in it (tokenizer.ggml.tokens only)


class _TypedInt(int):
    """An integer read from an integer-typed key (so a float or bool key is not mistaken for a count)."""


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class _Header:
    path: Path
    file_size: int
    kv: dict[str, object]
    tensors: list[_Tensor]
    data_start: int


class _Truncated(Exception):
    """The file ends before the header does."""


class _Damaged(Exception):
    """The header holds values no GGUF writer produces; the argument says which."""


_THINK_STRINGS = [_U64.pack(len(tag)) + tag for tag in (b"<think>", b"</think>")]
_CHAT_MARKER_STRINGS = [(token, _U64.pack(len(token.encode())) + token.encode()) for token in CHAT_MARKER_TOKENS]


class _Cursor:
    """Sequential little-endian reads from a memory-mapped file, bounds-checked."""

    def __init__(self, data: mmap.mmap, size: int) -> None:
        self.data = data
        self.size = size
        # Counts above this are damage, not a cut-off file: the file's size, or for the first bytes of
        # a remote file (summarize_header) the whole file's.
        self.claim_limit = size
        self.pos = 0

    def take(self, fmt: struct.Struct):
        end = self.pos + fmt.size
        if end > self.size:
            raise _Truncated
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return value

    def string(self, what: str, limit: int = 1 << 30) -> str:
        length = self.take(_U64)
        if length > limit:
            raise _Damaged(f"{what} claims to be {length} bytes long")
        end = self.pos + length
        if end > self.size:
            raise _Truncated
        text = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end
        return text

    def value(self, value_type: int, key: str):
        scalar = _SCALARS.get(value_type)
        if scalar is not None:
            return self.take(scalar)
        if value_type == GGUFValueType.STRING:
            return self.string(f"the value of {key}")
        if value_type == GGUFValueType.ARRAY:
            return self.array(key)
        raise _Damaged(f"metadata key '{key}' has an unknown value type ({value_type})")

    def array(self, key: str) -> _Array:
        item_type = self.take(_U32)
        count = self.take(_U64)
        scalar = _SCALARS.get(item_type)
        if scalar is not None:
            if count * scalar.size > self.size - self.pos:
                if count > self.claim_limit:
                    raise _Damaged(f"metadata array '{key}' claims {count} entries")
                raise _Truncated
            values = None
            if count <= _SMALL_ARRAY:
                values = [v for (v,) in scalar.iter_unpack(self.data[self.pos : self.pos + count * scalar.size])]
            self.pos += count * scalar.size
            return _Array(count, item_type, values)
        if item_type == GGUFValueType.STRING:
            if count * 8 > self.size - self.pos:
                if count > self.claim_limit:
                    raise _Damaged(f"metadata array '{key}' claims {count} entries")
                raise _Truncated
            start = self.pos
            self._skip_strings(count, key)
            found = any(self.data.find(tag, start, self.pos) >= 0 for tag in _THINK_STRINGS)
            markers = frozenset()
            if key == "tokenizer.ggml.tokens":
                markers = frozenset(
                    token for token, packed in _CHAT_MARKER_STRINGS if self.data.find(packed, start, self.pos) >= 0)
            return _Array(count, item_type, None, has_think_tag=found, markers=markers)
        if item_type == GGUFValueType.ARRAY:
            raise _Damaged(f"metadata array '{key}' holds arrays, which llama.cpp does not read")
        raise _Damaged(f"metadata array '{key}' has an unknown element type ({item_type})")

    def _skip_strings(self, count: int, key: str) -> None:
        # The hot loop for vocabularies and merges (300k strings in a Qwen file).
        data, size, pos = self.data, self.size, self.pos
        unpack = _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise _Truncated
            pos += 8 + unpack(data, pos)[0]
        if pos > size:
            if pos > size + (1 << 40):
                raise _Damaged(f"a string in metadata array '{key}' claims an impossible length")
            raise _Truncated
        self.pos = pos


def _read_header(path: Path) -> _Header:
    """Parse magic, version, metadata and tensor table; check tensor data lies inside the file."""
    try:
        if path.is_dir():
            raise ModelFileError(f"'{path}' is a folder, not a model file. Choose the .gguf file inside it.")
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelFileError(f"The model file '{path}' does not exist. Check the path, or download the model again.") from None
    except OSError as error:
        raise ModelFileError(f"Ponder cannot read '{path}': {error.strerror or error}.") from None
    name = path.name
    if size == 0:
        raise ModelFileError(f"The file '{name}' is empty (0 bytes): the download did not complete. Download it again.")
    try:
        with path.open("rb") as file:
            start = file.read(HEADER_SIZE)
            _check_magic_and_version(name, start, size)
            if size < HEADER_SIZE:
                raise _Truncated
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(path, _Cursor(data, size))
    except PermissionError:
        raise ModelFileError(f"Ponder is not allowed to read '{path}'. Check the file's permissions.") from None
    except _Truncated:
        raise ModelFileError(
            f"The file '{name}' is incomplete ({_format_size(size)}, cut off inside its header): "
            "the download was probably interrupted. Download it again."
        ) from None
    except _Damaged as problem:
        raise ModelFileError(f"The file '{name}' is damaged ({problem}). Download it again.") from None
    except OSError as error:
        raise ModelFileError(f"Ponder cannot read '{path}': {error.strerror or error}.") from None


def _check_magic_and_version(name: str, start: bytes, size: int) -> None:
    magic = start[:4]
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"'{name}' is not a GGUF model file ({_describe_foreign(start, size)}).")
    if len(start) < 8:
        raise _Truncated
    (version,) = _U32.unpack_from(start, 4)
    if version & 0xFFFF == 0 and version:
        raise ModelFileError(
            f"'{name}' is a big-endian GGUF file, which this computer cannot run. "
            "Download the standard (little-endian) GGUF of this model."
        )
    if version == 1:
        raise ModelFileError(
            f"'{name}' uses GGUF version 1, which llama.cpp no longer reads. Download a newer GGUF of this model."
        )
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"'{name}' uses GGUF version {version}, which this version of Ponder does not understand "
            "(it reads versions 2 and 3). Update Ponder or download another GGUF of this model."
        )


def _describe_foreign(start: bytes, size: int) -> str:
    """A plain description of what a non-GGUF file seems to be."""
    if start.lstrip()[:1] in (b"<", b"{"):
        return "it looks like a web page or error message saved in place of the model; download the model again"
    if start[:4] == b"PK\x03\x04":
        return "it is a zip archive, as PyTorch checkpoints are; Ponder needs a GGUF conversion of the model"
    if len(start) >= 10 and start[8:10] == b'{"':
        return "it is a safetensors file; Ponder needs a GGUF conversion of the model"
    if start[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return "it is in the old GGML format, which llama.cpp no longer reads; download a GGUF of this model"
    if size < 4:
        return f"it is only {size} byte{'s' if size != 1 else ''} long; download the model again"
    if start[:4].isascii() and start[:4].decode("ascii").isprintable():
        return f"it starts with '{start[:4].decode('ascii')}' instead of 'GGUF'; check that you chose the right file"
    return "it does not start with 'GGUF', so it is damaged or not a model at all; download the model again"


def _parse(path: Path, cur: _Cursor, check_data: bool = True) -> _Header:
    cur.pos = 8  # magic and version are checked already
    n_tensors = cur.take(_U64)
    n_kv = cur.take(_U64)
    remaining = cur.claim_limit - cur.pos
    if n_tensors > max(remaining, 1 << 20) // 24:
        raise _Damaged(f"its header claims {n_tensors} tensors")
    if n_kv > max(remaining, 1 << 20) // 13:
        raise _Damaged(f"its header claims {n_kv} metadata entries")

    kv: dict[str, object] = {}
    for _ in range(n_kv):
        key = cur.string("a metadata key", limit=1 << 16)
        if not key:
            raise _Damaged("a metadata key is empty")
        if key in kv:
            raise _Damaged(f"metadata key '{key}' appears twice")
        value_type = cur.take(_U32)
        value = cur.value(value_type, key)
        if isinstance(value, _Array) or value_type not in _INTEGER_TYPES:
            kv[key] = value
        else:
            kv[key] = _TypedInt(value)

    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Damaged(f"general.alignment is {alignment!r}, not a power of two")

    tensors: list[_Tensor] = []
    names: set[str] = set()
    expected_offset = 0
    for _ in range(n_tensors):
        tensor_name = cur.string("a tensor name", limit=1 << 16)
        if len(tensor_name.encode()) > MAX_TENSOR_NAME:
            raise _Damaged(f"tensor name '{tensor_name[:80]}' is longer than llama.cpp allows")
        if tensor_name in names:
            raise _Damaged(f"tensor '{tensor_name}' appears twice")
        names.add(tensor_name)
        n_dims = cur.take(_U32)
        if not 1 <= n_dims <= MAX_DIMS:
            raise _Damaged(f"tensor '{tensor_name}' has {n_dims} dimensions")
        shape = tuple(cur.take(_U64) for _ in range(n_dims))
        ggml_type = cur.take(_U32)
        offset = cur.take(_U64)
        tensors.append(_tensor(tensor_name, shape, ggml_type, offset))
        tensor = tensors[-1]
        if offset != expected_offset:  # llama.cpp requires the data packed in table order
            raise _Damaged(f"the data of tensor '{tensor_name}' is not where the header says it should be")
        expected_offset += -(-tensor.n_bytes // alignment) * alignment

    data_start = -(-cur.pos // alignment) * alignment
    header = _Header(path, cur.size, kv, tensors, data_start)
    if check_data:
        _check_data_present(header)
    return header


def _tensor(name: str, shape: tuple[int, ...], ggml_type: int, offset: int) -> _Tensor:
    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise _Damaged(f"tensor '{name}' has an unknown data type ({ggml_type})") from None
    if any(dim == 0 for dim in shape):
        raise _Damaged(f"tensor '{name}' has a dimension of size 0")
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    if n_elements >= 1 << 62:
        raise _Damaged(f"tensor '{name}' claims {n_elements} elements")
    if shape[0] % block_size:
        raise _Damaged(f"tensor '{name}' has rows of {shape[0]} values, not a multiple of {block_size}")
    return _Tensor(name, shape, ggml_type, offset, n_elements, n_elements // block_size * type_size)


def _check_data_present(header: _Header) -> None:
    if not header.tensors:
        return
    needed = header.data_start + max(t.offset + t.n_bytes for t in header.tensors)
    if needed > header.file_size:
        have, need = _format_sizes(header.file_size, needed)
        raise ModelFileError(
            f"The file '{header.path.name}' is incomplete ({have} of {need}): "
            "the download was probably cut off. Download it again."
        )


# --- checks on metadata ----------------------------------------------------------------


def _architecture(header: _Header) -> str:
    name = header.path.name
    arch = header.kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(
            f"'{name}' does not say which model architecture it holds (general.architecture is missing), "
            "so it is not a usable model file. Download another GGUF of this model."
        )
    if arch == "clip":
        raise ModelFileError(
            f"'{name}' is a vision projector (mmproj) file, not a language model. Choose the main model file."
        )
    if arch in NOT_CHAT_ARCHITECTURES:
        raise ModelFileError(f"'{name}' is a '{arch}' embedding or encoder model, which cannot chat. Choose a chat model.")
    if arch not in KNOWN_ARCHITECTURES:
        raise ModelFileError(
            f"'{name}' is a '{arch}' model, an architecture this version of llama.cpp does not run. "
            "Choose a model with a supported architecture (for example llama or qwen2), or update Ponder."
        )
    return arch


def _check_loader_asserts(header: _Header, arch: str, n_layers: int) -> None:
    """Values that hit a GGML_ASSERT (process abort) in llama.cpp's model loader."""
    nextn = _as_int(header.kv, f"{arch}.nextn_predict_layers", default=0)
    if nextn > n_layers:
        raise _invalid(header, f"{arch}.nextn_predict_layers", nextn, "it exceeds the number of layers")
    n_expert = _as_int(header.kv, f"{arch}.expert_count", default=0)
    n_expert_used = _max_int(header, f"{arch}.expert_used_count") or 0
    if n_expert > MAX_EXPERTS:
        raise _invalid(header, f"{arch}.expert_count", n_expert, f"llama.cpp supports at most {MAX_EXPERTS}")
    if n_expert_used > n_expert or (n_expert > 0 and n_expert_used == 0):
        raise _invalid(header, f"{arch}.expert_used_count", n_expert_used, f"the model has {n_expert} experts")
    scaling = header.kv.get(f"{arch}.rope.scaling.type")
    if scaling is not None and scaling not in ROPE_SCALING_TYPES:
        raise _invalid(header, f"{arch}.rope.scaling.type", scaling, "llama.cpp knows none, linear, yarn, longrope")


def _as_str(kv: dict[str, object], key: str) -> str:
    value = kv.get(key)
    return value.strip() if isinstance(value, str) else ""


def _as_int(kv: dict[str, object], key: str, *, default: int) -> int:
    value = kv.get(key)
    return int(value) if isinstance(value, _TypedInt) else default


def _required_int(header: _Header, key: str, meaning: str) -> int:
    value = header.kv.get(key)
    if value is None:
        raise _missing(header, key, meaning)
    if not isinstance(value, _TypedInt):
        raise _invalid(header, key, value, "it must be a whole number")
    return int(value)


def _max_int(header: _Header, key: str) -> int | None:
    """An integer key that may also be a per-layer array (the largest entry counts)."""
    value = header.kv.get(key)
    if value is None:
        return None
    if isinstance(value, _TypedInt):
        return int(value)
    if isinstance(value, _Array) and value.values and value.item_type in _INTEGER_TYPES:
        return max(value.values)
    raise _invalid(header, key, value, "it must be a whole number")


def _missing(header: _Header, key: str, meaning: str) -> ModelFileError:
    return ModelFileError(
        f"'{header.path.name}' lacks its {meaning} ({key}): it was converted incorrectly or is damaged. "
        "Download another GGUF of this model."
    )


def _invalid(header: _Header, key: str, value: object, why: str) -> ModelFileError:
    shown = f"{value.count} values" if isinstance(value, _Array) else repr(value)
    return ModelFileError(
        f"'{header.path.name}' has an invalid {key} ({shown}; {why}), which would crash llama.cpp. "
        "Download another GGUF of this model."
    )


# --- multi-part files ------------------------------------------------------------------


def _load_other_parts(first: _Header, split_no: int, split_count: int) -> list[_Header]:
    path = first.path
    match = SPLIT_SUFFIX.search(path.name)
    if split_no != 0:
        first_name = (
            SPLIT_SUFFIX.sub(f"-00001-of-{split_count:05d}.gguf", path.name) if match else "the part numbered 00001"
        )
        raise ModelFileError(
            f"'{path.name}' is part {split_no + 1} of a {split_count}-part model. Open the first part, '{first_name}'."
        )
    if not match or int(match.group(1)) != 1 or int(match.group(2)) != split_count:
        raise ModelFileError(
            f"'{path.name}' is the first part of a {split_count}-part model, but its name does not end in "
            f"'-00001-of-{split_count:05d}.gguf', so llama.cpp cannot find the other parts. Rename the parts as "
            "they were published."
        )
    prefix = path.name[: match.start()]
    part_paths = [path.with_name(f"{prefix}-{i:05d}-of-{split_count:05d}.gguf") for i in range(2, split_count + 1)]
    missing = [p.name for p in part_paths if not p.is_file()]
    if missing:
        listed = ", ".join(f"'{m}'" for m in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ModelFileError(
            f"'{path.name}' is the first part of a {split_count}-part model, but {listed} {verb} missing from "
            f"'{path.parent}'. Download all {split_count} parts into the same folder."
        )
    parts = [first]
    for number, part_path in enumerate(part_paths, start=1):
        part = _read_header(part_path)
        if (_as_int(part.kv, "split.no", default=-1), _as_int(part.kv, "split.count", default=-1)) != (
            number,
            split_count,
        ):
            raise ModelFileError(
                f"'{part_path.name}' is not part {number + 1} of the model that '{path.name}' starts. "
                f"Download all {split_count} parts of the same model again."
            )
        parts.append(part)
    declared = _as_int(first.kv, "split.tensors.count", default=0)
    found = sum(len(part.tensors) for part in parts)
    if declared and declared != found:
        raise ModelFileError(
            f"The parts of '{path.name}' hold {found} tensors, but the model needs {declared}: the parts do not "
            "belong together. Download all parts of the same model again."
        )
    return parts


# --- presentation ----------------------------------------------------------------------


def _file_type_label(kv: dict[str, object], tensors: list[_Tensor]) -> str:
    """'Q4_K_M' from general.file_type, else the most common tensor type by size."""
    file_type = kv.get("general.file_type")
    if isinstance(file_type, _TypedInt):
        try:
            name = LlamaFileType(int(file_type)).name
        except ValueError:
            name = ""
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    weights: dict[int, int] = {}
    for tensor in tensors:
        if len(tensor.shape) >= 2:
            weights[tensor.ggml_type] = weights.get(tensor.ggml_type, 0) + tensor.n_bytes
    if not weights:
        return "unknown"
    return GGMLQuantizationType(max(weights, key=weights.__getitem__)).name


def _display_stem(path: Path) -> str:
    return SPLIT_SUFFIX.sub("", path.name).removesuffix(".gguf")


def _format_size(n_bytes: int) -> str:
    """Decimal units, as download pages show sizes: '1.2 GB'."""
    return _format_sizes(n_bytes, n_bytes)[0]


def _format_sizes(*sizes: int) -> list[str]:
    """Sizes in the unit that suits the largest, so they compare at a glance: '0.9 GB', '4.7 GB'."""
    largest = max(sizes)
    if largest < 1000:
        return [f"{n} bytes" for n in sizes]
    scale, unit = next((s, u) for s, u in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if largest >= s)
    return [f"{n / scale:.1f} {unit}" for n in sizes]
