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

`AdaptiveK` drafts in stretches at one k, chosen from the running acceptance rate and this
machine's measured step times, and decodes plainly where drafting would not pay, probing now and
then with a guess the model's own next token checks (no extra work for the model). One k per
stretch, one-token draft decodes and padded short proposals keep every batch of a stretch one
shape, so llama.cpp's CUDA graphs are replayed, not captured again. docs/engine.md has the numbers.

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
# (H200, 32B shape, depth 1024: tests/benchmarks/gpu/speculative_h200.txt; at 9 tokens llama.cpp
# changes kernels and the cost drops). Optimistic on CPUs; measured times replace it after the
# first steady batch of each size.
_VERIFY_PRIOR = {1: 1.0, 2: 1.07, 3: 1.28, 4: 1.52, 5: 1.65, 6: 1.87, 7: 2.08, 8: 2.29, 9: 1.93}
_PLAIN_FIRST = 3  # steady one-token steps timed before drafting starts
# Two acceptance estimates, decayed per observation: a quick one (~20 rounds) decides whether to
# draft at all, a steady one (~100 rounds) which k (its noise would make k flap: each change costs
# a graph capture, and near the best k the rates differ by a few per cent).
_DECAY_QUICK, _DECAY_STEADY = 0.95, 0.99
_EMA = 0.2  # weight of a new timing
_START = 1.03  # start drafting when the expected rate beats the plain rate by 3 %
_STOP = 1.0  # stop when it no longer beats it (the gap between the two keeps k from flapping)
_CHANGE = 1.08  # a new k must promise 8 % more than the current one (the estimate is noisy; a change costs a capture)
_REVIEW_FIRST, _REVIEW_EVERY = 8, 16  # rounds at one k before its first review, then between reviews
_REALIZED_FLOOR = 0.98  # a stretch whose measured rate falls below this x plain stops, whatever the model says
_PROBE_GAP_FIRST, _PROBE_GAP_MAX = 16, 512  # plain steps between probes while drafting is off; doubles per wrong probe
VOCAB_SIZE_SLACK = 128  # Qwen distills: 151,936 (1.5B) vs 152,064 (7B-32B) entries, extras unused


def _ema(old: float | None, new: float) -> float:
    """A timing's running estimate: the first measurement, then an exponential moving average."""
    return new if old is None else old + _EMA * (new - old)


def expected_tokens(acceptance: float, k: int) -> float:
    """Tokens one round yields when each drafted token is kept with probability `acceptance`."""
    if acceptance >= 1.0:
        return k + 1.0
    return (1.0 - acceptance ** (k + 1)) / (1.0 - acceptance)


class AdaptiveK:
    """How many tokens to draft: drafting stretches at one k, plain stretches with probes.

    On a GPU llama.cpp replays a captured CUDA graph only while the batch shape stays the same;
    each change of shape costs about two slow steps (graph keyed on the first node, warm-up reset,
    capture again: ~+4 ms on a 32B at every change, docs/engine.md). So the policy keeps one shape
    for long stretches instead of choosing k per round:
    - plain: one-token steps; every `probe gap` steps the drafter guesses the next token and the
      guess is checked against the model's own (a probe costs the drafter only: the model's batch
      stays one token). A probe that is right shortens the gap, a wrong one doubles it.
    - drafting at k: every round verifies k+1 tokens. After _REVIEW_FIRST rounds and then every
      _REVIEW_EVERY, k is reviewed (changed only for a 4 % better expected rate), and the stretch
      stops when the model says plain is faster (quick estimate, checked every round) or when the
      stretch's own measured rate is below plain's.
    rate(k) = expected_tokens(a, k) / (k * t_draft + t_verify(k + 1)); plain rate = 1 / t_plain.
    a is the decayed per-token acceptance (quick for whether, steady for which k). Times are measured only on steady steps (same shape as
    the two before), so graph re-captures do not bias them.
    `fixed_k` (tests, benchmarks) drafts exactly that many every round.
    `free_probes` (n-gram: a guess costs microseconds): probe on every plain step.
    """

    def __init__(self, draft_cost_prior: float, fixed_k: int | None = None, free_probes: bool = False) -> None:
        self.fixed_k = fixed_k
        self.free_probes = free_probes
        self._draft_cost_prior = draft_cost_prior  # draft token / target token, until measured
        # Decayed (kept, missed) counts. Pseudo-counts: both start at 0.7, about what a small distill
        # drafting for a big one of its family keeps (docs/engine.md); a few rounds outweigh them.
        self._quick = [1.4, 0.6]
        self._steady = [1.4, 0.6]
        self.t_plain: float | None = None
        self.n_plain = 0  # steady one-token steps timed
        self._t_verify: dict[int, float] = {}
        self._t_draft: float | None = None  # seconds per one-token decode of the drafter
        self.k = 0  # the stretch's k; 0 while plain
        self._opened = False  # the first choice after the plain time is known is made
        self._rounds_at_k = 0
        self._stretch_tokens = 0
        self._stretch_s = 0.0
        self._probe_gap = _PROBE_GAP_FIRST
        self._until_probe = 0  # plain steps left before the next probe

    @property
    def acceptance(self) -> float:
        kept, missed = self._quick
        return kept / (kept + missed)

    @property
    def steady_acceptance(self) -> float:
        kept, missed = self._steady
        return kept / (kept + missed)

    def _verify_time(self, batch: int) -> float:
        """Measured, else the prior's shape scaled to the nearest size measured on this machine."""
        t = self._t_verify.get(batch)
        if t is not None:
            return t
        prior = self.t_plain * _VERIFY_PRIOR.get(batch, batch)
        if not self._t_verify:
            return prior
        near = min(self._t_verify, key=lambda b: (abs(b - batch), b))
        return prior * self._t_verify[near] / (self.t_plain * _VERIFY_PRIOR.get(near, near))

    def _draft_time(self) -> float:
        return self._t_draft if self._t_draft is not None else self.t_plain * self._draft_cost_prior

    def rate(self, k: int, a: float | None = None) -> float:
        """Expected tokens per second when drafting k (k = 0: plain) at acceptance a (default: quick)."""
        if k == 0:
            return 1.0 / self.t_plain
        a = self.acceptance if a is None else a
        # A draft model decodes k tokens a round, one more after a round that kept all k.
        return expected_tokens(a, k) / ((k + a**k) * self._draft_time() + self._verify_time(k + 1))

    def best_k(self, a: float | None = None) -> int:
        """The k that maximises the expected rate (never 0: compare with rate(0) to decide)."""
        return max(range(1, K_MAX + 1), key=lambda k: self.rate(k, a))

    def choose(self) -> int:
        """The next step's k: 0 for a one-token step (the drafter may still probe: `probe_due`)."""
        if self.fixed_k is not None:
            return self.fixed_k
        if self.n_plain < _PLAIN_FIRST:
            return 0  # steady plain steps first: what drafting has to beat
        if not self._opened:  # then draft at once if the priors say it pays (else probes decide)
            self._opened = True
            if self.rate(k := self.best_k()) > _START * self.rate(0):
                self._start(k)
        return self.k

    def probe_due(self) -> bool:
        """On a plain step: should the drafter guess the token the model is about to give?"""
        if self.fixed_k is not None or self.n_plain < _PLAIN_FIRST or self.k:
            return False
        if self.free_probes:
            return True
        self._until_probe -= 1
        return self._until_probe <= 0

    def observe_plain(self, seconds: float, steady: bool = True, extra_s: float = 0.0) -> None:
        """A one-token step (plain, or inside a drafting stretch where the drafter had nothing:
        `extra_s` is what asking it cost)."""
        if self.k:
            self._stretch_tokens += 1
            self._stretch_s += seconds + extra_s
        if steady:
            self.n_plain += 1
            self.t_plain = _ema(self.t_plain, seconds)

    def observe_probe(self, right: bool) -> None:
        """A plain step's probe: the drafter's guess was (not) the model's token."""
        self._count(1, int(right))
        self._probe_gap = _PROBE_GAP_FIRST if right else min(2 * self._probe_gap, _PROBE_GAP_MAX)
        self._until_probe = self._probe_gap
        if right and self.rate(k := self.best_k()) > _START * self.rate(0):
            self._start(k)

    def observe_round(self, drafted: int, kept: int, verify_s: float, draft_s: float,
                      steady: bool = True, width: int | None = None, draft_decodes: int | None = None,
                      draft_steady: bool = True) -> None:
        """A verify round: `drafted` tokens proposed (the batch is `width` = drafted + 1 unless
        padded), `kept` of them accepted; draft_s is what drafting them cost, in `draft_decodes`
        one-token decodes of a draft model (default: one per drafted token), timed on a warm
        graph when `draft_steady`."""
        self._count(drafted, kept)
        width = width or drafted + 1
        if steady:
            self._t_verify[width] = _ema(self._t_verify.get(width), verify_s)
        decodes = draft_decodes if draft_decodes is not None else drafted
        if decodes and draft_steady:
            self._t_draft = _ema(self._t_draft, draft_s / decodes)
        if self.fixed_k is not None or not self.k:
            return
        self._rounds_at_k += 1
        self._stretch_tokens += kept + 1
        self._stretch_s += verify_s + draft_s
        self._review()

    def _count(self, drafted: int, kept: int) -> None:
        missed = 1 if kept < drafted else 0
        for counts, decay in ((self._quick, _DECAY_QUICK), (self._steady, _DECAY_STEADY)):
            counts[0] = counts[0] * decay + kept
            counts[1] = counts[1] * decay + missed

    def _start(self, k: int) -> None:
        self.k, self._rounds_at_k = k, 0
        self._stretch_tokens, self._stretch_s = 0, 0.0

    def _stop(self) -> None:
        self.k = 0
        self._until_probe = self._probe_gap

    def _review(self) -> None:
        plain = self.rate(0)
        if self.rate(self.k) < _STOP * plain:
            self._stop()
            return
        n = self._rounds_at_k
        if n < _REVIEW_FIRST or (n - _REVIEW_FIRST) % _REVIEW_EVERY:
            return
        if self._stretch_s and self._stretch_tokens / self._stretch_s < _REALIZED_FLOOR * plain:
            self._probe_gap = min(2 * self._probe_gap, _PROBE_GAP_MAX)  # the timings misled: wait longer
            self._stop()
            return
        a = self.steady_acceptance
        k = self.best_k(a)
        if k != self.k and self.rate(k, a) > _CHANGE * self.rate(self.k, a):
            self._start(k)


# --- drafters -------------------------------------------------------------------------------


class NgramDrafter:
    """Prompt lookup: find the latest earlier occurrence of the last n tokens (n = 4..2) in the
    prompt and the text so far, and propose what followed it. Costs microseconds."""

    name = "n-gram"
    cost_prior = 0.0
    N_MAX = 4
    N_MIN = 2
    _CHECK = 32

    def __init__(self) -> None:
        self._history: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest continuation starts

    def _sync(self, tokens: list[int], last: int) -> None:
        """Bring the history to `tokens + [last]`, indexing the new tokens. It is checked against
        `tokens` on its last _CHECK tokens only: a step must not cost the whole text. (A wrong
        history can only make worse guesses: the model checks every guess.)"""
        h = self._history
        n = len(h)
        lo = max(0, n - self._CHECK)
        if n == len(tokens) + 1 and h[-1] == last and h[lo : n - 1] == tokens[lo:]:
            return  # asked again for the same point
        if n > len(tokens) or h[lo:] != tokens[lo:n]:  # another conversation, or a cut: start over
            self._history, self._index = [], {}
            h, n = self._history, 0
        index = self._index
        for token in tokens[n:] + [last]:
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
        self.decodes = 0  # one-token decodes in the last draft() (a catch-up batch apart)
        self.steady = False  # whether they all ran on a warm graph (two one-token decodes before)
        self._singles = 0  # one-token decodes since the last batch
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
            ids = [t if 0 <= t < n_vocab else stand_in for t in chunk]
            if len(ids) == 1:  # (a drafting round's decodes: one array for all)
                self._one[0] = ids[0]
                arr = self._one
            else:
                arr = (lc.llama_token * len(ids))(*ids)
            self._check(lc.llama_decode(self._ctx, lc.llama_batch_get_one(arr, len(ids))))
            self._cached.extend(chunk)
            self._singles = self._singles + 1 if len(chunk) == 1 else 0

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
        if len(missing) <= 2:  # a round's usual catch-up: one token at a time, so that every decode
            # of the draft has one shape (its CUDA graph is replayed); steady if the two before did too
            self.decodes, self.steady = len(missing), self._singles >= 2
            for t in missing:
                self._decode([t])
        else:  # the prompt, or tokens given while drafting was off: one batch, reported apart
            self.decodes, self.steady = 0, False  # (it is not what a drafted token costs)
            t0 = time.perf_counter()
            self._decode(missing)
            self.catchup_s = time.perf_counter() - t0
        drafts = []
        sample, is_eog = lc.llama_sampler_sample, lc.llama_vocab_is_eog
        while True:
            token = self.choose(n + 1 + len(drafts), sample(self._greedy, self._ctx, -1))
            drafts.append(token)
            if len(drafts) >= k or is_eog(self._vocab, token):
                return drafts  # the last draft is not decoded: the next round starts from the target's token
            self._decode([token])
            self.decodes += 1

    def choose(self, position: int, sampled: int) -> int:
        """The guess for `position`: the draft's own greedy token. (The speculative benchmark puts
        other guesses here, so the draft's KV cache holds what it proposed, as in a real run.)"""
        return sampled

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
    # Where the time went: verify rounds, and seconds in the model's and the drafter's decodes.
    rounds: int = 0
    model_s: float = 0.0
    draft_s: float = 0.0


class Speculation:
    """Drafting for one ChatRun: `step(token)` decodes `token` (and drafts) and returns the
    next tokens (1..k+1), all sampled by the target's chain. Leaves `cached` = the KV's tokens."""

    def __init__(self, eng, chain, drafter, fixed_k: int | None = None) -> None:
        lc = eng._lc
        self._lc, self._eng, self._ctx, self._chain = lc, eng, eng._ctx, chain
        self._drafter = drafter
        self._n_vocab = lc.llama_vocab_n_tokens(eng._vocab)
        self.policy = AdaptiveK(drafter.cost_prior, fixed_k, free_probes=drafter.cost_prior == 0.0)
        self.counts = DraftCounts(drafter.name)
        self._batch = lc.llama_batch_init(K_MAX + 1, 0, 1)
        self._one = (lc.llama_token * 1)()
        self._mem = lc.llama_get_memory(self._ctx)
        # The chain's state before a round's samples, to take back the draws of tokens the loop
        # did not take (`rewind`): the text after an inserted one stays what the seed gives.
        self._saved = lc.llama_sampler_clone(chain)
        self._tokens_out = 0
        self._widths = (0, 0)  # the model's last two batch sizes
        # On a GPU a drafting stretch verifies one width, padding short proposals (n-gram).
        self._pad = eng.info.n_gpu_layers > 0
        self.failed: str | None = None  # why drafting stopped for this run (a drafter's failure)

    def step(self, token: int) -> list[int]:
        lc, ctx, chain = self._lc, self._ctx, self._chain
        cached = self._eng._cached
        room = self._eng.info.n_ctx - len(cached) - 2
        k = 0 if self.failed else min(self.policy.choose(), K_MAX, room)
        probe = k == 0 and not self.failed and room >= 1 and self.policy.probe_due()
        drafts: list[int] = []
        draft_s = 0.0
        if k or probe:
            drafts, draft_s = self._draft(cached, token, k or 1)
        t0 = time.perf_counter()
        if k == 0 or not drafts:
            self._one[0] = token
            rc = lc.llama_decode(ctx, lc.llama_batch_get_one(self._one, 1))
            if rc != 0:
                raise _decode_error(rc)
            cached.append(token)
            out = [lc.llama_sampler_sample(chain, ctx, -1)]
            seconds = time.perf_counter() - t0
            self.policy.observe_plain(seconds, self._steady(1), extra_s=draft_s)
            if probe and drafts:
                self.policy.observe_probe(drafts[0] == out[0])
            self.counts.model_s += seconds
            self.counts.draft_s += draft_s
            self._tokens_out += 1
            return out

        proposed = len(drafts)
        if self._pad and proposed < k:  # one batch shape for the whole stretch (the CUDA graph stays)
            drafts += [drafts[-1]] * (k - proposed)  # any token will do: only matches are kept
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
        self.policy.observe_round(proposed, min(kept, proposed), seconds, draft_s, steady=self._steady(n_batch),
                                  width=n_batch, draft_decodes=getattr(self._drafter, "decodes", None),
                                  draft_steady=getattr(self._drafter, "steady", True))
        self.counts.rounds += 1
        self.counts.drafted += proposed
        self.counts.accepted += min(kept, proposed)
        self.counts.model_s += seconds
        self.counts.draft_s += draft_s
        self._tokens_out += len(out)
        return out

    def _draft(self, cached: list[int], token: int, k: int) -> tuple[list[int], float]:
        """The drafter's proposals after `token` and what drafting them cost (a draft model's long
        catch-up, after plain steps, is spent but not counted as drafting: it would mislead k)."""
        t0 = time.perf_counter()
        try:
            drafts = self._drafter.draft(cached, token, k)[:k]
        except Exception as exc:  # a drafter's failure never breaks the answer: it goes on undrafted
            self.failed = str(exc) or type(exc).__name__
            if isinstance(exc, DraftFailed):
                log.warning("drafting is off for the rest of this answer: %s", self.failed)
            else:
                log.exception("drafting is off for the rest of this answer: the drafter failed")
            drafts = []
        catchup_s = getattr(self._drafter, "catchup_s", 0.0)
        self.counts.draft_s += catchup_s
        for i, d in enumerate(drafts):
            if not 0 <= d < self._n_vocab:  # a larger draft vocabulary's id
                del drafts[i:]
                break
        return drafts, time.perf_counter() - t0 - catchup_s

    def _steady(self, width: int) -> bool:
        """Whether the model's batch had this shape in the two steps before (so its time is the
        steady one: on a GPU the first two steps of a new shape run without the CUDA graph)."""
        steady = self._widths[0] == self._widths[1] == width
        self._widths = (self._widths[1], width)
        return steady

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
        spent = self.counts.model_s + self.counts.draft_s
        # An estimate needs a few timed one-token steps and a few dozen tokens; else none.
        if t_plain and spent > 0 and self.counts.drafted and self.policy.n_plain >= 3 and self._tokens_out >= 64:
            self.counts.speedup = self._tokens_out * t_plain / spent
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


def open_drafter(eng, spec: str, hw=None, progress=None):
    """(drafter, None) or (None, a sentence saying why drafting is off) for LoadOptions.draft.

    "ngram": prompt lookup. "auto": the paired draft model if downloaded, else prompt lookup.
    A path: that model, if its tokenizer matches the target's and it fits beside it.
    `progress(fraction)` follows the draft model's load; returning False cancels it (LoadCancelled
    propagates: the load was asked as one)."""
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
    from app.core.errors import LoadCancelled

    try:
        drafter = _open_model_drafter(eng, Path(path), hw, progress)
    except LoadCancelled:
        raise
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


def _open_model_drafter(eng, path: Path, hw, progress=None) -> ModelDrafter:
    from app.core.engine import load_progress
    from app.core.errors import LoadCancelled, ModelLoadError
    from app.core.modelfile import inspect_gguf

    summary = inspect_gguf(path)  # raises ModelFileError with a sentence; some bad files abort() llama.cpp
    lc = eng._lc
    on_gpu = eng.info.n_gpu_layers > 0
    _check_room(eng, summary, on_gpu, hw)
    mparams = lc.llama_model_default_params()
    mparams.n_gpu_layers = summary.n_layers + 1 if on_gpu else 0
    callback, cancelled = load_progress(lc, mparams, progress)
    model = lc.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
    del callback  # (llama.cpp calls it only during the load)
    if not model:
        if cancelled:
            raise LoadCancelled()
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
    from app.core.draft_plan import plan_draft, room_shortfall

    try:
        target = sizing.plan(eng.summary, n_ctx=eng.info.n_ctx, kv_type=eng.info.kv_type,
                             n_gpu_layers=eng.info.n_gpu_layers, hw=hw)
        draft = plan_draft(summary, eng.info.n_ctx, on_gpu, hw)
    except Exception:  # the planner is advice: never block on its failure
        log.exception("memory planning for the draft failed")
        return
    if (why := room_shortfall(target, draft, hw)) is not None:
        raise ModelLoadError(why)


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
        from app.core.draft_plan import plan_draft
        from app.core.sizing import TARGET_N_CTX

        p = plan_draft(draft, TARGET_N_CTX, True, None, quant=quant)
        memory = f", about {format_bytes(p.gpu_bytes + p.ram_bytes)} of memory beside it"
    except Exception:
        log.exception("planning the draft model's memory failed")
    sentence = (f"{model.short_name} answers faster when {draft.short_name} drafts for it "
                f"({format_bytes(quant.size_bytes)} download{memory}; the answers stay the same).")
    return DownloadRequest.for_catalog(draft, quant), sentence
