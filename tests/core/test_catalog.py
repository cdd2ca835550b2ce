"""The shipped models.json passes its schema and matches docs/sizing.md; broken catalogs give an
error that names the entry and field."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest

import app  # noqa: F401
from app.core import catalog as catalog_module
from app.core.catalog import CATALOG_NAME, load_catalog, parse_catalog
from app.core.errors import CatalogError

REPO_ROOT = Path(__file__).resolve().parents[2]
GB = 1e9
GiB = 1024**3

# docs/sizing.md: layers, n_embd, heads, kv heads, head dim, vocab, KV f16 KiB per token, Q4_K_M GB, Q8_0 GB
DISTILLS = {
    "r1-distill-qwen-1.5b": ("qwen2", 28, 1536, 12, 2, 128, 151936, 28, 1.12, 1.89),
    "r1-distill-qwen-7b": ("qwen2", 28, 3584, 28, 4, 128, 152064, 56, 4.68, 8.10),
    "r1-distill-llama-8b": ("llama", 32, 4096, 32, 8, 128, 128256, 128, 4.92, 8.54),
    "r1-distill-qwen-14b": ("qwen2", 48, 5120, 40, 8, 128, 152064, 192, 8.99, 15.70),
    "r1-distill-qwen-32b": ("qwen2", 64, 5120, 40, 8, 128, 152064, 256, 19.84, 34.81),
    "r1-distill-llama-70b": ("llama", 80, 8192, 64, 8, 128, 128256, 320, 42.51, 74.97),
}
COMMON_QUANTS = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]


@pytest.fixture(scope="module")
def shipped():
    return load_catalog()


def _raw() -> dict:
    return json.loads((REPO_ROOT / CATALOG_NAME).read_text())


def test_default_catalog_is_the_models_json_at_the_repository_root(shipped):
    assert shipped.path == REPO_ROOT / CATALOG_NAME
    assert shipped.schema_version == catalog_module.SCHEMA_VERSION


@pytest.mark.parametrize("model_id", DISTILLS)
def test_every_distill_matches_the_design_table(shipped, model_id):
    arch_name, layers, embd, heads, kv_heads, head_dim, vocab, kv_kib, q4_gb, q8_gb = DISTILLS[model_id]
    model = shipped.get(model_id)
    a = model.architecture
    assert (a.arch, a.n_layers, a.n_embd, a.n_head, a.n_head_kv, a.head_dim, a.vocab_size) == (
        arch_name, layers, embd, heads, kv_heads, head_dim, vocab)
    assert 2 * a.n_layers * a.n_head_kv * a.head_dim * 2 == kv_kib * 1024
    assert model.quant("Q4_K_M").size_bytes == pytest.approx(q4_gb * GB, rel=0.01)
    assert model.quant("Q8_0").size_bytes == pytest.approx(q8_gb * GB, rel=0.01)
    assert [q.name for q in model.quants] == COMMON_QUANTS
    sizes = [q.size_bytes for q in model.quants]
    assert sizes == sorted(sizes), "more bits must mean a bigger file"
    assert model.reasoning and model.repo == f"unsloth/{model.name}-GGUF"
    for quant in model.quants:
        for f in quant.files:
            assert f.name.startswith(f"{model.name}-{quant.name}") and f.name.endswith(".gguf")


def test_llama_70b_big_quants_are_split_into_parts(shipped):
    q8 = shipped.get("r1-distill-llama-70b").quant("Q8_0")
    assert [f.path for f in q8.files] == [
        "DeepSeek-R1-Distill-Llama-70B-Q8_0/DeepSeek-R1-Distill-Llama-70B-Q8_0-00001-of-00002.gguf",
        "DeepSeek-R1-Distill-Llama-70B-Q8_0/DeepSeek-R1-Distill-Llama-70B-Q8_0-00002-of-00002.gguf",
    ]
    assert q8.file is q8.files[0]


@pytest.mark.parametrize("quant, parts, gib", [("UD-IQ1_S", 3, 131), ("UD-IQ2_XXS", 4, 183), ("UD-Q2_K_XL", 5, 212)])
def test_full_r1_lists_every_part_of_its_dynamic_quants(shipped, quant, parts, gib):
    model = shipped.get("r1-671b")
    assert model.repo == "unsloth/DeepSeek-R1-GGUF" and model.reasoning
    assert model.active_params_b == 37 and model.params_b == 671
    q = model.quant(quant)
    assert len(q.files) == parts
    assert [f.path for f in q.files] == [
        f"DeepSeek-R1-{quant}/DeepSeek-R1-{quant}-{i:05d}-of-{parts:05d}.gguf" for i in range(1, parts + 1)]
    assert q.size_bytes == pytest.approx(gib * GiB, rel=0.03)
    assert q.bits < 4  # never the default pick, see sizing


def test_schema_of_the_shipped_file(shipped):
    raw = _raw()
    assert raw["schema_version"] == 1
    ids = [m["id"] for m in raw["models"]]
    assert len(ids) == len(set(ids))
    assert set(DISTILLS) | {"r1-671b", "r1-0528-qwen3-8b", "r1-0528", "v3-0324"} == set(ids)
    for entry in raw["models"]:
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", entry["id"])
        for key in ("name", "short_name", "repo", "description", "license", "base_model"):
            assert isinstance(entry[key], str) and entry[key].strip(), (entry["id"], key)
        assert entry["reasoning"] is (entry["id"] != "v3-0324")
        assert len(entry["description"]) < 200 and "\n" not in entry["description"]
        for quant in entry["quants"]:
            assert quant["files"], (entry["id"], quant["name"])
            for f in quant["files"]:
                assert isinstance(f["size_bytes"], int) and f["size_bytes"] > 10**8
    tiers = [shipped.get(i).tier for i in DISTILLS]
    assert tiers == sorted(tiers)


def test_resolve_reads_model_and_quant_from_a_download_spec(shipped):
    model, quant = shipped.resolve("r1-distill-qwen-7b:q8_0")
    assert (model.id, quant.name) == ("r1-distill-qwen-7b", "Q8_0")
    assert shipped.resolve("R1-Distill-Qwen-7B")[1].name == "Q4_K_M"
    with pytest.raises(CatalogError, match="r1-distill-qwen-14b"):
        shipped.resolve("r1-distill-qwen-13b")
    with pytest.raises(CatalogError, match="Q4_K_M"):
        shipped.resolve("r1-distill-qwen-7b:Q9_K")


def test_a_downloaded_part_is_traced_back_to_its_entry(shipped):
    model, quant = shipped.find_file("/models/DeepSeek-R1-UD-IQ1_S-00002-of-00003.gguf")
    assert (model.id, quant.name) == ("r1-671b", "UD-IQ1_S")
    assert shipped.find_file("something-else.gguf") is None


def _broken(mutate) -> dict:
    data = copy.deepcopy(_raw())
    mutate(data)
    return data


def _model(data, model_id):
    return next(m for m in data["models"] if m["id"] == model_id)


def _set(path, value):
    def mutate(data):
        target = _model(data, "r1-distill-qwen-7b")
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


_DELETE = object()


@pytest.mark.parametrize("mutate, expected", [
    (_set(("architecture", "n_layers"), _DELETE), ["r1-distill-qwen-7b", "'architecture'", "'n_layers'", "<missing>"]),
    (_set(("architecture", "n_head_kv"), "four"), ["r1-distill-qwen-7b", "'n_head_kv'", "'four'"]),
    (_set(("architecture", "n_head_kv"), 64), ["r1-distill-qwen-7b", "'n_head_kv'", "at most n_head"]),
    (_set(("quants", 2, "files", 0, "size_bytes"), -5), ["r1-distill-qwen-7b", "'Q4_K_M'", "'size_bytes'", "-5"]),
    (_set(("quants", 2, "files", 0, "path"), "../escape.gguf"), ["'Q4_K_M'", "'path'"]),
    (_set(("quants", 2, "files", 0, "path"), "model.bin"), ["'Q4_K_M'", "'path'", ".gguf"]),
    (_set(("quants", 2, "bits"), 0.5), ["'Q4_K_M'", "'bits'"]),
    (_set(("quants", 2, "name"), "Q2_K"), ["r1-distill-qwen-7b", "Q2_K appears twice"]),
    (_set(("quants",), []), ["r1-distill-qwen-7b", "'quants'", "non-empty list"]),
    (_set(("repo",), "not a repo"), ["r1-distill-qwen-7b", "'repo'"]),
    (_set(("reasoning",), "yes"), ["r1-distill-qwen-7b", "'reasoning'", "true or false"]),
    (_set(("id",), "R1 7B!"), ["'id'"]),
    (_set(("active_params_b",), 100), ["'active_params_b'", "at most params_b"]),
    (lambda d: d["models"].append(copy.deepcopy(d["models"][0])), ["'r1-distill-qwen-1.5b' appears twice"]),
    (lambda d: _model(d, "r1-671b")["quants"][0]["files"].pop(1), ["'UD-IQ1_S'", "lists 2 file(s)", "one of 3 parts"]),
    (lambda d: _model(d, "r1-671b")["quants"][0]["files"].reverse(), ["'UD-IQ1_S'", "should be part 00001-of-00003"]),
    (lambda d: d.update(schema_version=2), ["schema version 2", "update Ponder"]),
    (lambda d: d.update(schema_version="1"), ["'schema_version' must be an integer"]),
    (lambda d: d.update(models={}), ["'models' must be a non-empty list"]),
])
def test_a_broken_catalog_names_the_entry_and_field(tmp_path, mutate, expected):
    path = tmp_path / "models.json"
    path.write_text(json.dumps(_broken(mutate)))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    for fragment in expected:
        assert fragment in str(err.value)


def test_a_catalog_that_is_not_json_says_where(tmp_path):
    path = tmp_path / "models.json"
    path.write_text('{"schema_version": 1,\n  "models": [,]}')
    with pytest.raises(CatalogError, match=r"not valid JSON \(line 2, column"):
        load_catalog(path)


def test_a_missing_catalog_says_to_reinstall(tmp_path):
    with pytest.raises(CatalogError, match="missing; reinstall Ponder"):
        load_catalog(tmp_path / "nope.json")


def test_a_top_level_that_is_not_an_object_is_refused():
    with pytest.raises(CatalogError, match="top level"):
        parse_catalog([1, 2, 3])


def test_a_frozen_app_finds_the_catalog_in_its_bundle(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / CATALOG_NAME).write_text((REPO_ROOT / CATALOG_NAME).read_text())
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert catalog_module.default_catalog_path() == bundle / CATALOG_NAME
    assert len(load_catalog()) == len(_raw()["models"])


def test_an_installed_app_finds_the_catalog_under_share(tmp_path, monkeypatch):
    share = tmp_path / "share" / "ponder"
    share.mkdir(parents=True)
    (share / CATALOG_NAME).write_text((REPO_ROOT / CATALOG_NAME).read_text())
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    # installed: the package sits in site-packages, with no models.json two levels up
    monkeypatch.setattr(catalog_module, "__file__", str(tmp_path / "lib" / "app" / "core" / "catalog.py"))
    assert catalog_module.default_catalog_path() == share / CATALOG_NAME


def test_r1_0528_rules_and_tokenizers(shipped):
    """R1-0528 (and its Qwen3-8B distill) take a system prompt and no forced <think>; the January family
    keeps today's rules; the prompt builder applies the same rules by name; the Qwen3-8B distill's
    tokenizer is its own, so it shares no draft with the Qwen-2.5 distills."""
    from app.core.prompt import prompt_rules

    for model in shipped:
        rules = prompt_rules(model.name)
        if model.reasoning:
            assert (rules.system_prompt, rules.force_think) == (model.system_prompt, model.force_think), model.id
    new = shipped.get("r1-0528-qwen3-8b")
    assert new.architecture.arch == "qwen3" and new.system_prompt and not new.force_think
    assert not new.can_share_draft(shipped.get("r1-distill-qwen-1.5b"))
    assert shipped.get("r1-distill-qwen-1.5b").can_share_draft(shipped.get("r1-distill-qwen-32b"))
    assert shipped.get("r1-0528").architecture.mla and not shipped.get("r1-671b").architecture.mla
    v3 = shipped.get("v3-0324")
    assert not v3.reasoning and not v3.force_think
    for model in (shipped.get("r1-671b"), shipped.get("r1-0528"), v3, new):
        assert model.unconfirmed and model.notes  # what was not confirmed is said in the entry


def test_the_prompt_follows_the_models_own_rules():
    from app.core.prompt import R1_0528_RULES, PromptBuilder

    template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    january = PromptBuilder(template, bos_token="", eos_token="", is_reasoning=True)
    assert january.render(msgs).text == "<|user|>Be brief.\n\nHi<|assistant|><think>\n"
    may = PromptBuilder(template, bos_token="", eos_token="", is_reasoning=True)
    may.rules = R1_0528_RULES
    rendered = may.render(msgs)
    assert rendered.text == "<|system|>Be brief.<|user|>Hi<|assistant|>" and not rendered.opens_thinking
