"""Predicted GPU memory (app.core.sizing.plan) against what bench_shaped_models.py measured.

Runs anywhere (no GPU): it reads a results file and plans each model as Ponder loads it on
one CUDA GPU (all layers offloaded, flash attention, the measured n_ctx, f16 KV), from the
catalog's architecture numbers with the measured file's size. Prints one table in MiB.

    python tests/benchmarks/gpu/compare_sizing.py [tests/benchmarks/gpu/results_h100.json]
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import app  # noqa: E402,F401  (imports llama_cpp before numpy, as everywhere in Ponder)

import dataclasses  # noqa: E402
import json  # noqa: E402

from app.core.catalog import load_catalog  # noqa: E402
from app.core.sizing import MiB, ModelShape, plan  # noqa: E402


def rows(results: list[dict]) -> list[tuple]:
    catalog = load_catalog()
    out = []
    for r in results:
        if "buffers_mib" not in r or "memory_after_bench" not in r:
            continue
        shape = ModelShape.from_catalog(catalog.get(f"r1-distill-{r['model']}"), "Q4_K_M")
        shape = dataclasses.replace(shape, file_size=r["make"]["bytes"])
        p = plan(shape, n_ctx=r["n_ctx"], kv_type="f16", n_gpu_layers=-1, hw=None)
        gpu, cpu = p.devices[0], p.devices[-1]
        b = r["buffers_mib"]
        measured = {
            "weights": b["model:CUDA0"], "KV": b["KV:CUDA0"], "compute": b["compute:CUDA0"],
            "embd RAM": b.get("model:CPU_Mapped", 0.0),
            "total (load)": r["memory_after_load"]["process_mib"],
            "total (run)": r["memory_after_bench"]["process_mib"],
        }
        predicted = {
            "weights": gpu.weights_bytes / MiB, "KV": gpu.kv_bytes / MiB, "compute": gpu.compute_bytes / MiB,
            "embd RAM": shape.token_embd_bytes / MiB,
            "total (load)": gpu.total_bytes / MiB, "total (run)": gpu.total_bytes / MiB,
        }
        for key in measured:
            m, q = measured[key], predicted[key]
            out.append((r["model"], key, f"{q:.1f}", f"{m:.1f}", f"{(q - m) / m * 100:+.1f}%" if m else "-"))
        m_tps = r["decode"]["top_k40"]["llama_decode_tokens_per_s"]
        out.append((r["model"], "decode tok/s", f"{p.expected_tokens_per_s:.0f}", f"{m_tps:.0f}",
                    f"{(p.expected_tokens_per_s - m_tps) / m_tps * 100:+.1f}%"))
    return out


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results_h100.json"
    table = [("model", "quantity", "predicted", "measured", "error")] + rows(json.loads(path.read_text()))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
