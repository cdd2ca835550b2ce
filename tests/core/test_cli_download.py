"""`ponder download` against the loopback fake hub, in-process and as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.__main__ import main
from app.core import downloads
from tests.fakehub import FakeHub, fake_gguf_bytes, fake_hub  # noqa: F401  (fixture)

REPO = "ponder-tests/R1-Distill-Tiny-GGUF"
NAME = "R1-Distill-Tiny-Q4_K_M.gguf"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch) -> FakeHub:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(downloads, "RETRY_DELAYS_S", (0, 0.01))
    return fake_hub


def test_download_by_repo_and_file_prints_the_path_and_a_progress_bar(hub, tmp_path, capsys):
    data = fake_gguf_bytes(200_000, seed=1)
    hub.add(REPO, NAME, data)

    rc = main(["download", "--repo", REPO, "--file", NAME, "--data-dir", str(tmp_path)])

    out, err = capsys.readouterr()
    path = tmp_path / "models" / NAME
    assert rc == 0
    assert out.strip() == str(path)
    assert path.read_bytes() == data
    assert NAME in err and "100%" in err and "200.0 KB / 200.0 KB" in err


def test_top_level_data_dir_and_repeated_file_download_every_part(hub, tmp_path, capsys):
    names = ["big-00001-of-00002.gguf", "big-00002-of-00002.gguf"]
    for i, name in enumerate(names):
        hub.add(REPO, name, fake_gguf_bytes(30_000, seed=i))

    rc = main(["--data-dir", str(tmp_path), "download", "--repo", REPO, "--file", names[0], "--file", names[1]])

    assert rc == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "models" / n) for n in names]


def test_missing_file_exits_2_with_a_sentence(hub, tmp_path, capsys):
    hub.add(REPO, NAME, b"GGUF")

    rc = main(["download", "--repo", REPO, "--file", "Q9.gguf", "--data-dir", str(tmp_path)])

    assert rc == 2
    assert f"ponder: The file Q9.gguf was not found in repo {REPO}" in capsys.readouterr().err


def test_repo_without_file_is_a_usage_error(tmp_path, capsys):
    rc = main(["download", "--repo", REPO, "--data-dir", str(tmp_path)])

    assert rc == 2
    assert "--repo REPO together with --file FILE" in capsys.readouterr().err


def _ponder(args: list[str], hub: FakeHub, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_process_makes_no_request_but_the_file_urls(hub, tmp_path):
    """HF_ENDPOINT is set before huggingface_hub loads, so any side request would reach the fake."""
    file = hub.add(REPO, NAME, fake_gguf_bytes(100_000, seed=2))

    proc = _ponder(["download", "--repo", REPO, "--file", NAME, "--data-dir", str(tmp_path)], hub, tmp_path)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert {(r.method, r.path) for r in hub.requests} == {
        ("HEAD", f"/{REPO}/resolve/main/{NAME}"),
        ("GET", f"/{REPO}/resolve/{hub.commit}/{NAME}"),
        ("GET", f"/blobs/{file.sha256}"),
    }


def test_ctrl_c_keeps_the_part_and_the_next_run_resumes_it(hub, tmp_path):
    data = fake_gguf_bytes(3_000_000, seed=3)
    hub.add(REPO, NAME, data)
    hub.chunk_delay_s = 0.02  # ~800 KB/s: time to press Ctrl-C
    part = tmp_path / "models" / f"{NAME}.part"
    args = ["download", "--repo", REPO, "--file", NAME, "--data-dir", str(tmp_path)]

    first = _ponder(args, hub, tmp_path)
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size >= 64_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)

    assert first.returncode == 130, err
    assert "cancelled" in err and "Run the same command again to resume" in err
    kept = part.stat().st_size
    assert 0 < kept < len(data)

    hub.chunk_delay_s = 0
    second = _ponder(args, hub, tmp_path)
    out, err = second.communicate(timeout=60)

    assert second.returncode == 0, err
    assert Path(out.strip()).read_bytes() == data
    assert hub.gets()[-1].range == f"bytes={kept}-"


def test_catalog_model_downloads_its_default_quantisation(hub, tmp_path, capsys):
    from app.core.catalog import load_catalog

    model, quant = load_catalog().resolve("r1-distill-qwen-1.5b", "Q4_K_M")
    data = fake_gguf_bytes(40_000, seed=4)
    hub.add(model.repo, quant.file.path, data)

    rc = main(["download", "r1-distill-qwen-1.5b", "--data-dir", str(tmp_path)])

    out, err = capsys.readouterr()
    assert rc == 0, err
    assert Path(out.strip()).read_bytes() == data
    assert Path(out.strip()).name == quant.file.name
    assert f"{model.short_name} Q4_K_M, about" in err


def test_catalog_model_with_quant_fetches_every_part_of_a_split_model(hub, tmp_path, capsys):
    from app.core.catalog import load_catalog

    # the full R1 comes in parts
    model, quant = next((m, q) for m in load_catalog() for q in m.quants if len(q.files) > 1)
    for i, f in enumerate(quant.files):
        hub.add(model.repo, f.path, fake_gguf_bytes(20_000, seed=10 + i))

    rc = main(["download", f"{model.id}:{quant.name}", "--data-dir", str(tmp_path)])

    out, err = capsys.readouterr()
    assert rc == 0, err
    assert [Path(line).name for line in out.split()] == [f.name for f in quant.files]
    assert [r.path for r in hub.requests if r.method == "HEAD"] == [
        f"/{model.repo}/resolve/main/{f.path}" for f in quant.files
    ]


def test_unknown_catalog_model_exits_2_naming_the_choices(tmp_path, capsys):
    rc = main(["download", "r1-distill-qwen-9000b", "--data-dir", str(tmp_path)])

    assert rc == 2
    err = capsys.readouterr().err
    assert "no model 'r1-distill-qwen-9000b' in the catalog" in err and "r1-distill-qwen-1.5b" in err
