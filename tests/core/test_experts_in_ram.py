"""Experts in RAM: a mixture of experts' routed experts (ffn_*_exps) in system RAM and the rest on the
GPU. The engine asks llama.cpp for it through the model params' tensor buffer-type overrides; here real
llama.cpp (the CPU build) loads a tiny deepseek2 GGUF that way and its load log names each expert tensor
it placed by the override. The planner's side: which bytes go where, the speed, the choice."""

from __future__ import annotations


import pytest
from gguf import GGUFReader

import app  # noqa: F401
from app.core import engine
from app.core.catalog import load_catalog
from app.core.hardware import describe
from app.core.modelfile import inspect_gguf
from app.core.sizing import best_placement, plan
from app.core.wording import describe_plan, experts_in_ram_text
from tests.fixtures.deepseek2_gguf import DeepSeek2Shape, llama_log, write_deepseek2_gguf

SHAPE = DeepSeek2Shape()
CATALOG = load_catalog()


@pytest.fixture(scope="module")
def moe_file(tmp_path_factory):
    return write_deepseek2_gguf(tmp_path_factory.mktemp("moe") / "ds2-moe.gguf", mla=True)


def _load_log(path, experts_in_ram: bool, cpu_moe_layers: int | None = None) -> list[str]:
    """Open `path` the way Engine.load does (Engine._open), decode one token, return llama.cpp's log."""
    with llama_log() as lines:
        e = engine.Engine()
        e._lc = lc = engine._llama()
        try:
            e._open(path, engine.LoadOptions(n_ctx=512, kv_type="f16", n_threads=1), 0, None,
                    experts_in_ram=experts_in_ram, cpu_moe_layers=cpu_moe_layers)
            tokens = (lc.llama_token * 2)(1, 2)
            assert lc.llama_decode(e._ctx, lc.llama_batch_get_one(tokens, 2)) == 0
        finally:
            e.close()
    return lines


def test_the_load_puts_every_routed_expert_tensor_in_cpu_memory_by_the_override(moe_file):
    lines = _load_log(moe_file, experts_in_ram=True)
    overridden = sorted(line.split()[1] for line in lines if "buffer type overridden to CPU" in line)
    expected = sorted(f"blk.{i}.ffn_{kind}_exps.weight" for i in range(SHAPE.n_dense_lead, SHAPE.n_layer)
                      for kind in ("gate", "up", "down"))
    assert overridden == expected  # the shared experts (ffn_*_shexp) and the dense FFN are not matched


def test_the_experts_of_the_first_layers_only_with_n_cpu_moe(moe_file):
    """llama.cpp's --n-cpu-moe 2: layers 0 (dense, no experts) and 1; layer 2's experts stay put."""
    lines = _load_log(moe_file, experts_in_ram=True, cpu_moe_layers=2)
    overridden = sorted(line.split()[1] for line in lines if "buffer type overridden to CPU" in line)
    assert overridden == [f"blk.1.ffn_{kind}_exps.weight" for kind in ("down", "gate", "up")]


def test_without_the_option_nothing_is_overridden(moe_file):
    assert not [line for line in _load_log(moe_file, experts_in_ram=False) if "overridden" in line]


def test_the_override_list_is_llama_cpps_cpu_moe_pattern_and_null_terminated():
    overrides = engine._experts_on_cpu_overrides()
    assert len(overrides) == 2 and overrides[0].pattern == rb"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
    assert overrides[0].buft and overrides[1].pattern is None and not overrides[1].buft


def test_the_plan_keeps_the_files_expert_tensors_in_ram_and_the_rest_on_the_gpu(moe_file):
    reader = GGUFReader(moe_file)
    experts = sum(int(t.n_bytes) for t in reader.tensors if "_exps." in t.name)
    summary = inspect_gguf(moe_file)
    hw = describe(vram_gb=24, ram_gb=64)
    whole = plan(summary, n_ctx=4096, n_gpu_layers=-1, hw=hw)
    split = plan(summary, n_ctx=4096, hw=hw, experts_in_ram=True, n_cpu_moe=SHAPE.n_layer)
    gpu, cpu = split.devices
    assert split.placement == "experts_in_ram" and split.fit == "partial" and split.n_gpu_layers == SHAPE.n_layer + 1
    assert split.expert_bytes == experts
    assert cpu.weights_bytes - whole.devices[-1].weights_bytes == experts  # token_embd + the experts
    assert whole.devices[0].weights_bytes - gpu.weights_bytes == pytest.approx(experts, abs=SHAPE.n_layer)
    assert gpu.kv_bytes == whole.devices[0].kv_bytes and cpu.kv_bytes == 0  # the KV cache stays on the GPU
    assert split.expert_read_bytes == experts * SHAPE.n_expert_used // SHAPE.n_expert
    assert split.expert_bytes_in_ram == experts and split.n_cpu_moe == SHAPE.n_layer
    # Left to the planner, a GPU that holds nearly everything keeps just one layer's experts out.
    assert plan(summary, n_ctx=4096, hw=hw, experts_in_ram=True).n_cpu_moe == 1


def test_a_dense_model_or_a_mac_never_gets_experts_in_ram():
    distill = CATALOG.get("r1-distill-llama-70b")
    assert plan(distill, hw=describe(gpu_name="RTX 4090", ram_gb=256), experts_in_ram=True).placement == "split"
    r1 = CATALOG.get("r1-0528")
    mac = describe(unified=True, ram_gb=512, gpu_name="Apple M3 Ultra")
    assert not plan(r1, quant="UD-IQ1_S", hw=mac, experts_in_ram=True).experts_in_ram


def test_a_moe_too_big_for_the_gpu_is_placed_with_its_experts_in_ram():
    """RTX 4090 + 256 GB: R1-0528 UD-IQ1_S (185 GB) does not fit 24 GB whole; with its ~175 GB of
    routed experts in RAM the rest (~9 GB, the MLA cache ~1 GB) does, and it decodes faster than
    with most of its layers on the CPU."""
    r1 = CATALOG.get("r1-0528")
    hw = describe(gpu_name="RTX 4090", ram_gb=256, cpu_cores=16)
    chosen = best_placement(r1, hw=hw, quant="UD-IQ1_S")
    by_layers = best_placement(r1, hw=hw, quant="UD-IQ1_S", experts_in_ram=False)
    assert chosen.placement == "experts_in_ram" and chosen.fits
    assert by_layers.placement == "split"
    assert chosen.expected_tokens_per_s > 2 * by_layers.expected_tokens_per_s
    gpu = chosen.devices[0]
    assert gpu.kv_bytes == 61 * 576 * 2 * 16384
    assert 150e9 < chosen.expert_bytes < 185e9
    # As few layers' experts in RAM as let the rest fill the 24 GB: one fewer would not fit.
    k = chosen.n_cpu_moe
    assert 40 < k < 61 and gpu.total_bytes + gpu.margin_bytes <= gpu.budget_bytes
    tighter = plan(r1, quant="UD-IQ1_S", kv_type=chosen.kv_type, hw=hw, experts_in_ram=True, n_cpu_moe=k - 1)
    assert not tighter.fits
    everything = plan(r1, quant="UD-IQ1_S", kv_type=chosen.kv_type, hw=hw, experts_in_ram=True, n_cpu_moe=61)
    assert everything.devices[0].weights_bytes < 12e9 and everything.expert_bytes_in_ram == everything.expert_bytes
    assert chosen.expected_tokens_per_s > everything.expected_tokens_per_s
    # RAM bandwidth sets the speed: twice the bandwidth, nearly twice the tokens.
    fast = best_placement(r1, hw=describe(gpu_name="RTX 4090", ram_gb=256, cpu_cores=16, cpu_bandwidth_gbps=100),
                          quant="UD-IQ1_S")
    assert 1.6 < fast.expected_tokens_per_s / chosen.expected_tokens_per_s < 2.0


def test_the_placement_is_explained_in_words():
    r1 = CATALOG.get("r1-0528")
    p = best_placement(r1, hw=describe(gpu_name="RTX 4090", ram_gb=256, cpu_cores=16), quant="UD-IQ1_S")
    text = experts_in_ram_text(p)
    assert f"the routed experts of its first {p.n_cpu_moe} of 61 layers (" in text and "stay in system RAM" in text
    assert "RAM's bandwidth sets the speed" in text and "tokens/s" in text
    assert describe_plan(p).startswith("routed experts in RAM, the rest on the GPU · ~")
    assert experts_in_ram_text(plan(CATALOG.get("r1-distill-qwen-7b"), hw=describe(gpu_name="RTX 4090"))) == ""
