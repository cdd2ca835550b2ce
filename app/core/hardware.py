"""What this machine can run a model on: GPUs, memory, CPU cores, memory bandwidth, and whether
the installed llama.cpp can offload to a GPU at all.

`probe()` never raises. Each source (NVML, sysctl on macOS, sysfs for AMD, psutil, llama.cpp)
that fails adds a line to `HardwareInfo.notes` and the rest is still reported. `describe()`
builds the same object for a machine someone describes (`ponder recommend --vram-gb 24`), and
for tests.

Sizes are bytes. Marketing "GB" for GPU memory and RAM is binary (a "24 GB" RTX 4090 has
24 GiB), so `describe()` reads its *_gb arguments as GiB.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.core.errors import PonderError

log = logging.getLogger(__name__)

GiB = 1024**3

# System RAM a model may use: 75% of it, and at least 3 GB stays for the OS and a browser.
RAM_SHARE = 0.75
RAM_RESERVE_MIN_BYTES = 3 * GiB
# macOS lets the GPU wire about 2/3 of unified memory on machines up to 32 GB and 3/4 above
# (the default of `iogpu.wired_limit_mb`, which Metal reports as recommendedMaxWorkingSetSize).
APPLE_GPU_SHARE_SMALL = 2 / 3
APPLE_GPU_SHARE_LARGE = 3 / 4
APPLE_SMALL_MAX_BYTES = 32 * GiB
# Desktop dual-channel DDR4-3200 is 51 GB/s; DDR5 laptops/desktops reach 60-90. A guess,
# used only for speed estimates on the CPU.
DEFAULT_CPU_BANDWIDTH_GBPS = 50.0
# The CPU cluster of an Apple chip reaches roughly half of the chip's memory bandwidth.
APPLE_CPU_BANDWIDTH_SHARE = 0.5
# AMD APUs report a small VRAM carve-out through sysfs; below this it is not a usable GPU.
AMD_MIN_VRAM_BYTES = 2 * GiB

# Known GPUs: (pattern on the lower-cased name, memory bandwidth GB/s, memory GiB or None).
# Order matters: the first match wins, so specific names come before their prefixes.
_DISCRETE_GPUS: list[tuple[str, float, float | None]] = [
    (r"rtx\s*5090", 1792, 32),
    (r"rtx\s*5080", 960, 16),
    (r"rtx\s*5070\s*ti", 896, 16),
    (r"rtx\s*5070", 672, 12),
    (r"rtx\s*5060\s*ti", 448, 16),
    (r"rtx\s*4090", 1008, 24),
    (r"rtx\s*4080\s*super", 736, 16),
    (r"rtx\s*4080", 717, 16),
    (r"rtx\s*4070\s*ti\s*super", 672, 16),
    (r"rtx\s*4070\s*ti", 504, 12),
    (r"rtx\s*4070", 504, 12),
    (r"rtx\s*4060\s*ti", 288, 8),
    (r"rtx\s*4060", 272, 8),
    (r"rtx\s*3090\s*ti", 1008, 24),
    (r"rtx\s*3090", 936, 24),
    (r"rtx\s*3080\s*ti", 912, 12),
    (r"rtx\s*3080", 760, 10),
    (r"rtx\s*3070", 448, 8),
    (r"rtx\s*3060\s*ti", 448, 8),
    (r"rtx\s*3060", 360, 12),
    (r"h200", 4800, 141),
    (r"h100.*nvl", 3900, 94),
    (r"h100.*pcie", 2000, 80),
    (r"h100", 3350, 80),
    (r"a100.*80", 2039, 80),
    (r"a100", 1555, 40),
    (r"l40s", 864, 48),
    (r"\bl4\b", 300, 24),
    (r"\ba10\b", 600, 24),
    (r"\bt4\b", 320, 16),
    (r"7900\s*xtx", 960, 24),
    (r"7900\s*xt\b", 800, 20),
    (r"mi300x", 5300, 192),
]
# Apple chips (memory size varies per machine, so only bandwidth). Base chips last.
_APPLE_CHIPS: list[tuple[str, float]] = [
    (r"m4\s*max", 546), (r"m4\s*pro", 273), (r"m4\b", 120),
    (r"m3\s*ultra", 819), (r"m3\s*max", 400), (r"m3\s*pro", 150), (r"m3\b", 100),
    (r"m2\s*ultra", 800), (r"m2\s*max", 400), (r"m2\s*pro", 200), (r"m2\b", 100),
    (r"m1\s*ultra", 800), (r"m1\s*max", 400), (r"m1\s*pro", 200), (r"m1\b", 68),
]
# Unknown GPU: bandwidth guessed from memory size (never decreasing with size).
_DISCRETE_GUESS = [(4, 128), (6, 192), (8, 256), (12, 360), (16, 450), (48, 900), (96, 2000)]
_DISCRETE_GUESS_MAX = 3350.0
_APPLE_GUESS = [(8, 68), (24, 100), (48, 200), (128, 400)]
_APPLE_GUESS_MAX = 800.0


@dataclass
class GPUInfo:
    """One GPU. `usable_bytes` is what the planner may fill: free memory when the driver
    reports it, the whole card for a described machine, the GPU share of unified memory."""

    index: int
    name: str
    vendor: str  # "nvidia", "amd" or "apple"
    memory_total_bytes: int
    memory_free_bytes: int | None
    usable_bytes: int
    bandwidth_gbps: float
    bandwidth_known: bool  # False: guessed from the memory size
    unified: bool = False
    driver_version: str | None = None
    cuda_version: str | None = None
    compute_capability: str | None = None

    @property
    def short_name(self) -> str:
        """'RTX 4090' for 'NVIDIA GeForce RTX 4090', for sentences."""
        name = re.sub(r"^(nvidia\s+)?(geforce\s+)?", "", self.name, flags=re.I).strip()
        return name or self.name

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HardwareInfo:
    gpus: list[GPUInfo]
    ram_total_bytes: int
    ram_available_bytes: int | None
    cpu_name: str | None
    cpu_physical_cores: int | None
    cpu_logical_cores: int | None
    cpu_bandwidth_gbps: float
    # None: llama.cpp could not be imported, so nobody knows; planning then assumes it can.
    gpu_offload_supported: bool | None
    os: str
    unified_memory: bool = False
    described: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ram_budget_bytes(self) -> int:
        """RAM a model may use, leaving room for the OS and other programs."""
        reserve = max(self.ram_total_bytes * (1 - RAM_SHARE), RAM_RESERVE_MIN_BYTES)
        return max(0, int(self.ram_total_bytes - reserve))

    @property
    def usable_gpus(self) -> list[GPUInfo]:
        """GPUs llama.cpp can use here: none when the build cannot offload."""
        return [] if self.gpu_offload_supported is False else list(self.gpus)

    @property
    def gpu_memory_total_bytes(self) -> int:
        return sum(g.memory_total_bytes for g in self.gpus)

    def summary(self) -> str:
        """One line for the welcome screen: 'RTX 4090 (24 GB) · 64 GB RAM · 16 cores'."""
        parts = []
        if self.gpus:
            first = self.gpus[0]
            count = f"{len(self.gpus)}× " if len(self.gpus) > 1 else ""
            if first.unified:
                parts.append(f"{first.name} ({_gb(self.ram_total_bytes)} unified memory)")
            elif _gb(first.memory_total_bytes) in first.short_name:
                parts.append(f"{count}{first.short_name}")
            else:
                parts.append(f"{count}{first.short_name} ({_gb(first.memory_total_bytes)})")
        else:
            parts.append("no GPU")
        if not (self.gpus and self.gpus[0].unified):
            parts.append(f"{_gb(self.ram_total_bytes)} RAM")
        if self.cpu_physical_cores or self.cpu_logical_cores:
            parts.append(f"{self.cpu_physical_cores or self.cpu_logical_cores} CPU cores")
        if self.gpus and self.gpu_offload_supported is False:
            parts.append("llama.cpp without GPU support")
        return " · ".join(parts)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ram_budget_bytes"] = self.ram_budget_bytes
        data["summary"] = self.summary()
        return data


def _gb(n: int) -> str:
    value = n / GiB
    return f"{value:.0f} GB" if value >= 10 or value == int(value) else f"{value:.1f} GB"


def _norm(name: str) -> str:
    return re.sub(r"[-_]+", " ", name.lower())


def is_apple_name(name: str) -> bool:
    return bool(re.search(r"\bapple\b|^m[1-9]\b", _norm(name).strip()))


def memory_bandwidth_gbps(name: str | None, memory_bytes: int | None = None,
                          apple: bool | None = None) -> tuple[float, bool]:
    """(GB/s, known) for a GPU or Apple chip name; a guess from the memory size otherwise."""
    key = _norm(name or "")
    apple = is_apple_name(key) if apple is None else apple
    if apple:
        for pattern, gbps in _APPLE_CHIPS:
            if re.search(pattern, key):
                return float(gbps), True
        table, top = _APPLE_GUESS, _APPLE_GUESS_MAX
    else:
        for pattern, gbps, _mem in _DISCRETE_GPUS:
            if re.search(pattern, key):
                return float(gbps), True
        table, top = _DISCRETE_GUESS, _DISCRETE_GUESS_MAX
    size_gib = (memory_bytes or 0) / GiB
    for limit, gbps in table:
        if size_gib <= limit + 0.5:  # cards report a little under their nominal size
            return float(gbps), False
    return top, False


def known_gpu_memory_gb(name: str) -> float | None:
    """Nominal memory of a known GPU model ('RTX 3090' → 24), for `--gpu-name` alone."""
    key = _norm(name)
    for pattern, _gbps, mem in _DISCRETE_GPUS:
        if re.search(pattern, key):
            return mem
    return None


def apple_gpu_share(ram_bytes: int) -> float:
    return APPLE_GPU_SHARE_SMALL if ram_bytes <= APPLE_SMALL_MAX_BYTES else APPLE_GPU_SHARE_LARGE


# ---------------------------------------------------------------------------------------------
# probe


def probe(sysfs_root: str | os.PathLike = "/sys/class/drm") -> HardwareInfo:
    """Everything this machine reports. Never raises; what could not be read is in `notes`."""
    notes: list[str] = []
    ram_total, ram_available = _probe_ram(notes)
    physical, logical = _probe_cores(notes)
    cpu_name = _probe_cpu_name()
    gpus: list[GPUInfo] = []
    unified = False
    cpu_bandwidth = DEFAULT_CPU_BANDWIDTH_GBPS
    if sys.platform == "darwin" and platform.machine() == "arm64":
        apple = _probe_apple(ram_total, notes)
        if apple is not None:
            gpus.append(apple)
            unified = True
            cpu_name = cpu_name or apple.name
            cpu_bandwidth = apple.bandwidth_gbps * APPLE_CPU_BANDWIDTH_SHARE
    else:
        gpus.extend(_probe_nvidia(notes))
        if sys.platform.startswith("linux"):
            gpus.extend(_probe_amd_sysfs(Path(sysfs_root), len(gpus), notes))
    offload = _probe_gpu_offload(notes)
    if gpus and offload is False:
        notes.append("The installed llama.cpp was built without GPU support, so models run on the CPU.")
    return HardwareInfo(
        gpus=gpus,
        ram_total_bytes=ram_total,
        ram_available_bytes=ram_available,
        cpu_name=cpu_name,
        cpu_physical_cores=physical,
        cpu_logical_cores=logical,
        cpu_bandwidth_gbps=cpu_bandwidth,
        gpu_offload_supported=offload,
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        unified_memory=unified,
        notes=notes,
    )


def _probe_ram(notes: list[str]) -> tuple[int, int | None]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception as exc:  # psutil missing or the OS refused
        notes.append(f"RAM: could not be read ({exc}); assuming 8 GB.")
        return 8 * GiB, None


def _probe_cores(notes: list[str]) -> tuple[int | None, int | None]:
    try:
        import psutil

        return psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)
    except Exception as exc:
        notes.append(f"CPU cores: could not be read ({exc}).")
        return None, os.cpu_count()


def _probe_cpu_name() -> str | None:
    try:
        if sys.platform.startswith("linux"):
            for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
        if sys.platform == "darwin":
            return _sysctl("machdep.cpu.brand_string")
        return platform.processor() or None
    except Exception:  # a name is only for display
        return None


def _probe_nvidia(notes: list[str]) -> list[GPUInfo]:
    try:
        with warnings.catch_warnings():
            # pynvml 12+ warns on import that it is a shim over nvidia-ml-py; nothing to act on.
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml
    except Exception as exc:
        notes.append(f"NVIDIA: pynvml is not available ({exc}).")
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError: no driver, no library, driver/library mismatch
        notes.append(f"NVIDIA: no driver found ({_nvml_text(exc)}).")
        return []
    gpus: list[GPUInfo] = []
    try:
        driver = _optional(pynvml.nvmlSystemGetDriverVersion)
        cuda_raw = _optional(pynvml.nvmlSystemGetCudaDriverVersion)
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if isinstance(cuda_raw, int) else None
        count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(pynvml.nvmlDeviceGetName(handle))
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:
                notes.append(f"NVIDIA GPU {index}: could not be read ({_nvml_text(exc)}); skipped.")
                continue
            capability = _optional(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            total, free = int(memory.total), int(memory.free)
            bandwidth, known = memory_bandwidth_gbps(name, total, apple=False)
            gpus.append(GPUInfo(
                index=index, name=name, vendor="nvidia",
                memory_total_bytes=total, memory_free_bytes=free, usable_bytes=free,
                bandwidth_gbps=bandwidth, bandwidth_known=known,
                driver_version=_text(driver) if driver else None, cuda_version=cuda,
                compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
            ))
    except Exception as exc:
        notes.append(f"NVIDIA: the driver stopped answering ({_nvml_text(exc)}).")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus


def _optional(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _nvml_text(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _probe_amd_sysfs(root: Path, first_index: int, notes: list[str]) -> list[GPUInfo]:
    """AMD GPUs through the amdgpu driver's sysfs files (no ROCm needed to read them)."""
    gpus: list[GPUInfo] = []
    try:
        cards = sorted(p for p in root.glob("card*") if re.fullmatch(r"card\d+", p.name))
    except OSError:
        return gpus
    for card in cards:
        device = card / "device"
        try:
            if (device / "vendor").read_text().strip().lower() != "0x1002":
                continue
            total = int((device / "mem_info_vram_total").read_text().strip())
        except (OSError, ValueError):
            continue
        if total < AMD_MIN_VRAM_BYTES:
            notes.append(f"AMD {card.name}: {total // 2**20} MiB of VRAM (integrated graphics); not used.")
            continue
        used = _read_int(device / "mem_info_vram_used")
        free = total - used if used is not None else None
        name = _read_text(device / "product_name") or f"AMD Radeon GPU ({_read_text(device / 'device') or card.name})"
        bandwidth, known = memory_bandwidth_gbps(name, total, apple=False)
        gpus.append(GPUInfo(
            index=first_index + len(gpus), name=name, vendor="amd",
            memory_total_bytes=total, memory_free_bytes=free,
            usable_bytes=free if free is not None else total,
            bandwidth_gbps=bandwidth, bandwidth_known=known,
        ))
    return gpus


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _probe_apple(ram_total: int, notes: list[str]) -> GPUInfo | None:
    chip = _sysctl("machdep.cpu.brand_string") or "Apple Silicon"
    memsize = _sysctl("hw.memsize")
    total = int(memsize) if memsize and memsize.isdigit() else ram_total
    usable = int(total * apple_gpu_share(total))
    wired_limit = _sysctl("iogpu.wired_limit_mb")
    if wired_limit and wired_limit.isdigit() and int(wired_limit) > 0:
        usable = int(wired_limit) * 2**20  # the user raised (or lowered) the GPU's share
        notes.append(f"Apple GPU limit set by iogpu.wired_limit_mb: {wired_limit} MB.")
    bandwidth, known = memory_bandwidth_gbps(chip, total, apple=True)
    return GPUInfo(index=0, name=chip, vendor="apple", memory_total_bytes=total, memory_free_bytes=None,
                   usable_bytes=usable, bandwidth_gbps=bandwidth, bandwidth_known=known, unified=True)


def _probe_gpu_offload(notes: list[str]) -> bool | None:
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:  # not installed, or its shared library failed to load
        notes.append(f"llama.cpp: not loadable ({exc}); GPU support unknown.")
        return None


# ---------------------------------------------------------------------------------------------
# describe


def describe(vram_gb: float | None = None, ram_gb: float | None = None, gpu_name: str | None = None,
             n_gpus: int = 1, unified: bool = False, *, cpu_cores: int | None = None,
             cpu_bandwidth_gbps: float | None = None) -> HardwareInfo:
    """A machine someone describes. `vram_gb` is per GPU; a known `gpu_name` alone supplies it.
    `unified=True` (or an Apple chip name) means Apple Silicon, where `ram_gb` (or `vram_gb`) is
    the unified memory. Without `ram_gb` a discrete-GPU or CPU machine has 16 GB of RAM."""
    apple = unified or (gpu_name is not None and is_apple_name(gpu_name))
    notes: list[str] = []
    gpus: list[GPUInfo] = []
    if apple:
        memory_gb = ram_gb if ram_gb is not None else vram_gb
        if memory_gb is None:
            raise PonderError("Say how much unified memory the Mac has (--ram-gb).")
        total = _bytes(memory_gb)
        name = gpu_name or "Apple Silicon"
        bandwidth, known = memory_bandwidth_gbps(name, total, apple=True)
        gpus.append(GPUInfo(index=0, name=name, vendor="apple", memory_total_bytes=total, memory_free_bytes=None,
                            usable_bytes=int(total * apple_gpu_share(total)), bandwidth_gbps=bandwidth,
                            bandwidth_known=known, unified=True))
        ram_total = total
        cpu_bandwidth = cpu_bandwidth_gbps or bandwidth * APPLE_CPU_BANDWIDTH_SHARE
    else:
        if vram_gb is None and gpu_name:
            vram_gb = known_gpu_memory_gb(gpu_name)
            if vram_gb is None:
                raise PonderError(f"Ponder does not know how much memory a {gpu_name!r} has; give it with --vram-gb.")
        if vram_gb is not None and vram_gb < 0:
            raise PonderError("GPU memory cannot be negative.")
        if n_gpus < 1:
            raise PonderError("The number of GPUs must be at least 1.")
        if vram_gb:
            total = _bytes(vram_gb)
            name = gpu_name or f"{vram_gb:g} GB GPU"
            vendor = "amd" if re.search(r"radeon|\bamd\b|\brx\s*\d|\bmi\d", _norm(name)) else "nvidia"
            bandwidth, known = memory_bandwidth_gbps(name, total, apple=False)
            for index in range(n_gpus):
                gpus.append(GPUInfo(index=index, name=name, vendor=vendor, memory_total_bytes=total,
                                    memory_free_bytes=None, usable_bytes=total, bandwidth_gbps=bandwidth,
                                    bandwidth_known=known))
        ram_total = _bytes(ram_gb if ram_gb is not None else 16)
        cpu_bandwidth = cpu_bandwidth_gbps or DEFAULT_CPU_BANDWIDTH_GBPS
    if ram_total <= 0:
        raise PonderError("RAM must be more than 0 GB.")
    return HardwareInfo(
        gpus=gpus, ram_total_bytes=ram_total, ram_available_bytes=None, cpu_name=None,
        cpu_physical_cores=cpu_cores, cpu_logical_cores=cpu_cores, cpu_bandwidth_gbps=cpu_bandwidth,
        gpu_offload_supported=True if gpus else None, os="described", unified_memory=apple,
        described=True, notes=notes,
    )


def _bytes(gb: float) -> int:
    return int(round(gb * GiB))
