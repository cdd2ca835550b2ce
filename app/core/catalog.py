"""The models Ponder offers for download (`models.json` at the repository root).

Each entry names a Hugging Face GGUF repository, the files of each quantisation with their
sizes, and the architecture numbers the memory planner needs before anything is downloaded.
`load_catalog()` validates the whole file and raises `CatalogError` naming the entry and field
that is wrong, so a bad edit never surfaces later as a KeyError in the middle of a download.
"""

from __future__ import annotations

import json
import re
import site
import sys
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import CatalogError

SCHEMA_VERSION = 1
CATALOG_NAME = "models.json"
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PART_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class ModelFile:
    path: str  # inside the repository, e.g. "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf"
    size_bytes: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Quant:
    name: str  # "Q4_K_M"
    bits: float  # nominal bits per weight: the planner never goes below 2 and prefers 4 or more
    files: tuple[ModelFile, ...]  # one, or every part of a split GGUF in order

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def file(self) -> ModelFile:
        """The file llama.cpp opens (the first part of a split model)."""
        return self.files[0]

    @property
    def dynamic(self) -> bool:
        """Unsloth's dynamic quants ("UD-..."): the routed experts at 1.6-2.5 bits, attention, shared
        experts and the dense layers kept at 4-6 bits, so the nominal bits undersell the file. The
        planner accepts them where it otherwise wants 4 bits (the full R1 exists only so)."""
        return self.name.upper().startswith("UD-")


@dataclass(frozen=True)
class Architecture:
    arch: str
    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int  # per-head size of a cached key
    head_dim_v: int  # per-head size of a cached value
    vocab_size: int
    n_ctx_train: int
    n_expert: int | None = None
    n_expert_used: int | None = None
    # The files carry Multi-head Latent Attention metadata (deepseek2 attention.key_length_mla and
    # value_length_mla): n_head_kv, head_dim and head_dim_v are then the file's own (1, kv_lora_rank +
    # rope dim, kv_lora_rank) and llama.cpp keeps no V cache (docs/sizing.md).
    mla: bool = False
    # Mixture of experts: the routed experts' width, the dense layers before the first MoE layer and
    # the shared experts (DeepSeek-V3/R1: 2048, 3, 1). The planner sizes the experts-in-RAM placement
    # from them before a file exists.
    n_ff_exp: int | None = None
    n_layer_dense_lead: int = 0
    n_expert_shared: int = 0

    @property
    def expert_params(self) -> int:
        """Parameters of the routed experts (gate, up and down of every expert in every MoE layer)."""
        if not (self.n_expert and self.n_ff_exp):
            return 0
        return (self.n_layers - self.n_layer_dense_lead) * self.n_expert * 3 * self.n_embd * self.n_ff_exp


@dataclass(frozen=True)
class CatalogModel:
    id: str
    name: str
    short_name: str
    repo: str
    description: str
    license: str
    base_model: str
    reasoning: bool
    params_b: float
    active_params_b: float | None  # mixture of experts: parameters read per token
    tier: int  # reasoning quality rank, higher is better
    architecture: Architecture
    quants: tuple[Quant, ...]
    # The tokenizer family: models of one family can share a speculative draft (the draft's tokens
    # must be the target's). R1-0528-Qwen3-8B's is its own, so it drafts with none of the distills.
    tokenizer: str | None = None
    # The catalog model that drafts for this one (speculative decoding, app/core/speculative.py):
    # the smallest of its tokenizer family, offered with a download of the 14B, 32B or 70B.
    draft: str | None = None
    # The model's own prompt guidance (app/core/prompt.py applies it, `prompt_rules`): the January R1
    # family wants no system prompt and a forced "<think>\n"; R1-0528 takes a system prompt and thinks
    # without being forced.
    system_prompt: bool = False
    force_think: bool = True
    notes: str = ""  # what the entry rests on, and which of its numbers are not confirmed
    unconfirmed: tuple[str, ...] = ()  # fields taken from memory of public listings, not checked

    def can_share_draft(self, other: CatalogModel) -> bool:
        """Whether one of the two can draft tokens for the other (same tokenizer family)."""
        return self.tokenizer is not None and self.tokenizer == other.tokenizer

    def quant(self, name: str) -> Quant:
        for quant in self.quants:
            if quant.name.lower() == name.lower():
                return quant
        known = ", ".join(q.name for q in self.quants)
        raise CatalogError(f"{self.short_name} has no {name} file; choose one of {known}.")

    def to_dict(self) -> dict:
        return {
            "id": self.id, "name": self.name, "short_name": self.short_name, "repo": self.repo,
            "description": self.description, "license": self.license, "reasoning": self.reasoning,
            "params_b": self.params_b, "tier": self.tier, "tokenizer": self.tokenizer,
            "system_prompt": self.system_prompt, "force_think": self.force_think, "notes": self.notes,
            "unconfirmed": list(self.unconfirmed),
            "quants": [{"name": q.name, "bits": q.bits, "size_bytes": q.size_bytes,
                        "files": [f.path for f in q.files]} for q in self.quants],
        }


@dataclass(frozen=True)
class Catalog:
    schema_version: int
    models: tuple[CatalogModel, ...]
    path: Path | None = None

    def __iter__(self):
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def get(self, model_id: str) -> CatalogModel:
        for model in self.models:
            if model.id.lower() == model_id.lower():
                return model
        known = ", ".join(m.id for m in self.models)
        raise CatalogError(f"There is no model {model_id!r} in the catalog; choose one of {known}.")

    def resolve(self, spec: str, default_quant: str = "Q4_K_M") -> tuple[CatalogModel, Quant]:
        """'r1-distill-qwen-7b:Q8_0' (or just the id, for `default_quant`) → (model, quant)."""
        model_id, _, quant = spec.partition(":")
        model = self.get(model_id.strip())
        return model, model.quant(quant.strip() or default_quant)

    def find_file(self, file_name: str) -> tuple[CatalogModel, Quant] | None:
        """The catalog entry a downloaded file (any part) belongs to, by file name."""
        base = Path(file_name).name
        for model in self.models:
            for quant in model.quants:
                if any(f.name == base for f in quant.files):
                    return model, quant
        return None


def catalog_candidates() -> list[Path]:
    """Where models.json may be, in order. One file in the repository, no copies:
    - a PyInstaller bundle (`datas=[("models.json", ".")]`) unpacks it into sys._MEIPASS;
    - other frozen builds keep it next to the executable;
    - a source checkout has it at the repository root, next to app/;
    - a wheel installs it as data into <prefix>/share/ponder/ (or the user base's)."""
    candidates = []
    if getattr(sys, "frozen", False):
        bundle = getattr(sys, "_MEIPASS", None)
        if bundle:
            candidates.append(Path(bundle) / CATALOG_NAME)
        candidates.append(Path(sys.executable).resolve().parent / CATALOG_NAME)
    candidates.append(Path(__file__).resolve().parents[2] / CATALOG_NAME)
    candidates.append(Path(sys.prefix) / "share" / "ponder" / CATALOG_NAME)
    if site.USER_BASE:  # `pip install --user`
        candidates.append(Path(site.USER_BASE) / "share" / "ponder" / CATALOG_NAME)
    return candidates


def default_catalog_path() -> Path:
    candidates = catalog_candidates()
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]  # named in the "missing" error


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate models.json (by default the one shipped with Ponder)."""
    path = Path(path) if path is not None else default_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"The model catalog {path} is missing; reinstall Ponder to restore it.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"The model catalog {path} could not be read ({exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"The model catalog {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    return parse_catalog(data, source=str(path), path=path)


def parse_catalog(data, source: str = CATALOG_NAME, path: Path | None = None) -> Catalog:
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the top level must be an object with 'schema_version' and 'models'.")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CatalogError(f"{source}: 'schema_version' must be an integer.")
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"{source} has schema version {version}, but this Ponder reads version {SCHEMA_VERSION}; update Ponder."
        )
    if version < 1:
        raise CatalogError(f"{source}: 'schema_version' {version} is not a valid version.")
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{source}: 'models' must be a non-empty list.")
    models, seen = [], set()
    for index, entry in enumerate(entries):
        model = _parse_model(entry, index, source)
        if model.id.lower() in seen:
            raise CatalogError(f"{source}: model id {model.id!r} appears twice.")
        seen.add(model.id.lower())
        models.append(model)
    by_id = {m.id.lower(): m for m in models}
    for model in models:  # a draft must be in the catalog and share the model's tokenizer
        draft = by_id.get((model.draft or "").lower())
        if model.draft and (draft is None or not model.can_share_draft(draft)):
            raise CatalogError(f"{source}: model {model.id!r}: 'draft' must name a catalog model with the same "
                               f"tokenizer, not {model.draft!r}.")
    return Catalog(schema_version=version, models=tuple(models), path=path)


class _Entry:
    """Typed field access that names the entry and field in every error."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise CatalogError(f"{where} must be an object.")
        self.data, self.where = data, where

    def _fail(self, key: str, wanted: str):
        value = self.data.get(key, "<missing>")
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        raise CatalogError(f"{self.where}: field '{key}' must be {wanted} (got {shown}).")

    def text(self, key: str, pattern: re.Pattern | None = None) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip() or (pattern and not pattern.match(value)):
            self._fail(key, "a non-empty string" if pattern is None else f"text matching {pattern.pattern}")
        return value

    def integer(self, key: str, optional: bool = False) -> int | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            self._fail(key, "a positive integer")
        return value

    def number(self, key: str, optional: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            self._fail(key, "a positive number")
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            self._fail(key, "true or false")
        return value

    def items(self, key: str) -> list:
        value = self.data.get(key)
        if not isinstance(value, list) or not value:
            self._fail(key, "a non-empty list")
        return value


def _parse_model(data, index: int, source: str) -> CatalogModel:
    label = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else f"#{index + 1}"
    e = _Entry(data, f"{source}: model {label!r}")
    model_id = e.text("id", re.compile(r"^[a-z0-9][a-z0-9._-]*$"))
    arch = _Entry(data.get("architecture"), f"{e.where}: field 'architecture'")
    architecture = Architecture(
        arch=arch.text("arch"),
        n_layers=arch.integer("n_layers"),
        n_embd=arch.integer("n_embd"),
        n_ff=arch.integer("n_ff"),
        n_head=arch.integer("n_head"),
        n_head_kv=arch.integer("n_head_kv"),
        head_dim=arch.integer("head_dim"),
        head_dim_v=arch.integer("head_dim_v"),
        vocab_size=arch.integer("vocab_size"),
        n_ctx_train=arch.integer("n_ctx_train"),
        n_expert=arch.integer("n_expert", optional=True),
        n_expert_used=arch.integer("n_expert_used", optional=True),
        mla=arch.boolean("mla") if "mla" in arch.data else False,
        n_ff_exp=arch.integer("n_ff_exp", optional=True),
        n_layer_dense_lead=arch.integer("n_layer_dense_lead", optional=True) or 0,
        n_expert_shared=arch.integer("n_expert_shared", optional=True) or 0,
    )
    if architecture.n_head_kv > architecture.n_head:
        arch._fail("n_head_kv", f"at most n_head ({architecture.n_head})")
    quants, names = [], set()
    for q_index, q_data in enumerate(e.items("quants")):
        quant = _parse_quant(q_data, q_index, e.where)
        if quant.name.lower() in names:
            raise CatalogError(f"{e.where}: quantisation {quant.name} appears twice.")
        names.add(quant.name.lower())
        quants.append(quant)
    params = e.number("params_b")
    active = e.number("active_params_b", optional=True)
    if active is not None and active > params:
        e._fail("active_params_b", f"at most params_b ({params:g})")
    reasoning = e.boolean("reasoning")
    unconfirmed = data.get("unconfirmed", [])
    if not isinstance(unconfirmed, list) or not all(isinstance(u, str) and u.strip() for u in unconfirmed):
        e._fail("unconfirmed", "a list of field names or short notes")
    return CatalogModel(
        id=model_id,
        name=e.text("name"),
        short_name=e.text("short_name"),
        repo=e.text("repo", _REPO_RE),
        description=e.text("description"),
        license=e.text("license"),
        base_model=e.text("base_model"),
        reasoning=reasoning,
        params_b=params,
        active_params_b=active,
        tier=e.integer("tier"),
        architecture=architecture,
        quants=tuple(sorted(quants, key=lambda q: q.bits)),
        tokenizer=e.text("tokenizer") if "tokenizer" in e.data else None,
        draft=e.text("draft") if "draft" in e.data else None,
        system_prompt=e.boolean("system_prompt") if "system_prompt" in e.data else False,
        force_think=e.boolean("force_think") if "force_think" in e.data else reasoning,
        notes=e.text("notes") if "notes" in e.data else "",
        unconfirmed=tuple(unconfirmed),
    )


def _parse_quant(data, index: int, where: str) -> Quant:
    label = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else f"#{index + 1}"
    q = _Entry(data, f"{where}: quantisation {label!r}")
    name = q.text("name")
    bits = q.number("bits")
    if bits < 1 or bits > 32:
        q._fail("bits", "between 1 and 32")
    files = []
    for f_index, f_data in enumerate(q.items("files")):
        f = _Entry(f_data, f"{q.where}: file #{f_index + 1}")
        path = f.text("path", re.compile(r"^[^/\\][^\\]*\.gguf$"))
        if ".." in path.split("/"):
            f._fail("path", "a path inside the repository")
        files.append(ModelFile(path=path, size_bytes=f.integer("size_bytes")))
    _check_parts(files, q)
    return Quant(name=name, bits=bits, files=tuple(files))


def _check_parts(files: list[ModelFile], q: _Entry) -> None:
    """A split GGUF lists every part, numbered 1..N of N, in order (llama.cpp opens part 1
    and finds the others by name)."""
    if len(files) == 1 and not _PART_RE.search(files[0].path):
        return
    for number, file in enumerate(files, 1):
        match = _PART_RE.search(file.path)
        if match and int(match.group(2)) != len(files):
            raise CatalogError(
                f"{q.where}: lists {len(files)} file(s), but {file.path!r} is one of {int(match.group(2))} parts; "
                f"list every part of a split model."
            )
        if not match or int(match.group(1)) != number:
            raise CatalogError(
                f"{q.where}: file {file.path!r} should be part {number:05d}-of-{len(files):05d} of a split model."
            )
