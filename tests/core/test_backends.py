"""llama.cpp backend report and module discovery (app.core.backends).

The module-loading path of GGML_BACKEND_DL builds runs against a real release-style build in
tests/packaging/test_installer.py (slow); here: the dev venv's linked-in build and the rules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.core.backends import BackendReport, load_backends, module_files

ROOT = Path(__file__).resolve().parents[2]


def test_linked_in_build_reports_its_backends_without_loading_modules():
    # In a child process: the report is made once per process, before llama_backend_init.
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import app\nfrom app.core.backends import load_backends\n"
            "r = load_backends()\nprint(r.dynamic, r.devices.get('CPU'), r.failed, r.gpu_note)") % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[0] == "False 1 {} None"


def test_report_is_made_once_per_process():
    assert load_backends() is load_backends()


@pytest.mark.skipif(sys.platform == "win32", reason="file names of POSIX builds")
def test_module_files_groups_variants_and_skips_the_core(tmp_path):
    for name in ("libggml-base.so", "libggml.so", "libggml-cpu-haswell.so", "libggml-cpu-x64.so",
                 "libggml-vulkan.so", "libggml-base.so.0", "libllama.so"):
        (tmp_path / name).touch()
    modules = module_files(tmp_path)
    assert {k: [p.name for p in v] for k, v in modules.items()} == {
        "cpu": ["libggml-cpu-haswell.so", "libggml-cpu-x64.so"],
        "vulkan": ["libggml-vulkan.so"],
    }


def test_missing_driver_says_which_backend_and_what_to_do():
    report = BackendReport(dynamic=True, devices={"CPU": 1},
                           failed={"vulkan": "libvulkan.so.1: cannot open shared object file"})
    assert report.gpu_backends == []
    assert report.gpu_note == (
        "The Vulkan GPU backend could not be loaded (libvulkan.so.1: cannot open shared object file); "
        "running on the CPU. Installing or updating your graphics driver lets Ponder use the GPU.")


def test_gpu_backend_without_devices_says_no_gpu_found():
    report = BackendReport(dynamic=True, devices={"Vulkan": 0, "CPU": 1})
    assert report.gpu_note == "No GPU that Vulkan can use was found; running on the CPU."


def test_usable_gpu_or_cpu_only_build_needs_no_note():
    assert BackendReport(dynamic=True, devices={"Vulkan": 1, "CPU": 1}).gpu_note is None
    assert BackendReport(dynamic=True, devices={"Vulkan": 1, "CPU": 1}).gpu_backends == ["Vulkan"]
    assert BackendReport(dynamic=False, devices={"CPU": 1}).gpu_note is None
    # a BLAS or RPC module that failed is not a GPU problem
    assert BackendReport(dynamic=True, devices={"CPU": 1}, failed={"blas": "x"}).gpu_note is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sonames are an ELF matter")
def test_queries_go_to_the_libggml_that_libllama_loaded():
    """A wheel holds libggml.so and libggml.so.0 as two files; opening the first would load a
    second copy whose backend registry libllama never sees."""
    import ctypes

    import llama_cpp.llama_cpp as lc

    from app.core.backends import _ggml

    def address(lib) -> int:
        return ctypes.cast(lib.ggml_backend_reg_count, ctypes.c_void_p).value

    used_by_llama = ctypes.CDLL("libggml.so.0")  # no path: the already loaded library of that soname
    assert address(_ggml(Path(lc._base_path))) == address(used_by_llama)
