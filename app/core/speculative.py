"""Speculative decoding: a cheap drafter proposes tokens, the loaded model checks them in one batch.

Every token still comes from the target model's own sampler chain, so what a message says is
exactly what it would say without drafting (same text at any temperature and seed):
- a drafter proposes k tokens after the last sampled one (`NgramDrafter`: prompt lookup over the
  prompt and the text so far; `ModelDrafter`: a small model with the same tokenizer, greedy);
- the target decodes [last, d1..dk] in one llama_decode with an output at every position and
  samples its own token at each position, in order; a drafted token is kept while it equals the
  target's sample, and at the first difference the target's token stands (plus one token more
  when all k were kept);
- the rejected drafts leave both KV caches (`llama_memory_seq_rm`).
A sample consumes the sampler's random state exactly as the one-token loop does: on the host,
one draw per `llama_sampler_sample`; in-graph (GPU) sampling draws per output but commits only
the accepted prefix (llama.cpp's "transactional" dist sampler, on when the context allows more
than one output per sequence: `n_outputs_max_per_seq`, set by the engine when drafting is on).

`AdaptiveK` picks k from the running acceptance rate and this machine's measured step times, and
drafts nothing when drafting would not pay (probing now and then); after drafts the model rejected
outright it backs off exponentially, whatever the timings say. docs/engine.md has the numbers.

A drafter that fails (a draft model's decode error) turns drafting off for the rest of the run, with
a log line; the run goes on one token at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ponder.speculative")

K_MAX = 8  # verify batches above 9 tokens switch llama.cpp kernels and cost jumps (docs/engine.md)
N_OUTPUTS_PER_SEQ = K_MAX + 1  # context parameter: outputs one verify batch needs
# Verify cost of a batch of B tokens relative to one token, until this run has measured its own
# (H200, 32B shape, depth 1024: the cost table in docs/engine.md). Optimistic on CPUs; measured
# times replace it after the first batch of each size.
_VERIFY_PRIOR = {1: 1.0, 2: 1.07, 3: 1.29, 4: 1.53, 5: 1.70, 6: 1.88, 7: 2.08, 8: 2.29, 9: 2.50}
_DECAY = 0.95  # per verify round: the acceptance estimate follows the last ~20 rounds
_EMA = 0.2  # weight of a new timing
_PAYS = 1.03  # draft only when the expected rate beats the plain rate by 3 %
_PROBE_BUDGET = 0.01  # probes while drafting is off may cost at most ~1 % of the plain rate
_CALIBRATE_EVERY = 64  # while drafting, one plain step in this many keeps the plain time fresh
# After r fully rejected drafts in a row (r >= 2), 2^(r-1) - 1 plain steps before a 1-token probe:
# at acceptance 0 a 384-token answer drafts ~9 times. It does not trust the timings: on a GPU a
# step after a batch of another size can be slower (kernel/graph changes), which makes drafting
# look cheaper than it is (the H200 32B at acceptance 0 drafted 257 times: 0.84x).
_BACKOFF_MAX = 256
VOCAB_SIZE_SLACK = 128  # Qwen distills: 151,936 (1.5B) vs 152,064 (7B-32B) entries, extras unused


def expected_tokens(acceptance: float, k: int) -> float:
    """Tokens one round yields when each drafted token is kept with probability `acceptance`."""
    if acceptance >= 1.0:
        return k + 1.0
    return (1.0 - acceptance ** (k + 1)) / (1.0 - acceptance)


class AdaptiveK:
    """How many tokens to draft next: the k with the best expected tokens per second.

    rate(k) = expected_tokens(a, k) / (k * t_draft + t_verify(k + 1)); rate(0) = 1 / t_plain.
    a is the decayed per-token acceptance; the times are this run's own measurements.
    `fixed_k` (tests, benchmarks) drafts exactly that many every round.
    """

    def __init__(self, draft_cost_prior: float, fixed_k: int | None = None) -> None:
        self.fixed_k = fixed_k
        self._draft_cost_prior = draft_cost_prior  # draft token / target token, until measured
        self._kept = 1.0  # pseudo-counts: the estimate starts at 0.5
        self._missed = 1.0
        self.t_plain: float | None = None
        self.n_plain = 0  # one-token steps timed
        self._t_verify: dict[int, float] = {}
        self._t_draft: float | None = None  # seconds per drafted token
        self._t_catchup: float | None = None  # a draft model's catch-up after a pause (what it missed)
        self._plain_steps = 0  # plain steps since drafting was last tried
        self._rounds = 0
        self.rejected_in_row = 0  # drafts the model rejected outright (0 of k kept), in a row
        self._pause = 0  # plain steps left before the next probe (the exponential back-off)

    @property
    def acceptance(self) -> float:
        return self._kept / (self._kept + self._missed)

    def _verify_time(self, batch: int) -> float:
        t = self._t_verify.get(batch)
        return t if t is not None else self.t_plain * _VERIFY_PRIOR.get(batch, batch)

    def _draft_time(self) -> float:
        return self._t_draft if self._t_draft is not None else self.t_plain * self._draft_cost_prior

    def best_k(self) -> int:
        """The k that maximises the expected rate; 0 when plain decoding is at least as fast."""
        a, td = self.acceptance, self._draft_time()
        best, best_rate = 0, _PAYS / self.t_plain
        for k in range(1, K_MAX + 1):
            rate = expected_tokens(a, k) / (k * td + self._verify_time(k + 1))
            if rate > best_rate:
                best, best_rate = k, rate
        return best

    def choose(self) -> int:
        if self.fixed_k is not None:
            return self.fixed_k
        if self.t_plain is None:
            return 0  # one plain step first, to know what drafting has to beat
        if self._pause > 0:
            self._pause -= 1
            return 0
        if self.rejected_in_row >= 2:
            return 1  # a probe: one token, the cheapest check whether drafts are right again
        k = self.best_k()
        if k == 0:
            self._plain_steps += 1
            if self._plain_steps >= self._probe_interval():
                self._plain_steps = 0
                return 1
            return 0
        self._rounds += 1
        every = _CALIBRATE_EVERY if self._rounds > _CALIBRATE_EVERY else 16  # more often at first
        return 0 if self._rounds % every == 0 else k

    def _probe_interval(self) -> int:
        # A rejected probe costs a draft token and a 2-token verify instead of a 1-token step, and
        # a draft model first catches up on the tokens since the last probe.
        cost = self._draft_time() + self._verify_time(2) - self.t_plain + (self._t_catchup or 0.0)
        return max(16, int(cost / (_PROBE_BUDGET * self.t_plain)) + 1)

    def observe_plain(self, seconds: float) -> None:
        self.n_plain += 1
        self.t_plain = seconds if self.t_plain is None else self.t_plain + _EMA * (seconds - self.t_plain)

    def observe_round(self, drafted: int, kept: int, verify_s: float, draft_s: float, catchup_s: float = 0.0) -> None:
        if catchup_s and self._t_draft is not None:  # (the first one is the prompt: not a pause)
            old = self._t_catchup
            self._t_catchup = catchup_s if old is None else old + _EMA * (catchup_s - old)
        if kept and self.rejected_in_row >= 2:  # a probe was right after a back-off: the text
            self._kept = self._missed = 1.0  # changed (e.g. code restated); start the estimate afresh
        self._kept = self._kept * _DECAY + kept
        if kept == 0:
            self.rejected_in_row += 1
            self._pause = min(2 ** (self.rejected_in_row - 1) - 1, _BACKOFF_MAX)
        else:
            self.rejected_in_row = 0
        self._missed = self._missed * _DECAY + (1 if kept < drafted else 0)
        batch = drafted + 1
        old = self._t_verify.get(batch)
        self._t_verify[batch] = verify_s if old is None else old + _EMA * (verify_s - old)
        per_token = draft_s / drafted
        self._t_draft = per_token if self._t_draft is None else self._t_draft + _EMA * (per_token - self._t_draft)


# --- drafters -------------------------------------------------------------------------------


class NgramDrafter:
    """Prompt lookup: find the latest earlier occurrence of the last n tokens (n = 4..2) in the
    prompt and the text so far, and propose what followed it. Costs microseconds."""

    name = "n-gram"
    cost_prior = 0.0
    N_MAX = 4
    N_MIN = 2

    def __init__(self) -> None:
        self._history: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest continuation starts

    def _sync(self, tokens: list[int], last: int) -> None:
        h = self._history
        n = len(h)
        if n <= len(tokens):
            follows = tokens[:n] == h
        else:  # the history already holds `last` (cannot happen in a run, but a caller may repeat a call)
            follows = n == len(tokens) + 1 and h[-1] == last and h[:-1] == tokens
        if not follows:  # another conversation: start over
            self._history, self._index = [], {}
            h, n = self._history, 0
        index = self._index
        for token in (tokens[n:] + [last]) if n <= len(tokens) else ():
            i = len(h)
            for size in range(self.N_MIN, min(self.N_MAX, i) + 1):
                index[tuple(h[i - size : i])] = i
            h.append(token)

    def draft(self, tokens: list[int], last: int, k: int) -> list[int]:
        """Up to k tokens to follow `tokens + [last]`; [] when nothing earlier matches."""
        self._sync(tokens, last)
        h = self._history
        for size in range(self.N_MAX, self.N_MIN - 1, -1):
            if len(h) > size:
                start = self._index.get(tuple(h[-size:]))
                if start is not None:
                    return h[start : start + k]
        return []

    def close(self) -> None:
        pass


class DraftFailed(Exception):
    """The drafter cannot go on (a draft model's decode failed): drafting stops for the run."""


class ModelDrafter:
    """A small model with the target's tokenizer and a context of its own, drafting greedily.

    Its KV cache follows the target's: each draft first removes what differs from the target's
    tokens and decodes what is missing (after a rejected draft, one or two tokens). A target id
    beyond the draft's vocabulary (the 7B-32B's padding ids above the 1.5B's 151,936; only random
    weights emit them) goes into the draft as a stand-in token: the draft's guesses after it are
    worse, the target's text is the same, and llama.cpp never sees an invalid id."""

    def __init__(self, lc, model, ctx, name: str, backend_sampling: bool) -> None:
        self._lc, self._model, self._ctx = lc, model, ctx
        self.name = name
        self.cost_prior = 0.15  # a 1.5B token against a 32B one on an H200 is 0.14; measured after one round
        self._vocab = lc.llama_model_get_vocab(model)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        pad, eos = lc.llama_vocab_pad(self._vocab), lc.llama_vocab_eos(self._vocab)
        self._stand_in = next((t for t in (pad, eos) if 0 <= t < self.n_vocab), 0)
        self._cached: list[int] = []  # the target's ids the draft's KV cache holds (stand-ins unmapped)
        self.catchup_s = 0.0
        self._greedy = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        lc.llama_sampler_chain_add(self._greedy, lc.llama_sampler_init_greedy())
        # In-graph greedy keeps the draft's logits on the GPU, as the target's sampling does.
        self._attached = backend_sampling and lc.llama_set_sampler(ctx, 0, self._greedy)
        self._one = (lc.llama_token * 1)()
        self.n_ctx = lc.llama_n_ctx(ctx)
        self._n_batch = lc.llama_n_batch(ctx)

    def _decode(self, tokens: list[int]) -> None:
        lc, n_vocab, stand_in = self._lc, self.n_vocab, self._stand_in
        step = self._n_batch  # a longer batch would abort in llama.cpp (an assert, not an error)
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            arr = (lc.llama_token * len(chunk))(*(t if 0 <= t < n_vocab else stand_in for t in chunk))
            self._check(lc.llama_decode(self._ctx, lc.llama_batch_get_one(arr, len(chunk))))
            self._cached.extend(chunk)

    def _check(self, rc: int) -> None:
        if rc != 0:  # its KV cache is in an unknown state: empty it, so a later run starts clean
            self._lc.llama_memory_clear(self._lc.llama_get_memory(self._ctx), True)
            self._cached.clear()
            raise DraftFailed(f"the draft model failed to decode (llama.cpp error {rc})")

    def draft(self, tokens: list[int], last: int, k: int) -> list[int]:
        lc = self._lc
        self.catchup_s = 0.0
        cached = self._cached
        n = len(tokens)
        limit = min(len(cached), n)
        if cached[:limit] == tokens[:limit]:
            keep = limit  # the usual case: the target's tokens extend the draft's
        else:
            keep = 0
            while cached[keep] == tokens[keep]:
                keep += 1
        if keep < len(cached):  # drafts the target rejected, or another conversation
            lc.llama_memory_seq_rm(lc.llama_get_memory(self._ctx), -1, keep, -1)
            del cached[keep:]
        k = min(k, self.n_ctx - n - 2)
        if k <= 0:
            return []
        missing = tokens[keep:] + [last]
        t0 = time.perf_counter()
        self._decode(missing)
        # A long catch-up (the prompt, or tokens generated while drafting was off) is not what a
        # drafted token costs: report it apart so the k policy is not misled.
        self.catchup_s = time.perf_counter() - t0 if len(missing) > 2 else 0.0
        drafts = []
        sample, is_eog = lc.llama_sampler_sample, lc.llama_vocab_is_eog
        one = self._one
        batch = lc.llama_batch_get_one(one, 1)
        while True:
            token = sample(self._greedy, self._ctx, -1)
            drafts.append(token)
            if len(drafts) >= k or is_eog(self._vocab, token):
                return drafts  # the last draft is not decoded: the next round starts from the target's token
            one[0] = token
            self._check(lc.llama_decode(self._ctx, batch))
            cached.append(token)

    def close(self) -> None:
        lc = self._lc
        if self._ctx is not None:
            if self._attached:
                lc.llama_set_sampler(self._ctx, 0, None)
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._greedy is not None:
            lc.llama_sampler_free(self._greedy)
            self._greedy = None
        if self._model is not None:
            lc.llama_model_free(self._model)
            self._model = None


def tokenizer_mismatch(lc, target_vocab, draft_vocab) -> str | None:
    """Why the draft cannot draft for the target (a sentence), or None when their tokens agree.

    Same rule as llama-server: same vocabulary type and special tokens, sizes within 128
    (padding), and every shared id spelling the same text."""
    n_target, n_draft = lc.llama_vocab_n_tokens(target_vocab), lc.llama_vocab_n_tokens(draft_vocab)
    if lc.llama_vocab_type(target_vocab) != lc.llama_vocab_type(draft_vocab):
        return "its tokenizer is of another kind"
    if abs(n_target - n_draft) > VOCAB_SIZE_SLACK:
        return f"its vocabulary has {n_draft:,} tokens and the model's has {n_target:,}"
    for what, fn in (("beginning", lc.llama_vocab_bos), ("end", lc.llama_vocab_eos)):
        if fn(target_vocab) != fn(draft_vocab):
            return f"its {what}-of-text token differs"
    text = lc.llama_vocab_get_text
    for token in range(min(n_target, n_draft)):
        if text(target_vocab, token) != text(draft_vocab, token):
            shown = text(draft_vocab, token).decode("utf-8", "replace")
            return f"its token {token} is {shown!r}, not what the model's token {token} is"
    return None


# --- one run's drafting -------------------------------------------------------------------------


@dataclass
class DraftCounts:
    drafter: str
    drafted: int = 0
    accepted: int = 0
    speedup: float | None = None  # against this run's own plain-step time, estimated


class Speculation:
    """Drafting for one ChatRun: `step(token)` decodes `token` (and drafts) and returns the
    next tokens (1..k+1), all sampled by the target's chain. Leaves `cached` = the KV's tokens."""

    def __init__(self, eng, chain, drafter, fixed_k: int | None = None) -> None:
        lc = eng._lc
        self._lc, self._eng, self._ctx, self._chain = lc, eng, eng._ctx, chain
        self._drafter = drafter
        self._n_vocab = lc.llama_vocab_n_tokens(eng._vocab)
        self.policy = AdaptiveK(drafter.cost_prior, fixed_k)
        self.counts = DraftCounts(drafter.name)
        self._batch = lc.llama_batch_init(K_MAX + 1, 0, 1)
        self._one = (lc.llama_token * 1)()
        self._mem = lc.llama_get_memory(self._ctx)
        # The chain's state before a round's samples, to take back the draws of tokens the loop
        # did not take (`rewind`): the text after an inserted one stays what the seed gives.
        self._saved = lc.llama_sampler_clone(chain)
        self._spent_s = 0.0
        self._tokens_out = 0
        self.failed: str | None = None  # why drafting stopped for this run (a drafter's failure)

    def step(self, token: int) -> list[int]:
        lc, ctx, chain = self._lc, self._ctx, self._chain
        cached = self._eng._cached
        n_ctx = self._eng.info.n_ctx
        k = 0 if self.failed else min(self.policy.choose(), K_MAX, n_ctx - len(cached) - 2)
        drafts: list[int] = []
        draft_s = catchup_s = 0.0
        if k > 0:
            t0 = time.perf_counter()
            try:
                drafts = self._drafter.draft(cached, token, k)[:k]
            except Exception as exc:  # a drafter's failure never breaks the answer: it goes on undrafted
                self.failed = str(exc) or type(exc).__name__
                if isinstance(exc, DraftFailed):
                    log.warning("drafting is off for the rest of this answer: %s", self.failed)
                else:
                    log.exception("drafting is off for the rest of this answer: the drafter failed")
                k, drafts = 0, []
            draft_s = time.perf_counter() - t0
            catchup_s = getattr(self._drafter, "catchup_s", 0.0)
            self._spent_s += catchup_s
            draft_s -= catchup_s
            for i, d in enumerate(drafts):
                if not 0 <= d < self._n_vocab:  # a larger draft vocabulary's id
                    del drafts[i:]
                    break
        t0 = time.perf_counter()
        if not drafts:
            self._one[0] = token
            rc = lc.llama_decode(ctx, lc.llama_batch_get_one(self._one, 1))
            if rc != 0:
                raise _decode_error(rc)
            cached.append(token)
            out = [lc.llama_sampler_sample(chain, ctx, -1)]
            seconds = time.perf_counter() - t0
            if k == 0:
                self.policy.observe_plain(seconds)
            self._spent_s += seconds + draft_s
            self._tokens_out += 1
            return out

        batch = self._batch
        n_batch = len(drafts) + 1
        base = len(cached)
        for i, t in enumerate([token, *drafts]):
            batch.token[i] = t
            batch.pos[i] = base + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = n_batch
        rc = lc.llama_decode(ctx, batch)
        if rc != 0:
            raise _decode_error(rc)
        cached.append(token)
        cached.extend(drafts)
        out = []
        sample = lc.llama_sampler_sample
        lc.llama_sampler_copy(chain, self._saved)
        for i in range(n_batch):  # in order: the sampler commits one draw per accepted position
            s = sample(chain, ctx, i)
            out.append(s)
            if i == len(drafts) or s != drafts[i]:
                break
        kept = len(out) - 1
        if kept < len(drafts):
            del cached[base + 1 + kept :]
            lc.llama_memory_seq_rm(self._mem, -1, len(cached), -1)
        seconds = time.perf_counter() - t0
        self.policy.observe_round(len(drafts), kept, seconds, draft_s, catchup_s)
        self.counts.drafted += len(drafts)
        self.counts.accepted += kept
        self._spent_s += seconds + draft_s
        self._tokens_out += len(out)
        return out

    def rewind(self, taken: int) -> None:
        """The loop took only the first `taken` tokens of the last round and goes on after them
        (steering inserts text): give back the sampler draws of the rest, as if they were never
        sampled. Call before the next decode (the round's outputs are still in the context)."""
        lc = self._lc
        lc.llama_sampler_copy(self._saved, self._chain)
        for i in range(taken):
            lc.llama_sampler_sample(self._chain, self._ctx, i)

    def finish(self) -> DraftCounts:
        t_plain = self.policy.t_plain
        # An estimate needs a few timed one-token steps and a few dozen tokens; else none.
        if t_plain and self._spent_s > 0 and self.counts.drafted and self.policy.n_plain >= 3 \
                and self._tokens_out >= 64:
            self.counts.speedup = self._tokens_out * t_plain / self._spent_s
        return self.counts

    def close(self) -> None:
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None
        if self._saved is not None:
            self._lc.llama_sampler_free(self._saved)
            self._saved = None


def _decode_error(rc: int):
    from app.core.errors import PonderError

    return PonderError(f"llama.cpp failed while generating (error {rc}).")


def drafting_summary(drafter: str | None, drafted: int, accepted: int, speedup: float | None) -> str:
    """'draft 1.5B · 78% accepted · 1.4× est.' for a message's stats ('' when nothing was drafted)."""
    if not drafter or not drafted:  # nothing was drafted (nothing matched, or it did not pay)
        return ""
    text = f"{drafter} · {round(100 * accepted / drafted)}% accepted"
    if speedup is not None:
        text += f" · {speedup:.1f}× est."
    return text


def drafter_label(path: str | Path) -> str:
    """'draft 1.5B' for 'DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf', else 'draft <file stem>'."""
    import re

    stem = Path(path).stem
    m = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", stem)
    return f"draft {m.group(1)}B" if m else f"draft {stem}"


__all__ = [
    "AdaptiveK", "DraftCounts", "DraftFailed", "K_MAX", "ModelDrafter", "N_OUTPUTS_PER_SEQ", "NgramDrafter", "Speculation",
    "drafter_label", "drafting_summary", "expected_tokens", "tokenizer_mismatch",
]


# --- choosing and opening a drafter -----------------------------------------------------------


def paired_draft_path(target: Path, search: list[Path] | None = None) -> Path | None:
    """The downloaded draft model the catalog pairs with `target` (by file name), if any.

    Looks beside the target and in `search` folders; prefers Q4_K_M, then the smallest file."""
    from app.core.catalog import load_catalog

    try:
        catalog = load_catalog()
        hit = catalog.find_file(Path(target).name)
        draft_id = getattr(hit[0], "draft", None) if hit else None
        if not draft_id:
            return None
        draft = catalog.get(draft_id)
    except Exception:  # the catalog is advice here: no pairing, no model drafting
        log.exception("could not read the catalog's draft pairing")
        return None
    quants = sorted(draft.quants, key=lambda q: (q.name != "Q4_K_M", q.size_bytes))
    for folder in [Path(target).parent, *(search or [])]:
        for quant in quants:
            candidate = folder / quant.file.name
            if candidate.is_file():
                return candidate
    return None


def open_drafter(eng, spec: str, hw=None):
    """(drafter, None) or (None, a sentence saying why drafting is off) for LoadOptions.draft.

    "ngram": prompt lookup. "auto": the paired draft model if downloaded, else prompt lookup.
    A path: that model, if its tokenizer matches the target's and it fits beside it."""
    if spec == "ngram":
        return NgramDrafter(), None
    if spec == "auto":
        from app.core.paths import data_dir, models_dir

        path = paired_draft_path(eng.info.path, [models_dir(data_dir())])
        if path is None:
            return NgramDrafter(), None
    else:
        path = Path(spec).expanduser()
    if Path(path).resolve() == Path(eng.info.path).resolve():
        return None, "A model cannot be its own draft model; drafting is off."
    try:
        drafter = _open_model_drafter(eng, Path(path), hw)
    except Exception as exc:  # PonderError carries a sentence; anything else is a bug, logged
        if not isinstance(exc, _ponder_error()):
            log.exception("opening the draft model failed")
        why = f"The draft model '{Path(path).name}' cannot be used: {exc}"
        if spec == "auto":  # the pair was Ponder's choice: draft from the text instead
            return NgramDrafter(), f"{why} Ponder drafts from the text so far instead."
        return None, f"{why} Drafting is off."
    return drafter, None


def _ponder_error():
    from app.core.errors import PonderError

    return PonderError


def _open_model_drafter(eng, path: Path, hw) -> ModelDrafter:
    from app.core.errors import ModelLoadError
    from app.core.modelfile import inspect_gguf

    summary = inspect_gguf(path)  # raises ModelFileError with a sentence; some bad files abort() llama.cpp
    lc = eng._lc
    on_gpu = eng.info.n_gpu_layers > 0
    _check_room(eng, summary, on_gpu, hw)
    mparams = lc.llama_model_default_params()
    mparams.n_gpu_layers = summary.n_layers + 1 if on_gpu else 0
    model = lc.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
    if not model:
        raise ModelLoadError("llama.cpp could not load it.")
    reason = tokenizer_mismatch(lc, eng._vocab, lc.llama_model_get_vocab(model))
    if reason is not None:
        lc.llama_model_free(model)
        raise ModelLoadError(f"its tokenizer does not match {eng.info.name}'s ({reason}).")
    cparams = lc.llama_context_default_params()
    cparams.n_ctx = eng.info.n_ctx
    cparams.n_batch = cparams.n_ubatch = min(512, eng.info.n_ctx)
    cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
    # The target's thread counts: more threads than cores spin against the target's own.
    cparams.n_threads = lc.llama_n_threads(eng._ctx)
    cparams.n_threads_batch = lc.llama_n_threads_batch(eng._ctx)
    if not on_gpu:
        cparams.op_offload = False
    ctx = lc.llama_init_from_model(model, cparams)
    if not ctx:
        lc.llama_model_free(model)
        raise ModelLoadError(f"llama.cpp could not create its {eng.info.n_ctx}-token context (memory?).")
    log.info("drafting with %s (%s)", path.name, "GPU" if on_gpu else "CPU")
    return ModelDrafter(lc, model, ctx, drafter_label(path), eng._backend_sampling)


def _check_room(eng, summary, on_gpu: bool, hw) -> None:
    """The memory plan with the draft: its weights and KV cache must fit beside the model's."""
    from app.core import sizing
    from app.core.errors import ModelLoadError

    if hw is None:
        return
    try:
        target = sizing.plan(eng.summary, n_ctx=eng.info.n_ctx, kv_type=eng.info.kv_type,
                             n_gpu_layers=eng.info.n_gpu_layers, hw=hw)
        draft = sizing.plan(summary, n_ctx=eng.info.n_ctx, kv_type="f16", n_gpu_layers=-1 if on_gpu else 0, hw=hw)
    except Exception:  # the planner is advice: never block on its failure
        log.exception("memory planning for the draft failed")
        return
    gb = 1024**3
    if hw.ram_total_bytes and target.ram_bytes + draft.ram_bytes > hw.ram_total_bytes:
        raise ModelLoadError(f"with it the two models need about {(target.ram_bytes + draft.ram_bytes) / gb:.1f} GB "
                             f"of memory and this computer has {hw.ram_total_bytes / gb:.1f} GB.")
    vram = sum(g.memory_total_bytes for g in hw.usable_gpus)
    if on_gpu and vram and target.gpu_bytes + draft.gpu_bytes > vram:
        raise ModelLoadError(f"with it the two models need about {(target.gpu_bytes + draft.gpu_bytes) / gb:.1f} GB "
                             f"of GPU memory and the GPU has {vram / gb:.1f} GB.")


def draft_offer(model_id: str | None, models_dir: Path, catalog=None):
    """After a download of `model_id`: (DownloadRequest, sentence) for the catalog's draft model
    paired with it, when that one is not downloaded yet; else None."""
    from app.core.catalog import load_catalog
    from app.core.survey import DownloadRequest

    if not model_id:
        return None
    try:
        catalog = catalog or load_catalog()
        model = catalog.get(model_id)
        if not model.draft:
            return None
        draft = catalog.get(model.draft)
    except Exception:  # the catalog is advice here
        log.exception("could not read the catalog's draft pairing")
        return None
    if any((Path(models_dir) / q.file.name).is_file() for q in draft.quants):
        return None
    quant = next((q for q in draft.quants if q.name == "Q4_K_M"), draft.quants[0])
    from app.core.downloads import format_bytes

    memory = ""
    try:  # the memory plan with the draft: its weights, runtime and KV cache at the usual context
        from app.core import sizing

        p = sizing.plan(draft, quant=quant)
        memory = f", about {format_bytes(p.gpu_bytes + p.ram_bytes)} of memory beside it"
    except Exception:
        log.exception("planning the draft model's memory failed")
    sentence = (f"{model.short_name} answers faster when {draft.short_name} drafts for it "
                f"({format_bytes(quant.size_bytes)} download{memory}; the answers stay the same).")
    return DownloadRequest.for_catalog(draft, quant), sentence
