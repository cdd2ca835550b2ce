"""`ponder hardware [--json]`: what this machine offers a model (GPUs, memory, CPU, llama.cpp)."""

from __future__ import annotations

import json

from app.core.hardware import GiB, HardwareInfo, probe


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("hardware", help="show the GPUs, memory and CPU Ponder can use")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    hw = probe()
    if args.json:
        print(json.dumps(hw.to_dict(), indent=2))
    else:
        print(format_hardware(hw))
    return 0


def _gb(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GB"


def format_hardware(hw: HardwareInfo) -> str:
    offload = {True: "can offload to a GPU", False: "CPU only (built without GPU support)",
               None: "not loadable"}[hw.gpu_offload_supported]
    cores = f"{hw.cpu_physical_cores or '?'} cores, {hw.cpu_logical_cores or '?'} threads"
    lines = [
        f"System     {hw.os}",
        f"CPU        {hw.cpu_name or 'unknown'} ({cores}), ~{hw.cpu_bandwidth_gbps:.0f} GB/s memory (guess)",
        f"RAM        {_gb(hw.ram_total_bytes)} total, {_gb(hw.ram_available_bytes)} available, "
        f"{_gb(hw.ram_budget_bytes)} for a model",
        f"llama.cpp  {offload}",
    ]
    if not hw.gpus:
        lines.append("GPUs       none found")
    for g in hw.gpus:
        free = "" if g.memory_free_bytes is None else f", {_gb(g.memory_free_bytes)} free"
        memory = f"{_gb(g.memory_total_bytes)}{' unified' if g.unified else ''}{free}, {_gb(g.usable_bytes)} usable"
        bandwidth = f"~{g.bandwidth_gbps:.0f} GB/s{'' if g.bandwidth_known else ' (guess)'}"
        extra = ", ".join(x for x in (
            g.driver_version and f"driver {g.driver_version}",
            g.cuda_version and f"CUDA {g.cuda_version}",
            g.compute_capability and f"compute {g.compute_capability}",
        ) if x)
        lines.append(f"GPU {g.index}      {g.name}: {memory}, {bandwidth}" + (f"; {extra}" if extra else ""))
    for note in hw.notes:
        lines.append(f"note       {note}")
    return "\n".join(lines)
