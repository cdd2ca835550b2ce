"""survey(): the models folder as the welcome page and the manager list it, planned for the machine,
without any network: catalog files named after their entry, other GGUFs after their metadata,
broken files with the reason, and partial downloads grouped into the model they belong to."""

from __future__ import annotations

import json
from pathlib import Path

from app.core import survey as survey_module
from app.core.catalog import load_catalog
from app.core.errors import CatalogError
from app.core.hardware import describe
from app.core.survey import DownloadRequest, survey

MACHINE = describe(vram_gb=8, ram_gb=32, gpu_name="RTX 4060", cpu_cores=8)
CATALOG = load_catalog()
QWEN_1_5B = "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
R1_PARTS = [f"DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def leave_partial(folder: Path, repo: str, filename: str, data: bytes, size: int) -> None:
    """What an interrupted download leaves: `<name>.part` and its note."""
    name = Path(filename).name
    (folder / f"{name}.part").write_bytes(data)
    (folder / f"{name}.part.json").write_text(json.dumps({"repo_id": repo, "filename": filename, "size": size}))


def test_lists_catalog_files_by_entry_others_by_metadata_and_broken_ones_with_the_reason(
    tmp_path, scripted_model, malformed_model
):
    (tmp_path / QWEN_1_5B).write_bytes(scripted_model("standard_r1").read_bytes())
    (tmp_path / "mine.gguf").write_bytes(scripted_model("non_reasoning").read_bytes())
    (tmp_path / "broken.gguf").write_bytes(malformed_model("truncated").read_bytes())

    result = survey(tmp_path, n_ctx=2048, hardware=MACHINE)

    by_file = {m.path.name: m for m in result.local}
    assert set(by_file) == {QWEN_1_5B, "mine.gguf", "broken.gguf"}
    known = by_file[QWEN_1_5B]
    assert (known.name, known.quant, known.fit, known.error) == ("R1-Distill-Qwen-1.5B", "Q4_K_M", "fits", None)
    assert known.plan.n_ctx == 2048 and known.size_bytes == (tmp_path / QWEN_1_5B).stat().st_size
    assert by_file["mine.gguf"].name == "Scripted-non_reasoning" and by_file["mine.gguf"].fit == "fits"
    broken = by_file["broken.gguf"]
    assert broken.plan is None and broken.fit is None and "broken.gguf" in broken.error
    assert result.hardware is MACHINE and result.catalog_error is None
    assert result.recommendation.hardware_summary == MACHINE.summary()
    assert result.local_model(DownloadRequest.for_catalog(*CATALOG.find_file(QWEN_1_5B))) is known


def test_partial_downloads_are_grouped_into_their_model_with_every_byte_on_disk(tmp_path):
    repo = "unsloth/DeepSeek-R1-GGUF"
    (tmp_path / Path(R1_PARTS[0]).name).write_bytes(b"x" * 300)  # part 1 complete
    leave_partial(tmp_path, repo, R1_PARTS[1], b"y" * 120, 10**9)
    leave_partial(tmp_path, repo, R1_PARTS[2], b"z" * 80, 10**9)
    leave_partial(tmp_path, "someone/Other-GGUF", "sub/Other-Q4.gguf", b"o" * 50, 4000)

    result = survey(tmp_path, n_ctx=2048, hardware=MACHINE)

    assert len(result.partials) == 2
    other, r1 = sorted(result.partials, key=lambda p: p.request.label)
    model, quant = CATALOG.find_file(R1_PARTS[0])
    assert r1.request == DownloadRequest.for_catalog(model, quant)
    assert (r1.downloaded, r1.total) == (300 + 120 + 80, quant.size_bytes)
    assert other.request == DownloadRequest(repo="someone/Other-GGUF", files=("sub/Other-Q4.gguf",),
                                            label="Other-Q4.gguf", size_bytes=4000)
    assert (other.downloaded, other.total) == (50, 4000)
    assert result.partial(r1.request) is r1
    assert result.local == []  # an incomplete split set is not a model yet


def test_a_broken_catalog_is_a_sentence_and_the_local_models_are_still_listed(
    tmp_path, scripted_model, monkeypatch
):
    def broken(_path=None):
        raise CatalogError("The model catalog models.json is not valid JSON (line 3, column 1: Expecting value).")

    monkeypatch.setattr(survey_module, "load_catalog", broken)
    (tmp_path / QWEN_1_5B).write_bytes(scripted_model("standard_r1").read_bytes())

    result = survey(tmp_path, n_ctx=2048, hardware=MACHINE)

    assert result.catalog_error.startswith("The model catalog models.json is not valid JSON")
    assert result.catalog is None and result.recommendation is None
    (model,) = result.local
    assert model.name == "Scripted-standard_r1" and model.fit == "fits"  # named from its own metadata


def test_a_missing_models_folder_is_an_empty_survey(tmp_path):
    result = survey(tmp_path / "not-yet", n_ctx=2048, hardware=MACHINE)
    assert result.local == [] and result.partials == [] and result.recommendation is not None
