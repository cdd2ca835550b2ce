"""Experts in RAM on a real GPU: a deepseek2-shaped mixture of experts (a few GB) loaded two ways,
every layer on the GPU, and with its routed experts (ffn_*_exps) in system RAM through the engine's
tensor buffer-type overrides. Prints, per placement, llama.cpp's own buffer sizes (from its load log; CPU_REPACK, the CPU
backend's re-laid-out copy of some weights, apart)
against the memory plan, and the decode rate (llama_decode of one token at a time, after a prompt)
against the plan's speed. One JSON line per placement, then a table.

    python tests/benchmarks/gpu/bench_experts_in_ram.py --out /tmp/moe            # the GPU run
    python tests/benchmarks/gpu/bench_experts_in_ram.py --out /tmp/moe --tiny     # a CPU smoke run

The model: tests/fixtures/deepseek2_gguf.py's writer at a larger shape (MLA, 12 layers, 2048 wide,
64 experts of 1024, 8 used: ~9 GB of F16 experts), quantised to Q4_K_M by llama.cpp (~2.6 GB).
Weights are zeros: memory traffic, not values, sets the decode rate.
"""

# llama_cpp before numpy (a CUDA build segfaulted at load otherwise; DESIGN notes)
import llama_cpp  # noqa: F401

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from app.core import engine, hardware  # noqa: E402
from app.core.modelfile import inspect_gguf  # noqa: E402
from app.core.sizing import plan  # noqa: E402
from tests.fixtures.deepseek2_gguf import DeepSeek2Shape, llama_log, write_deepseek2_gguf  # noqa: E402

MiB = 1024**2
SHAPED = DeepSeek2Shape(n_layer=12, n_embd=2048, n_head=16, q_lora_rank=768, kv_lora_rank=512, qk_nope=128,
                        qk_rope=64, v_head=128, n_ff=5632, n_ff_exp=1024, n_expert=64, n_expert_used=8,
                        n_expert_shared=1, n_dense_lead=1, context_length=32768)
TINY = DeepSeek2Shape()
BUFFER = re.compile(r"(\S+) (model|KV|compute) buffer size = +([\d.]+) MiB")


def make_model(out: Path, shape: DeepSeek2Shape) -> Path:
    final = out / "ds2-moe-Q4_K_M.gguf"
    if final.is_file():
        return final
    src = write_deepseek2_gguf(out / "ds2-moe-F16.gguf", mla=True, shape=shape)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(final).encode(), params) == 0
    src.unlink()
    return final


def measure(path: Path, experts_in_ram: bool, n_ctx: int, n_tokens: int, ram_gbps: float | None) -> dict:
    lc = engine._llama()
    with llama_log() as lines:
        summary = inspect_gguf(path)
        e = engine.Engine()
        e._lc = lc
        n_gpu = summary.n_layers + 1 if engine.gpu_backend_name() else 0
        e._open(path, engine.LoadOptions(n_ctx=n_ctx, kv_type="f16"), n_gpu, None, experts_in_ram=experts_in_ram)
        try:
            prompt = (lc.llama_token * 64)(*([1] * 64))
            assert lc.llama_decode(e._ctx, lc.llama_batch_get_one(prompt, 64)) == 0
            one = (lc.llama_token * 1)(1)
            lc.llama_synchronize(e._ctx)
            start = time.perf_counter()
            for _ in range(n_tokens):
                assert lc.llama_decode(e._ctx, lc.llama_batch_get_one(one, 1)) == 0
                lc.llama_synchronize(e._ctx)
            seconds = time.perf_counter() - start
        finally:
            e.close()
    buffers: dict[str, float] = {}
    for line in lines:
        if m := BUFFER.search(line):
            device, kind, mib = m.groups()
            on_host = device.upper().startswith("CPU") or "HOST" in device.upper()  # CUDA_Host: pinned RAM
            # CPU_REPACK: llama.cpp's re-laid-out copy of CPU weights (beside the mapped file), kept apart
            key = "cpu_repack" if "REPACK" in device.upper() else f"{'cpu' if on_host else 'gpu'}_{kind.lower()}"
            buffers[key] = buffers.get(key, 0.0) + float(mib)
    overridden = sum("buffer type overridden" in line for line in lines)
    hw = hardware.probe()
    if ram_gbps:  # the probe cannot measure RAM bandwidth (50 GB/s unless known); the expert rate depends on it
        hw.cpu_bandwidth_gbps = ram_gbps
    # The load above keeps every layer's experts in RAM (--cpu-moe): plan the same, not the planner's
    # fewest layers (on a big GPU that would be one).
    p = plan(summary, n_ctx=n_ctx, n_gpu_layers=n_gpu if not experts_in_ram else None, hw=hw,
             experts_in_ram=experts_in_ram, n_cpu_moe=summary.n_layers if experts_in_ram else None)
    gpu = [d for d in p.devices if d.kind == "gpu"]
    cpu = p.devices[-1]
    return {
        "placement": p.placement, "experts_in_ram": experts_in_ram, "tensors_overridden": overridden,
        "measured_mib": buffers,
        "planned_mib": {"gpu_model": sum(d.weights_bytes for d in gpu) / MiB, "gpu_kv": sum(d.kv_bytes for d in gpu) / MiB,
                        "gpu_compute": sum(d.compute_bytes for d in gpu) / MiB, "cpu_model": cpu.weights_bytes / MiB,
                        # llama.cpp's CPU_Mapped line is the mmap span (Plan.cpu_mapped_bytes), compared below
                        "cpu_mapped": p.cpu_mapped_bytes / MiB,
                        "cpu_compute": cpu.compute_bytes / MiB, "expert_bytes": p.expert_bytes / MiB},
        "measured_tok_s": round(n_tokens / seconds, 1), "planned_tok_s": round(p.expected_tokens_per_s, 1),
        "hardware": hw.summary(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/moe"))
    ap.add_argument("--tiny", action="store_true", help="the tiny test shape (a CPU smoke run)")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--ram-bandwidth-gbs", type=float, default=300.0,
                    help="RAM bandwidth for the plan (the probe cannot measure it; 300: a DDR5 server socket)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = make_model(args.out, TINY if args.tiny else SHAPED)
    print(f"model {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for experts_in_ram in (False, True):
        row = measure(path, experts_in_ram, args.n_ctx, args.tokens, args.ram_bandwidth_gbs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'placement':<16}{'buffer':<14}{'planned MiB':>12}{'measured MiB':>14}")
    pairs = (("gpu_model", "gpu_model"), ("gpu_kv", "gpu_kv"), ("gpu_compute", "gpu_compute"),
             ("cpu_mapped", "cpu_model"), ("cpu_compute", "cpu_compute"))
    for row in rows:
        if "cpu_repack" in row["measured_mib"]:
            print(f"{row['placement']:<16}{'cpu_repack':<14}{'':>12}{row['measured_mib']['cpu_repack']:14.1f}")
        for planned, measured in pairs:
            got = row["measured_mib"].get(measured)
            print(f"{row['placement']:<16}{planned:<14}{row['planned_mib'][planned]:12.1f}"
                  f"{got if got is not None else float('nan'):14.1f}")
        print(f"{row['placement']:<16}{'tokens/s':<14}{row['planned_tok_s']:12.1f}{row['measured_tok_s']:14.1f}")
    base = rows[0]["measured_tok_s"]
    print(f"\nexperts in RAM decode at {rows[1]['measured_tok_s'] / base:.2f}x the all-on-GPU rate (measured), "
          f"{rows[1]['planned_tok_s'] / rows[0]['planned_tok_s']:.2f}x (planned)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
