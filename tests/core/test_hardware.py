"""Hardware probe: runs for real here, degrades when the NVIDIA driver misbehaves, reads AMD
sysfs files, and describes machines for `recommend`."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

import app  # noqa: F401  (llama_cpp before numpy)
from app.core import hardware
from app.core.errors import PonderError
from app.core.hardware import GiB, describe, memory_bandwidth_gbps, probe

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import pynvml


def test_probe_reports_this_machine_and_serialises_to_json():
    hw = probe()
    assert hw.ram_total_bytes > GiB
    assert 0 < hw.ram_budget_bytes < hw.ram_total_bytes
    assert hw.cpu_logical_cores and hw.cpu_logical_cores >= 1
    assert hw.gpu_offload_supported in (True, False)  # llama_cpp is installed in this venv
    for gpu in hw.gpus:
        assert 0 < gpu.usable_bytes <= gpu.memory_total_bytes
        assert gpu.bandwidth_gbps > 0
    data = json.loads(json.dumps(hw.to_dict()))
    assert data["ram_total_bytes"] == hw.ram_total_bytes
    assert data["summary"] == hw.summary()


def test_probe_without_nvidia_driver_notes_it_and_still_reports_memory(monkeypatch):
    def no_driver():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    hw = probe()
    assert not [g for g in hw.gpus if g.vendor == "nvidia"]
    assert any("NVIDIA" in note and "Driver Not Loaded" in note for note in hw.notes)
    assert hw.ram_total_bytes > GiB


class _FakeNvml:
    """Two NVIDIA GPUs, the second of which has fallen off the bus: a state no test machine
    can reach on demand. Only the NVML calls the probe makes are replaced."""

    def __init__(self, monkeypatch, lost_index=1, count_error=False):
        self.shutdowns = 0
        calls = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": self._shutdown,
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlSystemGetCudaDriverVersion": lambda: 12040,
            "nvmlDeviceGetCount": self._count_error if count_error else (lambda: 2),
            "nvmlDeviceGetHandleByIndex": lambda i: i,
            "nvmlDeviceGetName": lambda h: "NVIDIA GeForce RTX 4090",
            "nvmlDeviceGetMemoryInfo": lambda h: self._memory(h, lost_index),
            "nvmlDeviceGetCudaComputeCapability": lambda h: (8, 9),
        }
        for name, fn in calls.items():
            monkeypatch.setattr(pynvml, name, fn)

    def _shutdown(self):
        self.shutdowns += 1

    @staticmethod
    def _count_error():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    @staticmethod
    def _memory(handle, lost_index):
        if handle == lost_index:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

        class Memory:
            total = 24564 * 2**20
            free = 23900 * 2**20
            used = total - free

        return Memory()


def test_probe_skips_a_gpu_the_driver_cannot_read_and_keeps_the_others(monkeypatch):
    fake = _FakeNvml(monkeypatch, lost_index=1)
    hw = probe()
    nvidia = [g for g in hw.gpus if g.vendor == "nvidia"]
    assert len(nvidia) == 1
    gpu = nvidia[0]
    assert gpu.name == "NVIDIA GeForce RTX 4090" and gpu.short_name == "RTX 4090"
    assert gpu.memory_total_bytes == 24564 * 2**20
    assert gpu.usable_bytes == gpu.memory_free_bytes == 23900 * 2**20
    assert (gpu.bandwidth_gbps, gpu.bandwidth_known) == (1008.0, True)
    assert (gpu.driver_version, gpu.cuda_version, gpu.compute_capability) == ("550.54.15", "12.4", "8.9")
    assert any("GPU 1" in note and "GPU is lost" in note for note in hw.notes)
    assert fake.shutdowns == 1


def test_probe_survives_the_driver_failing_while_listing_gpus(monkeypatch):
    fake = _FakeNvml(monkeypatch, count_error=True)
    hw = probe()
    assert not [g for g in hw.gpus if g.vendor == "nvidia"]
    assert any("stopped answering" in note for note in hw.notes)
    assert fake.shutdowns == 1


def _card(root, name, vendor, vram=None, used=None, product=None):
    device = root / name / "device"
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    if vram is not None:
        (device / "mem_info_vram_total").write_text(f"{vram}\n")
    if used is not None:
        (device / "mem_info_vram_used").write_text(f"{used}\n")
    if product:
        (device / "product_name").write_text(product + "\n")


def test_amd_gpus_are_read_from_sysfs_and_integrated_graphics_are_skipped(tmp_path):
    _card(tmp_path, "card0", "0x1002", vram=24 * GiB, used=GiB, product="AMD Radeon RX 7900 XTX")
    _card(tmp_path, "card1", "0x1002", vram=512 * 2**20)  # an APU's carve-out
    _card(tmp_path, "card2", "0x10de", vram=8 * GiB)  # not AMD
    (tmp_path / "card0-DP-1").mkdir()  # a connector, not a card
    notes: list[str] = []
    gpus = hardware._probe_amd_sysfs(tmp_path, 0, notes)
    assert len(gpus) == 1
    gpu = gpus[0]
    assert (gpu.vendor, gpu.name) == ("amd", "AMD Radeon RX 7900 XTX")
    assert gpu.memory_total_bytes == 24 * GiB and gpu.usable_bytes == gpu.memory_free_bytes == 23 * GiB
    assert (gpu.bandwidth_gbps, gpu.bandwidth_known) == (960.0, True)
    assert any("card1" in note and "integrated" in note for note in notes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sysfs is Linux only")
def test_probe_lists_amd_gpus_next_to_system_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: (_ for _ in ()).throw(
        pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)))
    _card(tmp_path, "card0", "0x1002", vram=16 * GiB, product="AMD Radeon RX 6800 XT")
    hw = probe(sysfs_root=tmp_path)
    assert [g.name for g in hw.gpus] == ["AMD Radeon RX 6800 XT"]
    assert hw.gpus[0].bandwidth_known is False  # not in the table: guessed from 16 GB
    assert hw.ram_total_bytes > GiB


@pytest.mark.parametrize("name, gbps", [
    ("NVIDIA H100 80GB HBM3", 3350), ("NVIDIA H100 PCIe", 2000), ("NVIDIA A100-SXM4-80GB", 2039),
    ("NVIDIA A100-PCIE-40GB", 1555), ("NVIDIA H200", 4800), ("NVIDIA L4", 300),
    ("NVIDIA GeForce RTX 4060 Ti", 288), ("NVIDIA GeForce RTX 4060", 272), ("NVIDIA GeForce RTX 3060", 360),
    ("NVIDIA GeForce RTX 5090", 1792), ("Apple M3 Max", 400), ("Apple M3", 100), ("Apple M1", 68),
    ("Apple M2 Ultra", 800), ("Apple M4 Pro", 273),
])
def test_known_gpus_have_their_memory_bandwidth(name, gbps):
    assert memory_bandwidth_gbps(name) == (gbps, True)


def test_unknown_gpu_bandwidth_is_guessed_and_never_falls_with_more_memory():
    guesses = [memory_bandwidth_gbps("Mystery GPU", size * GiB) for size in range(1, 200)]
    assert all(not known for _, known in guesses)
    speeds = [gbps for gbps, _ in guesses]
    assert speeds == sorted(speeds)
    apple = [memory_bandwidth_gbps("Apple Silicon", size * GiB)[0] for size in range(8, 200)]
    assert apple == sorted(apple)


def test_describe_takes_memory_from_a_known_gpu_name():
    hw = describe(gpu_name="RTX 3090", n_gpus=2, ram_gb=64)
    assert [g.memory_total_bytes for g in hw.gpus] == [24 * GiB, 24 * GiB]
    assert all(g.usable_bytes == 24 * GiB and g.vendor == "nvidia" for g in hw.gpus)
    assert hw.ram_total_bytes == 64 * GiB and hw.gpu_offload_supported is True
    assert hw.summary() == "2× RTX 3090 (24 GB) · 64 GB RAM"


def test_describe_refuses_an_unknown_gpu_without_its_memory():
    with pytest.raises(PonderError, match="--vram-gb"):
        describe(gpu_name="Quantum Blaster 9000")


def test_describe_without_vram_is_a_cpu_only_machine():
    hw = describe(ram_gb=8)
    assert hw.gpus == [] and hw.usable_gpus == []
    assert hw.ram_total_bytes == 8 * GiB
    assert hw.ram_budget_bytes == 5 * GiB  # at least 3 GB stays for the OS
    assert describe(ram_gb=64).ram_budget_bytes == 48 * GiB  # 75% on bigger machines


@pytest.mark.parametrize("ram_gb, share", [(16, 2 / 3), (32, 2 / 3), (36, 3 / 4), (192, 3 / 4)])
def test_apple_gpu_gets_the_macos_default_share_of_unified_memory(ram_gb, share):
    hw = describe(unified=True, ram_gb=ram_gb, gpu_name="Apple M2")
    gpu = hw.gpus[0]
    assert hw.unified_memory and gpu.unified and gpu.vendor == "apple"
    assert gpu.usable_bytes == int(ram_gb * GiB * share)
    assert hw.cpu_bandwidth_gbps == pytest.approx(100 * hardware.APPLE_CPU_BANDWIDTH_SHARE)


def test_a_gpu_the_llama_cpp_build_cannot_use_is_not_usable():
    hw = describe(gpu_name="RTX 4090")
    hw.gpu_offload_supported = False
    assert hw.usable_gpus == []
    assert "without GPU support" in hw.summary()
