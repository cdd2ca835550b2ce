"""A model's memory plan with its draft model beside it (speculative decoding).

The catalog pairs the big distills with a small draft of their tokenizer (models.json "draft").
With drafting on (settings.draft == "auto") the engine loads that draft beside the model when it
is downloaded (app/core/speculative.py: paired_draft_path, open_drafter), so the memory a model
needs is its own plus the draft's. This is the one place that plans the two together for what
the window shows; it plans the draft as the engine loads it: the model's context, an f16 KV
cache, every layer on the GPU when the model uses the GPU, else on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.catalog import Catalog, CatalogModel, Quant
from app.core.hardware import HardwareInfo
from app.core.sizing import Plan, plan


@dataclass(frozen=True)
class DraftPlan:
    """The model's plan and its draft's, side by side."""

    model: Plan
    draft: Plan
    draft_label: str  # "1.5B draft"
    downloaded: bool  # the draft's file is in the models folder: it loads with the model
    fits_beside: bool  # both fit this computer's memory together (else the engine drafts from the text)

    @property
    def model_bytes(self) -> int:
        return self.model.gpu_bytes + self.model.ram_bytes

    @property
    def draft_bytes(self) -> int:
        """The draft's weights, KV cache at the model's context, and runtime buffers."""
        return self.draft.gpu_bytes + self.draft.ram_bytes

    def text(self) -> str:
        """'uses about 9.4 GB + 1.3 GB for the 1.5B draft'; not downloaded: 'uses about 9.4 GB (the 1.5B
        draft would add 1.3 GB)'; too much for both: 'uses about 9.4 GB (no room beside it for the 1.5B
        draft's 1.3 GB)'."""
        from app.core.downloads import format_bytes  # (here: the engine's import of this module stays light)

        own, extra = format_bytes(self.model_bytes), format_bytes(self.draft_bytes)
        if not self.fits_beside:
            return f"uses about {own} (no room beside it for the {self.draft_label}'s {extra})"
        if self.downloaded:
            return f"uses about {own} + {extra} for the {self.draft_label}"
        return f"uses about {own} (the {self.draft_label} would add {extra})"


def paired_draft(model: CatalogModel | None, catalog: Catalog | None) -> CatalogModel | None:
    """The catalog model that drafts for `model`, if the catalog pairs one."""
    if model is None or catalog is None or not model.draft:
        return None
    return next((m for m in catalog if m.id.lower() == model.draft.lower()), None)


def _draft_quant(draft: CatalogModel, models_dir: Path | None) -> tuple[Quant, bool]:
    """The draft's file the engine would open (the order of speculative.paired_draft_path:
    Q4_K_M, then the smallest), downloaded or not."""
    quants = sorted(draft.quants, key=lambda q: (q.name != "Q4_K_M", q.size_bytes))
    if models_dir is not None:
        for quant in quants:
            if (Path(models_dir) / quant.file.name).is_file():
                return quant, True
    return quants[0], False


def plan_with_draft(model_plan: Plan, model: CatalogModel | None, catalog: Catalog | None,
                    models_dir: Path | None, hw: HardwareInfo | None) -> DraftPlan | None:
    """`model_plan` with the draft the catalog pairs with `model`; None when there is none (or the
    model does not run here at all). Callers ask only while drafting is on."""
    draft = paired_draft(model, catalog)
    if draft is None or model_plan.fit == "too_big":
        return None
    quant, downloaded = _draft_quant(draft, models_dir)
    draft_plan = plan_draft(draft, model_plan.n_ctx, model_plan.n_gpu_layers > 0, hw, quant=quant)
    from app.core.speculative import drafter_label  # "draft 1.5B", as the status bar names it

    label = drafter_label(quant.file.name).removeprefix("draft ") + " draft"
    return DraftPlan(model_plan, draft_plan, label, downloaded, fits_beside(model_plan, draft_plan, hw))


def plan_draft(draft, n_ctx: int, on_gpu: bool, hw: HardwareInfo | None, quant: Quant | None = None) -> Plan:
    """The draft's plan as the engine loads it (speculative._open_model_drafter): the model's
    context, an f16 KV cache, every layer on the GPU when the model uses the GPU, else on the CPU.
    `draft`: a catalog model (with `quant`) or the draft file's ModelSummary."""
    return plan(draft, quant=quant, n_ctx=n_ctx, kv_type="f16", n_gpu_layers=-1 if on_gpu else 0, hw=hw)


def fits_beside(model: Plan, draft: Plan, hw: HardwareInfo | None) -> bool:
    """Whether the two fit this computer's memory together (see room_shortfall)."""
    return room_shortfall(model, draft, hw) is None


def room_shortfall(model: Plan, draft: Plan, hw: HardwareInfo | None) -> str | None:
    """Why the two do not fit this computer's memory together (the end of a sentence), or None.
    The engine checks this when it opens the draft (speculative._check_room): RAM, and GPU memory
    when the model uses the GPU, against the totals. (Each plan counts its own runtime buffers, so
    this errs on the side of caution.)"""
    if hw is None:
        return None
    gb = 1024**3
    if hw.ram_total_bytes and model.ram_bytes + draft.ram_bytes > hw.ram_total_bytes:
        return (f"with it the two models need about {(model.ram_bytes + draft.ram_bytes) / gb:.1f} GB "
                f"of memory and this computer has {hw.ram_total_bytes / gb:.1f} GB.")
    vram = sum(g.memory_total_bytes for g in hw.usable_gpus)
    if model.n_gpu_layers > 0 and vram and model.gpu_bytes + draft.gpu_bytes > vram:
        return (f"with it the two models need about {(model.gpu_bytes + draft.gpu_bytes) / gb:.1f} GB "
                f"of GPU memory and the GPU has {vram / gb:.1f} GB.")
    return None
