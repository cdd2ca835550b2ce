"""How much memory a model needs on each device, how many layers fit on the GPU, how fast it
will decode, and which model this machine should download.

Memory, per device, for llama.cpp with flash attention (how Ponder loads models):
- Weights. Each repeating layer lives on the device it is assigned to. `token_embd` always stays
  in system RAM (llama.cpp keeps the input layer on the CPU). The output layer counts as one
  extra, last layer: llama.cpp offloads the *last* n_gpu_layers of the n_layers + 1, so the output
  layer goes first and n_gpu_layers = n_layers + 1 offloads everything; it splits the offloaded
  layers across GPUs in proportion to their memory.
- KV cache: kv_heads × (key length + value length) × bytes per element × n_ctx rounded up to 256,
  per layer, on that layer's device. q8_0 stores 34 bytes per 32 elements. A deepseek2 file with
  Multi-head Latent Attention metadata (key_length_mla/value_length_mla) caches no V: one head of
  kv_lora_rank + rope dim (512 + 64 for DeepSeek-V3/R1); an older one without those keys caches
  128 heads × (192 + 128). Measured against llama.cpp: docs/sizing.md.
- Compute buffer: the largest of the logits (n_ubatch × vocab × 4 bytes, on the output layer's
  device), attention (KQ mask n_ctx × n_ubatch f16 plus activations; without flash attention the
  n_head × n_ctx × n_ubatch f32 scores) and the FFN activations. At n_ubatch 512 the logits win:
  ~297 MiB for a 152k vocabulary; measured: 300-307 MiB (docs/sizing.md). With a partial offload
  llama.cpp also copies the largest CPU-resident weight to the GPU for prompt batches.
- Runtime: 620 MiB per CUDA GPU (the CUDA context once prompt batches and decoding have run; ~520
  MiB right after a load, docs/sizing.md), guesses for ROCm/Vulkan and Metal, and 300 MiB of RAM
  for Python, Qt and llama.cpp's host buffers.
- Margin (GPUs only): 256 MiB + 5% of the GPU's memory, for fragmentation, the display, other
  programs and our own error. It is not part of the predicted use, but a plan fits only with it.
  RAM has no margin of its own: its budget already leaves 25% (at least 3 GB) to the OS.

Speed: decoding one token reads every weight once (the active share for a mixture of experts:
its layers' non-expert weights plus n_expert_used / n_expert of the routed experts' ffn_*_exps
tensors, from a GGUF's tensor table or, before a file exists, from the catalog's architecture with
the non-expert weights at ≥ 4.5 bits) plus the KV cache so far, each from the memory of the device
that holds it:
  seconds/token = Σ devices bytes / (bandwidth × efficiency) + layers × per-layer overhead.
GPU: efficiency 0.54 and 48 µs per layer, fit to the H100 decode rates of the 1.5B/7B/14B Q4_K_M
distills in docs/sizing.md (525/264/147 tok/s; this model says 512/260/139); routed experts on a GPU
at EXPERT_READ_EFFICIENCY of that (a guess, see below). CPU: efficiency 0.6 of min(RAM bandwidth,
25 GB/s per physical core) and 15 µs per layer. A mixture of experts adds 33 µs per layer on a GPU
(routing, gathered experts); routed experts in RAM are read by the CPU at 0.6 of min(RAM bandwidth, 5.8 GB/s
per core) plus a 15 µs hop per layer: both fit to one H200 run of a deepseek2-shaped MoE (GPU_NOTES.md). The
number is llama.cpp's own decode rate early in a reply (1024 tokens of context); Python-side sampling can
deliver less.

Experts in RAM (`plan(..., experts_in_ram=True)`): a mixture of experts' routed experts in system RAM
and every layer's other weights, the output layer and the KV cache on the GPU (llama.cpp's --cpu-moe);
the CPU reads the used experts' share per token. `best_placement` chooses it for a MoE that does not
fit the GPU whole when it fits and beats splitting layers.

Recommendation (`recommend`), designed so that more memory never yields a smaller model:
1. F: the highest-tier model that fits entirely in GPU memory at Q4 or better (or an Unsloth dynamic
   "UD-" quant, whose attention and shared weights stay at 4-6 bits) with a 16k context and decodes
   at ≥ 5 tokens/s; for a mixture of experts that does not fit whole, with its experts in RAM. Its
   quantisation is the highest that still fits and keeps ≥ 15 tokens/s (comfortable for long
   reasoning traces), else the smallest that fits. An f16 KV cache is preferred; an 8-bit one is used
   when that is what makes it fit. The full 671B (deepseek2) counts only at ≥ 8 tokens/s.
2. C: the highest-tier model that runs at Q4_K_M on the CPU alone, within the RAM budget, at
   ≥ 5 tokens/s. A GPU never makes the pick worse than ignoring it: if C outranks F, C's model
   is used with as many layers on the GPU as fit (partial offload).
3. If neither exists, the lightest model that fits at all: Q4_K_M, else Q3_K_M, else Q2_K
   (never below 2 bits), 16k context, else 8k (never less).
Between models of the same tier the higher quantisation, then the smaller footprint wins. Where the
pick is the full 671B, the best distill is named beside it (`Recommendation.runner_up`) with its speed;
where the full model runs here usably but below 8 tokens/s, it is the one named beside the distill.
R1 vs its non-reasoning sibling V3 gets one sentence each. A full model that is too big only because
its catalog entry plans the uncompressed (non-MLA) cache is mentioned: the header read before a
download decides (app/core/downloads.py plan_download).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field

from app.core.catalog import Catalog, CatalogModel, Quant
from app.core.errors import PonderError
from app.core.hardware import GiB, GPUInfo, HardwareInfo

MiB = 1024**2

KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
N_CTX_PAD = 256  # llama.cpp rounds the context up to a multiple of 256 (llama-context.cpp)
DEFAULT_N_UBATCH = 512
TARGET_N_CTX = 16384
MIN_N_CTX = 8192

# CUDA: measured on an H100 (tests/benchmarks/GPU_NOTES.md): 522 MiB right after the load,
# 600-617 MiB once prompt batches and decoding ran (cuBLAS workspace, CUDA graphs).
GPU_RUNTIME_BYTES = {"nvidia": 620 * MiB, "amd": 400 * MiB, "apple": 256 * MiB}
HOST_RUNTIME_BYTES = 300 * MiB
GPU_MARGIN_FIXED = 256 * MiB
GPU_MARGIN_SHARE = 0.05

GPU_EFFICIENCY = 0.54
GPU_LAYER_OVERHEAD_S = 48e-6
CPU_EFFICIENCY = 0.6
CPU_LAYER_OVERHEAD_S = 15e-6
# What one core can pull through llama.cpp's CPU kernels (raw, before CPU_EFFICIENCY). Measured on a
# 2-core AVX-512 EPYC VM: Qwen-1.5B Q4_K_M decoded at 31.7 tok/s, ~33 GB/s read (tests/benchmarks/RESULTS.md).
CPU_GBPS_PER_CORE = 25.0
ASSUMED_CPU_CORES = 8  # a described machine whose cores nobody gave
SPEED_CONTEXT_FILL = 1024
# A machine given as hw=None: one CUDA GPU without a memory limit, at H100 SXM bandwidth.
UNLIMITED_GPU_BANDWIDTH_GBPS = 3350.0

MIN_TOKENS_PER_S = 5.0
# macOS lets the GPU wire 3/4 of a big Mac's memory by default (hardware.apple_gpu_share); `sudo sysctl
# iogpu.wired_limit_mb=N` raises that until the next restart. Plans assume the limit in force (the probe reads
# a raised one; `ponder recommend --gpu-limit-gb` describes one). Where only a raised limit lets the full model
# run, it is offered beside the pick with the command, leaving this much to macOS and the apps.
MACOS_RESERVE_BYTES = 16 * GiB
# The full 671B is the pick only at this speed or more (a 2000-token reasoning trace in ~4 minutes);
# slower, it is offered beside the distill the machine runs well.
FULL_MODEL_MIN_TOKENS_PER_S = 8.0
COMFORT_TOKENS_PER_S = 15.0
PREFERRED_MIN_BITS = 4
ABSOLUTE_MIN_BITS = 2
# Bits per weight a catalog plan assumes for a MoE's non-expert weights (attention, shared experts, dense
# layers): llama.cpp's K-quant mixes and Unsloth's dynamic quants keep them at 4-6 bits.
NON_EXPERT_MIN_BPW = 4.5
# On a GPU, routed experts are read through ggml's mul_mat_id (the picked experts gathered per token,
# many small matrices), which reaches less of the bandwidth than a dense matrix. Not measured here:
# chosen so that the full R1 UD-IQ1_S on an M2 Ultra (800 GB/s) decodes at 10-15 tokens/s, what people
# report; tests/benchmarks/gpu/bench_experts_in_ram.py measures it. The CPU's own rate already is
# llama.cpp's quantised dot products, experts or not.
EXPERT_READ_EFFICIENCY = 0.35
# A mixture of experts' layer costs a GPU more per token than its bytes: the router (top-k, softmax), the
# gathered experts (mul_mat_id) and deepseek2's absorbed-MLA matmuls are more and smaller kernels. Fit to one
# measurement: a 12-layer deepseek2-shaped MoE (2.7 GB, Q4_K_M) all on an H200 decoded at 692 tok/s, 949
# planned without this term (tests/benchmarks/GPU_NOTES.md "Experts in RAM"). ~0.4 ms of that model's 1.4 ms
# per token; ~2 ms of the full R1's ~80 ms.
GPU_MOE_LAYER_OVERHEAD_S = 33e-6  # per layer of a MoE (its dense leading layers averaged in)
# Routed experts in RAM (experts in RAM), read by the CPU for a GPU: per core, raw (× CPU_EFFICIENCY, and never
# above the RAM's bandwidth), and per layer whose experts are there, the hop (the GPU hands the layer's input to
# the CPU and waits for its output: two synchronisations and a CPU graph split). Fit to the same H200 run (16
# cores, 138 tok/s measured with every layer's experts in RAM, 84.8 planned at the dense 25 GB/s per core and
# a 50 GB/s RAM guess): one measurement cannot tell the per-core rate from the hop, so the hop keeps the CPU's
# per-layer overhead below and the rate takes the rest, a conservative split for big models, whose
# per-token bytes dwarf the hops.
EXPERTS_IN_RAM_GBPS_PER_CORE = 5.8  # 55.6 GB/s effective on 16 cores
EXPERTS_IN_RAM_LAYER_OVERHEAD_S = 15e-6
# Attention activations per head and token, as a multiple of (key + value length): fitted to llama.cpp's
# compute buffer on tiny deepseek2 files with 4 and 8 heads, MLA and not (1.34-1.55 measured).
ATTENTION_ACTIVATION_FACTOR = 1.5
# Share of one layer's weights in its largest matrix (an FFN projection: 22-29% in the distills).
LARGEST_LAYER_TENSOR_SHARE = 0.3
# Share of one layer's routed experts in its largest expert tensor (gate, up, down: down is often a
# bit or two wider in the dynamic quants).
LARGEST_EXPERT_TENSOR_SHARE = 0.4

# GGUF general.file_type (llama_ftype) → quantisation name.
GGUF_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}


def _embd_output_bpw(quant: str) -> tuple[float, float]:
    """Bits per weight of token_embd and output.weight in a llama.cpp quantisation: the
    embeddings take the file type's base type, the output layer Q6_K (Q8_0/F16 files: their own)."""
    q = quant.upper().removeprefix("UD-")
    if q == "F32":
        return 32.0, 32.0
    if q in ("F16", "BF16"):
        return 16.0, 16.0
    if q.startswith("Q8"):
        return 8.5, 8.5
    for prefix, bpw in (("Q6", 6.5625), ("Q5", 5.5), ("Q4", 4.5), ("IQ4", 4.5), ("Q3", 3.4375),
                        ("IQ3", 3.4375), ("Q2", 2.625)):
        if q.startswith(prefix):
            return bpw, 6.5625
    return 4.5, 6.5625  # IQ1/IQ2 and other low-bit files keep embeddings at about Q4_K


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs about one model file. Build it with `from_catalog` (before a
    download) or `from_summary` (from a GGUF's metadata, `app.core.modelfile.inspect_gguf`)."""

    name: str
    quant: str
    file_size: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    vocab_size: int
    n_ff: int
    n_ctx_train: int | None = None
    active_ratio: float = 1.0  # share of layer weights read per token (mixture of experts)
    model_id: str | None = None
    mla: bool = False  # Multi-head Latent Attention file: K only (n_head_kv × head_dim_k), no V cache
    # Mixture of experts: the routed experts' bytes in the file (every blk.*.ffn_*_exps tensor), the
    # part that "experts in RAM" keeps in system RAM, and how many of n_expert each token uses.
    expert_bytes: int = 0
    n_expert: int = 0
    n_expert_used: int = 0

    @classmethod
    def from_catalog(cls, model: CatalogModel, quant: str | Quant = "Q4_K_M") -> ModelShape:
        q = quant if isinstance(quant, Quant) else model.quant(quant)
        a = model.architecture
        active = (model.active_params_b / model.params_b) if model.active_params_b else 1.0
        shape = cls(name=model.short_name, quant=q.name, file_size=q.size_bytes, n_layers=a.n_layers,
                    n_embd=a.n_embd, n_head=a.n_head, n_head_kv=a.n_head_kv, head_dim_k=a.head_dim,
                    head_dim_v=a.head_dim_v, vocab_size=a.vocab_size, n_ff=a.n_ff,
                    n_ctx_train=a.n_ctx_train, active_ratio=active, model_id=model.id, mla=a.mla,
                    n_expert=a.n_expert or 0, n_expert_used=a.n_expert_used or 0)
        if not (a.expert_params and a.n_expert_used):
            return shape
        # Before a file exists: the non-expert layer weights (attention, norms, router, shared experts,
        # dense leading layers) at the file's bits, at least NON_EXPERT_MIN_BPW (dynamic quants keep
        # them at 4-6 bits), and the rest of the layers' bytes are the routed experts.
        layer_total = shape.layer_bytes * a.n_layers
        embd_params = 2 * a.vocab_size * a.n_embd
        non_expert_params = max(0.0, model.params_b * 1e9 - a.expert_params - embd_params)
        non_expert = min(layer_total, non_expert_params * max(q.bits, NON_EXPERT_MIN_BPW) / 8)
        experts = int(layer_total - non_expert)
        active = (non_expert + experts * a.n_expert_used / a.n_expert) / layer_total if layer_total else 1.0
        return dataclasses.replace(shape, expert_bytes=experts, active_ratio=active)

    @classmethod
    def from_summary(cls, summary) -> ModelShape:
        """From `app.core.modelfile.ModelSummary` (file_size covers every part of a split model).
        Optional numbers it lacks (n_ff 0, head_dim_v, experts) get the usual defaults."""
        n_embd, n_head = int(summary.n_embd), int(summary.n_head)
        n_head_kv = int(getattr(summary, "n_head_kv", None) or n_head)
        head_dim = int(getattr(summary, "head_dim", None) or n_embd // n_head)
        file_type = getattr(summary, "file_type", None)  # a label ("Q4_K_M") or llama_ftype number
        quant = file_type if isinstance(file_type, str) and file_type != "unknown" else GGUF_FILE_TYPES.get(file_type)
        if quant is None:  # unknown type: name it by its average bits per weight
            n_params = getattr(summary, "n_params", None)
            quant = f"{summary.file_size * 8 / n_params:.1f} bpw" if n_params else "unknown"
        n_expert = getattr(summary, "n_expert", None)
        n_expert_used = getattr(summary, "n_expert_used", None)
        layer_tensor_bytes = getattr(summary, "layer_tensor_bytes", 0) or 0
        expert_tensor_bytes = getattr(summary, "expert_tensor_bytes", 0) or 0
        if n_expert and n_expert_used and layer_tensor_bytes and expert_tensor_bytes:
            # From the file's tensors: every non-expert weight of a layer (attention, norms, router,
            # shared experts, dense leading layers) plus the used share of the routed experts.
            unused = expert_tensor_bytes * (1 - n_expert_used / n_expert)
            active = (layer_tensor_bytes - unused) / layer_tensor_bytes
        elif n_expert and n_expert_used:  # roughly: the used experts' share plus attention and shared weights
            active = min(1.0, n_expert_used / n_expert + 0.03)
        else:
            active = 1.0
        path = getattr(summary, "path", None)
        name = getattr(summary, "name", None) or (str(path).replace("\\", "/").rsplit("/", 1)[-1] if path else "model")
        return cls(name=name, quant=quant, file_size=int(summary.file_size), n_layers=int(summary.n_layers),
                   n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv, head_dim_k=head_dim,
                   head_dim_v=int(getattr(summary, "head_dim_v", None) or head_dim),
                   vocab_size=int(summary.vocab_size), n_ff=int(getattr(summary, "n_ff", None) or 4 * n_embd),
                   n_ctx_train=getattr(summary, "n_ctx_train", None), active_ratio=active,
                   mla=bool(getattr(summary, "mla", False)), expert_bytes=int(expert_tensor_bytes),
                   n_expert=int(n_expert or 0), n_expert_used=int(n_expert_used or 0))

    @property
    def metadata_bytes(self) -> int:
        """GGUF header: mostly the tokenizer (token strings, types, merges), ~36 bytes a token."""
        return self.vocab_size * 36 + 64 * 1024

    @property
    def token_embd_bytes(self) -> int:
        return int(self.vocab_size * self.n_embd * _embd_output_bpw(self.quant)[0] / 8)

    @property
    def output_bytes(self) -> int:
        return int(self.vocab_size * self.n_embd * _embd_output_bpw(self.quant)[1] / 8)

    @property
    def layer_bytes(self) -> float:
        rest = self.file_size - self.metadata_bytes - self.token_embd_bytes - self.output_bytes
        return max(rest, 0) / self.n_layers

    @property
    def kv_elements_per_token_layer(self) -> int:
        """Values llama.cpp caches per token and layer (llama-kv-cache.cpp): K and V, n_head_kv ×
        head size each; an MLA file (deepseek2 with key_length_mla/value_length_mla) caches K only,
        one head of kv_lora_rank + rope dim (576 for DeepSeek-V3/R1), and V is a view of it."""
        return self.n_head_kv * (self.head_dim_k + (0 if self.mla else self.head_dim_v))

    def kv_bytes_per_token_layer(self, kv_type: str) -> float:
        return self.kv_elements_per_token_layer * KV_BYTES_PER_ELEMENT[kv_type]

    @property
    def is_moe(self) -> bool:
        return self.expert_bytes > 0 and self.n_expert > 0 and self.n_expert_used > 0

    @property
    def expert_read_bytes(self) -> float:
        """Routed-expert bytes one token reads: the n_expert_used experts the router picks."""
        return self.expert_bytes * self.n_expert_used / self.n_expert if self.is_moe else 0.0


@dataclass
class DeviceUse:
    """Planned bytes on one device. `total_bytes` is the predicted use; the plan fits when
    total + margin ≤ budget on every device."""

    name: str
    kind: str  # "gpu" or "cpu"
    layers: int = 0
    has_output: bool = False
    weights_bytes: int = 0
    kv_bytes: int = 0
    compute_bytes: int = 0
    runtime_bytes: int = 0
    margin_bytes: int = 0
    budget_bytes: int | None = None
    expert_layers_in_ram: int = 0  # a GPU's layers whose routed experts are in system RAM instead

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.runtime_bytes

    @property
    def fits(self) -> bool:
        return self.budget_bytes is None or self.total_bytes + self.margin_bytes <= self.budget_bytes

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "layers": self.layers, "has_output": self.has_output,
            "weights_bytes": self.weights_bytes, "kv_bytes": self.kv_bytes, "compute_bytes": self.compute_bytes,
            "runtime_bytes": self.runtime_bytes, "margin_bytes": self.margin_bytes,
            "total_bytes": self.total_bytes, "budget_bytes": self.budget_bytes, "fits": self.fits,
            "expert_layers_in_ram": self.expert_layers_in_ram,
        }


@dataclass
class Plan:
    model_name: str
    model_id: str | None
    quant: str
    file_size: int
    n_ctx: int
    kv_type: str
    n_gpu_layers: int  # llama.cpp's count: n_layers + 1 means every layer and the output layer
    n_layers: int
    flash_attn: bool
    n_ubatch: int
    devices: list[DeviceUse]
    expected_tokens_per_s: float
    has_gpu: bool  # the machine has a GPU llama.cpp can use
    # Mixture of experts with its routed experts (ffn_*_exps) in system RAM and every layer's other
    # weights, the output layer and the KV cache on the GPU (llama.cpp's tensor buffer-type override,
    # `-ot "\.ffn_.*_exps\.=CPU"`); n_gpu_layers is then all of them.
    experts_in_ram: bool = False
    expert_bytes: int = 0  # the routed experts' bytes, all layers
    expert_read_bytes: int = 0  # of those, what one token reads (the experts the router picks)
    # With experts_in_ram: the first n_cpu_moe layers have their experts in RAM (llama.cpp's
    # --n-cpu-moe N); the least that lets the rest fit the GPUs. n_layers: all of them (--cpu-moe).
    n_cpu_moe: int = 0
    # What llama.cpp's load log calls the CPU model buffer (CPU_Mapped) with mmap: the file's bytes from the
    # first to the last tensor kept in RAM, those between them included. With experts in RAM the GPU layers'
    # other weights lie between (llama.cpp orders tensors by layer), read once through the map to upload them:
    # page cache the OS may drop, so not part of the RAM a plan needs (DeviceUse.weights_bytes of the CPU).
    cpu_mapped_bytes: int = 0

    @property
    def expert_bytes_in_ram(self) -> int:
        return int(self.expert_bytes * self.n_cpu_moe / self.n_layers) if self.experts_in_ram else 0

    @property
    def expert_read_bytes_in_ram(self) -> int:
        """Expert bytes one token reads from system RAM."""
        return int(self.expert_read_bytes * self.n_cpu_moe / self.n_layers) if self.experts_in_ram else 0

    @property
    def full_offload(self) -> bool:
        return self.n_gpu_layers >= self.n_layers + 1 and not self.experts_in_ram

    @property
    def placement(self) -> str:
        """'gpu', 'split' (the first layers on the CPU), 'experts_in_ram' or 'cpu'."""
        if self.n_gpu_layers == 0:
            return "cpu"
        if self.experts_in_ram:
            return "experts_in_ram"
        return "gpu" if self.full_offload else "split"

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def fit(self) -> str:
        """The badge: 'fits' (all on the GPU, or in RAM on a machine without one), 'partial'
        (runs, but some or all layers on the CPU of a GPU machine), 'too_big'."""
        if not self.fits:
            return "too_big"
        if self.full_offload or (self.placement == "cpu" and not self.has_gpu):
            return "fits"
        return "partial"

    @property
    def gpu_bytes(self) -> int:
        """Predicted GPU memory use (what nvidia-smi would show), all GPUs together."""
        return sum(d.total_bytes for d in self.devices if d.kind == "gpu")

    @property
    def ram_bytes(self) -> int:
        return sum(d.total_bytes for d in self.devices if d.kind == "cpu")

    @property
    def n_ctx_label(self) -> str:
        return f"{self.n_ctx // 1024}k" if self.n_ctx % 1024 == 0 else f"{self.n_ctx:,}-token"

    def to_dict(self) -> dict:
        return {
            "model": self.model_name, "model_id": self.model_id, "quant": self.quant,
            "file_size": self.file_size, "n_ctx": self.n_ctx, "kv_type": self.kv_type,
            "n_gpu_layers": self.n_gpu_layers, "n_layers": self.n_layers, "placement": self.placement,
            "flash_attn": self.flash_attn, "n_ubatch": self.n_ubatch, "fit": self.fit,
            "experts_in_ram": self.experts_in_ram, "n_cpu_moe": self.n_cpu_moe, "expert_bytes": self.expert_bytes,
            "expert_bytes_in_ram": self.expert_bytes_in_ram, "expert_read_bytes": self.expert_read_bytes,
            "estimated_vram_bytes": self.gpu_bytes, "estimated_ram_bytes": self.ram_bytes,
            "expected_tokens_per_s": round(self.expected_tokens_per_s, 1),
            "devices": [d.to_dict() for d in self.devices],
        }

    def breakdown(self) -> str:
        """A table in MiB, for scripts that compare the plan with a measurement."""
        experts = f", routed experts of {self.n_cpu_moe} layers in RAM" if self.experts_in_ram else ""
        head = (f"{self.model_name} {self.quant}: n_ctx {self.n_ctx} ({self.kv_type} KV), "
                f"{self.n_gpu_layers}/{self.n_layers + 1} layers on GPU{experts}, "
                f"~{self.expected_tokens_per_s:.0f} tok/s, {self.fit}")
        rows = [f"{'device':<28}{'weights':>10}{'KV':>9}{'compute':>9}{'runtime':>9}{'total':>10}"
                f"{'margin':>9}{'budget':>10}"]
        for d in self.devices:
            budget = f"{d.budget_bytes / MiB:10.0f}" if d.budget_bytes is not None else f"{'-':>10}"
            rows.append(f"{d.name[:27]:<28}{d.weights_bytes / MiB:10.1f}{d.kv_bytes / MiB:9.1f}"
                        f"{d.compute_bytes / MiB:9.1f}{d.runtime_bytes / MiB:9.1f}{d.total_bytes / MiB:10.1f}"
                        f"{d.margin_bytes / MiB:9.0f}{budget}")
        return "\n".join([head, *rows])


@dataclass(frozen=True)
class _Gpu:
    name: str
    vendor: str
    budget: int | None
    memory: int | None
    bandwidth_gbps: float


def _gpu_targets(hw: HardwareInfo | None) -> list[_Gpu]:
    if hw is None:
        return [_Gpu("GPU 0", "nvidia", None, None, UNLIMITED_GPU_BANDWIDTH_GBPS)]
    return [_Gpu(f"GPU {g.index} ({g.short_name})", g.vendor, g.usable_bytes,
                 g.usable_bytes if g.unified else g.memory_total_bytes, g.bandwidth_gbps)
            for g in hw.usable_gpus]


def model_shape(model, quant: str | Quant | None = None) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, CatalogModel):
        return ModelShape.from_catalog(model, quant or "Q4_K_M")
    if hasattr(model, "file_size") and hasattr(model, "n_layers"):
        return ModelShape.from_summary(model)
    raise TypeError(f"cannot plan for {type(model).__name__}: give a catalog model, a ModelSummary or a ModelShape")


def plan(model, *, quant: str | Quant | None = None, n_ctx: int = TARGET_N_CTX, kv_type: str = "f16",
         n_gpu_layers: int | None = None, hw: HardwareInfo | None = None,
         n_ubatch: int = DEFAULT_N_UBATCH, flash_attn: bool = True, experts_in_ram: bool = False,
         n_cpu_moe: int | None = None) -> Plan:
    """Where a model's bytes go and how fast it decodes.

    `model`: a catalog model (with `quant`, default Q4_K_M), a `ModelSummary` or a `ModelShape`.
    `n_gpu_layers`: None = as many as fit on `hw`'s GPUs; -1 = all; otherwise llama.cpp's count.
    `hw`: None plans for one CUDA GPU with no memory limit (for measurement scripts).
    `experts_in_ram`: a mixture of experts with its routed experts in system RAM and all the rest on
    the GPU (n_gpu_layers is then all layers); ignored for a dense model or without a GPU. Those of the
    first `n_cpu_moe` layers; None: as few as let the GPUs hold the rest (all, if nothing fits)."""
    shape = model_shape(model, quant)
    if kv_type not in KV_BYTES_PER_ELEMENT:
        raise PonderError(f"Unknown KV cache type {kv_type!r}; use one of {', '.join(KV_BYTES_PER_ELEMENT)}.")
    if n_ctx < 1:
        raise PonderError("The context must be at least 1 token.")
    if not flash_attn and kv_type != "f16":
        raise PonderError("A quantized KV cache needs flash attention.")
    gpus = _gpu_targets(hw)
    full = shape.n_layers + 1
    # (Unified memory has one pool: RAM and "GPU memory" are the same bytes, nothing to gain.)
    experts_in_ram = bool(experts_in_ram and shape.is_moe and gpus and not (hw and hw.unified_memory))
    moe_off = 0
    if experts_in_ram:
        n = full
        moe_off = (min(max(n_cpu_moe, 1), shape.n_layers) if n_cpu_moe is not None
                   else _min_cpu_moe(shape, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn))
    elif n_gpu_layers is None:
        n = _max_gpu_layers(shape, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn)
    else:
        n = full if n_gpu_layers < 0 else min(n_gpu_layers, full)
        n = n if gpus else 0
    devices = _place(shape, n, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn, moe_off)
    speed = _tokens_per_s(shape, devices, gpus, hw, kv_type)
    mapped = devices[-1].weights_bytes
    if experts_in_ram:  # token_embd (first, with the other non-layer tensors), then layers 0 .. n_cpu_moe - 1
        mapped = int(shape.token_embd_bytes + moe_off * shape.layer_bytes)
    return Plan(model_name=shape.name, model_id=shape.model_id, quant=shape.quant, file_size=shape.file_size,
                n_ctx=n_ctx, kv_type=kv_type, n_gpu_layers=n, n_layers=shape.n_layers, flash_attn=flash_attn,
                n_ubatch=n_ubatch, devices=devices, expected_tokens_per_s=speed, has_gpu=bool(gpus),
                experts_in_ram=experts_in_ram, expert_bytes=shape.expert_bytes,
                expert_read_bytes=int(shape.expert_read_bytes), n_cpu_moe=moe_off, cpu_mapped_bytes=mapped)


def _min_cpu_moe(shape, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn) -> int:
    """The fewest leading layers whose experts must move to RAM for the GPUs to hold the rest (fit is
    monotone in it: a binary search); all layers when even that does not fit."""
    def fits(k: int) -> bool:
        devices = _place(shape, shape.n_layers + 1, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn, k)
        return all(d.fits for d in devices if d.kind == "gpu")

    low, high = 1, shape.n_layers
    if not fits(high):
        return high
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid + 1, high)
    return low


def _max_gpu_layers(shape, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn) -> int:
    if not gpus:
        return 0
    for n in range(shape.n_layers + 1, 0, -1):
        devices = _place(shape, n, gpus, hw, n_ctx, kv_type, n_ubatch, flash_attn)
        if all(d.fits for d in devices if d.kind == "gpu"):
            return n
    return 0


def _place(shape: ModelShape, n: int, gpus: list[_Gpu], hw, n_ctx, kv_type, n_ubatch, flash_attn,
           n_cpu_moe: int = 0) -> list[DeviceUse]:
    """Bytes per device; `n_cpu_moe`: the first layers whose routed experts go to RAM (experts in RAM)."""
    full = shape.n_layers + 1
    n_ctx_pad = math.ceil(n_ctx / N_CTX_PAD) * N_CTX_PAD
    gpu_devs = [DeviceUse(name=g.name, kind="gpu") for g in gpus] if n > 0 else []
    cpu = DeviceUse(name="CPU", kind="cpu")
    # llama.cpp: layers i_gpu_start.. (and the output, index n_layers) go to the GPUs, split in
    # proportion to their memory.
    i_gpu_start = full - n
    weights = [g.budget or 1 for g in gpus]
    splits = [sum(weights[: i + 1]) / sum(weights) for i in range(len(weights))]
    for il in range(full):
        if il < i_gpu_start or not gpu_devs:
            dev = cpu
        else:
            dev = gpu_devs[min(bisect.bisect_right(splits, (il - i_gpu_start) / n), len(gpu_devs) - 1)]
        if il == shape.n_layers:
            dev.has_output = True
        else:
            dev.layers += 1
            if il < n_cpu_moe and dev is not cpu:
                dev.expert_layers_in_ram += 1
    expert_layer = shape.expert_bytes / shape.n_layers  # (averaged: dense leading layers have none)
    experts_off = sum(d.expert_layers_in_ram for d in gpu_devs) * expert_layer
    kv_layer = shape.kv_bytes_per_token_layer(kv_type) * n_ctx_pad
    logits = n_ubatch * shape.vocab_size * 4 + shape.n_embd * n_ubatch * 4
    # f32 activations of one layer's attention that are alive together: the queries and attention output
    # of every head, the cached heads' K and V of the batch (× ATTENTION_ACTIVATION_FACTOR for copies and
    # permutes), and a few n_embd-wide rows. For an MLA file (head_dim_k = kv_lora_rank + rope,
    # head_dim_v = kv_lora_rank) that is the absorbed queries and the latent output per head: what makes
    # deepseek2's buffer larger than its logits (measured on CPU: tests/core/test_mla_sizing.py).
    heads = (shape.n_head + shape.n_head_kv) * (shape.head_dim_k + shape.head_dim_v)
    per_token = ATTENTION_ACTIVATION_FACTOR * heads + 4 * shape.n_embd
    activations = int(per_token * n_ubatch * 4)
    attention = (n_ctx_pad * n_ubatch * 2 if flash_attn else shape.n_head * n_ctx_pad * n_ubatch * 4) + activations
    ffn = 3 * shape.n_ff * n_ubatch * 4
    layer_work = max(attention, ffn)
    cpu_weights_present = cpu.layers > 0 or cpu.has_output or experts_off > 0
    # The biggest CPU weight llama.cpp copies to the GPU to run a prompt batch there (op offload): the
    # output layer, a layer's largest matrix, or one layer's largest expert tensor (gate, up or down).
    offload_copy = 0
    if gpu_devs and cpu_weights_present:
        if cpu.has_output:
            offload_copy = shape.output_bytes
        elif experts_off:
            offload_copy = int(expert_layer * LARGEST_EXPERT_TENSOR_SHARE)
        else:
            offload_copy = int(shape.layer_bytes * LARGEST_LAYER_TENSOR_SHARE)
    for dev, g in zip(gpu_devs, gpus):
        dev.weights_bytes = int(dev.layers * shape.layer_bytes - dev.expert_layers_in_ram * expert_layer
                                + (shape.output_bytes if dev.has_output else 0))
        dev.kv_bytes = int(dev.layers * kv_layer)
        dev.compute_bytes = max(logits if dev.has_output else 0, layer_work if dev.layers else 0)
        if kv_type != "f16" and g.vendor == "nvidia" and dev.layers:
            # CUDA flash attention converts a quantized K/V to f16 for prompt batches.
            dev.compute_bytes += int(n_ctx_pad * shape.kv_elements_per_token_layer * 2)
        dev.runtime_bytes = GPU_RUNTIME_BYTES.get(g.vendor, GPU_RUNTIME_BYTES["nvidia"])
        dev.budget_bytes = g.budget
        dev.margin_bytes = int(GPU_MARGIN_FIXED + GPU_MARGIN_SHARE * (g.memory or 0)) if g.budget is not None else 0
    if gpu_devs:
        gpu_devs[0].compute_bytes += offload_copy
    cpu.weights_bytes = int(shape.token_embd_bytes + cpu.layers * shape.layer_bytes
                            + (shape.output_bytes if cpu.has_output else 0)
                            + experts_off)
    cpu.kv_bytes = int(cpu.layers * kv_layer)
    if cpu.layers or cpu.has_output:
        cpu.compute_bytes = max(logits if cpu.has_output else 0, layer_work if cpu.layers else 0)
    else:  # inputs staged on the host: embeddings of the batch and the attention mask. With experts in RAM
        # too: llama.cpp sizes this buffer for a prompt batch, whose expert matmuls run on the GPU (the weight
        # copied there, offload_copy above); measured 12.0 MiB both ways on the H200 (GPU_NOTES.md).
        cpu.compute_bytes = 2 * shape.n_embd * n_ubatch * 4 + n_ctx_pad * n_ubatch * 2
    cpu.runtime_bytes = HOST_RUNTIME_BYTES
    if hw is not None:
        cpu.budget_bytes = hw.ram_budget_bytes
        if hw.unified_memory:  # one pool: what the GPU takes, the CPU cannot. A GPU limit raised above the RAM
            # budget (iogpu.wired_limit_mb) is the user's say on what the OS keeps.
            pool = max(cpu.budget_bytes, sum(g.budget or 0 for g in gpus))
            cpu.budget_bytes = max(0, pool - sum(d.total_bytes for d in gpu_devs))
    return [*gpu_devs, cpu]


def cpu_effective_gbps(hw: HardwareInfo | None) -> float:
    if hw is None:
        return 50.0 * CPU_EFFICIENCY
    cores = hw.cpu_physical_cores or ASSUMED_CPU_CORES
    return min(hw.cpu_bandwidth_gbps, cores * CPU_GBPS_PER_CORE) * CPU_EFFICIENCY


def experts_in_ram_gbps(hw: HardwareInfo | None) -> float:
    """Effective rate at which the CPU reads routed experts kept in RAM for a GPU (experts in RAM)."""
    if hw is None:
        return 50.0 * CPU_EFFICIENCY
    cores = hw.cpu_physical_cores or ASSUMED_CPU_CORES
    return min(hw.cpu_bandwidth_gbps, cores * EXPERTS_IN_RAM_GBPS_PER_CORE) * CPU_EFFICIENCY


def _tokens_per_s(shape: ModelShape, devices: list[DeviceUse], gpus: list[_Gpu], hw, kv_type: str) -> float:
    """One token's reads, each device's at its own bandwidth, plus fixed costs per layer. A MoE's routed
    experts are read at EXPERT_READ_EFFICIENCY of a GPU's rate; those in RAM (experts in RAM) by the CPU at
    experts_in_ram_gbps, with a hop per layer."""
    kv_token = shape.kv_bytes_per_token_layer(kv_type) * SPEED_CONTEXT_FILL
    expert_per_layer = shape.expert_read_bytes / shape.n_layers
    dense_per_layer = shape.layer_bytes * shape.active_ratio - expert_per_layer
    seconds = 0.0
    gpu_by_name = {g.name: g for g in gpus}
    for dev in devices:
        if dev.kind == "gpu":
            rate = gpu_by_name[dev.name].bandwidth_gbps * 1e9 * GPU_EFFICIENCY
            overhead = (dev.layers + dev.has_output) * GPU_LAYER_OVERHEAD_S
            overhead += dev.layers * GPU_MOE_LAYER_OVERHEAD_S if shape.is_moe else 0.0
        else:
            rate = cpu_effective_gbps(hw) * 1e9
            overhead = dev.layers * CPU_LAYER_OVERHEAD_S
        dense = dev.layers * (dense_per_layer + kv_token) + (shape.output_bytes if dev.has_output else 0)
        experts = (dev.layers - dev.expert_layers_in_ram) * expert_per_layer
        expert_rate = rate * (EXPERT_READ_EFFICIENCY if dev.kind == "gpu" else 1.0)
        seconds += dense / rate + experts / expert_rate + overhead
    in_ram = sum(d.expert_layers_in_ram for d in devices)
    if in_ram:
        seconds += (in_ram * expert_per_layer / (experts_in_ram_gbps(hw) * 1e9)
                    + in_ram * EXPERTS_IN_RAM_LAYER_OVERHEAD_S)
    return 1.0 / seconds if seconds > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# recommendation


@dataclass
class Alternative:
    """One catalog model as this machine would run it, with its fit badge."""

    model_id: str
    name: str
    description: str
    tier: int
    plan: Plan
    files: list[str]
    repo: str
    recommended: bool = False

    @property
    def usable(self) -> bool:
        return self.plan.fits and self.plan.expected_tokens_per_s >= MIN_TOKENS_PER_S

    def to_dict(self) -> dict:
        p = self.plan
        return {
            "model_id": self.model_id, "name": self.name, "description": self.description, "tier": self.tier,
            "quant": p.quant, "repo": self.repo, "file": self.files[0], "files": self.files,
            "size_bytes": p.file_size, "fit": p.fit, "usable": self.usable, "recommended": self.recommended,
            "n_ctx": p.n_ctx, "kv_type": p.kv_type, "n_gpu_layers": p.n_gpu_layers,
            "estimated_vram_bytes": p.gpu_bytes, "estimated_ram_bytes": p.ram_bytes,
            "expected_tokens_per_s": round(p.expected_tokens_per_s, 1),
        }


@dataclass
class Recommendation:
    plan: Plan | None
    model: CatalogModel | None
    reason: str
    alternatives: list[Alternative] = field(default_factory=list)
    hardware_summary: str = ""
    # Where the pick is a full 671B model: the best distill as the other option a person can weigh
    # (faster, weaker), with its plan; the reason names both.
    runner_up: Alternative | None = None
    # On a Mac: the GPU limit (iogpu.wired_limit_mb) the runner-up needs, when only a raised one lets it run.
    runner_up_gpu_limit_mb: int | None = None

    @property
    def model_id(self) -> str | None:
        return self.model.id if self.model else None

    @property
    def files(self) -> list[str]:
        if not (self.model and self.plan):
            return []
        return [f.path for f in self.model.quant(self.plan.quant).files]

    def to_dict(self) -> dict:
        p, m = self.plan, self.model
        return {
            "model_id": self.model_id,
            "name": m.short_name if m else None,
            "repo": m.repo if m else None,
            "quant": p.quant if p else None,
            "file": self.files[0] if self.files else None,
            "files": self.files,
            "size_bytes": p.file_size if p else None,
            "n_ctx": p.n_ctx if p else None,
            "kv_type": p.kv_type if p else None,
            "n_gpu_layers": p.n_gpu_layers if p else None,
            "placement": p.placement if p else None,
            "fit": p.fit if p else "too_big",
            "estimated_vram_bytes": p.gpu_bytes if p else None,
            "estimated_ram_bytes": p.ram_bytes if p else None,
            "expected_tokens_per_s": round(p.expected_tokens_per_s, 1) if p else None,
            "reason": self.reason,
            "hardware": self.hardware_summary,
            "plan": p.to_dict() if p else None,
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "runner_up_gpu_limit_mb": self.runner_up_gpu_limit_mb,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }


def recommend(hw: HardwareInfo, catalog: Catalog) -> Recommendation:
    """The model this machine should download, why, and every catalog model's fit."""
    models = [m for m in catalog if m.reasoning]
    found = _pick(hw, models)
    if found is None:
        return Recommendation(None, None, _nothing_fits_reason(hw, models), _alternatives(hw, catalog, None),
                              hw.summary())
    model, chosen, fallback = found
    # The other option a person can weigh: beside a full model, the best distill (faster, weaker); beside
    # a distill, a full model that runs here usably but below FULL_MODEL_MIN_TOKENS_PER_S (stronger, slower).
    if _is_full_model(model):
        other = _pick(hw, [m for m in models if not _is_full_model(m)])
        other = other[:2] if other is not None and not other[2] else None
    else:
        other = _best([m for m in models if _is_full_model(m)],
                      lambda m: _full_gpu_choice(hw, m, PREFERRED_MIN_BITS) or _experts_in_ram_choice(hw, m))
    limit_mb = None
    raised = raised_gpu_limit(hw)
    if other is None and raised is not None and not _is_full_model(model):
        other = _best([m for m in models if _is_full_model(m)],
                      lambda m: _full_gpu_choice(raised, m, PREFERRED_MIN_BITS))
        limit_mb = raised.usable_gpus[0].usable_bytes // 2**20 if other else None
    runner_up = _alternative(*other, recommended=False) if other else None
    alternatives = _alternatives(hw, catalog, (model, chosen))
    reason = _reason(hw, model, chosen, fallback)
    if runner_up is not None and limit_mb:
        reason += " " + _with_raised_limit(hw, runner_up, limit_mb)
    elif runner_up is not None:
        reason += " " + _weigh(model, chosen, runner_up)
    sibling = _non_reasoning_sibling(model, catalog, alternatives)
    if sibling is not None:
        reason += " " + _r1_vs_v3(model, sibling)
    if not _is_full_model(model):
        reason += _mla_would_fit_note(hw, models, alternatives)
    return Recommendation(chosen, model, reason, alternatives, hw.summary(), runner_up, limit_mb)


def raised_gpu_limit(hw: HardwareInfo) -> HardwareInfo | None:
    """A Mac with macOS's GPU limit raised to all but MACOS_RESERVE_BYTES of its memory; None elsewhere or
    where the limit already is that high."""
    if not (hw.unified_memory and hw.usable_gpus):
        return None
    limit = hw.ram_total_bytes - MACOS_RESERVE_BYTES
    gpu = hw.usable_gpus[0]
    if limit <= gpu.usable_bytes:
        return None
    return dataclasses.replace(hw, gpus=[dataclasses.replace(gpu, usable_bytes=limit), *hw.gpus[1:]])


def _with_raised_limit(hw: HardwareInfo, other: Alternative, limit_mb: int) -> str:
    """The full model a Mac runs once its GPU may use more of the memory: how, and what it costs."""
    p = other.plan
    return (f"Or the full {other.name} {p.quant} (the strongest reasoner) at ~{format_speed(p.expected_tokens_per_s)} "
            f"tokens/s with {_context_phrase(p)}, if you let the GPU use {_gb(limit_mb * 2**20)} of the "
            f"{_gb(hw.ram_total_bytes)}: macOS allows {_gb(hw.usable_gpus[0].usable_bytes)} by default, and "
            f"`sudo sysctl iogpu.wired_limit_mb={limit_mb}` raises it until the next restart (close other apps first).")


def _mla_would_fit_note(hw, models, alternatives: list[Alternative]) -> str:
    """A full model whose catalog entry plans the full-size KV cache (files converted before MLA, as far
    as anyone confirmed) but that would fit with the compressed one: say so, since the header read
    before a download settles it (app/core/downloads.py plan_download)."""
    too_big = {a.model_id for a in alternatives if a.plan.fit == "too_big"}
    for model in models:
        a = model.architecture
        if model.id not in too_big or not _is_full_model(model) or a.mla:
            continue
        quant = min(model.quants, key=lambda q: q.size_bytes)
        mla = dataclasses.replace(ModelShape.from_catalog(model, quant), n_head_kv=1, head_dim_k=576,
                                  head_dim_v=512, mla=True)
        p = plan(mla, n_ctx=_n_ctx(model, TARGET_N_CTX), n_gpu_layers=-1, hw=hw)
        if p.fits:
            return (f" {model.short_name} {quant.name} ({quant.size_bytes / 1e9:.0f} GB) would fit too if its files carry "
                    f"MLA metadata (its listing says they do not, which is not confirmed): Ponder reads the file's "
                    f"header before downloading it and plans from that.")
    return ""


def _pick(hw, models) -> tuple[CatalogModel, Plan, bool] | None:
    """(model, plan, fallback) by the rules in the module docstring, or None when nothing fits."""
    def on_gpu(m: CatalogModel) -> Plan | None:
        p = _full_gpu_choice(hw, m, PREFERRED_MIN_BITS) or _experts_in_ram_choice(hw, m)
        if p is not None and _is_full_model(m) and p.expected_tokens_per_s < FULL_MODEL_MIN_TOKENS_PER_S:
            return None  # offered beside the pick instead (runner_up)
        return p

    gpu_choice = _best(models, on_gpu)
    cpu_choice = _best(models, lambda m: _cpu_choice(hw, m))
    if gpu_choice and (not cpu_choice or gpu_choice[0].tier >= cpu_choice[0].tier):
        return (*gpu_choice, False)
    if cpu_choice:
        model = cpu_choice[0]
        return model, _best_placement(_placements(hw, model, _preferred_quant(model), _n_ctx(model, TARGET_N_CTX))), False
    found = _lightest_that_fits(hw, models)
    return (*found, True) if found else None


def _is_full_model(model: CatalogModel) -> bool:
    """DeepSeek-V3/R1 themselves (671B mixture of experts), not a distill."""
    return model.architecture.arch == "deepseek2"


def _acceptable(quant: Quant, min_bits: float) -> bool:
    """A file good enough to recommend: min_bits or more, or an Unsloth dynamic quant (its attention
    and shared weights stay at 4-6 bits; the full R1 exists only so)."""
    return quant.bits >= min_bits or (min_bits <= PREFERRED_MIN_BITS and quant.dynamic)


def _experts_in_ram_choice(hw, model: CatalogModel) -> Plan | None:
    """A mixture of experts that does not fit the GPU whole: its routed experts in system RAM and the
    rest on the GPU, if that fits and decodes at ≥ MIN_TOKENS_PER_S. The largest acceptable file that
    keeps ≥ COMFORT_TOKENS_PER_S, else the smallest that is fast enough."""
    if not (hw.usable_gpus and model.architecture.expert_params) or hw.unified_memory:
        return None
    for n_ctx in _contexts(model):
        fitting = []
        for quant in sorted(model.quants, key=lambda q: q.bits):
            if not _acceptable(quant, PREFERRED_MIN_BITS):
                continue
            options = [plan(model, quant=quant, n_ctx=n_ctx, kv_type=kv, hw=hw, experts_in_ram=True)
                       for kv in ("f16", "q8_0")]
            p = next((o for o in options if o.fits), None)
            if p is not None and p.expected_tokens_per_s >= MIN_TOKENS_PER_S:
                fitting.append(p)
        if fitting:
            break
    else:
        return None
    comfortable = [p for p in fitting if p.expected_tokens_per_s >= COMFORT_TOKENS_PER_S]
    return comfortable[-1] if comfortable else fitting[0]


def _n_ctx(model: CatalogModel, wanted: int) -> int:
    return min(wanted, model.architecture.n_ctx_train)


def _contexts(model: CatalogModel) -> tuple[int, ...]:
    """Contexts to try, largest first. A full 671B may drop to MIN_N_CTX: a file without MLA metadata caches
    ~4.9 MB a token (78 GB at 16k), so its context decides whether it fits; a distill's 16k cache is 0.5-5 GB."""
    full = _n_ctx(model, TARGET_N_CTX)
    return (full, _n_ctx(model, MIN_N_CTX)) if _is_full_model(model) and full > MIN_N_CTX else (full,)


def _preferred_quant(model: CatalogModel) -> Quant:
    """The smallest quantisation at 4 bits or more (Q4_K_M), else the largest below."""
    at_least = [q for q in model.quants if q.bits >= PREFERRED_MIN_BITS]
    return min(at_least, key=lambda q: q.bits) if at_least else max(model.quants, key=lambda q: q.bits)


def best_placement(model, *, hw: HardwareInfo | None, n_ctx: int = TARGET_N_CTX,
                   quant: str | Quant | None = None, kv_types: tuple[str, ...] = ("f16", "q8_0"),
                   experts_in_ram: bool | None = None) -> Plan:
    """How to load `model` here: as many layers on the GPU as fit, with an f16 KV cache unless
    an 8-bit one puts more layers on the GPU. A mixture of experts that does not fit the GPU whole
    gets its routed experts in RAM instead when that fits and decodes faster than splitting layers.
    `experts_in_ram`: None decides so; False never; True always (where the model has experts).
    For the engine's automatic placement and the UI."""
    layers = [plan(model, quant=quant, n_ctx=n_ctx, kv_type=kv, hw=hw) for kv in kv_types]
    if experts_in_ram is False or not model_shape(model, quant).is_moe:
        return _best_placement(layers)
    experts = [plan(model, quant=quant, n_ctx=n_ctx, kv_type=kv, hw=hw, experts_in_ram=True) for kv in kv_types]
    if experts_in_ram:
        return _best_placement(experts)
    by_layers = _best_placement(layers)
    if by_layers.fits and by_layers.full_offload:
        return by_layers
    fitting = [p for p in experts if p.fits]
    if fitting and (not by_layers.fits or fitting[0].expected_tokens_per_s > by_layers.expected_tokens_per_s):
        return fitting[0]
    return by_layers


def _placements(hw, model, quant, n_ctx, n_gpu_layers=None) -> list[Plan]:
    return [plan(model, quant=quant, n_ctx=n_ctx, kv_type=kv, n_gpu_layers=n_gpu_layers, hw=hw)
            for kv in ("f16", "q8_0")]


def _best_placement(plans: list[Plan]) -> Plan:
    """Among the same file with f16 and q8_0 KV: the one that puts more layers on the GPU,
    f16 when both put the same; the first plan when none fits."""
    fitting = [p for p in plans if p.fits]
    if not fitting:
        return plans[0]
    return max(fitting, key=lambda p: (p.n_gpu_layers, p.kv_type == "f16"))


def _full_gpu_choice(hw, model: CatalogModel, min_bits: float) -> Plan | None:
    """The best configuration of `model` with every layer on the GPU, or None."""
    if not hw.usable_gpus:
        return None
    fitting: list[Plan] = []
    for n_ctx in _contexts(model):  # a smaller context only when nothing fits at the larger one
        for quant in sorted(model.quants, key=lambda q: q.bits):
            if not _acceptable(quant, min_bits):
                continue
            for p in _placements(hw, model, quant, n_ctx, n_gpu_layers=-1):
                if p.fits:
                    fitting.append(p)  # f16 first, so it wins a tie below
                    break
        if fitting:
            break
    if not fitting or fitting[0].expected_tokens_per_s < MIN_TOKENS_PER_S:
        return None
    comfortable = [p for p in fitting if p.expected_tokens_per_s >= COMFORT_TOKENS_PER_S]
    return comfortable[-1] if comfortable else fitting[0]


def _cpu_choice(hw, model: CatalogModel) -> Plan | None:
    quant = _preferred_quant(model)
    if not _acceptable(quant, PREFERRED_MIN_BITS):
        return None
    p = _best_placement(_placements(hw, model, quant, _n_ctx(model, TARGET_N_CTX), n_gpu_layers=0))
    return p if p.fits and p.expected_tokens_per_s >= MIN_TOKENS_PER_S else None


def _best(models, choose) -> tuple[CatalogModel, Plan] | None:
    """Highest tier; then the higher quantisation, f16 KV, the smaller footprint."""
    options = [(m, p) for m in models if (p := choose(m)) is not None]
    if not options:
        return None
    return max(options, key=lambda mp: (mp[0].tier, mp[0].quant(mp[1].quant).bits, mp[1].kv_type == "f16",
                                        -(mp[1].gpu_bytes + mp[1].ram_bytes)))


def _lightest_that_fits(hw, models) -> tuple[CatalogModel, Plan] | None:
    for model in sorted(models, key=lambda m: (m.tier, m.params_b)):
        quants = [q for q in model.quants if ABSOLUTE_MIN_BITS <= q.bits <= PREFERRED_MIN_BITS]
        for quant in sorted(quants, key=lambda q: -q.bits):
            for n_ctx in (_n_ctx(model, TARGET_N_CTX), _n_ctx(model, MIN_N_CTX)):
                p = _best_placement(_placements(hw, model, quant, n_ctx))
                if p.fits:
                    return model, p
    return None


def _alternatives(hw, catalog: Catalog, chosen: tuple[CatalogModel, Plan] | None) -> list[Alternative]:
    rows = []
    for model in catalog:
        recommended = bool(chosen) and model.id == chosen[0].id
        p = chosen[1] if recommended else _as_it_would_run(hw, model)
        rows.append(_alternative(model, p, recommended))
    return rows


def _alternative(model: CatalogModel, p: Plan, recommended: bool) -> Alternative:
    return Alternative(model_id=model.id, name=model.short_name, description=model.description, tier=model.tier,
                       plan=p, files=[f.path for f in model.quant(p.quant).files], repo=model.repo,
                       recommended=recommended)


def _as_it_would_run(hw, model: CatalogModel) -> Plan:
    """The model entirely on the GPU if it fits (≥ Q4 first); else the biggest file up to Q4_K_M
    that fits split with the CPU; else, to show what it would take, its smallest file."""
    full = (_full_gpu_choice(hw, model, PREFERRED_MIN_BITS) or _experts_in_ram_choice(hw, model)
            or _full_gpu_choice(hw, model, ABSOLUTE_MIN_BITS))
    if full:
        return full
    n_ctx = _n_ctx(model, TARGET_N_CTX)
    ceiling = _preferred_quant(model).bits
    for quant in sorted(model.quants, key=lambda q: -q.bits):
        if ABSOLUTE_MIN_BITS <= quant.bits <= ceiling:
            candidate = _best_placement(_placements(hw, model, quant, n_ctx))
            if candidate.fits:
                return candidate
    return _best_placement(_placements(hw, model, min(model.quants, key=lambda q: q.bits), n_ctx))


# ---------------------------------------------------------------------------------------------
# the sentence


def _gb(n: float) -> str:
    value = n / GiB
    return f"{value:.0f} GB" if value >= 10 or abs(value - round(value)) < 0.05 else f"{value:.1f} GB"


def format_speed(tokens_per_s: float) -> str:
    if tokens_per_s >= 100:
        return f"{round(tokens_per_s, -1):.0f}"
    if tokens_per_s >= 10:
        return f"{tokens_per_s:.0f}"
    return f"{tokens_per_s:.1f}"


def _gpu_phrase(hw: HardwareInfo) -> str:
    gpus = hw.usable_gpus
    first: GPUInfo = gpus[0]
    if first.unified:
        return f"the {_gb(first.usable_bytes)} of unified memory your {first.name} lets the GPU use"
    if len(gpus) > 1:
        return f"your {len(gpus)}× {first.short_name} ({_gb(sum(g.memory_total_bytes for g in gpus))})"
    size = _gb(first.memory_total_bytes)
    return f"your {first.short_name}" if size in first.short_name else f"your {first.short_name}'s {size}"


def _smaller_context_note(model: CatalogModel, p: Plan) -> str:
    """Why a plan has less than the usual context: say it, with what the full one would take."""
    wanted = _n_ctx(model, TARGET_N_CTX)
    if p.n_ctx >= wanted:
        return ""
    kv = plan(model, quant=p.quant, n_ctx=wanted, kv_type=p.kv_type, n_gpu_layers=-1).devices[0].kv_bytes
    bits = " even at 8 bits" if p.kv_type == "q8_0" else ""
    return (f" (the most that fits: its files cache full-size keys and values, {_gb(kv)} for {wanted // 1024}k"
            f"{bits}; a long reasoning trace can fill {p.n_ctx_label})")


def _context_phrase(p: Plan) -> str:
    kv = " and an 8-bit KV cache" if p.kv_type == "q8_0" else ""
    article = "an" if p.n_ctx_label.startswith(("8", "11", "18")) else "a"
    return f"{article} {p.n_ctx_label} context{kv}"


def _reason(hw: HardwareInfo, model: CatalogModel, p: Plan, fallback: bool) -> str:
    what = f"{model.short_name} {p.quant}"
    speed = f"expect ~{format_speed(p.expected_tokens_per_s)} tokens/s"
    if p.placement == "gpu":
        where = f"fits entirely in {_gpu_phrase(hw)}, with {_context_phrase(p)}{_smaller_context_note(model, p)}"
    elif p.placement == "split":
        where = (f"runs with {p.n_gpu_layers} of {p.n_layers + 1} layers in {_gpu_phrase(hw)} and the rest on "
                 f"the CPU, with {_context_phrase(p)}")
    elif p.placement == "experts_in_ram":
        which = "its routed experts" if p.n_cpu_moe >= p.n_layers else f"the routed experts of {p.n_cpu_moe} of its {p.n_layers} layers"
        where = (f"runs with {which} ({p.expert_bytes_in_ram / 1e9:.0f} GB) in {_gb(hw.ram_total_bytes)} of RAM and "
                 f"everything else in {_gpu_phrase(hw)}, with {_context_phrase(p)}{_smaller_context_note(model, p)}")
    else:
        where = f"runs on the CPU in {_gb(hw.ram_total_bytes)} of RAM with {_context_phrase(p)}"
        if hw.gpus and hw.gpu_offload_supported is False:
            where += " (this llama.cpp build has no GPU support)"
    if fallback:
        if p.expected_tokens_per_s < MIN_TOKENS_PER_S:
            speed += ", which is slow, but nothing lighter fits"
        if model.quant(p.quant).bits < PREFERRED_MIN_BITS:
            speed += f" ({p.quant}, because nothing fits at Q4)"
    return f"{what} {where}; {speed}."


def _weigh(model: CatalogModel, p: Plan, other: Alternative) -> str:
    """The choice between the full model and the best distill, in words a person can weigh."""
    mine, theirs = p.expected_tokens_per_s, other.plan.expected_tokens_per_s
    if not _is_full_model(model):
        where = " with its experts in RAM" if other.plan.experts_in_ram else ""
        return (f"Or the full {other.name} {other.plan.quant}{where} at ~{format_speed(theirs)} tokens/s: the "
                f"strongest reasoner, but {mine / theirs:.0f}× slower, so a long reasoning trace takes minutes.")
    if theirs >= 1.3 * mine:
        pace = f"{theirs / mine:.0f}× as fast" if theirs >= 2 * mine else "faster"
        trade = f"{pace} but weaker on hard problems"
    elif theirs < 0.8 * mine:
        trade = "slower and weaker on hard problems here, so the full model is the better use of this machine"
    else:
        trade = "about as fast and weaker on hard problems, so the full model is the better use of this machine"
    return (f"{model.short_name} is the strongest reasoner; or {other.name} {other.plan.quant} at "
            f"~{format_speed(theirs)} tokens/s, a distill: {trade}.")


def _non_reasoning_sibling(model: CatalogModel, catalog: Catalog, alternatives: list[Alternative]) -> Alternative | None:
    """DeepSeek-V3 (a full model without reasoning) beside a full R1 pick, where it runs here too."""
    if not _is_full_model(model):
        return None
    siblings = {m.id for m in catalog if _is_full_model(m) and not m.reasoning}
    return next((a for a in alternatives if a.model_id in siblings and a.usable), None)


def _r1_vs_v3(model: CatalogModel, v3: Alternative) -> str:
    return (f"R1 thinks before it answers (its reasoning shows in the thinking pane), best for maths, code and "
            f"logic. {v3.name} is the same size without the thinking: it answers at once (~"
            f"{format_speed(v3.plan.expected_tokens_per_s)} tokens/s here), for chat and writing.")


def _nothing_fits_reason(hw: HardwareInfo, models) -> str:
    lightest = min(models, key=lambda m: (m.tier, m.params_b))
    quant = min(lightest.quants, key=lambda q: q.bits)
    p = plan(lightest, quant=quant, n_ctx=_n_ctx(lightest, MIN_N_CTX), kv_type="q8_0", n_gpu_layers=0)
    return (f"Not enough memory for any model: even {lightest.short_name} {quant.name} needs about "
            f"{_gb(p.ram_bytes)}, and this machine can give a model about {_gb(hw.ram_budget_bytes)}.")
