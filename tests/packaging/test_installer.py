"""The Linux installer, end to end: build the .deb, install it here, use the installed app, remove it.

Slow (a freeze takes minutes) and it installs a package on this machine, so it runs only when
asked (see conftest.py):

    sudo .venv/bin/python -m pytest tests/packaging --run-slow -v

PONDER_DEB=path/to/ponder_x.y.z_amd64.deb tests a .deb built already; otherwise the test
runs packaging/build-linux (PONDER_ENGINE_WHEEL=... bundles a release engine from
packaging/build_engine.py instead of the venv's llama-cpp-python).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.scripted_gguf import STANDARD_ANSWER, STANDARD_THINKING

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("dpkg-deb", "Xvfb", "xwininfo", "xprop", "import")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the .deb is for Linux"),
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in TOOLS),
                       reason=f"needs {', '.join(TOOLS)}"),
]


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    given = os.environ.get("PONDER_DEB")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("installers")
    command = [str(ROOT / "packaging" / "build-linux"), "--python", sys.executable, "--out", str(out)]
    if os.environ.get("PONDER_ENGINE_WHEEL"):
        command += ["--engine-wheel", os.environ["PONDER_ENGINE_WHEEL"]]
    build = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(build.stdout[-800:])
    return next(out.glob("ponder_*.deb"))


@pytest.fixture(scope="module")
def bundle(deb, tmp_path_factory) -> Path:
    """The app folder inside the .deb, unpacked (not installed) for tests that change it."""
    root = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root / "opt" / "ponder"


def ask(exe: Path, model: Path, tmp_path: Path, *extra: str, env: dict | None = None) -> tuple[dict, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "PYTHON", "PONDER_"))}
    environment.update(HOME=str(tmp_path / "home"), **(env or {}))
    result = subprocess.run([str(exe), "ask", "--model", str(model), "--ctx", "2048", "--json", *extra, "Hi"],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout), result.stderr


def backend_report(bundle: Path, env: dict | None = None) -> dict:
    """app.core.backends.load_backends() on the bundle's engine, run from the source tree."""
    code = ("import json, app\nfrom app.core.backends import load_backends\nr = load_backends()\n"
            "print(json.dumps({'devices': r.devices, 'failed': r.failed, 'note': r.gpu_note}))")
    environment = dict(os.environ, LLAMA_CPP_LIB_PATH=str(bundle / "_internal" / "llama_cpp" / "lib"), **(env or {}))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def is_module_build(bundle: Path) -> bool:
    return (bundle / "_internal" / "llama_cpp" / "lib" / "libggml-vulkan.so").exists()


def test_deb_declares_what_qt_and_the_gpu_loader_need(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Architecture", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: ponder" in fields
    for package in ("libxcb-cursor0", "libxkbcommon-x11-0", "libegl1", "libfontconfig1", "libdbus-1-3", "libvulkan1"):
        assert package in fields
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/ponder -> /opt/ponder/ponder" in listing
    for path in ("./opt/ponder/ponder", "./usr/share/applications/ponder.desktop",
                 "./usr/share/icons/hicolor/256x256/apps/ponder.png", "./opt/ponder/_internal/models.json"):
        assert path in listing
    print(f"{deb.name}: {deb.stat().st_size / 2**20:.1f} MiB")


@pytest.mark.skipif(os.geteuid() != 0 if hasattr(os, "geteuid") else True, reason="dpkg -i needs root")
def test_installed_app_answers_shows_its_window_and_uninstalls_cleanly(deb, tmp_path):
    """packaging/linux/install_check.py: dpkg -i, `ask --json`, the window under Xvfb, dpkg -r."""
    shot = tmp_path / "installed-window.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "linux" / "install_check.py"), str(deb), "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=900,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "install check passed" in result.stdout
    assert shot.stat().st_size > 10_000


def test_the_bundle_typesets_maths_with_the_fonts_it_carries(bundle):
    """ziamath's and ziafont's fonts and latex2mathml's table are in the bundle, and the frozen
    app typesets and draws a formula with them (the installed app: install_check.py runs the
    same check through smoke_test.py)."""
    internal = next(p for p in (bundle / "_internal", bundle) if (p / "ziamath").exists())
    assert (internal / "ziamath" / "fonts" / "STIXTwoMath-Regular.ttf").is_file()
    assert (internal / "ziafont" / "fonts" / "DejaVuSans.ttf").is_file()
    assert (internal / "latex2mathml" / "unimathsymbols.txt").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QT_"))}
    result = subprocess.run([str(bundle / "ponder"), "--check-maths"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["typeset"] is True and data["inked_pixels"] > 100


def test_gpu_module_without_its_driver_library_leaves_the_cpu_running(bundle, scripted_model, tmp_path):
    """A machine without the Vulkan loader: the Vulkan module cannot load, the CPU module answers."""
    if not is_module_build(bundle):
        pytest.skip("this bundle's engine has its backends linked in (not a GGML_BACKEND_DL build)")
    if shutil.which("patchelf") is None:
        pytest.skip("needs patchelf to make the Vulkan module ask for a library that is not there")
    copy = tmp_path / "ponder"
    shutil.copytree(bundle, copy, symlinks=True)
    module = copy / "_internal" / "llama_cpp" / "lib" / "libggml-vulkan.so"
    subprocess.run(["patchelf", "--replace-needed", "libvulkan.so.1", "libvulkan-not-installed.so.1", str(module)],
                   check=True)

    data, stderr = ask(copy / "ponder", scripted_model("standard_r1"), tmp_path)
    assert data["answer"] == STANDARD_ANSWER.strip() and data["thinking"] == STANDARD_THINKING.strip()
    assert data["model"]["backend"] == "CPU"
    assert "loaded Vulkan backend" not in stderr and "loaded CPU backend" in stderr
    report = backend_report(copy)
    assert report["devices"] == {"CPU": 1} and "libvulkan-not-installed.so.1" in report["failed"]["vulkan"]
    assert report["note"].startswith("The Vulkan GPU backend could not be loaded (libvulkan-not-installed.so.1: ")


def test_vulkan_without_a_gpu_runs_on_the_cpu(bundle, scripted_model, tmp_path):
    """The Vulkan loader is there but no driver (ICD) is: the Vulkan module gives up, the CPU answers."""
    if not is_module_build(bundle):
        pytest.skip("not a GGML_BACKEND_DL build")
    no_driver = {"VK_ICD_FILENAMES": str(tmp_path / "none.json"), "VK_DRIVER_FILES": str(tmp_path / "none.json")}
    data, stderr = ask(bundle / "ponder", scripted_model("standard_r1"), tmp_path, "--gpu-layers", "-1", env=no_driver)
    assert data["answer"] == STANDARD_ANSWER.strip()
    assert data["model"]["backend"] == "CPU" and data["model"]["n_gpu_layers"] == 0
    assert "loaded Vulkan backend" not in stderr
    report = backend_report(bundle, no_driver)
    assert report == {"devices": {"CPU": 1}, "failed": {"vulkan": "no driver for it was found"},
                      "note": "The Vulkan GPU backend could not be loaded (no driver for it was found); running on "
                              "the CPU. Installing or updating your graphics driver lets Ponder use the GPU."}


def test_vulkan_device_runs_the_model(bundle, scripted_model, tmp_path):
    """Mesa's software Vulkan driver (lavapipe) stands in for a GPU: layers go to the Vulkan device."""
    if not is_module_build(bundle):
        pytest.skip("not a GGML_BACKEND_DL build")
    if not list(Path("/usr/share/vulkan/icd.d").glob("lvp_icd*.json")):
        pytest.skip("needs mesa-vulkan-drivers (lavapipe)")
    # ggml skips CPU-type Vulkan devices unless they are asked for by index.
    data, stderr = ask(bundle / "ponder", scripted_model("standard_r1"), tmp_path, "--gpu-layers", "-1",
                       env={"GGML_VK_VISIBLE_DEVICES": "0"})
    assert data["answer"] == STANDARD_ANSWER.strip() and data["thinking"] == STANDARD_THINKING.strip()
    assert data["model"]["backend"] != "CPU" and data["model"]["n_gpu_layers"] > 0
    assert "llvmpipe" in stderr
    report = backend_report(bundle, {"GGML_VK_VISIBLE_DEVICES": "0"})
    assert report["devices"] == {"Vulkan": 1, "CPU": 1} and report["note"] is None


def test_vulkan_passing_over_a_software_device_says_no_gpu_was_found(bundle, tmp_path):
    """Only a CPU-type Vulkan device (lavapipe): ggml skips it by default, and the user is told."""
    if not is_module_build(bundle):
        pytest.skip("not a GGML_BACKEND_DL build")
    if not list(Path("/usr/share/vulkan/icd.d").glob("lvp_icd*.json")):
        pytest.skip("needs mesa-vulkan-drivers (lavapipe)")
    lavapipe_only = {"VK_ICD_FILENAMES": str(next(Path("/usr/share/vulkan/icd.d").glob("lvp_icd*.json")))}
    report = backend_report(bundle, lavapipe_only)
    assert report["devices"] == {"Vulkan": 0, "CPU": 1}
    assert report["note"] == "No GPU that Vulkan can use was found; running on the CPU."
