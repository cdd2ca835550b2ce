"""Which llama.cpp backends this process has, and loading them for GGML_BACKEND_DL builds.

Release builds for Linux and Windows compile every ggml backend as a module of its own
(`libggml-cpu-haswell.so`, `libggml-vulkan.so`, `ggml-vulkan.dll`, ...; packaging/build_engine.py).
A module whose driver library is missing (no Vulkan loader, no CUDA driver) simply fails to
load and the CPU module runs the model. ggml's own search (inside `llama_backend_init`) looks
only next to the executable and in the current directory, which is neither where the modules
are (llama_cpp/lib) nor a safe place to load code from, so `load_backends()` loads them from
llama_cpp's lib folder first. It must run before `llama_backend_init`; afterwards that finds
backends registered and searches nothing. For builds with backends linked in (the dev venv,
macOS) it loads nothing and only reports.

`BackendReport.gpu_note` is the sentence to show when a GPU backend exists but gives no GPU.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Backends that never mean "a GPU": the CPU itself, BLAS libraries, remote (RPC) devices.
NOT_GPU = {"cpu", "blas", "rpc", "amx", "zendnn"}
DISPLAY_NAMES = {"vulkan": "Vulkan", "cuda": "CUDA", "metal": "Metal", "hip": "ROCm", "sycl": "SYCL",
                 "opencl": "OpenCL", "musa": "MUSA", "cann": "CANN"}


@dataclass(frozen=True)
class BackendReport:
    dynamic: bool  # a GGML_BACKEND_DL build: backends were loaded as modules
    devices: dict[str, int]  # registered backend ("CPU", "Vulkan") -> how many devices it found
    failed: dict[str, str] = field(default_factory=dict)  # module ("vulkan") -> why it did not load

    @property
    def gpu_backends(self) -> list[str]:
        return [name for name, count in self.devices.items() if name.lower() not in NOT_GPU and count > 0]

    @property
    def gpu_note(self) -> str | None:
        """Why there is no GPU although this build has a GPU backend; None if a GPU is usable or none was built."""
        if self.gpu_backends:
            return None
        for module, reason in self.failed.items():
            if module not in NOT_GPU:
                name = DISPLAY_NAMES.get(module, module)
                return (f"The {name} GPU backend could not be loaded ({reason}); running on the CPU. "
                        f"Installing or updating your graphics driver lets Ponder use the GPU.")
        for name, count in self.devices.items():
            if name.lower() not in NOT_GPU and count == 0:
                return f"No GPU that {name} can use was found; running on the CPU."
        return None


_lock = threading.Lock()
_report: BackendReport | None = None


def module_files(lib_dir: Path) -> dict[str, list[Path]]:
    """Backend modules in lib_dir by backend name: {"cpu": [libggml-cpu-haswell.so, ...], "vulkan": [...]}."""
    prefix, suffix = ("ggml-", ".dll") if sys.platform == "win32" else ("libggml-", ".so")
    modules: dict[str, list[Path]] = {}
    for path in sorted(lib_dir.glob(f"{prefix}*{suffix}")):
        name = path.name[len(prefix): -len(suffix)].split("-", 1)[0]
        if name != "base":  # ggml-base is the shared core every module links to, not a backend
            modules.setdefault(name, []).append(path)
    return modules


def _ggml(lib_dir: Path):
    """libggml as libllama uses it: its backend registry is a global in that one copy.

    A wheel cannot hold symlinks, so llama_cpp/lib has libggml.so and libggml.so.0 as two
    files; opening libggml.so would load a second copy with an empty registry of its own.
    On POSIX, symbols are looked up through libllama's handle (dlsym searches its
    dependencies); Windows loads a DLL once per name, so ggml.dll is the same module.
    """
    ggml = None
    if sys.platform != "win32":
        import llama_cpp.llama_cpp as lc

        ggml = ctypes.CDLL(lc._lib._name, handle=lc._lib._handle)  # own function cache, same library
    if ggml is None or not hasattr(ggml, "ggml_backend_reg_count"):
        from llama_cpp._ctypes_extensions import load_shared_library

        ggml = load_shared_library("ggml", lib_dir)
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_reg_get.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_reg_name.restype = ctypes.c_char_p
    ggml.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path.restype = None
    return ggml


def _registered(ggml) -> dict[str, int]:
    devices = {}
    for i in range(ggml.ggml_backend_reg_count()):
        reg = ggml.ggml_backend_reg_get(i)
        devices[ggml.ggml_backend_reg_name(reg).decode("utf-8", "replace")] = ggml.ggml_backend_reg_dev_count(reg)
    return devices


def _why_not_loaded(path: Path) -> str:
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:  # the loader names the missing library (e.g. libvulkan.so.1)
        return str(exc).replace(str(path) + ": ", "")
    # It loads, but its init gave up: e.g. the Vulkan loader found no driver at all.
    return "no driver for it was found"


def load_backends(lib_dir: str | os.PathLike | None = None) -> BackendReport:
    """Load the backend modules of a GGML_BACKEND_DL build from llama_cpp's lib folder (once per process).

    Call after `import llama_cpp` and before `llama_backend_init()`. Returns what is registered
    and, for modules that did not load, why.
    """
    global _report
    with _lock:
        if _report is not None:
            return _report
        import llama_cpp.llama_cpp as lc

        directory = Path(lib_dir) if lib_dir else Path(lc._base_path)
        ggml = _ggml(directory)
        dynamic = ggml.ggml_backend_reg_count() == 0  # nothing linked in: this build loads modules
        failed = {}
        if dynamic:
            # ggml picks the best CPU variant itself (each module scores the running CPU).
            ggml.ggml_backend_load_all_from_path(os.fsencode(directory) if os.name != "nt" else str(directory).encode())
        devices = _registered(ggml)
        if dynamic:
            loaded = {name.lower() for name in devices}
            for module, paths in module_files(directory).items():
                if module not in loaded:
                    failed[module] = _why_not_loaded(paths[0])
        _report = BackendReport(dynamic=dynamic, devices=devices, failed=failed)
        log.info("llama.cpp backends: %s%s%s", devices, " (modules)" if dynamic else "",
                 f"; not loaded: {failed}" if failed else "")
        return _report
