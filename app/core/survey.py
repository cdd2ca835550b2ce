"""What this computer has and can run: the survey behind the welcome page and the model manager.

`survey()` gathers, without any network access: the hardware, the catalog's recommendation,
the models already in the models folder (each planned from its own GGUF metadata) and the
downloads that stopped part way and can resume. It is plain data and slow enough (a hardware
probe, a header read per model) that the window runs it off the GUI thread.

`DownloadRequest` names a model's files on the hub; a partial download is one, and so is
each download the window starts (app/ui/downloads.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from app.core.catalog import Catalog, CatalogModel, Quant, load_catalog
from app.core.downloads import local_models, model_parts, partial_downloads
from app.core.errors import PonderError
from app.core.hardware import HardwareInfo, probe
from app.core.modelfile import inspect_gguf
from app.core.sizing import TARGET_N_CTX, Plan, Recommendation, best_placement, recommend


@dataclass(frozen=True)
class DownloadRequest:
    """What to download: every file of one model (one GGUF, or all parts of a split one)."""

    repo: str
    files: tuple[str, ...]  # paths inside the repository, first part first
    label: str  # for people: "R1-Distill-Qwen-7B Q4_K_M"
    size_bytes: int = 0  # as the catalog lists it (the hub's exact size is checked when it runs)
    model_id: str | None = None
    quant: str | None = None

    @classmethod
    def for_catalog(cls, model: CatalogModel, quant: Quant) -> DownloadRequest:
        return cls(repo=model.repo, files=tuple(f.path for f in quant.files), label=f"{model.short_name} {quant.name}",
                   size_bytes=quant.size_bytes, model_id=model.id, quant=quant.name)

    @property
    def file_names(self) -> list[str]:
        """The names the files get in the models folder (flat, as llama.cpp finds split parts)."""
        return [PurePosixPath(f).name for f in self.files]


@dataclass
class LocalModel:
    """A complete model in the models folder."""

    path: Path  # the file llama.cpp opens (first part of a split model)
    size_bytes: int  # all parts
    name: str
    quant: str
    plan: Plan | None  # None when the file is not a usable GGUF
    error: str | None = None  # why it is not usable

    @property
    def fit(self) -> str | None:
        return self.plan.fit if self.plan is not None else None


@dataclass
class PartialDownload:
    """A download that stopped part way; starting it again resumes it."""

    request: DownloadRequest
    downloaded: int  # bytes on disk, all parts together
    total: int


@dataclass
class MachineSurvey:
    hardware: HardwareInfo
    catalog: Catalog | None
    recommendation: Recommendation | None
    catalog_error: str | None  # the CatalogError sentence when models.json is unusable
    local: list[LocalModel] = field(default_factory=list)
    partials: list[PartialDownload] = field(default_factory=list)
    n_ctx: int = TARGET_N_CTX
    started_at: float = 0.0  # time.monotonic() when it began: a newer survey wins
    seconds: float = 0.0  # how long it took

    def local_model(self, request: DownloadRequest) -> LocalModel | None:
        first = request.file_names[0]
        return next((m for m in self.local if m.path.name == first), None)

    def partial(self, request: DownloadRequest) -> PartialDownload | None:
        return next((p for p in self.partials if p.request.files == request.files), None)

    def catalog_plan(self, model: CatalogModel, quant: Quant) -> Plan:
        return plan_catalog_quant(self.hardware, model, quant)


def survey(models_dir: Path, n_ctx: int, hardware: HardwareInfo | None = None,
           catalog_path: Path | None = None) -> MachineSurvey:
    """Everything the welcome page and the manager show, without any network access.
    `hardware`: a probe from earlier (a loaded model takes GPU memory a new probe would miss)."""
    started = time.monotonic()
    hw = hardware if hardware is not None else probe()
    catalog, rec, catalog_error = None, None, None
    try:
        catalog = load_catalog(catalog_path)
        rec = recommend(hw, catalog)
    except PonderError as exc:
        catalog_error = str(exc)
    local = [_local_model(path, hw, n_ctx, catalog) for path in local_models(models_dir)]
    result = MachineSurvey(hardware=hw, catalog=catalog, recommendation=rec, catalog_error=catalog_error,
                           local=local, partials=_partials(Path(models_dir), catalog), n_ctx=n_ctx,
                           started_at=started)
    result.seconds = time.monotonic() - started
    return result


def plan_catalog_quant(hw: HardwareInfo, model: CatalogModel, quant: Quant) -> Plan:
    """How a catalog file would run here, as the recommendation plans it: a 16k context (up to
    the model's own), f16 KV unless an 8-bit cache puts more layers on the GPU."""
    return best_placement(model, hw=hw, quant=quant, n_ctx=min(TARGET_N_CTX, model.architecture.n_ctx_train))


def _local_model(path: Path, hw: HardwareInfo, n_ctx: int, catalog: Catalog | None) -> LocalModel:
    size = sum(p.stat().st_size for p in model_parts(path) if p.is_file())
    try:
        summary = inspect_gguf(path)
    except PonderError as exc:
        return LocalModel(path, size, path.stem, "", None, str(exc))
    # Planned as the engine will load it: the context from the settings, KV type chosen as the engine does.
    p = best_placement(summary, hw=hw, n_ctx=min(n_ctx, summary.n_ctx_train))
    known = catalog.find_file(path.name) if catalog is not None else None
    name = known[0].short_name if known else summary.name
    return LocalModel(path, summary.file_size, name, known[1].name if known else p.quant, p)


def _partials(models_dir: Path, catalog: Catalog | None) -> list[PartialDownload]:
    """Downloads that stopped part way, grouped into the models they belong to."""
    found: dict[tuple[str, ...], PartialDownload] = {}
    for partial in partial_downloads(models_dir):
        repo, filename, size = partial.repo_id, partial.filename, partial.size
        known = catalog.find_file(filename) if catalog is not None else None
        if known:
            request = DownloadRequest.for_catalog(*known)
        else:
            name = filename.rsplit("/", 1)[-1]
            request = DownloadRequest(repo=repo, files=(filename,), label=name, size_bytes=size)
        if request.files in found:
            continue
        done = 0
        for name in request.file_names:
            whole, part = models_dir / name, models_dir / f"{name}.part"
            done += whole.stat().st_size if whole.is_file() else part.stat().st_size if part.is_file() else 0
        found[request.files] = PartialDownload(request, done, request.size_bytes or size)
    return list(found.values())
