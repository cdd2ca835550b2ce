"""The planner sizes a deepseek2 (DeepSeek-V3/R1) KV cache the way llama.cpp does, with and without
the Multi-head Latent Attention metadata: checked against real llama.cpp's own load log on tiny
generated deepseek2 GGUFs (tests/fixtures/deepseek2_gguf.py). Numbers in docs/sizing.md."""

from __future__ import annotations

import json
import re

import pytest

import app  # noqa: F401
from app.core import engine
from app.core.catalog import default_catalog_path, load_catalog
from app.core.errors import CatalogError
from app.core.hardware import describe
from app.core.modelfile import inspect_gguf
from app.core.sizing import ModelShape, plan
from tests.fixtures.deepseek2_gguf import DeepSeek2Shape, llama_log, write_deepseek2_gguf

MiB = 1024**2
SHAPE = DeepSeek2Shape()
KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*"
                     r"K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB")
LOG_PRECISION_MIB = 0.005  # llama.cpp prints MiB with two decimals
BUFFER_LINE = re.compile(r"(model|compute) buffer size = +([\d.]+) MiB")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deepseek2")
    return {mla: write_deepseek2_gguf(folder / f"ds2-{'mla' if mla else 'nomla'}.gguf", mla=mla)
            for mla in (True, False)}


def llama_kv(path, *, n_ctx: int, kv_type: str, flash_attn: bool) -> dict:
    """Load `path` on the CPU with real llama.cpp and return its KV cache line's numbers."""
    lc = engine._llama()  # llama.cpp's log routed to the "llama.cpp" logger
    with llama_log() as lines:
        model = ctx = None
        try:
            mparams = lc.llama_model_default_params()
            mparams.n_gpu_layers = 0
            model = lc.llama_model_load_from_file(str(path).encode(), mparams)
            assert model, "\n".join(lines[-5:])
            cparams = lc.llama_context_default_params()
            cparams.n_ctx = n_ctx
            cparams.n_batch = cparams.n_ubatch = 512
            cparams.n_threads = cparams.n_threads_batch = 1
            cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
            ggml_type = {"f16": lc.GGML_TYPE_F16, "q8_0": lc.GGML_TYPE_Q8_0}[kv_type]
            cparams.type_k = cparams.type_v = ggml_type
            ctx = lc.llama_init_from_model(model, cparams)
            assert ctx, "\n".join(lines[-5:])
        finally:
            if ctx:
                lc.llama_free(ctx)
            if model:
                lc.llama_model_free(model)
    found = [m for line in lines if (m := KV_LINE.search(line))]
    assert len(found) == 1, [line for line in lines if "kv" in line.lower()]
    total, cells, layers, k_type, k_mib, v_type, v_mib = found[0].groups()
    buffers = {kind: float(mib) for line in lines if (m := BUFFER_LINE.search(line)) for kind, mib in [m.groups()]}
    return {"total": float(total), "cells": int(cells), "layers": int(layers), "k_type": k_type,
            "k": float(k_mib), "v_type": v_type, "v": float(v_mib), **buffers}


def planned_kv_mib(path, *, n_ctx: int, kv_type: str, flash_attn: bool) -> float:
    p = plan(inspect_gguf(path), n_ctx=n_ctx, kv_type=kv_type, n_gpu_layers=0, hw=describe(ram_gb=16),
             flash_attn=flash_attn)
    return sum(d.kv_bytes for d in p.devices) / MiB


def test_the_header_says_whether_a_deepseek2_file_is_mla(files):
    mla, old = inspect_gguf(files[True]), inspect_gguf(files[False])
    assert (mla.architecture, mla.mla, mla.n_head_kv, mla.head_dim, mla.head_dim_v) == (
        "deepseek2", True, 1, SHAPE.kv_lora_rank + SHAPE.qk_rope, SHAPE.kv_lora_rank)
    assert (old.architecture, old.mla, old.n_head_kv, old.head_dim, old.head_dim_v) == (
        "deepseek2", False, SHAPE.n_head, SHAPE.qk_nope + SHAPE.qk_rope, SHAPE.v_head)


# (mla, n_ctx, kv_type, flash_attn): 1000 tokens are padded to 1024 cells by llama.cpp.
CASES = [
    (True, 4096, "f16", True),
    (True, 1000, "f16", False),
    (True, 8192, "q8_0", True),
    (False, 4096, "f16", True),
    (False, 1000, "f16", False),
    (False, 8192, "q8_0", True),
]


@pytest.mark.parametrize("mla, n_ctx, kv_type, flash_attn", CASES)
def test_planned_kv_cache_matches_llama_cpp(files, mla, n_ctx, kv_type, flash_attn):
    measured = llama_kv(files[mla], n_ctx=n_ctx, kv_type=kv_type, flash_attn=flash_attn)
    planned = planned_kv_mib(files[mla], n_ctx=n_ctx, kv_type=kv_type, flash_attn=flash_attn)
    assert (measured["layers"], measured["k_type"]) == (SHAPE.n_layer, kv_type)
    assert abs(planned - measured["total"]) <= LOG_PRECISION_MIB, (planned, measured)
    # What llama.cpp does, independently of the planner: MLA caches one head of kv_lora_rank +
    # rope dim and no V; the older layout caches every head's K (nope + rope) and V.
    per_elem = {"f16": 2, "q8_0": 34 / 32}[kv_type] * measured["cells"] * SHAPE.n_layer / MiB
    if mla:
        assert measured["k"] == pytest.approx((SHAPE.kv_lora_rank + SHAPE.qk_rope) * per_elem, abs=LOG_PRECISION_MIB)
        assert measured["v"] == 0
    else:
        assert measured["k"] == pytest.approx(SHAPE.n_head * (SHAPE.qk_nope + SHAPE.qk_rope) * per_elem,
                                              abs=LOG_PRECISION_MIB)
        assert measured["v"] == pytest.approx(SHAPE.n_head * SHAPE.v_head * per_elem, abs=LOG_PRECISION_MIB)


def test_the_mla_file_plans_a_much_smaller_cache_than_the_old_layout(files):
    mla = planned_kv_mib(files[True], n_ctx=4096, kv_type="f16", flash_attn=True)
    old = planned_kv_mib(files[False], n_ctx=4096, kv_type="f16", flash_attn=True)
    # 1 × (64 + 32) against 4 × (64 + 32) values per token and layer in the tiny files.
    assert old / mla == pytest.approx(4.0)


def test_full_r1_kv_cache_follows_the_catalog_files_own_layout():
    """DeepSeek-V3/R1 (61 layers): with the MLA keys 576 values per token and layer, ~1.1 GB at 16k in
    f16; without them 128 × (192 + 128), ~78 GB. The catalog entry says which layout its files have."""
    r1 = load_catalog().get("r1-671b")
    a = r1.architecture
    p = plan(r1, quant="UD-IQ1_S", n_ctx=16384, n_gpu_layers=0, hw=None)
    kv = sum(d.kv_bytes for d in p.devices)
    if a.mla:
        assert (a.n_head_kv, a.head_dim, a.head_dim_v) == (1, 576, 512)
        assert kv == 61 * 576 * 2 * 16384
    else:
        assert (a.n_head_kv, a.head_dim, a.head_dim_v) == (128, 192, 128)
        assert kv == 61 * 128 * (192 + 128) * 2 * 16384


def _catalog_with_mla_r1(tmp_path, **arch):
    data = json.loads(default_catalog_path().read_text(encoding="utf-8"))
    models = data["models"] if isinstance(data, dict) else data
    entry = next(m for m in models if m["id"] == "r1-671b")
    entry["architecture"].update(arch)
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_catalog(path)


def test_a_catalog_entry_marked_mla_plans_the_compressed_cache(tmp_path):
    """An entry whose files carry the MLA keys describes them as the file does (1 KV head of 576,
    value 512, mla true): 61 × 576 f16 values per token, ~1.1 GB at 16k, and a 192 GB Mac then holds
    the 140 GB UD-IQ1_S on its GPU."""
    catalog = _catalog_with_mla_r1(tmp_path, n_head_kv=1, head_dim=576, head_dim_v=512, mla=True)
    r1 = catalog.get("r1-671b")
    assert r1.architecture.mla
    mac = describe(unified=True, ram_gb=192, gpu_name="Apple M2 Ultra")
    p = plan(r1, quant="UD-IQ1_S", n_ctx=16384, n_gpu_layers=-1, hw=mac)
    assert sum(d.kv_bytes for d in p.devices) == 61 * 576 * 2 * 16384  # 1098 MiB
    assert p.fit == "fits"
    (tmp_path / "old").mkdir()
    without = _catalog_with_mla_r1(tmp_path / "old", n_head_kv=128, head_dim=192, head_dim_v=128, mla=False)
    old = plan(without.get("r1-671b"), quant="UD-IQ1_S", n_ctx=16384, n_gpu_layers=-1, hw=mac)
    assert sum(d.kv_bytes for d in old.devices) == 61 * 128 * 320 * 2 * 16384  # 78080 MiB
    assert old.fit == "too_big"
    # Reading the smaller cache per token also makes decoding faster.
    assert p.expected_tokens_per_s > old.expected_tokens_per_s


def test_the_catalog_mla_flag_must_be_true_or_false(tmp_path):
    with pytest.raises(CatalogError, match="mla"):
        _catalog_with_mla_r1(tmp_path, mla="yes")


def test_moe_speed_reads_the_used_experts_share_of_the_files_expert_tensors(files):
    """Per token a MoE reads its layers' non-expert tensors and n_expert_used / n_expert of the routed
    experts (ffn_*_exps), counted from the file's own tensor table (here with gguf's reader)."""
    from gguf import GGUFReader

    for path in files.values():
        reader = GGUFReader(path)
        layer = [t for t in reader.tensors if t.name.startswith("blk.")]
        total = sum(int(t.n_bytes) for t in layer)
        experts = sum(int(t.n_bytes) for t in layer if "_exps." in t.name)
        assert 0 < experts < total
        summary = inspect_gguf(path)
        assert (summary.n_expert, summary.n_expert_used) == (SHAPE.n_expert, SHAPE.n_expert_used)
        assert (summary.layer_tensor_bytes, summary.expert_tensor_bytes) == (total, experts)
        used = SHAPE.n_expert_used / SHAPE.n_expert
        assert ModelShape.from_summary(summary).active_ratio == pytest.approx((total - experts * (1 - used)) / total)


@pytest.mark.parametrize("mla", [True, False])
@pytest.mark.parametrize("n_ctx", [4096, 16384])
def test_planned_total_is_within_five_percent_of_llama_cpps_buffers(files, mla, n_ctx):
    """Weights + KV cache + compute buffer, f16, flash attention, all on the CPU: the planner against
    llama.cpp's own three buffer lines (numbers in docs/sizing.md)."""
    measured = llama_kv(files[mla], n_ctx=n_ctx, kv_type="f16", flash_attn=True)
    p = plan(inspect_gguf(files[mla]), n_ctx=n_ctx, n_gpu_layers=0, hw=describe(ram_gb=16))
    cpu = p.devices[-1]
    planned_mib = (cpu.weights_bytes + cpu.kv_bytes + cpu.compute_bytes) / MiB
    measured_mib = measured["model"] + measured["total"] + measured["compute"]
    assert abs(planned_mib - measured_mib) <= 0.05 * measured_mib, (planned_mib, measured)
    assert abs(cpu.compute_bytes / MiB - measured["compute"]) <= 0.1 * measured["compute"], (cpu.compute_bytes / MiB, measured)
