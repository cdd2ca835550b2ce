"""Downloads against a real HTTP fake hub on loopback (tests/fakehub.py)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import threading

import pytest

from app.core import downloads
from app.core.downloads import (
    DownloadCancelled,
    Progress,
    download_file,
    download_model,
    import_local_gguf,
    local_models,
    model_parts,
    partial_downloads,
    PartialFile,
)
from app.core.errors import DownloadError, ModelFileError
from tests.fakehub import FakeHub, fake_gguf_bytes, fake_hub  # noqa: F401  (fixture)

REPO = "ponder-tests/R1-Distill-Tiny-GGUF"
NAME = "R1-Distill-Tiny-Q4_K_M.gguf"


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch) -> FakeHub:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(downloads, "RETRY_DELAYS_S", (0, 0.01, 0.02))
    return fake_hub


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def cancel_after(n_bytes: int, reports: list[Progress]):
    """A progress callback and Event that cancel once `n_bytes` have arrived."""
    event = threading.Event()

    def on_progress(p: Progress) -> None:
        reports.append(p)
        if p.stage == "downloading" and p.downloaded >= n_bytes:
            event.set()

    return on_progress, event


def test_download_writes_exact_bytes_and_reports_progress_to_the_end(hub, tmp_path):
    data = fake_gguf_bytes(300_000, seed=1)
    hub.add(REPO, NAME, data)
    reports: list[Progress] = []

    path = download_file(REPO, NAME, tmp_path, progress=reports.append)

    assert path == tmp_path / NAME
    assert path.read_bytes() == data
    # The verified SHA-256 is kept beside the file (sha256sum format), for prompt inspectors and exports.
    assert leftovers(tmp_path) == [NAME, NAME + ".sha256"]
    assert downloads.verified_sha256(path) == hashlib.sha256(data).hexdigest()
    assert (tmp_path / f"{NAME}.sha256").read_text() == f"{hashlib.sha256(data).hexdigest()}  {NAME}\n"
    assert local_models(tmp_path) == [path]
    path.write_bytes(data + b"changed")  # a file changed after its download is no longer the verified one
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    assert downloads.verified_sha256(path) is None
    assert [p.downloaded for p in reports] == sorted(p.downloaded for p in reports)
    assert reports[-1].downloaded == reports[-1].total == len(data)
    assert reports[-1].filename == NAME and reports[-1].speed_bps > 0


def test_download_requests_only_the_file_urls(hub, tmp_path):
    file = hub.add(REPO, NAME, fake_gguf_bytes(50_000))

    download_file(REPO, NAME, tmp_path)

    assert [(r.server, r.method, r.path) for r in hub.requests] == [
        ("hub", "HEAD", f"/{REPO}/resolve/main/{NAME}"),
        ("hub", "GET", f"/{REPO}/resolve/{hub.commit}/{NAME}"),
        ("cdn", "GET", f"/blobs/{file.sha256}"),
    ]


def test_already_downloaded_file_is_returned_without_network(tmp_path, monkeypatch):
    (tmp_path / NAME).write_bytes(b"GGUF done")
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())

    assert download_file(REPO, NAME, tmp_path) == tmp_path / NAME


def test_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    data = fake_gguf_bytes(400_000, seed=2)
    hub.add(REPO, NAME, data)
    hub.drop_connection_after(100_000)

    path = download_file(REPO, NAME, tmp_path)

    assert path.read_bytes() == data
    assert [r.range for r in hub.gets() if r.server == "cdn"] == [None, "bytes=100000-"]
    assert hub.body_bytes_sent == len(data)  # nothing was sent twice


def test_new_call_after_cancel_resumes_from_the_kept_part(hub, tmp_path):
    data = fake_gguf_bytes(600_000, seed=3)
    hub.add(REPO, NAME, data)
    hub.chunk_delay_s = 0.01
    reports: list[Progress] = []
    on_progress, cancel = cancel_after(100_000, reports)

    with pytest.raises(DownloadCancelled, match="kept"):
        download_file(REPO, NAME, tmp_path, progress=on_progress, cancel=cancel)

    part = tmp_path / f"{NAME}.part"
    kept = part.stat().st_size
    assert 100_000 <= kept < len(data)
    assert part.read_bytes() == data[:kept]
    assert local_models(tmp_path) == []  # a part is never offered as a model
    assert partial_downloads(tmp_path) == [PartialFile(REPO, NAME, len(data), part)]

    hub.chunk_delay_s = 0
    reports.clear()
    path = download_file(REPO, NAME, tmp_path, progress=reports.append)

    assert path.read_bytes() == data
    assert hub.gets()[-1].range == f"bytes={kept}-"
    assert any(p.stage == "checking" for p in reports)  # the kept part was re-hashed
    assert leftovers(tmp_path) == [NAME, NAME + ".sha256"]
    assert partial_downloads(tmp_path) == []


def test_damaged_kept_part_is_caught_by_the_checksum_on_resume(hub, tmp_path):
    data = fake_gguf_bytes(200_000, seed=4)
    file = hub.add(REPO, NAME, data)
    (tmp_path / f"{NAME}.part").write_bytes(b"X" * 50_000)  # not the file's first bytes
    (tmp_path / f"{NAME}.part.json").write_text(json.dumps({"etag": file.sha256, "size": len(data)}))

    with pytest.raises(DownloadError, match="download it again"):
        download_file(REPO, NAME, tmp_path)

    assert hub.gets()[-1].range == "bytes=50000-"
    assert leftovers(tmp_path) == []


def test_part_of_another_file_version_is_discarded(hub, tmp_path):
    data = fake_gguf_bytes(100_000, seed=5)
    hub.add(REPO, NAME, data)
    (tmp_path / f"{NAME}.part").write_bytes(b"old version")
    (tmp_path / f"{NAME}.part.json").write_text(json.dumps({"etag": "0" * 64, "size": len(data)}))

    path = download_file(REPO, NAME, tmp_path)

    assert path.read_bytes() == data
    assert all(r.range is None for r in hub.gets())


def test_corrupted_bytes_are_caught_and_no_file_is_left(hub, tmp_path):
    hub.add(REPO, NAME, fake_gguf_bytes(120_000, seed=6))
    hub.corrupt(NAME)

    with pytest.raises(DownloadError, match="checksum.*deleted.*download it again"):
        download_file(REPO, NAME, tmp_path)

    assert leftovers(tmp_path) == []
    assert local_models(tmp_path) == []


def test_plain_git_file_is_verified_by_its_git_blob_hash(hub, tmp_path):
    hub.add(REPO, "README.md", b"# tiny model\n", lfs=False)

    assert download_file(REPO, "README.md", tmp_path).read_bytes() == b"# tiny model\n"
    hub.corrupt("README.md")
    (tmp_path / "README.md").unlink()
    with pytest.raises(DownloadError, match="checksum"):
        download_file(REPO, "README.md", tmp_path)


def test_missing_file_names_the_file_and_the_repo(hub, tmp_path):
    hub.add(REPO, NAME, b"GGUF")

    with pytest.raises(DownloadError, match=f"The file nope.gguf was not found in repo {REPO}"):
        download_file(REPO, "nope.gguf", tmp_path)
    with pytest.raises(DownloadError, match="repo someone/else was not found"):
        download_file("someone/else", NAME, tmp_path)
    with pytest.raises(DownloadError, match="not a valid Hugging Face repository name"):
        download_file("no spaces allowed", NAME, tmp_path)
    assert leftovers(tmp_path) == []


def test_unreachable_hub_says_so_and_keeps_the_part(hub, tmp_path, monkeypatch):
    data = fake_gguf_bytes(300_000, seed=7)
    hub.add(REPO, NAME, data)
    hub.chunk_delay_s = 0.01
    on_progress, cancel = cancel_after(50_000, [])
    with pytest.raises(DownloadCancelled):
        download_file(REPO, NAME, tmp_path, progress=on_progress, cancel=cancel)
    kept = (tmp_path / f"{NAME}.part").read_bytes()

    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    with pytest.raises(DownloadError, match="Could not reach .* check your connection; the partial download is kept"):
        download_file(REPO, NAME, tmp_path)

    assert (tmp_path / f"{NAME}.part").read_bytes() == kept


def test_hub_vanishing_mid_download_gives_up_after_retries_and_keeps_the_part(hub, tmp_path):
    data = fake_gguf_bytes(300_000, seed=8)
    hub.add(REPO, NAME, data)
    hub.drop_connection_after(100_000)

    def stop_hub(p: Progress) -> None:
        hub.close()  # at the first report; the open connection still delivers its 100 000 bytes

    with pytest.raises(DownloadError, match="Could not reach .*partial download is kept"):
        download_file(REPO, NAME, tmp_path, progress=stop_hub)

    assert (tmp_path / f"{NAME}.part").read_bytes() == data[:100_000]


def test_not_enough_free_space_is_refused_before_any_byte(hub, tiny_disk):
    hub.add(REPO, NAME, fake_gguf_bytes(2_000_000))

    with pytest.raises(DownloadError, match=r"Not enough disk space .* needs 2\.0 MB but only 1\.0 MB is free"):
        download_file(REPO, NAME, tiny_disk)

    assert hub.gets() == []
    assert leftovers(tiny_disk) == []


def test_disk_filling_up_mid_download_keeps_a_consistent_part(hub, tiny_disk):
    """Real ENOSPC: another program fills the 1 MiB tmpfs while the download runs."""
    data = fake_gguf_bytes(600_000, seed=9)
    hub.add(REPO, NAME, data)
    filler = tiny_disk / "filler"

    def fill_disk(p: Progress) -> None:
        if not filler.exists():
            with open(filler, "wb", buffering=0) as f:
                try:
                    while f.write(b"\0" * 4096):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC

    with pytest.raises(DownloadError, match="disk is full.*partial download is kept"):
        download_file(REPO, NAME, tiny_disk, progress=fill_disk)
    part = (tiny_disk / f"{NAME}.part").read_bytes()
    assert 0 < len(part) < len(data) and part == data[: len(part)]

    filler.unlink()
    assert download_file(REPO, NAME, tiny_disk).read_bytes() == data
    assert hub.gets()[-1].range == f"bytes={len(part)}-"


def test_write_failing_with_enospc_keeps_a_part_that_resumes(hub, tmp_path, monkeypatch):
    """Fake ENOSPC (runs without root): the part file accepts 150 000 bytes, then the disk is full."""
    data = fake_gguf_bytes(400_000, seed=10)
    hub.add(REPO, NAME, data)
    monkeypatch.setattr(downloads, "open", _open_with_quota(150_000), raising=False)

    with pytest.raises(DownloadError, match="disk is full"):
        download_file(REPO, NAME, tmp_path)

    part = (tmp_path / f"{NAME}.part").read_bytes()
    assert 0 < len(part) <= 150_000 and part == data[: len(part)]
    monkeypatch.undo()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert download_file(REPO, NAME, tmp_path).read_bytes() == data


def _open_with_quota(limit: int):
    class QuotaFile(io.FileIO):
        def write(self, b) -> int:
            room = limit - self.seek(0, io.SEEK_END)
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(bytes(b)[:room])

    def fake_open(path, mode="r", buffering=-1, **kwargs):
        if str(path).endswith(".part") and "a" in mode:
            return QuotaFile(path, "a")
        return open(path, mode, buffering, **kwargs)

    return fake_open


def test_multi_part_model_downloads_every_part_with_one_progress_total(hub, tmp_path):
    names = [f"R1-UD-IQ1_S/R1-UD-IQ1_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    blobs = [fake_gguf_bytes(80_000 + i * 1000, seed=20 + i) for i in range(3)]
    for name, blob in zip(names, blobs):
        hub.add(REPO, name, blob)
    reports: list[Progress] = []

    paths = download_model(REPO, names, tmp_path, progress=reports.append)

    assert [p.name for p in paths] == [n.split("/")[1] for n in names]
    assert [p.read_bytes() for p in paths] == blobs
    assert {p.total for p in reports} == {sum(map(len, blobs))}
    assert reports[-1].downloaded == sum(map(len, blobs))
    assert local_models(tmp_path) == [paths[0]]
    assert model_parts(paths[0]) == paths


def test_local_models_lists_only_complete_models(tmp_path):
    for name in [
        "a.gguf",
        "b.gguf.part",
        "b.gguf.part.json",
        ".c.gguf.importing",
        "notes.txt",
        "s-00001-of-00002.gguf",  # its second part is missing
        "t-00001-of-00002.gguf",
        "t-00002-of-00002.gguf",
    ]:
        (tmp_path / name).write_bytes(b"GGUF")

    assert [p.name for p in local_models(tmp_path)] == ["a.gguf", "t-00001-of-00002.gguf"]
    assert local_models(tmp_path / "missing") == []


def test_huggingface_hub_is_offline_outside_a_download(hub, tmp_path):
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import OfflineModeIsEnabled

    hub.add(REPO, NAME, b"GGUF" * 10)
    assert constants.HF_HUB_DISABLE_TELEMETRY

    with pytest.raises(OfflineModeIsEnabled):
        get_hf_file_metadata(hf_hub_url(REPO, NAME, endpoint=hub.url))
    assert hub.requests == []

    download_file(REPO, NAME, tmp_path)
    assert constants.HF_HUB_OFFLINE  # closed again afterwards


def test_cancel_before_start_makes_no_request(hub, tmp_path):
    hub.add(REPO, NAME, b"GGUF")
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(DownloadCancelled):
        download_file(REPO, NAME, tmp_path, cancel=cancel)
    assert hub.requests == []


# -- local import ---------------------------------------------------------------------


def write_real_gguf(path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "c", "d"])
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_import_places_a_valid_gguf_in_the_models_folder(tmp_path):
    src = tmp_path / "mine.gguf"
    write_real_gguf(src)
    models = tmp_path / "models"

    path = import_local_gguf(src, models)

    assert path == models / "mine.gguf"
    assert path.read_bytes() == src.read_bytes()
    assert local_models(models) == [path]
    assert import_local_gguf(src, models) == path  # importing the same file again is harmless


def test_import_refuses_an_invalid_file_and_places_nothing(tmp_path):
    src = tmp_path / "broken.gguf"
    src.write_bytes(b"GGUF" + b"\xff" * 100)
    models = tmp_path / "models"

    with pytest.raises(ModelFileError):
        import_local_gguf(src, models)
    assert local_models(models) == []


def test_import_refuses_a_different_file_with_a_taken_name(tmp_path):
    src = tmp_path / "mine.gguf"
    write_real_gguf(src)
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.gguf").write_bytes(b"GGUF something else")

    with pytest.raises(ModelFileError, match="different model named mine.gguf"):
        import_local_gguf(src, models)
    assert (models / "mine.gguf").read_bytes() == b"GGUF something else"


# -- a real small disk --------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs (needs root to mount); skipped where it cannot be mounted."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if getattr(os, "geteuid", lambda: 1)() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)



def test_import_of_a_split_model_brings_every_part(tmp_path):
    from tests.fixtures.scripted_gguf import write_split_scripted_gguf

    parts = write_split_scripted_gguf(tmp_path / "Tiny.gguf", ["Hello", " there"], parts=3)
    models = tmp_path / "models"

    path = import_local_gguf(parts[1], models)  # any part stands for the whole model

    assert path == models / parts[0].name
    assert [p.read_bytes() for p in model_parts(path)] == [p.read_bytes() for p in parts]
    assert local_models(models) == [path]


def test_import_of_a_split_model_with_a_missing_part_places_nothing(tmp_path):
    from tests.fixtures.scripted_gguf import write_split_scripted_gguf

    parts = write_split_scripted_gguf(tmp_path / "Tiny.gguf", ["Hello", " there"], parts=3)
    parts[2].unlink()
    models = tmp_path / "models"

    with pytest.raises(ModelFileError, match=parts[2].name):
        import_local_gguf(parts[0], models)
    assert not models.exists() or list(models.iterdir()) == []


def test_server_ignoring_the_range_starts_the_file_over_cleanly(hub, tmp_path):
    data = fake_gguf_bytes(600_000, seed=11)
    hub.add(REPO, NAME, data)
    hub.chunk_delay_s = 0.01
    on_progress, cancel = cancel_after(100_000, [])
    with pytest.raises(DownloadCancelled):
        download_file(REPO, NAME, tmp_path, progress=on_progress, cancel=cancel)

    hub.chunk_delay_s = 0
    hub.ignore_ranges = True
    path = download_file(REPO, NAME, tmp_path)

    assert path.read_bytes() == data  # the whole body replaced the part instead of being appended
    assert hub.gets()[-1].range is not None


# --- planning from the header before a download ------------------------------------------------

DS2_REPO = "ponder-tests/DeepSeek-Tiny-GGUF"


@pytest.fixture(scope="module")
def ds2_files(tmp_path_factory):
    from tests.fixtures.deepseek2_gguf import mla_pair

    return mla_pair(tmp_path_factory.mktemp("ds2hub"))


def _catalog_entry(mla: bool):
    """A catalog entry for the tiny files that claims the MLA layout (or not)."""
    from app.core.catalog import parse_catalog

    arch = {"arch": "deepseek2", "n_layers": 3, "n_embd": 64, "n_ff": 96, "n_head": 16, "vocab_size": 265,
            "n_ctx_train": 32768, "n_expert": 4, "n_expert_used": 2, "mla": mla,
            **({"n_head_kv": 1, "head_dim": 96, "head_dim_v": 64} if mla else
               {"n_head_kv": 16, "head_dim": 64, "head_dim_v": 32})}
    entry = {"id": "ds2-tiny", "name": "DeepSeek tiny", "short_name": "DS2-tiny", "repo": DS2_REPO,
             "description": "test", "license": "MIT", "base_model": "none", "reasoning": True, "params_b": 0.01,
             "tier": 1, "architecture": arch,
             "quants": [{"name": "F16", "bits": 16, "files": [{"path": "ds2.gguf", "size_bytes": 10**6}]}]}
    return parse_catalog({"schema_version": 1, "models": [entry]}).models[0]


def _between(ds2_files, tmp_path):
    """A CPU-only machine whose RAM holds the MLA file's plan but not the uncompressed one's."""
    from app.core.hardware import describe
    from tests.fixtures.deepseek2_gguf import ram_gb_between

    return describe(ram_gb=ram_gb_between(ds2_files, tmp_path))


def test_the_header_is_read_with_growing_ranged_requests_before_any_download(hub, ds2_files, tmp_path):
    hub.add(DS2_REPO, "ds2.gguf", ds2_files[True])
    summary, fetched = downloads.fetch_header(DS2_REPO, "ds2.gguf", first_bytes=1024)
    assert (summary.architecture, summary.mla, summary.n_layers, summary.n_head_kv) == ("deepseek2", True, 3, 1)
    assert summary.file_size == len(ds2_files[True]) and fetched < len(ds2_files[True])
    ranges = [r.range for r in hub.gets()]
    assert ranges[0] == "bytes=0-1023" and len(ranges) >= 2  # 1 KiB was not enough: it asked for more
    assert all(r and r.startswith("bytes=") for r in ranges)
    assert hub.body_bytes_sent < len(ds2_files[True])
    assert leftovers(tmp_path) == []


def test_a_catalog_entry_claiming_mla_for_a_file_without_it_is_refused_before_the_download(hub, ds2_files, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setattr(downloads, "HEADER_FIRST_BYTES", 8192)  # the tiny file would fit in the first 1 MiB
    hw = _between(ds2_files, tmp_path)
    hub.add(DS2_REPO, "ds2.gguf", ds2_files[False])
    dest = tmp_path / "models"
    with pytest.raises(DownloadError) as caught:
        downloads.download_model(DS2_REPO, ["ds2.gguf"], dest, hardware=hw, catalog_model=_catalog_entry(mla=True))
    text = str(caught.value)
    assert "will not fit this computer, so nothing was downloaded" in text
    assert "the file has no MLA metadata" in text
    assert "Multi-head Latent Attention (MLA): the catalog says yes, the file's header no" in text
    assert "KV heads: the catalog says 1, the file's header 16" in text
    assert not dest.exists() or leftovers(dest) == []
    assert hub.body_bytes_sent < len(ds2_files[False]) and all(r.range for r in hub.gets())


def test_the_same_entry_with_an_mla_file_downloads_and_says_where_the_catalog_was_wrong(hub, ds2_files, tmp_path):
    hw = _between(ds2_files, tmp_path)
    hub.add(DS2_REPO, "ds2.gguf", ds2_files[True])
    plans = []
    paths = downloads.download_model(DS2_REPO, ["ds2.gguf"], tmp_path / "models", hardware=hw,
                                     catalog_model=_catalog_entry(mla=False), on_plan=plans.append)
    assert paths[0].read_bytes() == ds2_files[True]
    (planned,) = plans
    assert planned.plan.fits and planned.summary.mla
    assert "Multi-head Latent Attention (MLA): the catalog says no, the file's header yes" in planned.differences


def test_a_file_that_is_no_gguf_cannot_be_planned(hub):
    hub.add(REPO, NAME, b"<html>not a model</html>" * 100)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        downloads.fetch_header(REPO, NAME)


def test_a_full_model_that_fits_only_at_8k_context_is_planned_at_8k_and_downloads(hub, ds2_files, tmp_path):
    """As the recommendation plans a full 671B (sizing._contexts): a deepseek2 file whose KV cache does not fit
    at 16k is planned at 8k (with q8_0 KV where that is what fits) rather than refused."""
    from app.core.hardware import GiB, describe
    from app.core.modelfile import inspect_gguf
    from app.core.sizing import best_placement, plan

    local = tmp_path / "local.gguf"
    local.write_bytes(ds2_files[False])
    at = {n: plan(inspect_gguf(local), n_ctx=n, kv_type="q8_0", hw=describe(ram_gb=64)).ram_bytes for n in (8192, 16384)}
    hw = describe(ram_gb=3 + (at[8192] + at[16384]) / 2 / GiB)
    assert not best_placement(inspect_gguf(local), hw=hw).fits
    hub.add(DS2_REPO, "ds2.gguf", ds2_files[False])
    plans = []
    paths = downloads.download_model(DS2_REPO, ["ds2.gguf"], tmp_path / "models", hardware=hw, on_plan=plans.append)
    assert paths[0].read_bytes() == ds2_files[False]
    (planned,) = plans
    assert planned.plan.fits and planned.plan.n_ctx == 8192
