"""Write a random-weight Q4_K_M GGUF with the real shapes of a DeepSeek-R1 distill.

For memory and throughput measurements without downloading the real models: the
file has the distill's architecture numbers, tensor names and shapes, a byte-level
BPE vocabulary of the real size (synthetic but unique token strings, the R1 special
tokens at their real ids, letter-pair merges), the R1 chat template, and the exact
Q4_K_M tensor-type mix, because llama.cpp's own quantiser makes the file.

How, and why this way (a 32B distill is ~64 GB at F16, ~20 GB at Q4_K_M):
1. Write an F16 source GGUF whose 2-D tensors are a sparse hole: header and the
   small 1-D tensors (norms, biases) are written, the rest is `truncate`d into
   existence. It takes no disk space and reads back as zeros at memory speed.
2. `llama_cpp.llama_model_quantize(..., LLAMA_FTYPE_MOSTLY_Q4_K_M)` turns it into
   the real Q4_K_M layout (Q4_K / Q6_K per tensor exactly as for the real model);
   quantising zeros is quick.
3. Overwrite every quantised tensor in place with blocks drawn at random from a
   pool of real quantisations of Gaussian noise (std 0.02, made with ggml's own
   `ggml_quantize_chunk`): valid scales, no NaN, realistic value spread, and no
   all-zero weights (never time on zeros).

    python tests/benchmarks/make_shaped_gguf.py --model qwen-7b --out /tmp/m/qwen-7b.gguf
    python tests/benchmarks/make_shaped_gguf.py --list
"""

# llama_cpp before numpy/gguf: on the GPU machine a CUDA build segfaulted at model
# load whenever numpy had been imported first.
import llama_cpp

import argparse
import ctypes
import os
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import gguf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.fixtures.r1_template import R1_TEMPLATE  # noqa: E402

WEIGHT_STD = 0.02


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str  # "qwen2" or "llama"
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    rope_base: float
    rms_eps: float
    context_length: int = 131072

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


SHAPES = {
    s.name: s
    for s in (
        Shape("qwen-1.5b", "qwen2", 28, 1536, 12, 2, 8960, 151936, 10000.0, 1e-6),
        Shape("qwen-7b", "qwen2", 28, 3584, 28, 4, 18944, 152064, 10000.0, 1e-6),
        Shape("llama-8b", "llama", 32, 4096, 32, 8, 14336, 128256, 500000.0, 1e-5),
        Shape("qwen-14b", "qwen2", 48, 5120, 40, 8, 13824, 152064, 1000000.0, 1e-5),
        Shape("qwen-32b", "qwen2", 64, 5120, 40, 8, 27648, 152064, 1000000.0, 1e-5),
        Shape("llama-70b", "llama", 80, 8192, 64, 8, 28672, 128256, 500000.0, 1e-5),
        # Small enough for a CPU test; still the full Qwen vocabulary.
        Shape("tiny-qwen", "qwen2", 2, 256, 4, 2, 512, 151936, 10000.0, 1e-6),
        Shape("tiny-llama", "llama", 2, 256, 4, 2, 512, 128256, 500000.0, 1e-5),
    )
}


# ---------------------------------------------------------------- vocabulary

def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet, in its usual order (token ids 0..255)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _special_tokens(shape: Shape) -> tuple[dict[int, tuple[str, int]], int, int, int]:
    """{id: (text, token type)}, bos id, eos id, number of real (non-padding) tokens."""
    control, user = gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED
    if shape.arch == "qwen2":
        base = 151643
        special = {
            base: ("<｜end▁of▁sentence｜>", control),
            base + 1: ("<｜User｜>", user),
            base + 2: ("<｜Assistant｜>", user),
            base + 3: ("<｜begin▁of▁sentence｜>", control),
            base + 4: ("<|EOT|>", control),
            base + 5: ("<think>", user),
            base + 6: ("</think>", user),
        }
        for i in range(base + 7, 151665):
            special[i] = (f"<｜place▁holder▁no▁{i - base}｜>", control)
        return special, base + 3, base, 151665
    base = 128000
    special = {
        base: ("<｜begin▁of▁sentence｜>", control),
        base + 1: ("<｜end▁of▁sentence｜>", control),
        base + 11: ("<｜User｜>", user),
        base + 12: ("<｜Assistant｜>", user),
        base + 13: ("<think>", user),
        base + 14: ("</think>", user),
    }
    for i in range(base, 128256):
        special.setdefault(i, (f"<｜place▁holder▁no▁{i - base}｜>", control))
    return special, base, base + 1, 128256


def build_vocab(shape: Shape, seed: int = 0) -> tuple[list[str], list[int], list[str], int, int]:
    """Tokens, token types, merges, bos id, eos id for a byte-level BPE of `shape.n_vocab`.

    Ids 0..255 are the byte tokens; then every 'Ġx' and 'xy' letter pair with its
    merge (so English text tokenizes about two letters a token); then synthetic
    unique words ('Ġ' + 3..9 letters, or bare), so that what a random-weight model
    generates decodes to word-like text. Real R1 special tokens sit at their real ids;
    ids past the real vocabulary are '[PADn]' (UNUSED), as convert_hf_to_gguf does.
    """
    special, bos, eos, n_real = _special_tokens(shape)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pairs = [("Ġ", a) for a in letters] + [(a, b) for a in letters for b in letters]
    tokens = _byte_tokens() + [a + b for a, b in pairs]
    merges = [f"{a} {b}" for a, b in pairs]
    seen = set(tokens)
    n_normal = min(special) - len(tokens)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 10, size=4 * n_normal)
    spaced = rng.random(4 * n_normal) < 0.7
    chars = rng.integers(0, 26, size=(4 * n_normal, 9))
    k = 0
    while len(tokens) < min(special):
        word = "".join(letters[c] for c in chars[k, : lengths[k]])
        word = "Ġ" + word if spaced[k] else word
        k += 1
        if word not in seen:
            seen.add(word)
            tokens.append(word)
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for i in range(len(tokens), shape.n_vocab):
        if i in special:
            text, ttype = special[i]
        elif i < n_real:
            text, ttype = f"<｜reserved▁{i}｜>", gguf.TokenType.CONTROL
        else:
            text, ttype = f"[PAD{i}]", gguf.TokenType.UNUSED
        tokens.append(text)
        types.append(ttype)
    return tokens, [int(t) for t in types], merges, bos, eos


# ---------------------------------------------------------------- tensors

def tensor_plan(shape: Shape) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape (rows, cols), kind) for every tensor; kind is weight, norm, bias or rope."""
    e, hd = shape.n_embd, shape.head_dim
    q, kv, ff = shape.n_head * hd, shape.n_head_kv * hd, shape.n_ff
    plan = [("token_embd.weight", (shape.n_vocab, e), "weight")]
    if shape.arch == "llama":
        plan.append(("rope_freqs.weight", (hd // 2,), "rope"))
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", (e,), "norm"),
            (b + "attn_q.weight", (q, e), "weight"),
            (b + "attn_k.weight", (kv, e), "weight"),
            (b + "attn_v.weight", (kv, e), "weight"),
            (b + "attn_output.weight", (e, q), "weight"),
            (b + "ffn_norm.weight", (e,), "norm"),
            (b + "ffn_gate.weight", (ff, e), "weight"),
            (b + "ffn_up.weight", (ff, e), "weight"),
            (b + "ffn_down.weight", (e, ff), "weight"),
        ]
        if shape.arch == "qwen2":
            plan += [(b + "attn_q.bias", (q,), "bias"), (b + "attn_k.bias", (kv,), "bias"), (b + "attn_v.bias", (kv,), "bias")]
    plan += [("output_norm.weight", (e,), "norm"), ("output.weight", (shape.n_vocab, e), "weight")]
    return plan


def _one_d_values(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "bias":
        return (rng.standard_normal(n) * WEIGHT_STD).astype(np.float32)
    return np.ones(n, dtype=np.float32)  # norm weights and rope frequency factors


def write_source_gguf(shape: Shape, path: Path, seed: int = 0) -> None:
    """An F16 GGUF whose 2-D tensors are a sparse hole of zeros (no disk used)."""
    w = gguf.GGUFWriter(path, shape.arch)
    arch = shape.arch
    w.add_name(f"R1-Distill-shaped-{shape.name}")
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    w.add_context_length(shape.context_length)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_rope_freq_base(shape.rope_base)
    w.add_layer_norm_rms_eps(shape.rms_eps)
    if arch == "llama":
        w.add_rope_dimension_count(shape.head_dim)
        w.add_vocab_size(shape.n_vocab)
    tokens, types, merges, bos, eos = build_vocab(shape, seed)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-r1-qwen" if arch == "qwen2" else "llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_pad_token_id(eos)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(R1_TEMPLATE)

    plan = tensor_plan(shape)
    offsets, offset = [], 0
    for name, shp, kind in plan:
        dtype = np.float16 if kind == "weight" else np.float32
        nbytes = int(np.prod(shp)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, shp, np.dtype(dtype), nbytes)
        offsets.append(offset)
        offset += gguf.GGUFWriter.ggml_pad(nbytes, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())
    data_start = fout.tell()
    rng = np.random.default_rng(seed)
    for (name, shp, kind), off in zip(plan, offsets):
        if kind != "weight":
            fout.seek(data_start + off)
            _one_d_values(kind, shp[0], rng).tofile(fout)
    fout.truncate(data_start + offset)
    w.close()


# ---------------------------------------------------------------- quantise and fill

def quantize(src: Path, dst: Path, nthread: int = 0, ftype: int = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = nthread
    params.ftype = ftype
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {src}")


def _libggml_base() -> ctypes.CDLL:
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    lib = ctypes.CDLL(str(next(lib_dir.glob("libggml-base.*"))))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
    ]
    return lib


def block_pool(qtype: gguf.GGMLQuantizationType, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """n_blocks real ggml quantisations of Gaussian noise, shape (n_blocks, bytes per block)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    src = (rng.standard_normal(n_blocks * block) * WEIGHT_STD).astype(np.float32)
    dst = np.empty((n_blocks, size), dtype=np.uint8)
    written = _libggml_base().ggml_quantize_chunk(int(qtype), src.ctypes.data, dst.ctypes.data, 0, n_blocks, block, None)
    if written != dst.nbytes:
        raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes for {qtype.name}, expected {dst.nbytes}")
    return dst


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def tensor_layout(path: Path) -> list[tuple[str, tuple[int, ...], gguf.GGMLQuantizationType, int, int]]:
    """(name, numpy shape, type, absolute data offset, bytes) of every tensor in a GGUF.

    A small header walk: gguf.GGUFReader takes seconds on a 152k-token vocabulary.
    """
    with open(path, "rb") as f:
        head = f.read(64 << 20)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, head, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def skip_value(vtype: int) -> None:
        nonlocal pos
        if vtype == 8:  # string
            n = take("Q")
            pos += n
        elif vtype == 9:  # array
            sub, n = take("IQ")
            if sub in _SCALAR:
                pos += n * struct.calcsize(_SCALAR[sub])
            else:
                for _ in range(n):
                    skip_value(sub)
        else:
            pos += struct.calcsize(_SCALAR[vtype])

    magic, _version, n_tensors, n_kv = take("IIQQ")
    if magic != gguf.GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file")
    alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        n = take("Q")
        key = head[pos : pos + n].decode()
        pos += n
        vtype = take("I")
        if key == "general.alignment":
            alignment = take("I")
        else:
            skip_value(vtype)
    infos = []
    for _ in range(n_tensors):
        n = take("Q")
        name = head[pos : pos + n].decode()
        pos += n
        n_dims = take("I")
        dims = struct.unpack_from(f"<{n_dims}Q", head, pos)
        pos += 8 * n_dims
        qtype, offset = take("IQ")
        infos.append((name, tuple(reversed(dims)), gguf.GGMLQuantizationType(qtype), offset))
    data_start = gguf.GGUFWriter.ggml_pad(pos, alignment)
    layout = []
    for name, shape, qtype, offset in infos:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        layout.append((name, shape, qtype, data_start + offset, int(np.prod(shape)) // block * size))
    return layout


def fill_random(path: Path, seed: int = 0, threads: int = 8, pool_blocks: int = 16384) -> dict[str, int]:
    """Overwrite every 2-D tensor of `path` in place with random valid data; returns tensor counts per type."""
    data = np.memmap(path, mode="r+")
    rng = np.random.default_rng(seed + 1)
    pools: dict[gguf.GGMLQuantizationType, np.ndarray] = {}
    jobs = []
    counts: dict[str, int] = {}
    for name, shape, qtype, offset, nbytes in tensor_layout(path):
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        if len(shape) < 2:
            continue  # norms, biases, rope factors came through from the source
        raw = data[offset : offset + nbytes]
        if qtype == gguf.GGMLQuantizationType.F32:
            jobs.append((raw.view(np.float32), None))
        elif qtype == gguf.GGMLQuantizationType.F16:
            jobs.append((raw.view(np.float16), None))
        else:
            if qtype not in pools:
                pools[qtype] = block_pool(qtype, pool_blocks, rng)
            jobs.append((raw.reshape(-1, pools[qtype].shape[1]), pools[qtype]))

    chunk = 1 << 18  # blocks (or floats) per task
    tasks = [(dst, pool, a) for dst, pool in jobs for a in range(0, dst.shape[0], chunk)]

    def run(i: int) -> None:
        dst, pool, a = tasks[i]
        part = dst[a : a + chunk]
        r = np.random.default_rng([seed, i])
        if pool is None:
            part[:] = r.standard_normal(part.shape[0]).astype(part.dtype) * part.dtype.type(WEIGHT_STD)
        else:
            np.take(pool, r.integers(0, pool.shape[0], size=part.shape[0], dtype=np.int32), axis=0, out=part)

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(run, range(len(tasks))))
    data.flush()
    del data
    return counts


def first_special_id(n_vocab: int) -> int:
    """The first id after the ordinary tokens (Qwen: 151,643; Llama 3: 128,000)."""
    return 151643 if n_vocab > 150000 else 128000


def make_successor_model(path: Path, seed: int = 0, pool_blocks: int = 16384) -> np.ndarray:
    """Turn a shaped GGUF, in place, into one whose greedy next token is a fixed function of the
    token: next(t) = sigma(t), sigma a random permutation of the ordinary word ids (no byte, special
    or padding ids), by a wide margin. Returns sigma as an array over all ids (what follows t).

    For benchmarks that need a continuation robust to kernel numerics at the cost of the random
    model: every 2-D block tensor becomes quantised zeros (same types and sizes, so the same
    kernels and time; only norms and biases stay), so the residual stream is the token's
    embedding; the embedding row of t and the output row of sigma(t) are built from the same
    pool blocks (Gaussian noise, std WEIGHT_STD), so logit(sigma(t)) ~ n_embd * WEIGHT_STD (~100
    for n_embd 5120) while the other logits are noise of std ~sqrt(n_embd) * WEIGHT_STD (~1.4).
    Non-ordinary ids get the embedding of an ordinary one (what follows them is ordinary too) and a
    zero output row.
    """
    layout = {name: (shape, qtype, offset, nbytes) for name, shape, qtype, offset, nbytes in tensor_layout(path)}
    if layout["token_embd.weight"][0][0] <= first_special_id(layout["token_embd.weight"][0][0]):
        raise ValueError(f"{path.name} is not a shaped Qwen or Llama distill (too few tokens)")
    data = np.memmap(path, mode="r+")
    for name, (shape, qtype, offset, nbytes) in layout.items():
        if name.startswith("blk.") and len(shape) == 2:
            data[offset : offset + nbytes] = 0  # all-zero bytes: every ggml type's scale is 0, so are its values
    e_shape, e_type, e_off, e_bytes = layout["token_embd.weight"]
    o_shape, o_type, o_off, o_bytes = layout["output.weight"]
    n_vocab, n_embd = e_shape
    chunk = 256  # floats per pool entry: a whole number of blocks of every type
    if n_embd % chunk:
        raise ValueError(f"n_embd {n_embd} is not a multiple of {chunk}")
    n_chunks = n_embd // chunk
    if n_chunks < 4:  # few chunks a row: every token needs a key of its own, or logits tie
        pool_blocks = n_vocab
    rng = np.random.default_rng(seed + 2)
    src = (rng.standard_normal(pool_blocks * chunk) * WEIGHT_STD).astype(np.float32)

    def pool(qtype) -> np.ndarray:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        per_chunk = chunk // block * size
        dst = np.empty((pool_blocks, per_chunk), dtype=np.uint8)
        if qtype == gguf.GGMLQuantizationType.F32:
            dst[:] = src.view(np.uint8).reshape(pool_blocks, -1)
        elif qtype == gguf.GGMLQuantizationType.F16:
            dst[:] = src.astype(np.float16).view(np.uint8).reshape(pool_blocks, -1)
        else:
            written = _libggml_base().ggml_quantize_chunk(int(qtype), src.ctypes.data, dst.ctypes.data, 0,
                                                          pool_blocks, chunk, None)
            if written != dst.nbytes:
                raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes for {qtype.name}")
        return dst

    ordinary = np.arange(256 + 26 + 26 * 26, first_special_id(n_vocab))  # the word tokens (build_vocab)
    sigma_ordinary = rng.permutation(ordinary)
    # t's key: pool entries per chunk (rows share a chunk rarely: 1 in pool_blocks per chunk)
    which = np.stack([rng.permutation(n_vocab) % pool_blocks for _ in range(n_chunks)], axis=1)
    stand_in = np.arange(n_vocab)
    others = np.setdiff1d(np.arange(n_vocab), ordinary)
    stand_in[others] = ordinary[rng.integers(0, len(ordinary), size=len(others))]
    keys = which[stand_in]  # a non-ordinary id borrows an ordinary one's key
    data[e_off : e_off + e_bytes] = np.take(pool(e_type), keys, axis=0).reshape(-1)
    out_pool = pool(o_type)
    out = data[o_off : o_off + o_bytes].reshape(n_vocab, -1)
    out[:] = 0
    out[sigma_ordinary] = np.take(out_pool, which[ordinary], axis=0).reshape(len(ordinary), -1)
    data.flush()
    del data
    sigma = np.empty(n_vocab, dtype=np.int64)
    sigma[ordinary] = sigma_ordinary
    sigma = sigma[stand_in]
    return sigma


def make_shaped_gguf(model: str, out: Path, work_dir: Path | None = None, seed: int = 0, threads: int = 0) -> dict:
    """Write `out` (Q4_K_M) for SHAPES[model]; returns timings and the tensor-type counts."""
    shape = SHAPES[model]
    threads = threads or os.cpu_count() or 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    src = Path(work_dir or out.parent) / (out.name + ".f16-sparse.gguf")
    t0 = time.perf_counter()
    try:
        write_source_gguf(shape, src, seed)
        t1 = time.perf_counter()
        quantize(src, out, threads)
    finally:
        src.unlink(missing_ok=True)
    t2 = time.perf_counter()
    counts = fill_random(out, seed, threads)
    t3 = time.perf_counter()
    return {
        "model": model, "path": str(out), "bytes": out.stat().st_size, "types": counts,
        "source_s": round(t1 - t0, 2), "quantize_s": round(t2 - t1, 2), "fill_s": round(t3 - t2, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(SHAPES), help="which distill's shapes")
    p.add_argument("--out", type=Path, help="output .gguf (Q4_K_M)")
    p.add_argument("--work-dir", type=Path, help="where the sparse F16 source goes (default: next to --out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="default: all cores")
    p.add_argument("--list", action="store_true", help="print the known shapes and exit")
    args = p.parse_args()
    if args.list or not args.model:
        for s in SHAPES.values():
            print(s)
        return 0
    out = args.out or Path(f"{args.model}-Q4_K_M.gguf")
    print(make_shaped_gguf(args.model, out, args.work_dir, args.seed, args.threads), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
