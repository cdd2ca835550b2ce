"""llama.cpp in-process: load a GGUF, stream a chat answer split into thinking and answer.

Built on llama-cpp-python's low-level API rather than its `Llama` class:
- the token loop samples with llama.cpp's native sampler chain (top_k bounds the
  candidates before top_p: sorting R1's 152k vocabulary per token costs ~11 ms),
- each token is turned into text with an incremental UTF-8 decoder, so the cost
  per token does not grow with the length of the answer,
- the llama.cpp log goes to Python logging (never `verbose=False`, which swaps the
  process's stdout/stderr file descriptors).
An `Engine` belongs to the thread that loaded it: `chat`, `close` and iterating a
`ChatRun` from any other thread raise RuntimeError (llama.cpp's context is not
thread-safe, and the GUI must never wait on it). Closing the engine, or starting a
new chat, ends the run before it; iterating an ended run raises instead of handing
llama.cpp a freed context.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import app  # noqa: F401  (loads llama_cpp before numpy)
from app.core import hardware
from app.core.errors import ContextOverflow, LoadCancelled, ModelLoadError, PonderError
from app.core.hardware import HardwareInfo
from app.core.modelfile import ModelSummary, inspect_gguf
from app.core.prompt import PromptBuilder, choose_builtin_template, fallback_template, prompt_rules
from app.core.reasoning import CLOSE_TAG, Segment, ThinkSplitter
from app.core.sizing import MIN_N_CTX
from app.core.steering import (
    ANSWER_NOW_WRAP_UP,
    BUDGET_WRAP_UP,
    Steering,
    SteeringError,
    check_budget,
    check_thought,
    nudge_text,
)

log = logging.getLogger("ponder.engine")
llama_log = logging.getLogger("llama.cpp")

# R1 distill guidance: temperature 0.6, top_p 0.95; no min_p. top_k 40 only bounds
# the candidate list before top_p (see tests/benchmarks/bench_engine.py for what it changes).
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MAX_TOKENS = 32768
DEFAULT_N_CTX = 16384
# llama.cpp seeds are 32-bit, and 0xFFFFFFFF (LLAMA_DEFAULT_SEED) means "pick one at random",
# which could not be recorded: a drawn seed stays below it.
LLAMA_SEED_LIMIT = 0xFFFFFFFF
N_BATCH = 512


@dataclass
class LoadOptions:
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int | None = None  # None: offload all layers if the build can; 0: CPU only
    flash_attn: bool = True
    kv_type: str = "auto"  # "f16" | "q8_0" | "auto": f16 unless q8_0 puts more layers on the GPU
    n_threads: int | None = None
    # Sample inside llama.cpp's graph (experimental in llama.cpp): on a GPU it saves
    # copying 152k logits to the host per token; on the CPU it is slower. None: on for GPUs.
    backend_sampling: bool | None = None
    # Speculative decoding (app/core/speculative.py): "off", "ngram" (prompt lookup), "auto" (the
    # catalog's paired draft model if it is downloaded, else n-gram) or a draft GGUF's path.
    draft: str = "off"
    # A mixture of experts with its routed experts (ffn_*_exps) in system RAM and the rest on the GPU
    # (llama.cpp's --cpu-moe). None: when the memory planner chooses it (the model does not fit whole).
    experts_in_ram: bool | None = None


@dataclass
class Sampling:
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    min_p: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None
    thinking_budget: int | None = None  # thinking tokens before Ponder ends the thought (steering.py); None: off


@dataclass
class ModelInfo:
    path: Path
    name: str
    architecture: str
    quantization: str
    file_size: int
    n_ctx: int
    n_ctx_train: int
    n_layers: int
    n_gpu_layers: int
    kv_type: str
    backend: str
    gpu_note: str | None
    is_reasoning: bool
    template_note: str | None
    template_name: str | None = None  # llama.cpp's built-in template used for a file without one
    drafter: str | None = None  # speculative decoding: "draft 1.5B", "n-gram"; None when off
    draft_note: str | None = None  # why a draft model was refused (drafting is then off)
    experts_in_ram: bool = False  # loaded with the routed experts in system RAM (LoadOptions.experts_in_ram)
    context_note: str | None = None  # the context was cut to 8k to fit this computer's memory

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class Stats:
    prompt_tokens: int = 0
    prompt_reused_tokens: int = 0  # of prompt_tokens, kept in the context from the previous answer
    thinking_tokens: int = 0
    answer_tokens: int = 0
    time_to_first_token_s: float | None = None
    thinking_s: float | None = None  # first token to the end of the thought
    answer_s: float | None = None  # end of the thought (or first token) to the last token
    thinking_tokens_per_s: float | None = None  # thinking tokens the model generated / thinking_s
    answer_tokens_per_s: float | None = None
    # Of thinking_tokens, those put in rather than generated by this run: wrap-ups, nudges and
    # a continued thought's start (steering.py).
    inserted_tokens: int = 0
    decode_tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | context_full | cancelled
    context_used: int = 0
    drafter: str | None = None  # "draft 1.5B", "n-gram"; None when drafting is off
    draft_tokens: int = 0  # tokens drafted and checked by the model
    draft_accepted: int = 0  # of those, kept (equal to the model's own sample)
    draft_speedup: float | None = None  # against this run's own one-token step time, estimated

    def to_dict(self) -> dict:
        return asdict(self)


# --- llama.cpp log -> Python logging --------------------------------------------------

# ggml levels (ggml.h): 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation.
# llama.cpp's info is chatty (every tensor, every key), so it is logged at DEBUG.
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
_log_state = {"level": logging.DEBUG, "partial": ""}


def _on_llama_log(level: int, text: bytes, _user_data) -> None:
    # level 5 (GGML_LOG_LEVEL_CONT) continues the previous message.
    if level != 5:
        _log_state["level"] = _LOG_LEVELS.get(level, logging.DEBUG)
    line = _log_state["partial"] + (text or b"").decode("utf-8", "replace")
    if not line.endswith("\n"):
        _log_state["partial"] = line
        return
    _log_state["partial"] = ""
    line = line.rstrip()
    if _log_state["level"] >= logging.ERROR:
        _recent_errors.append(line)
    llama_log.log(_log_state["level"], line)


_llama_lock = threading.Lock()
_llama_ready = False
_log_callback = None  # keeps the ctypes callback alive for the life of the process


def _llama():
    """The llama_cpp module, initialised once: log routed to Python logging, backends loaded."""
    global _llama_ready, _log_callback
    import llama_cpp

    from app.core.backends import load_backends

    with _llama_lock:
        if not _llama_ready:
            _log_callback = llama_cpp.llama_log_callback(_on_llama_log)
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            load_backends()  # module builds (GGML_BACKEND_DL): before llama_backend_init
            llama_cpp.llama_backend_init()
            _llama_ready = True
    return llama_cpp


def gpu_backend_name() -> str | None:
    """The GPU backend that has a usable device ("CUDA", "Metal", "Vulkan"...), else None."""
    from app.core.backends import DISPLAY_NAMES, load_backends

    _llama()
    gpus = load_backends().gpu_backends
    return DISPLAY_NAMES.get(gpus[0].lower(), gpus[0]) if gpus else None


def _no_gpu_note() -> str:
    from app.core.backends import load_backends

    return load_backends().gpu_note or "This build of llama.cpp has no GPU support; running on the CPU."


# --- the engine -------------------------------------------------------------------------


class Engine:
    """One loaded model and its context. Create, use and close it on one thread."""

    def __init__(self) -> None:  # use Engine.load()
        self._model = self._ctx = None
        self._owner = threading.current_thread()
        self._run: weakref.ref[ChatRun] | None = None  # the latest run; it shares the context

    def _check_owner(self, what: str) -> None:
        if threading.current_thread() is not self._owner:
            raise RuntimeError(
                f"{what} was called on thread {threading.current_thread().name!r}, but an Engine belongs to "
                f"the thread that loaded it ({self._owner.name!r}); only that thread may use or close it."
            )

    def _end_run(self) -> None:
        """End the latest run (its cleanup needs the context), so it can never touch the context again."""
        run = self._run() if self._run is not None else None
        self._run = None
        if run is not None:
            run._end()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        options: LoadOptions | None = None,
        progress: Callable[[float], bool | None] | None = None,
        phase: Callable[[str], bool | None] | None = None,
    ) -> Engine:
        """Validate and load a GGUF. Raises ModelFileError or ModelLoadError with a user-facing sentence.

        `progress(fraction)` is called while loading; returning False cancels it (LoadCancelled).
        `phase(name)`, with drafting on, after the model: "draft" before the drafter opens (a draft
        model loads then; `progress` follows its load from 0), "ready" after; returning False
        cancels the whole load.
        """
        options = options or LoadOptions()
        summary = inspect_gguf(path)  # before llama.cpp sees the file: some bad files abort()
        lc = _llama()
        self = cls()
        self._lc = lc

        gpu = gpu_backend_name()
        hw = hardware.probe()  # never raises; what it cannot read it leaves out
        wanted = options.n_gpu_layers
        kv_type = "f16" if options.kv_type == "auto" else options.kv_type
        # Experts in RAM: the routed experts of the first n_cpu_moe layers (all, when forced) in system RAM.
        n_cpu_moe = summary.n_layers if options.experts_in_ram and summary.n_expert > 0 else 0
        if wanted is None:
            wanted, kv_type, n_cpu_moe = _auto_placement(summary, options, hw) if gpu else (0, kv_type, 0)
        elif wanted < 0:
            wanted = summary.n_layers + 1  # +1: the output layer
        experts_in_ram = n_cpu_moe > 0
        # Beyond the trained context a model's answers fall apart; R1 distills train on 128k.
        n_ctx = min(options.n_ctx, summary.n_ctx_train) if summary.n_ctx_train > 0 else options.n_ctx
        options = dataclasses.replace(options, kv_type=kv_type, n_ctx=n_ctx)
        gpu_note = None
        if not gpu:
            if wanted > 0 or lc.llama_supports_gpu_offload():  # asked for a GPU, or the build has one
                gpu_note = _no_gpu_note()
            wanted, experts_in_ram = 0, False
        if experts_in_ram:
            wanted = summary.n_layers + 1  # every layer on the GPU, less its routed experts
        context_note = None
        too_big = _memory_shortfall(summary, options, wanted, hw, n_cpu_moe)
        if too_big is not None and options.n_ctx > MIN_N_CTX:
            # As the recommendation does (docs/sizing.md): the context, else 8k, rather than no model.
            smaller = dataclasses.replace(options, n_ctx=MIN_N_CTX)
            if options.n_gpu_layers is None and gpu and not experts_in_ram:
                wanted, kv_type, _ = _auto_placement(summary, smaller, hw)
                smaller = dataclasses.replace(smaller, kv_type=kv_type)
            if _memory_shortfall(summary, smaller, wanted, hw, n_cpu_moe) is None:
                context_note = f"Loaded with an {MIN_N_CTX // 1024}k-token context: the model {too_big}"
                log.info(context_note)
                options, too_big = smaller, None
        if too_big is not None:
            raise ModelLoadError(
                f"'{summary.path.name}' {too_big} Choose a smaller model or quantisation, or a smaller context "
                "size in Settings.")
        try:
            # (the keyword only when set: callers and tests that wrap _open keep its older signature)
            self._open(summary.path, options, wanted, progress,
                       **({"experts_in_ram": True, "cpu_moe_layers": n_cpu_moe} if experts_in_ram else {}))
        except ModelLoadError as exc:
            if wanted == 0:
                raise
            log.warning("GPU load failed, retrying on the CPU: %s", exc)
            self.close()
            self._open(summary.path, options, 0, progress)
            gpu_note = f"Loading on the {gpu} GPU failed ({exc}); running on the CPU instead."
            wanted, experts_in_ram = 0, False

        lc_vocab = self._vocab
        self._bos_text = self._token_text(lc.llama_vocab_bos(lc_vocab))
        self._eos_text = self._token_text(lc.llama_vocab_eos(lc_vocab))
        has_r1_tokens = self._tokenize_exact("<｜User｜>") is not None
        template = summary.chat_template
        template_note = None
        # No template in the file: llama.cpp's built-in one for its format, if its header tells (prompt.py).
        builtin = None if template else choose_builtin_template(summary)
        if builtin is not None:
            template_note = builtin.note
            log.info(template_note)
        elif not template:
            template = fallback_template(has_r1_tokens)
            template_note = "The model file has no chat template; Ponder uses a generic one, so answers may be off."
            log.warning(template_note)
        try:
            if builtin is not None:
                self._prompts = PromptBuilder.builtin(builtin.name, is_reasoning=summary.is_reasoning)
            else:
                self._prompts = PromptBuilder(
                    template, bos_token=self._bos_text, eos_token=self._eos_text, is_reasoning=summary.is_reasoning
                )
        except Exception as exc:  # a broken Jinja template in the file
            self._prompts = PromptBuilder(
                fallback_template(has_r1_tokens),
                bos_token=self._bos_text, eos_token=self._eos_text, is_reasoning=summary.is_reasoning,
            )
            template_note = f"The model's chat template is broken ({exc}); Ponder uses a generic one."
            log.warning(template_note)

        self._prompts.rules = prompt_rules(f"{summary.name} {summary.path.name}")  # R1-0528: system prompt, no forced <think>
        n_gpu = min(wanted, summary.n_layers + 1)
        self.info = ModelInfo(
            path=summary.path,
            name=summary.name,
            architecture=summary.architecture,
            quantization=summary.file_type,
            file_size=summary.file_size,
            n_ctx=lc.llama_n_ctx(self._ctx),
            n_ctx_train=summary.n_ctx_train,
            n_layers=summary.n_layers,
            n_gpu_layers=n_gpu,
            kv_type=options.kv_type,
            backend=gpu if (gpu and n_gpu > 0) else "CPU",
            gpu_note=gpu_note,
            is_reasoning=summary.is_reasoning,
            template_note=template_note,
            context_note=context_note,
            template_name=self._prompts.builtin_name,
            experts_in_ram=experts_in_ram,
        )
        self._backend_sampling = (
            options.backend_sampling if options.backend_sampling is not None else self.info.backend != "CPU"
        )
        self._drafter, self.draft_note = None, None  # draft_note: why drafting is off, as a sentence
        self.draft_fixed_k: int | None = None  # tests and benchmarks: draft exactly k tokens a round
        self.summary = summary
        if options.draft != "off":
            from app.core.speculative import open_drafter

            # A cancel (a newer load, the window's Cancel, the app closing) before, while or right
            # after the draft loads ends the whole load, the model too: the load was asked as one.
            try:
                if phase is not None and phase("draft") is False:
                    raise LoadCancelled()
                self._drafter, self.draft_note = open_drafter(self, options.draft, hw, progress)
                self.info.drafter, self.info.draft_note = self.drafter_name, self.draft_note
                if phase is not None and phase("ready") is False:
                    raise LoadCancelled()
            except LoadCancelled:
                self.close()
                raise
        return self

    @property
    def drafter_name(self) -> str | None:
        """'draft 1.5B' or 'n-gram' while speculative decoding is on, else None."""
        return self._drafter.name if self._drafter is not None else None

    def _open(self, path: Path, options: LoadOptions, n_gpu_layers: int, progress, *,
              experts_in_ram: bool = False, cpu_moe_layers: int | None = None) -> None:
        lc = self._lc
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        # llama.cpp reads the overrides while it loads; the array must outlive the call (kept on self).
        self._buft_overrides = _experts_on_cpu_overrides(cpu_moe_layers) if experts_in_ram else None
        if self._buft_overrides is not None:
            mparams.tensor_buft_overrides = ctypes.cast(self._buft_overrides, ctypes.c_void_p)
        self._progress_cb, cancelled = load_progress(lc, mparams, progress)
        _recent_errors.clear()
        model = lc.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
        if not model:
            if cancelled:
                raise LoadCancelled()
            raise ModelLoadError(self._load_failure(path, "load the model"))
        self._model = model
        self._vocab = lc.llama_model_get_vocab(model)

        cparams = lc.llama_context_default_params()
        n_ctx = options.n_ctx
        cparams.n_ctx = n_ctx
        cparams.n_batch = min(N_BATCH, n_ctx)
        cparams.n_ubatch = min(N_BATCH, n_ctx)
        physical = _physical_cores()
        cparams.n_threads = options.n_threads or physical
        cparams.n_threads_batch = options.n_threads or (os.cpu_count() or physical)
        cparams.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if options.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if options.kv_type == "q8_0":
            cparams.type_k = cparams.type_v = lc.GGML_TYPE_Q8_0
        elif options.kv_type != "f16":
            raise PonderError(f"Unknown KV cache type '{options.kv_type}': use f16 or q8_0.")
        cparams.no_perf = False
        if options.draft != "off":  # a verify batch samples at every position (in-graph sampling too)
            from app.core.speculative import N_OUTPUTS_PER_SEQ

            cparams.n_outputs_max_per_seq = N_OUTPUTS_PER_SEQ
        if n_gpu_layers == 0:
            # Else a GPU build still copies weights to the GPU for big prompt batches (~0.8 GB).
            cparams.op_offload = False
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            raise ModelLoadError(self._load_failure(path, f"create a {n_ctx}-token context"))
        self._ctx = ctx
        self._cached: list[int] = []  # tokens whose KV entries are in the context, in order
        self._token_arr = (lc.llama_token * 1)()
        self._piece_buf = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}
        self._stop_event: threading.Event | None = None
        self._abort_cb = lc.ggml_abort_callback(self._should_abort)

    @staticmethod
    def _load_failure(path: Path, what: str) -> str:
        detail = "; ".join(list(_recent_errors)[-2:])
        reason = f" llama.cpp said: {detail}" if detail else ""
        return (
            f"llama.cpp could not {what} for '{Path(path).name}'.{reason} "
            "If memory is short, choose a smaller context size, fewer GPU layers or a smaller model."
        )

    # --- tokens ---------------------------------------------------------------------

    def _tokenize(self, text: str, add_special: bool = False) -> list[int]:
        lc = self._lc
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            cap = -n
            buf = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, True)
        return list(buf[:n])

    def _tokenize_exact(self, text: str) -> int | None:
        """The id of `text` if it is one token of its own."""
        ids = self._tokenize(text)
        return ids[0] if len(ids) == 1 else None

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._lc.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = self._lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    # --- decoding -------------------------------------------------------------------

    def _should_abort(self, _data) -> bool:
        stop = self._stop_event
        return stop is not None and stop.is_set()

    def _eval_prompt(self, tokens: list[int], stats: Stats) -> bool:
        """Bring the context to `tokens`, reusing the longest cached prefix. False if stopped."""
        lc = self._lc
        keep = 0
        for a, b in zip(self._cached, tokens):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # re-evaluate at least one token to get fresh logits
        mem = lc.llama_get_memory(self._ctx)
        if not lc.llama_memory_seq_rm(mem, -1, keep, -1):
            lc.llama_memory_clear(mem, True)
            keep = 0
        self._cached = self._cached[:keep]
        stats.prompt_reused_tokens = keep
        # The abort callback runs inside every graph computation: set it for the prompt only.
        lc.llama_set_abort_callback(self._ctx, self._abort_cb, None)
        try:
            return self._decode_more(tokens[keep:], "evaluate the prompt")
        finally:
            lc.llama_set_abort_callback(self._ctx, lc.ggml_abort_callback(), None)

    def _decode_more(self, tokens: list[int], what: str) -> bool:
        """Put `tokens` into the context after the cached ones, in batches (logits for the
        last one). False if the abort callback stopped it (its partial batch is dropped)."""
        lc = self._lc
        for start in range(0, len(tokens), N_BATCH):
            chunk = tokens[start : start + N_BATCH]
            arr = (lc.llama_token * len(chunk))(*chunk)
            rc = lc.llama_decode(self._ctx, lc.llama_batch_get_one(arr, len(chunk)))
            if rc == 2:  # aborted: drop the partial chunk's entries
                lc.llama_memory_seq_rm(lc.llama_get_memory(self._ctx), -1, len(self._cached), -1)
                return False
            if rc != 0:
                raise ModelLoadError(f"llama.cpp failed to {what} (error {rc}).")
            self._cached.extend(chunk)
        return True

    def _continuation_tokens(self, prompt_tokens: list[int], text: str) -> list[int]:
        """Tokens for `text` after `prompt_tokens`: the cached tokens that spell its start are
        reused as they are (a stopped or earlier answer's own tokens, so its KV entries stay),
        the rest is tokenized."""
        data, at, reused = text.encode("utf-8"), 0, []
        n = len(prompt_tokens)
        if self._cached[:n] == prompt_tokens:
            for token in self._cached[n:]:
                piece = self._piece(token)
                if not piece or not data.startswith(piece, at):
                    break
                reused.append(token)
                at += len(piece)
            while at < len(data) and 0x80 <= data[at] < 0xC0:  # never stop inside a character
                at -= len(self._piece(reused.pop()))
        rest = data[at:].decode("utf-8")
        return reused + (self._tokenize(rest) if rest else [])

    def _sampler(self, sampling: Sampling):
        lc = self._lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        if sampling.top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(sampling.min_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(sampling.temperature))
        seed = sampling.seed if sampling.seed is not None else lc.LLAMA_DEFAULT_SEED
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed % LLAMA_SEED_LIMIT))
        return chain

    def chat(self, messages: list[dict], sampling: Sampling | None = None,
             stop: threading.Event | None = None, *, keep_thinking: bool = False,
             steering: Steering | None = None) -> ChatRun:
        """Start an answer to `messages` (the last one is the user's). Iterate the result.

        Earlier reasoning (an assistant message's "thinking") goes back into the prompt only
        with `keep_thinking` (prompt.py). The run's `prompt_text` is the exact text tokenized
        and its `sampling` the settings used, with the seed drawn when none was given.
        `sampling.thinking_budget` and `steering` (answer now, nudges; any thread may use it
        while the run goes) steer the thought (app/core/steering.py).
        A run before it that is still open is ended: the two would share one context.
        """
        self._check_owner("Engine.chat")
        return self._start(messages, sampling, stop, keep_thinking, steering, [])

    def continue_from(self, messages: list[dict], thinking_prefix: str | list[Segment],
                      sampling: Sampling | None = None, stop: threading.Event | None = None, *,
                      keep_thinking: bool = False, steering: Steering | None = None) -> ChatRun:
        """Answer `messages` again, the thought starting with `thinking_prefix` (an edited or
        cut thought, a stopped one with a nudge after it): the prompt, then that text, and the
        model goes on from there. A string is marked as the user's "edit"; segments
        (steering.continued_prefix) keep their own marks. The run first yields the prefix, so
        its text and spans are the whole message's. Tokens of the prefix that the context
        already holds (a stopped answer's) are reused, not evaluated again.
        """
        self._check_owner("Engine.continue_from")
        if self._ctx is not None and not self.info.is_reasoning:
            raise SteeringError(f"{self.info.name} is not a reasoning model: it writes no thinking to continue from.")
        if isinstance(thinking_prefix, str):
            thinking_prefix = [Segment("think", thinking_prefix, 0, "edit")] if thinking_prefix else []
        for segment in thinking_prefix:
            check_thought(segment.text)
        return self._start(messages, sampling, stop, keep_thinking, steering, thinking_prefix)

    def _start(self, messages, sampling, stop, keep_thinking, steering, prefix: list[Segment]) -> ChatRun:
        if self._ctx is None:
            raise PonderError("The model has been unloaded; load it again.")
        sampling = dataclasses.replace(sampling or Sampling())
        check_budget(sampling.thinking_budget)
        self._end_run()
        try:
            prompt = self._prompts.render(messages, keep_thinking=keep_thinking)
        except Exception as exc:  # the file's template raised (raise_exception) or broke
            raise PonderError(f"The model's chat template could not format this conversation: {exc}") from exc
        tokens = self._tokenize(prompt.text, add_special=not prompt.text.startswith(self._bos_text or "\0"))
        prefix_text = "".join(s.text for s in prefix)
        prefix_tokens = self._continuation_tokens(tokens, prefix_text) if prefix_text else []
        n_ctx = self.info.n_ctx
        if len(tokens) + len(prefix_tokens) >= n_ctx - 1:
            raise ContextOverflow(
                f"This conversation needs {len(tokens) + len(prefix_tokens)} tokens but the context holds {n_ctx}. "
                "Start a new chat, or raise the context size in Settings."
            )
        if sampling.seed is None:  # drawn here, so the run can say which seed it used
            sampling.seed = random.randrange(LLAMA_SEED_LIMIT)
        run = ChatRun(self, tokens + prefix_tokens, prompt.opens_thinking, sampling, stop or threading.Event(),
                      steering=steering, prefix=prefix, prompt_tokens=len(tokens))
        run.prompt_text = prompt.text + prefix_text
        self._run = weakref.ref(run)
        return run

    def close(self) -> None:
        """Free the model and its context; the run in progress, if any, ends first."""
        self._check_owner("Engine.close")
        self._free()

    def _free(self) -> None:
        self._end_run()
        lc = getattr(self, "_lc", None)
        if getattr(self, "_drafter", None) is not None:
            self._drafter.close()
            self._drafter = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            lc.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        # Garbage collection may run on any thread; an unreachable engine has no other user.
        try:
            self._free()
        except Exception:
            pass


class ChatRun:
    """One answer being generated. Iterate it (on the engine's thread) to get Segments.

    `prompt_text` is the exact text that was tokenized (template applied, system text folded
    in, earlier reasoning left out or kept); `sampling` the settings used, seed included.
    After iteration: `thinking`, `answer`, `flags`, `stats`. While iterating:
    `thinking_tokens` and `answer_tokens` count what has been generated so far.
    `close()` ends it early (as do a new `Engine.chat` and `Engine.close`); iterating it
    after that raises RuntimeError.
    Steering (app/core/steering.py): `steering` takes "answer now" and nudges from any
    thread; `spans` are the inserted stretches of `thinking`; `steering.unused` holds the
    notes that came too late to go in.
    """

    def __init__(self, engine: Engine, tokens: list[int], opens_thinking: bool,
                 sampling: Sampling, stop: threading.Event, *, steering: Steering | None = None,
                 prefix: list[Segment] = (), prompt_tokens: int | None = None) -> None:
        self._engine = engine
        self._tokens = tokens  # the prompt's, then a continued thought's start (prefix)
        self.sampling = sampling
        self.prompt_text = ""  # set by Engine.chat
        self._stop = stop
        self.steering = steering or Steering()
        self._prefix = list(prefix)
        prompt_tokens = len(tokens) if prompt_tokens is None else prompt_tokens
        self._prefix_tokens = len(tokens) - prompt_tokens
        self._splitter = ThinkSplitter(prompt_opens_thinking=opens_thinking)
        self._steered: set[str] = {"continued"} if self._prefix else set()  # steering.STEERING_FLAGS
        if any(part.inserted == "nudge" for part in self._prefix):  # a stopped thought nudged on
            self._steered.add("nudged")
        self.thinking_tokens = 0
        self.answer_tokens = 0
        self._thought_tokens = 0  # thinking tokens the model generated (what a budget counts)
        self.stats = Stats(prompt_tokens=prompt_tokens)
        self._stream: Iterator[Segment] | None = None
        self._ended = False

    @property
    def thinking(self) -> str:
        return self._splitter.thinking

    @property
    def answer(self) -> str:
        return self._splitter.answer

    @property
    def flags(self) -> list[str]:
        return sorted(set(self._splitter.flags) | self._steered)

    @property
    def spans(self) -> list[dict]:
        """Inserted stretches of `thinking` (reasoning.TraceText.spans)."""
        return self._splitter.spans

    @property
    def in_thinking(self) -> bool:
        return self._splitter.in_thinking

    def __iter__(self) -> ChatRun:
        if self._stream is not None:
            raise RuntimeError("a ChatRun can be iterated once")
        self._stream = self._generate()
        return self

    def __next__(self) -> Segment:
        self._engine._check_owner("Iterating a ChatRun")
        if self._ended:
            raise RuntimeError("This ChatRun was closed (by close(), a newer chat or closing the engine); "
                               "start a new one with Engine.chat().")
        if self._stream is None:
            self._stream = self._generate()
        return next(self._stream)

    def close(self) -> None:
        """End the run now; what it generated so far stays readable."""
        self._engine._check_owner("ChatRun.close")
        self._end()

    def _end(self) -> None:
        self._ended = True
        if self._stream is not None:
            self._stream.close()  # runs the generator's cleanup while the context still exists

    def _generate(self) -> Iterator[Segment]:
        eng = self._engine
        lc = eng._lc
        ctx, vocab = eng._ctx, eng._vocab
        stats = self.stats
        splitter = self._splitter
        t0 = time.perf_counter()
        stats.finish_reason = "cancelled"  # until the loop ends on its own
        eng._stop_event = self._stop
        lc.llama_perf_context_reset(ctx)
        chain = eng._sampler(self.sampling)
        attached = eng._backend_sampling and lc.llama_set_sampler(ctx, 0, chain)
        spec = None
        try:
            if not eng._eval_prompt(self._tokens, stats):
                return
            for part in self._prefix:  # a continued thought's start: in the context already
                yield from splitter.insert(part.text, part.inserted)
            self.thinking_tokens = stats.inserted_tokens = self._prefix_tokens
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            sample, is_eog, decode = lc.llama_sampler_sample, lc.llama_vocab_is_eog, lc.llama_decode
            piece_of, feed = eng._piece, splitter.feed
            arr = eng._token_arr
            batch = lc.llama_batch_get_one(arr, 1)
            cached = eng._cached
            n_ctx = eng.info.n_ctx
            max_tokens = self.sampling.max_tokens
            stop = self._stop
            t_first = t_think_end = None
            finish = None
            n = 0

            def plain_step(token: int) -> list[int]:
                arr[0] = token
                rc = decode(ctx, batch)
                if rc != 0:
                    raise PonderError(f"llama.cpp failed while generating (error {rc}).")
                cached.append(token)
                return [sample(chain, ctx, -1)]

            if eng._drafter is not None:  # speculative decoding: a step may give several tokens
                from app.core.speculative import Speculation

                spec = Speculation(eng, chain, eng._drafter, eng.draft_fixed_k)
            step = spec.step if spec is not None else plain_step
            # A step decodes a token and returns the next ones (all but the last already in the
            # KV cache); each goes through the same checks as a token that came alone.
            next_tokens = [sample(chain, ctx, -1)]
            while finish is None:
                last = len(next_tokens) - 1
                for i, token in enumerate(next_tokens):
                    if stop.is_set():
                        finish = "cancelled"
                    elif n >= max_tokens:
                        finish = "length"
                    elif len(cached) - (last - i) >= n_ctx:
                        finish = "context_full"
                    if finish is not None:
                        break
                    if t_first is None:
                        t_first = time.perf_counter()
                    if is_eog(vocab, token):
                        finish = "stop"
                        break
                    n += 1
                    was_thinking = splitter.in_thinking
                    segments = feed(decoder.decode(piece_of(token)))
                    if was_thinking or splitter.in_thinking:
                        self.thinking_tokens += 1
                        self._thought_tokens += 1
                        if not splitter.in_thinking and t_think_end is None:
                            t_think_end = time.perf_counter()
                    else:
                        self.answer_tokens += 1
                    yield from segments
                    steer = self._steering_due()  # every taken token goes through this one check
                    if steer is not None:
                        break
                else:
                    next_tokens = step(next_tokens[-1])
                    continue
                if finish is None:  # steering: text goes in after token i, and the model goes on from it
                    if i < last:  # drafts accepted after token i leave the KV cache
                        spec.rewind(i + 1)  # and their sampler draws are taken back
                        if i + 1 < last:
                            del cached[i + 1 - last :]
                            lc.llama_memory_seq_rm(lc.llama_get_memory(ctx), -1, len(cached), -1)
                    else:  # token i is not in the KV cache yet
                        arr[0] = token
                        if decode(ctx, batch) != 0:
                            raise PonderError("llama.cpp failed while generating.")
                        cached.append(token)
                    inserted = self._insert(*steer, decoder)
                    if inserted is None:
                        finish = "context_full"
                        break
                    if not splitter.in_thinking and t_think_end is None:
                        t_think_end = time.perf_counter()
                    yield from inserted
                    next_tokens = [sample(chain, ctx, -1)]  # (a drafter catches up from `cached`)
                    continue
                if i < last:  # ended inside a run of accepted drafts: they leave the KV cache
                    del cached[i - last :]
                    lc.llama_memory_seq_rm(lc.llama_get_memory(ctx), -1, len(cached), -1)
            yield from feed(decoder.decode(b"", final=True))
            yield from splitter.finish()
            stats.finish_reason = finish
            t_end = time.perf_counter()
            if t_first is not None:
                stats.time_to_first_token_s = t_first - t0
                if self._thought_tokens or t_think_end is not None:
                    stats.thinking_s = (t_think_end or t_end) - t_first
                    if stats.thinking_s > 0:
                        stats.thinking_tokens_per_s = self._thought_tokens / stats.thinking_s
                if self.answer_tokens:
                    stats.answer_s = t_end - (t_think_end or t_first)
                    if stats.answer_s > 0:
                        stats.answer_tokens_per_s = self.answer_tokens / stats.answer_s
        finally:
            eng._stop_event = None
            self.steering.settle()
            if spec is not None:
                counts = spec.finish()
                spec.close()
                stats.drafter, stats.draft_tokens, stats.draft_accepted = (
                    counts.drafter, counts.drafted, counts.accepted)
                stats.draft_speedup = counts.speedup
            if attached:
                lc.llama_set_sampler(ctx, 0, None)
            lc.llama_sampler_free(chain)
            perf = lc.llama_perf_context(ctx)
            if perf.n_eval > 0 and perf.t_eval_ms > 0:
                stats.decode_tokens_per_s = perf.n_eval / (perf.t_eval_ms / 1000.0)
            if spec is not None and stats.time_to_first_token_s is not None:  # llama.cpp counts a
                # verify batch as prompt work: the rate is the tokens this run gave, over its time
                n_out = self.thinking_tokens + self.answer_tokens - stats.inserted_tokens
                gen_s = time.perf_counter() - t0 - stats.time_to_first_token_s
                stats.decode_tokens_per_s = n_out / gen_s if gen_s > 0 and n_out > 0 else None
            stats.thinking_tokens = self.thinking_tokens
            stats.answer_tokens = self.answer_tokens
            stats.total_s = time.perf_counter() - t0
            stats.context_used = len(eng._cached)

    def _steering_due(self) -> tuple[str, str, bool] | None:
        """After each taken token: what goes into the thought now, if anything, as
        (text, what it is (reasoning.INSERTED), ends_the_thought). Only while the model thinks: "Answer now",
        then a budget that has run out (both end the thought), then the next nudge."""
        if not self._splitter.in_thinking:
            return None
        if self.steering.take_answer_now():
            self._steered.add("answer_now")
            return ANSWER_NOW_WRAP_UP, "wrap_up", True
        budget = self.sampling.thinking_budget
        if budget is not None and self._thought_tokens >= budget:
            self._steered.add("budget_reached")
            return BUDGET_WRAP_UP, "wrap_up", True
        note = self.steering.take_note()
        if note is not None:
            self._steered.add("nudged")
            return nudge_text(note), "nudge", False
        return None

    def _insert(self, text: str, inserted: str, ends_thought: bool, decoder) -> list[Segment] | None:
        """Put `text` (and `</think>` if it ends the thought) into the KV cache after the last
        token, as one batch, and into the stream; None if the context has no room for it."""
        eng = self._engine
        tokens = eng._tokenize(text + (CLOSE_TAG if ends_thought else ""))
        if len(eng._cached) + len(tokens) >= eng.info.n_ctx:
            return None
        # A character the model had begun (its first bytes) ends before the inserted text.
        segments = self._splitter.feed(decoder.decode(b"", final=True))
        segments += self._splitter.insert(text, inserted, close_thinking=ends_thought)
        eng._decode_more(tokens, "put the inserted text into the context")
        self.thinking_tokens += len(tokens)
        self.stats.inserted_tokens += len(tokens)
        return segments

    def run(self) -> ChatRun:
        """Consume the whole stream; returns self."""
        for _ in self:
            pass
        return self


def _memory_shortfall(summary: ModelSummary, options: LoadOptions, n_gpu_layers: int, hw: HardwareInfo,
                      n_cpu_moe: int = 0) -> str | None:
    """Why the model cannot fit this computer's memory at options.n_ctx ("needs about 30.1 GB of
    memory with a 16384-token context, but this computer has 24.0 GB."), or None. Checked before
    llama.cpp maps the file and the system starts swapping."""
    from app.core import sizing

    if not hw.ram_total_bytes:
        return None
    try:
        need = sizing.plan(summary, n_ctx=options.n_ctx, kv_type=options.kv_type,
                           n_gpu_layers=n_gpu_layers, hw=hw, experts_in_ram=n_cpu_moe > 0,
                           n_cpu_moe=n_cpu_moe or None).ram_bytes
    except Exception:  # the planner is advice: never block a load on its failure
        log.exception("memory planning failed")
        return None
    if need <= hw.ram_total_bytes:
        return None
    gb = 1024**3
    return (f"needs about {need / gb:.1f} GB of memory with a {options.n_ctx}-token context, "
            f"but this computer has {hw.ram_total_bytes / gb:.1f} GB.")


def _auto_placement(summary: ModelSummary, options: LoadOptions, hw: HardwareInfo) -> tuple[int, str, int]:
    """(GPU layers, KV type, leading layers whose routed experts stay in RAM) that fit this machine,
    from the memory planner."""
    from app.core import sizing

    kv_default = "f16" if options.kv_type == "auto" else options.kv_type
    experts_default = summary.n_layers if options.experts_in_ram and summary.n_expert > 0 else 0
    try:
        if not hw.usable_gpus:  # e.g. a GPU ggml sees but the probe cannot size (Intel via Vulkan)
            return summary.n_layers + 1, kv_default, experts_default  # a failed load falls back to the CPU
        kv_types = ("f16", "q8_0") if options.kv_type == "auto" else (options.kv_type,)
        chosen = sizing.best_placement(summary, hw=hw, n_ctx=options.n_ctx, kv_types=kv_types,
                                       experts_in_ram=options.experts_in_ram)
        return chosen.n_gpu_layers, chosen.kv_type, chosen.n_cpu_moe if chosen.experts_in_ram else 0
    except Exception:  # the planner is advice; llama.cpp's own failure falls back to the CPU
        log.exception("memory planning failed; offloading every layer")
        return summary.n_layers + 1, kv_default, experts_default


# llama.cpp's pattern for a mixture of experts' routed experts (common.h LLM_FFN_EXPS_REGEX, what
# --cpu-moe and `-ot ".ffn_.*_exps.=CPU"` use), matched with std::regex_search against tensor names.
EXPERTS_PATTERN = rb"\.ffn_(up|down|gate|gate_up)_(ch|)exps"


class _TensorBuftOverride(ctypes.Structure):
    """struct llama_model_tensor_buft_override { const char * pattern; ggml_backend_buffer_type_t buft; }"""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def load_progress(lc, mparams, progress):
    """Wire `progress(fraction)` into llama.cpp's model load (returning False cancels it).
    Returns (the callback object, which must outlive the load; a list that is non-empty once the
    load was cancelled)."""
    cancelled: list[bool] = []
    if progress is None:
        return None, cancelled

    def on_progress(fraction, _data):
        if progress(float(fraction)) is False:
            cancelled.append(True)
            return False
        return True

    callback = lc.llama_progress_callback(on_progress)
    mparams.progress_callback = callback
    return callback, cancelled


def _experts_on_cpu_overrides(n_layers: int | None = None) -> ctypes.Array:
    """The NULL-terminated override list that keeps the routed experts in CPU memory: every layer's,
    or those of the first `n_layers` layers (llama.cpp's --n-cpu-moe: one "blk.N" pattern a layer).
    The buffer type must be ggml_backend_cpu_buffer_type() itself: llama.cpp compares the pointer to
    pick the CPU's (repacking) buffer types for them. llama-cpp-python 0.3.36 declares the field but
    never fills it."""
    from llama_cpp import _ggml
    from llama_cpp._ctypes_extensions import load_shared_library

    fn = None
    for lib in (_ggml.libggml, lambda: load_shared_library("ggml-base", _ggml.libggml_base_path)):
        try:
            fn = (lib() if callable(lib) else lib).ggml_backend_cpu_buffer_type
            break
        except (AttributeError, OSError, RuntimeError):
            continue
    if fn is None:
        raise ModelLoadError("This llama.cpp build does not expose its CPU buffer type, so the experts cannot be "
                             "kept in RAM; load the model without that option.")
    fn.restype, fn.argtypes = ctypes.c_void_p, []
    patterns = [EXPERTS_PATTERN] if n_layers is None else [rb"blk\.%d" % i + EXPERTS_PATTERN for i in range(n_layers)]
    overrides = (_TensorBuftOverride * (len(patterns) + 1))()
    cpu = fn()
    for entry, pattern in zip(overrides, patterns):
        entry.pattern, entry.buft = pattern, cpu  # ctypes keeps the bytes alive with the array
    return overrides  # the last entry stays zero: the terminator


def _physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except Exception:
        return os.cpu_count() or 1
