"""Fixtures for the welcome page and the model manager: a described machine, a small catalog
whose files are scripted GGUFs, served by the fake hub on loopback.

Import the fixtures you use into the test module (`from tests.ui.model_setup import ...`).

The catalog has three models, so every fit badge appears on the described machine
(an RTX 4060 with 8 GB, 32 GB of RAM):
- Tiny-R1 (tier 3): two quantisations, both scripted models that fit easily. Q8_0 is the
  standard R1 script and the recommendation; Q4_K_M is the non-reasoning script.
- Medium-R1 (tier 2): R1-Distill-Qwen-14B's shape at 9 GB: a partial offload. Not on the hub.
- Huge-R1 (tier 1): Llama-70B's shape at 42.5 GB: too big. Not on the hub.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core import downloads, survey
from app.core.catalog import load_catalog
from app.core.hardware import describe
from tests.fakehub import FakeHub, fake_hub  # noqa: F401  (fixture, re-exported)

TINY_REPO = "ponder-tests/Tiny-R1-GGUF"
TINY_RECOMMENDED = "Tiny-R1-Q8_0.gguf"  # the standard R1 script
TINY_OTHER = "Tiny-R1-Q4_K_M.gguf"  # the non-reasoning script
MEDIUM_FILE = "Medium-R1-Q4_K_M.gguf"
SURVEY_TIMEOUT_MS = 10_000
DOWNLOAD_TIMEOUT_MS = 30_000


@dataclass
class CatalogFiles:
    path: Path
    recommended: Path  # the scripted file behind TINY_RECOMMENDED
    other: Path  # behind TINY_OTHER


def _model(model_id, name, tier, arch, quants, repo):
    return {
        "id": model_id, "name": name, "short_name": name, "repo": repo,
        "description": f"{name}, for tests.", "license": "MIT", "base_model": "none", "reasoning": True,
        "params_b": arch.pop("params_b"), "active_params_b": None, "tier": tier, "architecture": arch,
        "quants": [{"name": q, "bits": bits, "files": [{"path": f, "size_bytes": size}]}
                   for q, bits, f, size in quants],
    }


def write_catalog(path: Path, recommended: Path, other: Path) -> Path:
    tiny = {"arch": "llama", "n_layers": 1, "n_embd": 256, "n_ff": 32, "n_head": 4, "n_head_kv": 4, "head_dim": 64,
            "head_dim_v": 64, "vocab_size": 332, "n_ctx_train": 32768, "params_b": 0.001}
    qwen14 = {"arch": "qwen2", "n_layers": 48, "n_embd": 5120, "n_ff": 13824, "n_head": 40, "n_head_kv": 8,
              "head_dim": 128, "head_dim_v": 128, "vocab_size": 152064, "n_ctx_train": 131072, "params_b": 14.8}
    llama70 = {"arch": "llama", "n_layers": 80, "n_embd": 8192, "n_ff": 28672, "n_head": 64, "n_head_kv": 8,
               "head_dim": 128, "head_dim_v": 128, "vocab_size": 128256, "n_ctx_train": 131072, "params_b": 70.6}
    data = {"schema_version": 1, "models": [
        _model("tiny-r1", "Tiny-R1", 3, tiny, [("Q4_K_M", 4, TINY_OTHER, other.stat().st_size),
                                               ("Q8_0", 8, TINY_RECOMMENDED, recommended.stat().st_size)], TINY_REPO),
        _model("medium-r1", "Medium-R1", 2, qwen14, [("Q4_K_M", 4, MEDIUM_FILE, 8_990_000_000)],
               "ponder-tests/Medium-R1-GGUF"),
        _model("huge-r1", "Huge-R1", 1, llama70, [("Q4_K_M", 4, "Huge-R1-Q4_K_M.gguf", 42_510_000_000)],
               "ponder-tests/Huge-R1-GGUF"),
    ]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def pretend_machine(monkeypatch, **described):
    """The UI sees the machine `describe(**described)` says, whatever this one has."""
    hw = describe(**described)
    monkeypatch.setattr(survey, "probe", lambda: hw)
    return hw


@pytest.fixture
def machine(monkeypatch):
    """The UI sees an RTX 4060 (8 GB) with 32 GB of RAM."""
    return pretend_machine(monkeypatch, vram_gb=8, ram_gb=32, gpu_name="RTX 4060", cpu_cores=8)


@pytest.fixture
def catalog(tmp_path, monkeypatch, scripted_model, machine) -> CatalogFiles:
    """The UI reads the test catalog instead of models.json."""
    recommended, other = scripted_model("standard_r1"), scripted_model("non_reasoning")
    path = write_catalog(tmp_path / "models.json", recommended, other)
    monkeypatch.setattr(survey, "load_catalog", lambda _path=None: load_catalog(path))
    return CatalogFiles(path, recommended, other)


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch, catalog: CatalogFiles) -> FakeHub:  # noqa: F811
    """The fake hub serves both Tiny-R1 files; HF_ENDPOINT points at it."""
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(downloads, "RETRY_DELAYS_S", (0, 0.01))
    fake_hub.add(TINY_REPO, TINY_RECOMMENDED, catalog.recommended.read_bytes())
    fake_hub.add(TINY_REPO, TINY_OTHER, catalog.other.read_bytes())
    return fake_hub


@pytest.fixture
def offline(monkeypatch, catalog) -> str:
    """HF_ENDPOINT points at a closed port on loopback: every download fails to connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    return url


def wait_for_survey(qtbot, window) -> survey.MachineSurvey:
    qtbot.waitUntil(lambda: window.library.survey is not None, timeout=SURVEY_TIMEOUT_MS)
    return window.library.survey
