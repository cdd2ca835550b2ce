"""`python -m app hardware` and `python -m app recommend`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_hardware_json_describes_this_machine():
    result = _run("hardware", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ram_total_bytes"] > GiB and data["ram_budget_bytes"] < data["ram_total_bytes"]
    assert isinstance(data["gpus"], list)
    assert data["gpu_offload_supported"] in (True, False, None)
    assert data["cpu_logical_cores"] >= 1 and data["summary"]


def test_hardware_prints_a_readable_table():
    result = _run("hardware")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("System") and any(line.startswith("RAM") for line in lines)
    assert any(line.startswith(("GPU", "GPUs")) for line in lines)


def test_recommend_for_a_24_gb_gpu_picks_the_32b_distill():
    result = _run("recommend", "--json", "--vram-gb", "24")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["model_id"], data["quant"]) == ("r1-distill-qwen-32b", "Q4_K_M")
    assert data["file"] == "DeepSeek-R1-Distill-Qwen-32B-Q4_K_M.gguf"
    assert data["n_ctx"] == 16384 and data["n_gpu_layers"] == 65
    assert 18 * GiB < data["estimated_vram_bytes"] < 24 * GiB
    assert 0 < data["estimated_ram_bytes"] < 4 * GiB
    assert data["expected_tokens_per_s"] > 5
    assert "fits entirely in your 24 GB GPU" in data["reason"]
    from app.core.catalog import load_catalog

    assert len(data["alternatives"]) == len(load_catalog()) and data["machine"]["described"] is True


def test_recommend_for_this_machine_prints_a_plan_and_the_alternatives():
    result = _run("recommend")
    assert result.returncode == 0, result.stderr
    assert "Recommended: DeepSeek-R1" in result.stdout
    assert "All models:" in result.stdout and "tokens/s" in result.stdout


def test_recommend_for_a_mac_uses_its_unified_memory():
    result = _run("recommend", "--json", "--gpu-name", "Apple M3 Max", "--ram-gb", "36")
    data = json.loads(result.stdout)
    assert data["model_id"] == "r1-distill-qwen-32b"
    assert "unified memory your Apple M3 Max lets the GPU use" in data["reason"]


def test_recommend_with_too_little_memory_explains_and_fails():
    result = _run("recommend", "--json", "--ram-gb", "1")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["model_id"] is None and data["reason"].startswith("Not enough memory")


def test_recommend_for_an_unknown_gpu_asks_for_its_memory():
    result = _run("recommend", "--gpu-name", "Quantum Blaster 9000")
    assert result.returncode == 2
    assert result.stderr.startswith("ponder: ") and "--vram-gb" in result.stderr
    assert "Traceback" not in result.stderr


def test_recommend_with_a_broken_catalog_names_the_bad_field(tmp_path):
    data = json.loads((REPO_ROOT / "models.json").read_text())
    del data["models"][1]["architecture"]["n_head_kv"]
    bad = tmp_path / "models.json"
    bad.write_text(json.dumps(data))
    result = _run("recommend", "--catalog", str(bad))
    assert result.returncode == 2
    assert "r1-distill-qwen-7b" in result.stderr and "'n_head_kv'" in result.stderr
    assert "Traceback" not in result.stderr
