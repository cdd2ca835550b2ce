#!/usr/bin/env python3
"""Build the llama-cpp-python wheel (Ponder's engine) that a release installer carries.

    python packaging/build_engine.py [--backend vulkan|cuda|metal|cpu] [--cpu-variants all|one]
                                     [--sdist FILE] [--out DIR]

Defaults: Metal on macOS; Vulkan on Linux and Windows, with every x86 CPU variant.

Why these flags (see packaging/README.md, "Engine builds"):
- GGML_NATIVE=OFF: a native build uses the build machine's instructions (-march=native) and
  dies with "illegal instruction" on older CPUs. The dev venv's build is native; releases never are.
- Linux/Windows: GGML_BACKEND_DL=ON makes every backend (CPU variants, Vulkan, CUDA) a module
  that ggml loads at start. A module whose driver library is missing (no vulkan-1.dll, no
  libcuda.so.1) fails to load on its own and the CPU module still runs the model, where a
  linked-in backend would stop libllama itself from loading. GGML_CPU_ALL_VARIANTS=ON builds one
  CPU module per x86 level (SSE4.2 ... AVX-512/AMX) and ggml picks the best one the CPU runs.
- macOS: Metal is part of every supported macOS, so one static Metal build is enough.
- Windows: GGML_OPENMP=OFF, because MSVC's OpenMP DLL is not part of a plain Windows install.

llama-cpp-python installs only the targets it knows by name and not the per-CPU `ggml-cpu-<tag>`
modules, so the unpacked sdist's CMakeLists.txt gets an install rule for them (patch_sdist).
pip's wheel cache is bypassed: it would hand back the cached native CPU build of the same version.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BACKEND_FLAGS = {
    "vulkan": ["-DGGML_VULKAN=ON"],
    # Turing (RTX 20) and newer; "-virtual" keeps PTX so newer GPUs JIT-compile it.
    "cuda": ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=75-virtual;80-virtual;86-real;89-real;90-virtual"],
    "metal": ["-DGGML_METAL=ON", "-DGGML_METAL_EMBED_LIBRARY=ON"],
    "cpu": [],
}

VARIANT_INSTALL_RULE = """
# Added by Ponder's packaging/build_engine.py: install the per-CPU modules of GGML_CPU_ALL_VARIANTS.
get_directory_property(_ponder_ggml_targets DIRECTORY vendor/llama.cpp/ggml/src BUILDSYSTEM_TARGETS)
foreach(_ponder_target IN LISTS _ponder_ggml_targets)
    if (_ponder_target MATCHES "^ggml-cpu-")
        llama_cpp_python_install_target(${_ponder_target})
    endif()
endforeach()
"""
PATCH_ANCHOR = "    llama_cpp_python_install_target(ggml-cpu)\n"


def default_backend() -> str:
    return "metal" if sys.platform == "darwin" else "vulkan"


def engine_requirement() -> str:
    """The pinned llama-cpp-python requirement from pyproject.toml (one version everywhere)."""
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        line = line.strip().strip('",')
        if line.startswith("llama-cpp-python"):
            return line
    raise SystemExit("pyproject.toml names no llama-cpp-python requirement")


def cmake_args(backend: str, cpu_variants: str) -> list[str]:
    """Ponder's flags, then any CMAKE_ARGS from the environment (for example
    -DVulkan_INCLUDE_DIR=... where the system's Vulkan headers are too old for ggml-vulkan)."""
    args = ["-DGGML_NATIVE=OFF", "-DLLAVA_BUILD=OFF", *BACKEND_FLAGS[backend]]
    if sys.platform == "win32":
        # MSVC's OpenMP runtime (vcomp140.dll) is not on every Windows; ggml's own thread pool is.
        args.append("-DGGML_OPENMP=OFF")
    if sys.platform != "darwin":
        args.append("-DGGML_BACKEND_DL=ON")
        if cpu_variants == "all":
            args.append("-DGGML_CPU_ALL_VARIANTS=ON")
    return args + shlex.split(os.environ.get("CMAKE_ARGS", ""), posix=os.name != "nt")


def patch_sdist(source_dir: Path) -> None:
    cmake = source_dir / "CMakeLists.txt"
    text = cmake.read_text()
    if "_ponder_ggml_targets" in text:
        return
    if PATCH_ANCHOR not in text:
        raise SystemExit(f"{cmake}: the install rule for ggml-cpu moved; update PATCH_ANCHOR in {__file__}")
    cmake.write_text(text.replace(PATCH_ANCHOR, PATCH_ANCHOR + VARIANT_INSTALL_RULE, 1))


def fetch_sdist(work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-cache-dir",
         "-d", str(work), engine_requirement()],
        check=True,
    )
    return next(work.glob("llama_cpp_python-*.tar.gz"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(BACKEND_FLAGS), default=default_backend())
    parser.add_argument("--cpu-variants", choices=["all", "one"], default="all",
                        help="all: one CPU module per x86 level (release); one: a single baseline module (quick)")
    parser.add_argument("--sdist", type=Path, help="llama-cpp-python source archive (default: download it)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "engine")
    parser.add_argument("--configure-only", action="store_true",
                        help="stop after CMake's configure step and print the install manifest plan")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ponder-engine-"))
    try:
        sdist = args.sdist.resolve() if args.sdist else fetch_sdist(work)
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        source = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("llama_cpp_python-"))
        patch_sdist(source)
        flags = cmake_args(args.backend, args.cpu_variants)
        print(f"Engine build: {args.backend}, CMAKE_ARGS={' '.join(flags)}", flush=True)
        if args.configure_only:
            build = work / "configure"
            subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DSKBUILD_PLATLIB_DIR=" + str(work / "platlib"),
                            *flags], check=True, stdout=subprocess.DEVNULL)
            print((build / "cmake_install.cmake").read_text())
            return 0
        env = dict(os.environ, CMAKE_ARGS=" ".join(flags))
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        args.out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(args.out), str(source)],
            check=True, env=env,
        )
        for wheel in sorted(args.out.glob("llama_cpp_python-*.whl")):
            print(f"built {wheel} ({wheel.stat().st_size / 2**20:.1f} MiB)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
