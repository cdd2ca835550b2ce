"""The words for a machine, a plan and a download's progress, as the window and the CLI print them."""

from __future__ import annotations

import dataclasses
import re

import pytest

from app.commands.recommend import format_recommendation
from app.core.catalog import load_catalog
from app.core.downloads import Progress, format_bytes
from app.core.hardware import describe
from app.core.sizing import best_placement, plan, recommend
from app.core.wording import FIT_LABELS, describe_plan, format_eta, hardware_text, progress_text, speed_text

CATALOG = load_catalog()
RTX_4060 = describe(vram_gb=8, ram_gb=32, gpu_name="RTX 4060", cpu_cores=8)
SPEED = r"~\d+(\.\d)? tokens/s"


def catalog_plan(model_id: str, **kwargs):
    return best_placement(CATALOG.get(model_id), hw=RTX_4060, quant="Q4_K_M", **kwargs)


def test_describe_plan_says_where_the_model_runs_and_how_fast():
    on_gpu = catalog_plan("r1-distill-qwen-1.5b")
    split = catalog_plan("r1-distill-qwen-14b")
    on_cpu = plan(CATALOG.get("r1-distill-qwen-7b"), quant="Q4_K_M", hw=RTX_4060, n_gpu_layers=0)
    too_big = catalog_plan("r1-distill-llama-70b")
    assert [p.placement for p in (on_gpu, split, on_cpu)] == ["gpu", "split", "cpu"] and too_big.fit == "too_big"

    assert re.fullmatch(f"all on the GPU · {SPEED}", describe_plan(on_gpu))
    assert re.fullmatch(f"{split.n_gpu_layers} of {split.n_layers + 1} layers on the GPU · {SPEED}",
                        describe_plan(split))
    assert re.fullmatch(f"on the CPU · {SPEED}", describe_plan(on_cpu))
    needed = format_bytes(too_big.gpu_bytes + too_big.ram_bytes)
    assert describe_plan(too_big) == f"needs about {needed} of memory"
    assert speed_text(too_big) == f"needs {needed}"


def test_a_plan_below_the_usable_speed_is_marked_slow():
    p = catalog_plan("r1-distill-qwen-1.5b")
    assert speed_text(dataclasses.replace(p, expected_tokens_per_s=2.84)) == "~2.8 tokens/s (slow)"
    assert speed_text(dataclasses.replace(p, expected_tokens_per_s=5.0)) == "~5.0 tokens/s"
    assert describe_plan(dataclasses.replace(p, expected_tokens_per_s=2.84)) == "all on the GPU · ~2.8 tokens/s (slow)"


@pytest.mark.parametrize(("offload", "gpus", "second_line"), [
    (True, True, "This llama.cpp build can run models on the GPU."),
    (False, True, "This llama.cpp build runs models on the CPU only, so the GPU is not used."),
    (False, False, "This llama.cpp build runs models on the CPU only."),
    (None, True, "Could not check whether this llama.cpp build can use a GPU."),
])
def test_hardware_text_says_what_the_computer_has_and_whether_llama_cpp_can_use_its_gpu(offload, gpus, second_line):
    hw = dataclasses.replace(RTX_4060, gpu_offload_supported=offload, gpus=RTX_4060.gpus if gpus else [])
    first, second = hardware_text(hw).split("\n")
    assert second == second_line
    expected = "RTX 4060 (8 GB) · 32 GB RAM · 8 CPU cores" if gpus else "no GPU · 32 GB RAM · 8 CPU cores"
    assert first == f"This computer: {expected}"  # "without GPU support" is said once, on the second line


def test_progress_text_gives_the_amounts_speed_and_time_left():
    running = Progress(downloaded=340_000_000, total=1_100_000_000, speed_bps=12_300_000, eta_s=62, filename="x")
    assert progress_text(running) == "340.0 MB of 1.1 GB · 12.3 MB/s · about 1 min left"
    assert progress_text(dataclasses.replace(running, downloaded=1_100_000_000, eta_s=0)) == (
        "1.1 GB of 1.1 GB · 12.3 MB/s")  # no time left to show at the end
    assert progress_text(dataclasses.replace(running, speed_bps=0, eta_s=None)) == "340.0 MB of 1.1 GB"
    assert progress_text(dataclasses.replace(running, stage="checking")) == (
        "Checking the 340.0 MB downloaded before…")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, ""), (0.2, "about 1 s left"), (59.4, "about 59 s left"), (60, "about 1 min left"),
    (59 * 60 + 20, "about 59 min left"), (65 * 60, "about 1 h 5 min left"),
])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_the_cli_recommendation_uses_the_same_badges_and_speed_as_the_window():
    rec = recommend(RTX_4060, CATALOG)
    text = format_recommendation(rec)
    assert f"  speed    {speed_text(rec.plan)}\n" in text
    rows = text.split("All models:\n")[1].splitlines()
    for alternative, row in zip(rec.alternatives, rows, strict=True):
        assert f" {FIT_LABELS[alternative.plan.fit]} " in row and alternative.name in row


def test_where_the_catalog_was_wrong_about_a_file_is_one_notice_and_nothing_when_it_was_right():
    from app.core.wording import header_differences_text

    assert header_differences_text("R1-671B (DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf)", []) == ""
    text = header_differences_text("R1-671B (x.gguf)", ["layers: the catalog says 61, the file's header 60",
                                                        "KV heads: the catalog says 1, the file's header 128"])
    assert text == ("R1-671B (x.gguf): the catalog described this file otherwise (layers: the catalog says 61, the "
                    "file's header 60; KV heads: the catalog says 1, the file's header 128). Ponder planned it from "
                    "the file's own header.")
