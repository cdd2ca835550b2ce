"""Model files from Hugging Face into Ponder's models folder, and imports of local GGUFs.

Why not `hf_hub_download`: it keeps a partial file per process, so a download cut by
an app restart starts again from zero, and it never checks the SHA-256. Here each file
is fetched with ranged GETs into `<name>.part`, next to a small `<name>.part.json` that
records the hub's etag and size; a later call, in this process or another, continues
from the part while the etag still matches. The etag of an LFS file is its SHA-256: the
bytes are hashed as they are written and the part is renamed into place only when the
hash matches, so a partial or unverified file never carries a `.gguf` name.
huggingface_hub builds the URLs, reads the metadata (HEAD) and lends its HTTP client.

Privacy: huggingface_hub's telemetry is off and it is held in offline mode except while
a download runs, so nothing else in the app can reach the network through it.
"""

from __future__ import annotations

import os

# Before huggingface_hub reads its settings: no user-agent telemetry and no agent
# registry fetch (`/api/agent-harnesses`), which would be a request of its own.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import errno  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path, PurePosixPath  # noqa: E402
from typing import Callable, Iterator  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import httpx2  # noqa: E402
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status  # noqa: E402

from app import __version__  # noqa: E402
from app.core.errors import DownloadError, ModelFileError  # noqa: E402

log = logging.getLogger(__name__)

# Also set the values themselves: huggingface_hub may have been imported before this module.
constants.HF_HUB_DISABLE_TELEMETRY = True
constants.HF_HUB_OFFLINE = True

DEFAULT_ENDPOINT = "https://huggingface.co"
# Waits before reconnecting after a dropped connection; the count starts over whenever
# a connection delivered bytes, so only a hub that stays away ends the download.
RETRY_DELAYS_S: tuple[float, ...] = (1, 2, 4, 8, 16, 30)
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
HTTP_TIMEOUT = httpx2.Timeout(connect=10, read=30, write=30, pool=10)
HASH_BLOCK = 1 << 20
PROGRESS_INTERVAL_S = 0.1  # at most ten reports a second, plus the last one

_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


class DownloadCancelled(DownloadError):
    """The user cancelled; the part is kept and the next download of the file resumes it."""


@dataclass(frozen=True)
class Progress:
    """One progress report. For a multi-part model the counts cover all its parts."""

    downloaded: int
    total: int
    speed_bps: float
    eta_s: float | None
    filename: str
    stage: str = "downloading"  # or "checking": re-reading a kept part before resuming


ProgressCallback = Callable[[Progress], None]


# ---------------------------------------------------------------------------------------
# Public API


def download_file(
    repo_id: str,
    filename: str,
    dest_dir: str | os.PathLike,
    *,
    revision: str = "main",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download one file of `repo_id` into `dest_dir` and return its verified path.

    A file already in `dest_dir` is returned without any request. `endpoint` defaults to
    `HF_ENDPOINT`, then huggingface.co. Raises DownloadError (DownloadCancelled on cancel).
    """
    return download_model(
        repo_id, [filename], dest_dir, revision=revision, progress=progress, cancel=cancel, endpoint=endpoint
    )[0]


def download_model(
    repo_id: str,
    filenames: list[str],
    dest_dir: str | os.PathLike,
    *,
    revision: str = "main",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
    hardware=None,
    catalog_model=None,
    on_plan: Callable[[DownloadPlan], None] | None = None,
) -> list[Path]:
    """Download every file of a (possibly multi-part) model; returns the paths in order.

    Files land flat in `dest_dir` under their base names, which is where llama.cpp looks
    for the other parts of a split GGUF. The free-space check covers all parts at once.
    With `hardware` (a HardwareInfo), the first file's header is fetched and planned first
    (`plan_download`) and a model that will not fit is refused before any big transfer;
    `on_plan` receives that plan (with where the catalog entry `catalog_model` was wrong).
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    finals = [dest / PurePosixPath(name).name for name in filenames]
    if all(path.is_file() for path in finals):
        return finals  # already downloaded: works with no network at all
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled("The download was cancelled before it started.")

    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    with _hub_online():
        remotes = {name: _remote_file(repo_id, name, revision, base, _part_size(final))
                   for name, final in zip(filenames, finals) if hardware is not None or not final.is_file()}
    if hardware is not None:
        try:
            planned = plan_download(repo_id, filenames, hardware, catalog_model=catalog_model, revision=revision,
                                    endpoint=base, remotes=list(remotes.values()))
        except ModelFileError as exc:  # a header Ponder cannot read: the file is checked again before loading
            log.warning("could not plan %s from its header: %s", filenames[0], exc)
        else:
            if on_plan is not None:
                on_plan(planned)
    with _hub_online():
        todo = [_FileDownload(remotes[name], final, cancel) for name, final in zip(filenames, finals)
                if not final.is_file()]
        needed = sum(job.remote.size - job.kept_bytes() for job in todo)
        _check_free_space(dest, needed, ", ".join(job.final.name for job in todo))
        meter = _Meter(sum(job.remote.size for job in todo), progress)
        done_before = 0
        for job in todo:
            job.run(meter, done_before)
            done_before += job.remote.size
    return finals


# ---------------------------------------------------------------------------------------
# Planning from the header before a download

HEADER_FIRST_BYTES = 1 << 20  # most GGUF headers (vocabulary, tensor table) fit in 2-8 MiB
HEADER_MAX_BYTES = 256 << 20  # a header larger than this is not a model Ponder can plan


@dataclass
class DownloadPlan:
    """How a model would run here, planned from its own header before it is downloaded."""

    label: str
    summary: object  # app.core.modelfile.ModelSummary of the first file's header
    plan: object  # app.core.sizing.Plan
    differences: list[str]  # where the catalog entry disagrees with the header (the header wins)
    header_bytes: int  # how many bytes were fetched to read it


def fetch_header(repo_id: str, filename: str, *, total_size: int | None = None, revision: str = "main",
                 endpoint: str | None = None, first_bytes: int | None = None, remote: _RemoteFile | None = None):
    """The GGUF header of `filename` (the first part of a split model), read with ranged GETs that
    grow until the metadata and tensor table are in: (ModelSummary whose file_size is `total_size`,
    default this file's size; bytes fetched). Raises DownloadError, or ModelFileError for no GGUF."""
    from app.core.modelfile import HeaderIncomplete, summarize_header

    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    with _hub_online():
        remote = remote or _remote_file(repo_id, filename, revision, base, 0)
        wanted, data = min(first_bytes or HEADER_FIRST_BYTES, remote.size), b""
        while True:
            data = _fetch_range(remote, len(data), wanted, data)
            try:
                summary = summarize_header(data, PurePosixPath(filename).name, total_size or remote.size)
            except HeaderIncomplete as more:
                if len(data) >= remote.size or wanted >= HEADER_MAX_BYTES:
                    raise DownloadError(
                        f"The header of {filename} is larger than {format_bytes(HEADER_MAX_BYTES)} or cut off, "
                        "so Ponder cannot plan it before downloading."
                    ) from None
                wanted = min(max(more.needed, 2 * wanted), remote.size, HEADER_MAX_BYTES)
                continue
            return summary, len(data)


def _fetch_range(remote: _RemoteFile, start: int, end: int, have: bytes) -> bytes:
    """`have` extended with bytes start..end-1 of the remote file (one ranged GET)."""
    headers = build_hf_headers(token=False, headers=_user_agent())
    headers["Accept-Encoding"] = "identity"
    headers["Range"] = f"bytes={start}-{end - 1}"
    chunks, got = [have], 0
    try:
        with get_session().stream("GET", remote.url, headers=headers, timeout=HTTP_TIMEOUT) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            skip = start if response.status_code == 200 else 0  # a server that ignores Range sends it all
            for chunk in response.iter_bytes():
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                chunk = chunk[: end - start - got]
                chunks.append(chunk)
                got += len(chunk)
                if got >= end - start:
                    break
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise _explain(exc, remote.repo_id, remote.filename, "", remote.host, 0) from exc
    return b"".join(chunks)


def plan_download(repo_id: str, filenames: list[str], hardware, *, catalog_model=None, n_ctx: int | None = None,
                  revision: str = "main", endpoint: str | None = None,
                  first_bytes: int | None = None, remotes: list[_RemoteFile] | None = None) -> DownloadPlan:
    """Fetch the header of the model's first file and plan it for `hardware` the way the engine will
    load it. Raises DownloadError with a sentence when it will not fit, before any big transfer.
    Where `catalog_model` (a CatalogModel) describes the file differently, the header wins; each
    difference is logged and listed in the plan."""
    from app.core import sizing

    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if remotes is None:  # (download_model passes the ones it resolved: one HEAD per file in all)
        with _hub_online():
            remotes = [_remote_file(repo_id, name, revision, base, 0) for name in filenames]
    summary, fetched = fetch_header(repo_id, filenames[0], total_size=sum(r.size for r in remotes), revision=revision,
                                    endpoint=base, first_bytes=first_bytes, remote=remotes[0])
    label = f"{catalog_model.short_name} ({PurePosixPath(filenames[0]).name})" if catalog_model else \
        PurePosixPath(filenames[0]).name
    differences = _catalog_differences(catalog_model, summary) if catalog_model is not None else []
    for difference in differences:
        log.warning("%s: %s", label, difference)
    wanted = n_ctx or sizing.TARGET_N_CTX
    p = sizing.best_placement(summary, hw=hardware, n_ctx=min(wanted, summary.n_ctx_train))
    if p.fit == "too_big" and summary.architecture == "deepseek2" and wanted > sizing.MIN_N_CTX:
        # A full 671B may run at a smaller context, as the recommendation plans it (sizing._contexts).
        smaller = sizing.best_placement(summary, hw=hardware, n_ctx=min(sizing.MIN_N_CTX, summary.n_ctx_train))
        p = smaller if smaller.fits else p
    planned = DownloadPlan(label, summary, p, differences, fetched)
    if p.fit == "too_big":
        said = f" The catalog described it otherwise ({'; '.join(differences)}); the file's header decides." \
            if differences else ""
        need = format_bytes(p.gpu_bytes + p.ram_bytes)
        room = format_bytes(sum(d.budget_bytes or 0 for d in p.devices if d.kind == "gpu" and not hardware.unified_memory)
                            + hardware.ram_budget_bytes)
        raise DownloadError(
            f"{label} will not fit this computer, so nothing was downloaded: with a {p.n_ctx_label} context it "
            f"needs about {need} ({format_bytes(sum(d.kv_bytes for d in p.devices))} of it the KV cache"
            f"{', uncompressed: the file has no MLA metadata' if summary.architecture == 'deepseek2' and not summary.mla else ''}), "
            f"and this computer can give a model about {room}.{said}"
        )
    return planned


def _catalog_differences(model, summary) -> list[str]:
    """Where a catalog entry's architecture disagrees with the file's header, in words."""
    a = model.architecture
    checks = [
        ("architecture", a.arch, summary.architecture),
        ("Multi-head Latent Attention (MLA)", a.mla, summary.mla),
        ("layers", a.n_layers, summary.n_layers),
        ("training context", a.n_ctx_train, summary.n_ctx_train),
        ("KV heads", a.n_head_kv, summary.n_head_kv),
        ("key length", a.head_dim, summary.head_dim),
        ("experts", a.n_expert or 0, summary.n_expert),
    ]
    def word(value) -> str:
        return ("yes" if value else "no") if isinstance(value, bool) else str(value)

    return [f"{what}: the catalog says {word(said)}, the file's header {word(found)}"
            for what, said, found in checks if said != found]


@dataclass(frozen=True)
class PartialFile:
    """A download that stopped part way: `<name>.part` and its note (repo, file, size)."""

    repo_id: str
    filename: str
    size: int
    part: Path


def partial_downloads(models_dir: str | os.PathLike) -> list[PartialFile]:
    """The resumable partial downloads in `models_dir` (no network)."""
    found = []
    for note in sorted(Path(models_dir).glob("*.part.json")):
        part = note.with_name(note.name.removesuffix(".json"))
        try:
            saved = json.loads(note.read_text(encoding="utf-8"))
            found.append(PartialFile(saved["repo_id"], saved["filename"], int(saved["size"]), part))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return [f for f in found if f.part.is_file()]


def local_models(models_dir: str | os.PathLike) -> list[Path]:
    """Complete GGUF models in `models_dir`, found without any network access.

    Single files and the first part of each complete multi-part set are listed;
    `.part` downloads, hidden temporaries and incomplete sets never are.
    """
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    names = {entry.name for entry in folder.iterdir() if entry.is_file()}
    found = []
    for name in sorted(names, key=str.lower):
        if name.startswith(".") or not name.lower().endswith(".gguf"):
            continue
        match = _SPLIT_NAME.match(name)
        if match and (int(match["index"]) != 1 or not all(p.name in names for p in model_parts(folder / name))):
            continue
        found.append(folder / name)
    return found


# A file's SHA-256, once a download verified it: `<name>.sha256` beside it, in sha256sum's
# format, so prompt inspectors and trace exports can name the exact file a model was.
SHA256_SUFFIX = ".sha256"


def _record_sha256(path: Path, digest: str) -> None:
    try:
        path.with_name(path.name + SHA256_SUFFIX).write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    except OSError as exc:  # the model is fine without it; the hash is then just not known
        log.warning("could not record the SHA-256 of %s: %s", path, exc)


def verified_sha256(path: str | os.PathLike) -> str | None:
    """The SHA-256 a download verified for `path`, or None (imported, or changed since: the
    record must be newer than the file)."""
    path = Path(path)
    record = path.with_name(path.name + SHA256_SUFFIX)
    try:
        if record.stat().st_mtime < path.stat().st_mtime:
            return None
        digest = record.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, IndexError):
        return None
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def model_parts(path: str | os.PathLike) -> list[Path]:
    """All files of the model whose (first) file is `path`: one path, or every part of a split GGUF."""
    path = Path(path)
    match = _SPLIT_NAME.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    return [path.with_name(f"{match['prefix']}-{i:05d}-of-{match['count']}.gguf") for i in range(1, count + 1)]


def import_local_gguf(src: str | os.PathLike, models_dir: str | os.PathLike) -> Path:
    """Validate a GGUF on disk and place it (all parts, if split) in `models_dir`.

    The file is hard-linked when possible (instant, no extra space), else copied through a
    hidden temporary name. Returns the path to load. Raises ModelFileError.
    """
    from app.core.modelfile import inspect_gguf  # validation lives with the GGUF reader

    src = Path(src)
    folder = Path(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    parts = model_parts(src)
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise ModelFileError(
            f"{src.name} is one part of a split model, but {', '.join(missing)} is missing next to it; "
            "put all parts in one folder and import again."
        )
    inspect_gguf(parts[0])
    for part in parts:
        _place_copy(part, folder / part.name)
    return folder / parts[0].name


# ---------------------------------------------------------------------------------------
# Hub metadata


@dataclass(frozen=True)
class _RemoteFile:
    repo_id: str
    filename: str
    url: str  # resolve URL pinned to the commit the HEAD answered for
    etag: str
    size: int
    host: str

    def new_hasher(self):
        """The hash whose hex digest equals the etag: SHA-256 for LFS, git's blob SHA-1 otherwise."""
        if len(self.etag) == 64:
            return hashlib.sha256()
        hasher = hashlib.sha1()
        hasher.update(b"blob %d\0" % self.size)
        return hasher


_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # git SHA-1 or SHA-256

_online_lock = threading.Lock()
_online_users = 0


@contextmanager
def _hub_online() -> Iterator[None]:
    """Let huggingface_hub reach the network for the length of a download, then close it again."""
    global _online_users
    with _online_lock:
        _online_users += 1
        constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        with _online_lock:
            _online_users -= 1
            if _online_users == 0:
                constants.HF_HUB_OFFLINE = True


def _remote_file(repo_id: str, filename: str, revision: str, endpoint: str, kept: int) -> _RemoteFile:
    host = _host_label(endpoint)
    try:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url, token=False, endpoint=endpoint, headers=_user_agent())
    except HFValidationError:
        raise DownloadError(
            f"{repo_id!r} is not a valid Hugging Face repository name; it looks like owner/name."
        ) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        raise _explain(exc, repo_id, filename, revision, host, kept) from exc
    if not meta.commit_hash or not meta.etag:
        raise DownloadError(
            f"{host} did not answer like a Hugging Face hub (no commit or etag for {filename}); "
            "check HF_ENDPOINT."
        )
    if meta.size is None:
        raise DownloadError(f"{host} did not say how large {filename} is, so it cannot be downloaded safely.")
    etag = meta.etag.lower()
    if not _HEX.match(etag):
        raise DownloadError(
            f"{host} gave no checksum for {filename}, so Ponder cannot verify the download; "
            "download it yourself and import it instead."
        )
    pinned = hf_hub_url(repo_id, filename, revision=meta.commit_hash, endpoint=endpoint)
    return _RemoteFile(repo_id, filename, pinned, etag, meta.size, host)


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def _part_size(final: Path) -> int:
    part = _part_path(final)
    return part.stat().st_size if part.is_file() else 0


def _host_label(endpoint: str) -> str:
    host = urlparse(endpoint).netloc or endpoint
    return host if endpoint == DEFAULT_ENDPOINT else f"{host} (set by HF_ENDPOINT)"


def _user_agent() -> dict[str, str]:
    return {"user-agent": f"ponder/{__version__}"}


def _explain(exc: BaseException, repo_id: str, filename: str, revision: str, host: str, kept: int) -> DownloadError:
    """One actionable sentence for a failed request."""
    resume = "; the partial download is kept and will resume" if kept else ""
    if isinstance(exc, RemoteEntryNotFoundError):
        return DownloadError(
            f"The file {filename} was not found in repo {repo_id} on {host}; "
            "check the file name or pick another quantisation."
        )
    if isinstance(exc, RevisionNotFoundError):
        return DownloadError(f"The revision {revision!r} of repo {repo_id} was not found on {host}.")
    if isinstance(exc, GatedRepoError):
        return DownloadError(
            f"The repo {repo_id} is gated (it needs a Hugging Face login); Ponder downloads public repos only — "
            "download the file in a browser and import it."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"The repo {repo_id} was not found on {host}; check its name (owner/name).")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        return DownloadError(f"{host} answered HTTP {status} for {filename}; try again later{resume}.")
    if isinstance(exc, _RetryableStatus):
        return DownloadError(f"{host} kept failing ({exc}) for {filename}; try again later{resume}.")
    if isinstance(exc, (httpx2.TransportError, OfflineModeIsEnabled)):
        return DownloadError(f"Could not reach {host} — check your connection{resume}.")
    return DownloadError(f"Downloading {filename} from {host} failed: {exc}{resume}.")


# ---------------------------------------------------------------------------------------
# One file


class _RetryableStatus(Exception):
    """The server answered with a status worth retrying (busy, rate-limited, 5xx)."""


class _FileDownload:
    """Fetches one remote file into `<final>.part`, resumable, then verifies and renames it."""

    def __init__(self, remote: _RemoteFile, final: Path, cancel: threading.Event | None):
        self.remote = remote
        self.final = final
        self.part = _part_path(final)
        self.sidecar = final.with_name(final.name + ".part.json")
        self.cancel = cancel
        self.state = {"repo_id": remote.repo_id, "filename": remote.filename, "etag": remote.etag, "size": remote.size}

    def kept_bytes(self) -> int:
        """Size of a part that can be resumed; a stale or foreign part is deleted."""
        if not self.part.is_file():
            self.sidecar.unlink(missing_ok=True)
            return 0
        try:
            saved = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        size = self.part.stat().st_size
        same_file = isinstance(saved, dict) and (saved.get("etag"), saved.get("size")) == (
            self.remote.etag,
            self.remote.size,
        )
        if not same_file or size > self.remote.size:
            log.info("discarding %s: it belongs to another version of the file", self.part)
            self.part.unlink()
            self.sidecar.unlink(missing_ok=True)
            return 0
        return size

    def run(self, meter: _Meter, done_before: int) -> Path:
        self.meter = meter
        self.done_before = done_before
        self.hasher = self.remote.new_hasher()
        self.offset = self._rehash_kept_part()
        self.sidecar.write_text(json.dumps(self.state), encoding="utf-8")
        with open(self.part, "ab", buffering=0) as self.file:
            self._fetch_rest()
            self._write(b"", sync=True)  # some filesystems report a full disk only now
        if self.hasher.hexdigest() != self.remote.etag:
            self.part.unlink(missing_ok=True)
            self.sidecar.unlink(missing_ok=True)
            raise DownloadError(
                f"{self.final.name} arrived damaged: its checksum does not match the hub's, "
                "so it was deleted; download it again."
            )
        os.replace(self.part, self.final)
        self.sidecar.unlink(missing_ok=True)
        if len(self.remote.etag) == 64:
            _record_sha256(self.final, self.remote.etag)
        meter.report(done_before + self.offset, self.final.name, force=True)
        return self.final

    def _rehash_kept_part(self) -> int:
        """Feed the kept bytes to the hasher; a resumed file is verified end to end."""
        kept = self.kept_bytes()
        if not kept:
            return 0
        done = 0
        with open(self.part, "rb") as f:
            while block := f.read(HASH_BLOCK):
                self._check_cancel(done)
                self.hasher.update(block)
                done += len(block)
                self.meter.report(self.done_before + done, self.final.name, stage="checking")
        return done

    def _fetch_rest(self) -> None:
        delays = iter(RETRY_DELAYS_S)
        while self.offset < self.remote.size:
            self._check_cancel(self.offset)
            start = self.offset
            try:
                self._stream_from_offset()
            except (httpx2.TransportError, _RetryableStatus) as exc:
                if self.offset > start:
                    delays = iter(RETRY_DELAYS_S)  # that connection made progress: start counting again
                delay = next(delays, None)
                if delay is None:
                    raise _explain(exc, self.remote.repo_id, self.remote.filename, "", self.remote.host, self.offset)
                log.warning("download of %s interrupted (%s); resuming in %ss", self.final.name, exc, delay)
                if self.cancel is not None and self.cancel.wait(delay):
                    self._check_cancel(self.offset)
                elif self.cancel is None:
                    time.sleep(delay)
            except HfHubHTTPError as exc:
                raise _explain(exc, self.remote.repo_id, self.remote.filename, "", self.remote.host, self.offset)

    def _stream_from_offset(self) -> None:
        headers = build_hf_headers(token=False, headers=_user_agent())
        headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets in the file
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        with get_session().stream("GET", self.remote.url, headers=headers, timeout=HTTP_TIMEOUT) as response:
            if response.status_code in RETRY_STATUS:
                raise _RetryableStatus(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            if self.offset and response.status_code != 206:
                log.info("server ignored the range request for %s; starting over", self.final.name)
                self._restart()
            elif self.offset and not response.headers.get("Content-Range", "").startswith(f"bytes {self.offset}-"):
                raise _RetryableStatus(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            for chunk in response.iter_bytes():
                self._check_cancel(self.offset)
                chunk = chunk[: self.remote.size - self.offset]
                self._write(chunk)
                self.meter.report(self.done_before + self.offset, self.final.name)
                if self.offset >= self.remote.size:
                    break

    def _write(self, chunk: bytes, *, sync: bool = False) -> None:
        view = memoryview(chunk)
        try:
            while view:
                written = self.file.write(view)
                view = view[written:]
            if sync:
                os.fsync(self.file.fileno())
        except OSError as exc:
            self.file.truncate(self.offset)  # drop the half-written chunk; the part stays consistent
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise DownloadError(
                    f"The disk is full: {self.final.parent} ran out of space after "
                    f"{format_bytes(self.offset)} of {format_bytes(self.remote.size)} of {self.final.name}. "
                    "The partial download is kept; free some space and download again to resume."
                ) from exc
            raise DownloadError(
                f"Could not write {self.part}: {exc.strerror}. The partial download is kept and will resume."
            ) from exc
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def _restart(self) -> None:
        self.file.truncate(0)
        self.offset = 0
        self.hasher = self.remote.new_hasher()

    def _check_cancel(self, kept: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(
                f"The download of {self.final.name} was cancelled; the {format_bytes(kept)} already "
                "downloaded are kept and the next download resumes from there."
            )


# ---------------------------------------------------------------------------------------
# Helpers


class _Meter:
    """Turns byte counts into Progress reports: throttled, with speed over a short window."""

    WINDOW_S = 3.0

    def __init__(self, total: int, callback: ProgressCallback | None):
        self.total = total
        self.callback = callback
        self.samples: deque[tuple[float, int]] = deque()
        self.last_report = 0.0

    def report(self, downloaded: int, filename: str, *, stage: str = "downloading", force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if stage == "downloading":
            self.samples.append((now, downloaded))
            while len(self.samples) > 2 and now - self.samples[0][0] > self.WINDOW_S:
                self.samples.popleft()
        if not force and downloaded < self.total and now - self.last_report < PROGRESS_INTERVAL_S:
            return
        self.last_report = now
        speed = 0.0
        if stage == "downloading" and len(self.samples) >= 2:
            (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
            speed = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        eta = (self.total - downloaded) / speed if speed > 0 else None
        self.callback(Progress(downloaded, self.total, speed, eta, filename, stage))


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"Not enough disk space for {what}: it needs {format_bytes(needed)} but only "
            f"{format_bytes(free)} is free in {folder}. Free some space and try again."
        )


def _place_copy(src: Path, dest: Path) -> None:
    """Put `src` at `dest` atomically: hard link if possible, else copy via a hidden temporary."""
    if dest.exists():
        if os.path.samefile(src, dest) or _same_bytes(src, dest):
            return
        raise ModelFileError(
            f"A different model named {dest.name} is already in {dest.parent}; rename your file and import it again."
        )
    tmp = dest.with_name(f".{dest.name}.importing")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        size = src.stat().st_size
        free = shutil.disk_usage(dest.parent).free
        if size > free:
            raise ModelFileError(
                f"Not enough disk space to import {src.name}: it needs {format_bytes(size)} but only "
                f"{format_bytes(free)} is free in {dest.parent}."
            ) from None
        try:
            shutil.copyfile(src, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ModelFileError(f"Could not copy {src.name} into {dest.parent}: {exc.strerror}.") from exc
    os.replace(tmp, dest)


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return _sha256(a) == _sha256(b)


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def format_bytes(n: float) -> str:
    """Bytes for people: 512 B, 3.4 MB, 4.68 GB (decimal units, as the hub shows sizes)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"
