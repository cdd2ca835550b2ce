"""`ponder recommend`: the model this machine (or a described one) should run, and why."""

from __future__ import annotations

import argparse
import dataclasses
import json

from app.core.catalog import load_catalog
from app.core.errors import PonderError
from app.core.hardware import GiB, HardwareInfo, describe, probe
from app.core.sizing import Recommendation, format_speed, recommend
from app.core.wording import FIT_LABELS, experts_in_ram_text, placement_label, speed_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "recommend",
        help="pick the best model for this machine, or for a described one",
        description="Without options: plans for this machine. With --vram-gb/--gpu-name/--ram-gb: "
        "plans for a described machine (RAM and CPU cores not given are this machine's).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--vram-gb", type=float, metavar="X", help="GPU memory per GPU, in GB (0: no GPU)")
    p.add_argument("--ram-gb", type=float, metavar="Y", help="system RAM (unified memory on a Mac), in GB")
    p.add_argument("--gpu-name", metavar="NAME", help="GPU or Apple chip, e.g. 'RTX 4090' or 'Apple M3 Max'")
    p.add_argument("--gpus", type=int, default=1, metavar="N", help="number of such GPUs (default 1)")
    p.add_argument("--unified", action="store_true", help="Apple Silicon: the GPU shares --ram-gb")
    p.add_argument("--cpu-cores", type=int, metavar="N", help="physical CPU cores (default: this machine's)")
    p.add_argument("--ram-bandwidth-gbs", type=float, metavar="GBS",
                   help="RAM bandwidth in GB/s, for speeds with layers or experts in RAM "
                   "(default 50, dual-channel DDR4; DDR5 desktops ~80, servers 200+)")
    p.add_argument("--gpu-limit-gb", type=float, metavar="GB",
                   help="Mac: the GPU memory limit set with `sudo sysctl iogpu.wired_limit_mb` "
                   "(default: macOS's, 3/4 of the memory above 32 GB)")
    p.add_argument("--catalog", metavar="PATH", help=argparse.SUPPRESS)  # tests and catalog authors
    p.set_defaults(func=run)


def run(args) -> int:
    catalog = load_catalog(args.catalog)
    described = any(x is not None for x in (args.vram_gb, args.ram_gb, args.gpu_name, args.cpu_cores,
                                            args.ram_bandwidth_gbs, args.gpu_limit_gb)) or args.unified
    if described:
        here = probe()
        ram_gb = args.ram_gb if args.ram_gb is not None else here.ram_total_bytes / GiB
        hw = describe(vram_gb=args.vram_gb, ram_gb=ram_gb, gpu_name=args.gpu_name, n_gpus=args.gpus,
                      unified=args.unified, cpu_cores=args.cpu_cores or here.cpu_physical_cores,
                      cpu_bandwidth_gbps=args.ram_bandwidth_gbs)
        if args.gpu_limit_gb is not None:
            hw = _with_gpu_limit(hw, args.gpu_limit_gb)
    else:
        hw = probe()
    rec = recommend(hw, catalog)
    if args.json:
        data = rec.to_dict()
        data["machine"] = hw.to_dict()
        print(json.dumps(data, indent=2))
    else:
        print(format_recommendation(rec))
    return 0 if rec.plan is not None else 1


def _with_gpu_limit(hw: HardwareInfo, limit_gb: float) -> HardwareInfo:
    """A described Mac whose GPU limit someone raised (or lowered) with iogpu.wired_limit_mb."""
    if not (hw.unified_memory and hw.gpus):
        raise PonderError("--gpu-limit-gb is for a Mac (--unified or an Apple chip): other GPUs have their own memory.")
    limit = int(limit_gb * GiB)
    if not 0 < limit <= hw.ram_total_bytes:
        raise PonderError(f"The GPU limit must be between 0 and the Mac's {hw.ram_total_bytes / GiB:.0f} GB.")
    return dataclasses.replace(hw, gpus=[dataclasses.replace(hw.gpus[0], usable_bytes=limit), *hw.gpus[1:]])


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def format_recommendation(rec: Recommendation) -> str:
    lines = [f"Machine: {rec.hardware_summary}", ""]
    if rec.plan is None:
        lines.append(rec.reason)
    else:
        p, m = rec.plan, rec.model
        files = rec.files[0] if len(rec.files) == 1 else f"{rec.files[0]} and {len(rec.files) - 1} more parts"
        layers = f"{p.n_gpu_layers} of {p.n_layers + 1} on the GPU"
        if p.experts_in_ram:
            which = "all" if p.n_cpu_moe >= p.n_layers else f"the first {p.n_cpu_moe}"
            layers = f"all {p.n_layers + 1} on the GPU; the routed experts of {which} in RAM"
        lines += [
            f"Recommended: {m.name} {p.quant}  ({m.repo})",
            f"  file     {files}  ({_gb(p.file_size)})",
            f"  context  {p.n_ctx:,} tokens, {p.kv_type} KV cache",
            f"  layers   {layers}",
            f"  memory   ~{_gb(p.gpu_bytes)} GPU, ~{_gb(p.ram_bytes)} RAM",
            f"  speed    {speed_text(p)}",
        ]
        if rec.runner_up is not None:
            r = rec.runner_up
            context = f", {r.plan.n_ctx_label} context" if r.plan.n_ctx < p.n_ctx else ""
            limit = f", with iogpu.wired_limit_mb={rec.runner_up_gpu_limit_mb}" if rec.runner_up_gpu_limit_mb else ""
            lines.append(f"  or       {r.name} {r.plan.quant}  ({_gb(r.plan.file_size)}, {placement_label(r.plan)}{context}, "
                         f"{speed_text(r.plan)}{limit})")
        lines += ["", rec.reason]
        if experts := experts_in_ram_text(p):
            lines += ["", experts]
    lines += ["", "All models:"]
    for a in rec.alternatives:
        p = a.plan
        mark = "*" if a.recommended else " "
        slow = "  (too slow)" if p.fits and not a.usable else ""
        lines.append(f" {mark} {a.name:<22} {p.quant:<11} {FIT_LABELS[p.fit]:<16} {placement_label(p):<20}"
                     f"{_gb(p.file_size):>9}  ~{format_speed(p.expected_tokens_per_s)} tok/s{slow}")
    return "\n".join(lines)
