"""The words Ponder uses for a machine, a model's fit and speed on it, and a download's progress.

Shared by the window (welcome page, model manager) and the command line, so both say the
same thing the same way. The recommendation's own sentence is written where it is chosen
(`app.core.sizing.recommend`).
"""

from __future__ import annotations

from app.core.downloads import Progress, format_bytes
from app.core.hardware import HardwareInfo
from app.core.sizing import MIN_TOKENS_PER_S, Plan, format_speed

# A plan's `fit` as a badge, and what the badge means.
FIT_LABELS = {"fits": "fits", "partial": "partial offload", "too_big": "too big"}
FIT_TIPS = {
    "fits": "Runs entirely on the GPU (or in RAM on a computer without one) with room for a long reasoning context.",
    "partial": "Runs, but part of it on the CPU, which is slower.",
    "too_big": "Needs more memory than this computer has.",
}


def describe_plan(p: Plan) -> str:
    """Where a model would run and how fast: 'all on the GPU · ~60 tokens/s'."""
    if p.fit == "too_big":
        return f"needs about {format_bytes(p.gpu_bytes + p.ram_bytes)} of memory"
    if p.placement == "gpu":
        where = "all on the GPU"
    elif p.placement == "experts_in_ram":
        where = "routed experts in RAM, the rest on the GPU"
    elif p.placement == "split":
        where = f"{p.n_gpu_layers} of {p.n_layers + 1} layers on the GPU"
    else:
        where = "on the CPU"
    return f"{where} · {speed_text(p)}"


def experts_in_ram_text(p: Plan) -> str:
    """Why a mixture of experts runs with its experts in RAM, and what sets its speed; '' otherwise."""
    if p.placement != "experts_in_ram":
        return ""
    gpu = sum(d.weights_bytes for d in p.devices if d.kind == "gpu")
    which = ("its routed experts" if p.n_cpu_moe >= p.n_layers
             else f"the routed experts of its first {p.n_cpu_moe} of {p.n_layers} layers")
    return (
        f"The model is a mixture of experts too big for the GPU whole, so {which} "
        f"({format_bytes(p.expert_bytes_in_ram)}) stay in system RAM and everything else (attention, shared "
        f"experts, {format_bytes(gpu)} of weights, and the KV cache) goes on the GPU. Each token uses only the few "
        f"experts the router picks, about {format_bytes(p.expert_read_bytes_in_ram)} read from RAM, so the RAM's "
        f"bandwidth sets the speed (~{format_speed(p.expected_tokens_per_s)} tokens/s)."
    )


def placement_label(p: Plan) -> str:
    """A short column: 'all on GPU', '40/81 layers on GPU', 'experts in RAM', 'CPU', ''."""
    if p.fit == "too_big":
        return ""
    if p.placement == "experts_in_ram" and p.n_cpu_moe < p.n_layers:
        return f"experts of {p.n_cpu_moe}/{p.n_layers} in RAM"
    return {"gpu": "all on GPU", "experts_in_ram": "experts in RAM", "cpu": "CPU"}.get(
        p.placement, f"{p.n_gpu_layers}/{p.n_layers + 1} layers on GPU")


def speed_text(p: Plan) -> str:
    """The short form, for a column: '~60 tokens/s', '~2.8 tokens/s (slow)', 'needs 224.1 GB'."""
    if p.fit == "too_big":
        return f"needs {format_bytes(p.gpu_bytes + p.ram_bytes)}"
    slow = " (slow)" if p.expected_tokens_per_s < MIN_TOKENS_PER_S else ""
    return f"~{format_speed(p.expected_tokens_per_s)} tokens/s{slow}"


def hardware_text(hw: HardwareInfo) -> str:
    """Two lines: what the computer has, and whether this llama.cpp build can use a GPU."""
    summary = hw.summary().replace(" · llama.cpp without GPU support", "")  # said on the next line
    if hw.gpu_offload_supported is None:
        support = "Could not check whether this llama.cpp build can use a GPU."
    elif hw.gpu_offload_supported:
        support = "This llama.cpp build can run models on the GPU."
    elif hw.gpus:
        support = "This llama.cpp build runs models on the CPU only, so the GPU is not used."
    else:
        support = "This llama.cpp build runs models on the CPU only."
    return f"This computer: {summary}\n{support}"


def format_eta(seconds: float | None) -> str:
    """'about 40 s left', 'about 12 min left', 'about 1 h 5 min left'; '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60} min left"


def progress_text(p: Progress) -> str:
    """'340.0 MB of 1.1 GB · 12.3 MB/s · about 1 min left'."""
    if p.stage == "checking":
        return f"Checking the {format_bytes(p.downloaded)} downloaded before…"
    parts = [f"{format_bytes(p.downloaded)} of {format_bytes(p.total)}"]
    if p.speed_bps > 0:
        parts.append(f"{format_bytes(p.speed_bps)}/s")
    if p.eta_s is not None and p.downloaded < p.total:
        parts.append(format_eta(p.eta_s))
    return " · ".join(parts)


def header_differences_text(label: str, differences: list[str]) -> str:
    """Where a catalog entry described a model's file otherwise than the file's own header (which the
    plan follows), as one notice; "" when they agree."""
    if not differences:
        return ""
    return (f"{label}: the catalog described this file otherwise ({'; '.join(differences)}). "
            "Ponder planned it from the file's own header.")
