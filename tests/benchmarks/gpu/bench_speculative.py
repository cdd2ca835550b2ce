"""Speculative decoding on shaped models (issue 13's "How to measure"), run by hand, not a test.

    $PY tests/benchmarks/gpu/bench_speculative.py --targets $MODELS_DIR/qwen-14b-Q4_K_M.gguf,$MODELS_DIR/qwen-32b-Q4_K_M.gguf \\
        --draft $MODELS_DIR/qwen-1.5b-Q4_K_M.gguf --out $OUT/speculative.json
    .venv/bin/python tests/benchmarks/gpu/bench_speculative.py --smoke      # CPU, scripted models, seconds

All ratios come from one process. It prints:
0. first, per model, a diagnostic of one verify batch (cheap): a greedy chain of K_MAX + 1 tokens
   made by one-token decodes, then the same tokens as one batch; per position the one-token
   decode's argmax and logit margin (top1 - top2), the batch's host argmax and margin, the largest
   |logit difference| between the two, and the in-graph sampled token of the batch (the target's
   greedy chain attached, as a verify round samples). The verdict line says whether batched and
   one-token logits pick the same tokens (random weights have near-tied logits: kernel numerics
   can flip them) and whether in-graph sampling of a multi-output batch picks its own logits' argmax;
1. the cost of one llama_decode of B tokens at a context depth of 1024 (ms, median): with one
   output (as llama-bench does) and, for B <= K_MAX + 1, as a verify batch (an output at every
   position, each sampled by the target's chain, in-graph on a GPU);
2. Ponder's tokens/s with the real draft model against without. The draft runs its real decodes
   (its real cost); its proposals are replaced by the target's own greedy continuation, recorded
   in a first pass, with a fraction 1 - a replaced by wrong tokens (a = 0, 0.5, 0.7, 0.8, 0.9).
   Random weights give no real acceptance rate; this gives any chosen one, at the real costs.
   The run is greedy, so its text must equal the recorded one ("same" column). A random-weight
   target's greedy continuation is not robust (near-tied logits: a verify batch's numerics may
   pick another token than a one-token decode), so before this part each target is turned, in
   place, into a "successor" model of the same types and sizes (make_shaped_gguf.make_successor_model:
   block weights are quantised zeros, greedy next(t) = sigma(t) with a margin of ~100 logits);
   its cost is checked against the random model's (B = 1, 2, 4) and its diagnostic printed;
3. the same with n-gram drafting: what the drafter proposes over an R1-style trace (restated
   equations, numbers, code) decides which proposals are right.
The plain rate is measured before and after the drafting runs (a separate engine with drafting
off, as Ponder runs without it).
"""

# llama_cpp before numpy: on the GPU machine a CUDA build segfaulted when numpy came first.
import llama_cpp  # noqa: F401

import argparse
import json
import shutil
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402  (after llama_cpp)

from app.core.engine import Engine, LoadOptions, Sampling, Stats  # noqa: E402
from app.core.speculative import K_MAX, NgramDrafter, Speculation  # noqa: E402
from tests.benchmarks.make_shaped_gguf import make_shaped_gguf, make_successor_model  # noqa: E402

BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16)
ACCEPTANCES = (0.0, 0.5, 0.7, 0.8, 0.9)

# An R1-style trace: it restates equations, numbers and code, as R1 traces do.
TRACE = """Okay, so I need to find the sum of all positive integers n such that n^2 - 19n + 99 is a perfect square.
Let me write n^2 - 19n + 99 = k^2 for some integer k >= 0. Multiplying by 4: 4n^2 - 76n + 396 = 4k^2.
Completing the square: (2n - 19)^2 - 361 + 396 = 4k^2, so (2n - 19)^2 + 35 = 4k^2.
So 4k^2 - (2n - 19)^2 = 35, which factors as (2k - (2n - 19))(2k + (2n - 19)) = 35.
Let a = 2k - (2n - 19) and b = 2k + (2n - 19), so a * b = 35 and a + b = 4k.
The factor pairs of 35 are (1, 35), (5, 7), (7, 5), (35, 1), and the negative ones.
Case (1, 35): a + b = 36, so 4k = 36 and k = 9. Then b - a = 34 = 2(2n - 19), so 2n - 19 = 17 and n = 18.
Let me check n = 18: 18^2 - 19*18 + 99 = 324 - 342 + 99 = 81 = 9^2. Yes, n = 18 works.
Case (5, 7): a + b = 12, so 4k = 12 and k = 3. Then b - a = 2 = 2(2n - 19), so 2n - 19 = 1 and n = 10.
Let me check n = 10: 10^2 - 19*10 + 99 = 100 - 190 + 99 = 9 = 3^2. Yes, n = 10 works.
Case (7, 5): a + b = 12, so k = 3. Then b - a = -2 = 2(2n - 19), so 2n - 19 = -1 and n = 9.
Let me check n = 9: 9^2 - 19*9 + 99 = 81 - 171 + 99 = 9 = 3^2. Yes, n = 9 works.
Case (35, 1): a + b = 36, so k = 9. Then b - a = -34 = 2(2n - 19), so 2n - 19 = -17 and n = 1.
Let me check n = 1: 1^2 - 19*1 + 99 = 1 - 19 + 99 = 81 = 9^2. Yes, n = 1 works.
The negative pairs give negative k, which we excluded, so the solutions are n = 1, 9, 10, 18.
Wait, let me double-check with a quick program:

```python
def is_square(m):
    r = int(m ** 0.5)
    return r * r == m

print([n for n in range(1, 200) if is_square(n * n - 19 * n + 99)])
```

Running it in my head: for n = 1, n * n - 19 * n + 99 = 81, a square. For n = 9, n * n - 19 * n + 99 = 9, a square.
For n = 10, n * n - 19 * n + 99 = 9, a square. For n = 18, n * n - 19 * n + 99 = 81, a square.
So the list is [1, 9, 10, 18], and the sum is 1 + 9 + 10 + 18 = 38.
Hmm, let me make sure I did not miss a case. The equation (2n - 19)^2 + 35 = 4k^2 means 4k^2 - (2n - 19)^2 = 35.
The factor pairs of 35 are (1, 35), (5, 7), (7, 5), (35, 1), and I covered all four. So the sum is 38.
Let me verify once more with the values: n = 1 gives 81, n = 9 gives 9, n = 10 gives 9, n = 18 gives 81.
All perfect squares. The sum of all such n is 1 + 9 + 10 + 18 = 38.
"""


def _fill(eng: Engine, depth: int, n_vocab: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    low = 300 if n_vocab > 1000 else 0
    tokens = [rng.randrange(low, min(n_vocab, 100000)) for _ in range(depth)]
    eng._eval_prompt(tokens, Stats())


TIE = 1e-4  # logits closer than this count as tied


def _top2(lc, ctx, i: int, n_vocab: int):
    logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()
    two = np.argpartition(logits, -2)[-2:]
    top, second = (two[0], two[1]) if logits[two[0]] >= logits[two[1]] else (two[1], two[0])
    return int(top), float(logits[top] - logits[second]), logits


def diagnose(eng: Engine, depth: int, n_vocab: int, start: int, batch_size: int = K_MAX + 1) -> dict:
    """One verify batch against one-token decodes at `depth` (the KV cache holds `depth` tokens)."""
    lc, ctx = eng._lc, eng._ctx
    mem = lc.llama_get_memory(ctx)
    one = (lc.llama_token * 1)()
    tokens, single = [start], []
    for i in range(batch_size):  # a greedy chain, one token at a time
        one[0] = tokens[-1]
        if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("one-token decode failed")
        single.append(_top2(lc, ctx, -1, n_vocab))
        if i + 1 < batch_size:
            tokens.append(single[-1][0])
    lc.llama_memory_seq_rm(mem, -1, depth, -1)
    batch = lc.llama_batch_init(batch_size, 0, 1)
    try:
        def decode_batch() -> None:
            for i, t in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, depth + i, 1, 1
                batch.seq_id[i][0] = 0
            batch.n_tokens = len(tokens)
            if lc.llama_decode(ctx, batch) != 0:
                raise RuntimeError("batch decode failed")

        decode_batch()
        batched = [_top2(lc, ctx, i, n_vocab) for i in range(batch_size)]
        lc.llama_memory_seq_rm(mem, -1, depth, -1)
        chain = eng._sampler(Sampling(temperature=0.0))
        in_graph = None
        attached = lc.llama_set_sampler(ctx, 0, chain)
        try:
            if attached:
                decode_batch()
                in_graph = [lc.llama_sampler_sample(chain, ctx, i) for i in range(batch_size)]
        finally:
            lc.llama_memory_seq_rm(mem, -1, depth, -1)
            if attached:
                lc.llama_set_sampler(ctx, 0, None)
            lc.llama_sampler_free(chain)
    finally:
        lc.llama_batch_free(batch)
    rows = []
    for i in range(batch_size):
        rows.append({"pos": i, "single": single[i][0], "single_margin": single[i][1],
                     "batch": batched[i][0], "batch_margin": batched[i][1],
                     "max_abs_diff": float(np.max(np.abs(single[i][2] - batched[i][2]))),
                     "in_graph": in_graph[i] if in_graph is not None else None})
    numerics = [r["pos"] for r in rows if r["batch"] != r["single"]]
    differs = [r for r in rows if r["in_graph"] is not None and r["in_graph"] != r["batch"]]
    # The in-graph argmax reads the same logits: where it picks another token with a clear margin, it
    # is a bug; at an exact tie (margin ~0: the tiny shape's rows repeat) either pick is right.
    sampling_bug = [r["pos"] for r in differs if r["batch_margin"] > TIE]
    ties = [r["pos"] for r in differs if r["batch_margin"] <= TIE]
    verdict = []
    if sampling_bug:
        verdict.append(f"(b) in-graph sampling of the batch differs from the batch's own argmax at {sampling_bug}")
    if ties:
        verdict.append(f"in-graph picks another of tied tokens at {ties}")
    if numerics:
        margins = ", ".join(f"{rows[i]['single_margin']:.3g}" for i in numerics)
        verdict.append(f"(a) batch and one-token argmax differ at {numerics} (one-token margins there {margins})")
    if in_graph is None:
        verdict.append("in-graph sampling not available on this context")
    if not verdict:
        verdict.append("all agree")
    return {"rows": rows, "verdict": "; ".join(verdict),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows),
            "min_margin": min(min(r["single_margin"], r["batch_margin"]) for r in rows)}


def print_diagnosis(name: str, d: dict) -> None:
    print(f"\n{name}: diagnostic, one batch of {len(d['rows'])} (a greedy chain of one-token decodes) at depth")
    print("| pos | one-token argmax | margin | batch argmax | margin | max abs logit diff | in-graph |")
    print("|---|---|---|---|---|---|---|")
    for r in d["rows"]:
        print(f"| {r['pos']} | {r['single']} | {r['single_margin']:.4g} | {r['batch']} | {r['batch_margin']:.4g} "
              f"| {r['max_abs_diff']:.3g} | {r['in_graph'] if r['in_graph'] is not None else 'n/a'} |")
    print(f"  verdict: {d['verdict']} (max abs logit diff {d['max_abs_diff']:.3g}, smallest margin {d['min_margin']:.3g})",
          flush=True)


def cost_table(path: Path, depth: int, reps: int, gpu_layers: int | None, batches=BATCHES,
               results: dict | None = None) -> dict:
    """ms per llama_decode of B tokens at `depth`: one output, and as a verify batch (B <= K_MAX+1).
    Prints the verify-batch diagnostic first (and puts it in results["diagnostic"])."""
    eng = Engine.load(path, LoadOptions(n_ctx=depth + 64, n_gpu_layers=gpu_layers, draft="ngram"))
    lc, ctx = eng._lc, eng._ctx
    n_vocab = lc.llama_vocab_n_tokens(eng._vocab)
    _fill(eng, depth, n_vocab)
    try:
        diagnostic = diagnose(eng, depth, n_vocab, start=1000 if n_vocab > 1000 else 0)
    except Exception as exc:  # the diagnostic must not cost the measurement
        diagnostic = {"rows": [], "verdict": f"diagnostic failed: {exc}", "max_abs_diff": float("nan"),
                      "min_margin": float("nan")}
        lc.llama_memory_seq_rm(lc.llama_get_memory(ctx), -1, depth, -1)
    print_diagnosis(path.name, diagnostic)
    if results is not None:
        results["diagnostic"] = diagnostic
    mem = lc.llama_get_memory(ctx)
    batch = lc.llama_batch_init(max(batches), 0, 1)
    chain = eng._sampler(Sampling(temperature=0.0))
    rng = random.Random(1)
    table: dict[str, dict[int, float]] = {"one_output": {}, "verify": {}}
    try:
        for kind in ("one_output", "verify"):
            attached = kind == "verify" and eng._backend_sampling and lc.llama_set_sampler(ctx, 0, chain)
            for b in batches:
                if kind == "verify" and b > K_MAX + 1:
                    continue
                times = []
                for rep in range(reps + 2):
                    for i in range(b):
                        batch.token[i] = rng.randrange(300 if n_vocab > 1000 else 0, min(n_vocab, 100000))
                        batch.pos[i] = depth + i
                        batch.n_seq_id[i] = 1
                        batch.seq_id[i][0] = 0
                        batch.logits[i] = 1 if (kind == "verify" or i == b - 1) else 0
                    batch.n_tokens = b
                    t0 = time.perf_counter()
                    rc = lc.llama_decode(ctx, batch)
                    if kind == "verify":
                        for i in range(b):
                            lc.llama_sampler_sample(chain, ctx, i)
                    else:
                        lc.llama_get_logits_ith(ctx, -1)  # waits for the result
                    lc.llama_synchronize(ctx)
                    dt = time.perf_counter() - t0
                    if rc != 0:
                        raise RuntimeError(f"llama_decode failed ({rc}) for B={b}")
                    lc.llama_memory_seq_rm(mem, -1, depth, -1)
                    if rep >= 2:
                        times.append(dt * 1000)
                table[kind][b] = statistics.median(times)
            if kind == "verify":
                table["alternating"] = _alternating(lc, ctx, chain, batch, depth, reps, mem)
            if attached:
                lc.llama_set_sampler(ctx, 0, None)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_sampler_free(chain)
        eng.close()
    return table


def _alternating(lc, ctx, chain, batch, depth: int, reps: int, mem) -> dict:
    """ms of a one-token step and a 3-token verify batch when they alternate (as while drafting),
    and of one-token steps in a row (as plain decoding): does a change of batch size cost extra?"""
    def timed(b: int) -> float:
        for i in range(b):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = 1000 + i, depth + i, 1, 1
            batch.seq_id[i][0] = 0
        batch.n_tokens = b
        t0 = time.perf_counter()
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError(f"llama_decode failed for B={b}")
        for i in range(b):
            lc.llama_sampler_sample(chain, ctx, i)
        lc.llama_synchronize(ctx)
        dt = (time.perf_counter() - t0) * 1000
        lc.llama_memory_seq_rm(mem, -1, depth, -1)
        return dt

    steady = [timed(1) for _ in range(reps + 2)][2:]
    pairs = [(timed(1), timed(3)) for _ in range(reps + 2)][2:]
    return {"one_token_in_a_row": statistics.median(steady),
            "one_token_after_verify3": statistics.median(p[0] for p in pairs),
            "verify3_after_one_token": statistics.median(p[1] for p in pairs)}


class RecordedProposals:
    """The real draft model drafts (its real decodes and cost), but its guesses are the target's
    recorded greedy continuation, each position wrong with probability 1 - acceptance. The draft
    decodes the guesses it proposes (ModelDrafter.choose), so its KV cache holds what it proposed
    and its catch-up after a round is what it is in a real run (one or two tokens)."""

    def __init__(self, inner, prompt_len: int, recorded: list[int], acceptance: float, n_vocab: int, seed: int = 7):
        self.inner, self.name, self.cost_prior = inner, inner.name, inner.cost_prior
        self.prompt_len, self.recorded, self.n_vocab = prompt_len, recorded, n_vocab
        rng = random.Random(seed)
        self.wrong = [rng.random() >= acceptance for _ in recorded]
        self.catchup_s = 0.0
        inner.choose = self._guess

    def _guess(self, position: int, sampled: int) -> int:
        j = position - self.prompt_len  # index in the continuation
        if not 0 <= j < len(self.recorded):
            return sampled
        token = self.recorded[j]
        return (token + 1) % self.n_vocab if self.wrong[j] else token

    @property
    def decodes(self) -> int:
        return self.inner.decodes

    @property
    def steady(self) -> bool:
        return self.inner.steady

    def draft(self, tokens: list[int], last: int, k: int) -> list[int]:
        out = self.inner.draft(tokens, last, k)
        self.catchup_s = self.inner.catchup_s
        return out

    def close(self) -> None:
        del self.inner.choose  # the real drafter guesses for itself again; the engine closes it


class TextNgram:
    """N-gram drafting over an R1-style trace: the n-gram drafter runs on the trace's tokens (its
    real cost); where it proposes the trace's next token, the proposal is the target's recorded
    token, else a wrong one."""

    name, cost_prior = "n-gram", 0.0

    def __init__(self, text_tokens: list[int], prompt_len: int, recorded: list[int], n_vocab: int):
        self.ngram, self.text = NgramDrafter(), text_tokens
        self.prompt_len, self.recorded, self.n_vocab = prompt_len, recorded, n_vocab
        self.proposed = self.right = 0

    def draft(self, tokens: list[int], last: int, k: int) -> list[int]:
        at = len(tokens) + 1 - self.prompt_len
        if at < 1 or at >= len(self.text):
            return []
        proposals = self.ngram.draft(self.text[: at - 1], self.text[at - 1], k)
        out = []
        for i, d in enumerate(proposals):
            j = at + i
            if j >= len(self.recorded):
                break
            right = d == self.text[j]
            self.proposed += 1
            self.right += right
            out.append(self.recorded[j] if right else (self.recorded[j] + 1) % self.n_vocab)
        return out

    def close(self) -> None:
        pass


def _messages(eng: Engine, depth: int) -> list[dict]:
    """A user message whose prompt is about `depth` tokens."""
    text = TRACE
    while len(eng._tokenize(text)) < depth:
        text += "\n" + TRACE
    tokens = eng._tokenize(text)[: max(16, depth - 40)]  # the template adds a few
    return [{"role": "user", "content": b"".join(eng._piece(t) for t in tokens).decode("utf-8", "ignore")}]


def _timed_run(eng: Engine, messages, n_tokens: int) -> tuple[float, list[int], Stats]:
    run = eng.chat(messages, Sampling(temperature=0.0, max_tokens=n_tokens))
    prompt_len = len(run._tokens)
    run.run()
    s = run.stats
    generated = eng._cached[prompt_len:]
    rate = (s.thinking_tokens + s.answer_tokens) / max(1e-9, s.total_s - (s.time_to_first_token_s or 0))
    return rate, generated, s


def bench_target(target: Path, draft: Path, n_tokens: int, depth: int, gpu_layers: int | None,
                 fixed_ks: list[int]) -> dict:
    options = LoadOptions(n_ctx=depth + n_tokens + 256, n_gpu_layers=gpu_layers)
    plain = Engine.load(target, options)
    messages = _messages(plain, depth)
    plain.chat(messages, Sampling(temperature=0.0, max_tokens=8)).run()  # warm-up
    prompt_len = len(plain.chat(messages, Sampling(max_tokens=1))._tokens)
    rate_before, recorded, s0 = _timed_run(plain, messages, n_tokens)
    n_vocab = plain._lc.llama_vocab_n_tokens(plain._vocab)
    text_tokens = plain._tokenize(TRACE * 3)
    plain.close()
    print(f"  plain: {rate_before:.1f} tok/s ({len(recorded)} tokens, prompt {prompt_len})", flush=True)

    eng = Engine.load(target, LoadOptions(n_ctx=options.n_ctx, n_gpu_layers=gpu_layers, draft=str(draft)))
    rows = []
    real = eng._drafter
    try:
        if eng._drafter is None:
            raise SystemExit(f"the draft was refused: {eng.draft_note}")
        real = eng._drafter
        eng.chat(messages, Sampling(temperature=0.0, max_tokens=8)).run()  # warm-up (both models)
        cases = [(a, None) for a in ACCEPTANCES] + [(0.8, k) for k in fixed_ks]
        for acceptance, k in cases:
            eng._drafter = RecordedProposals(real, prompt_len, recorded, acceptance, n_vocab)
            eng.draft_fixed_k = k
            rate, out, s = _timed_run(eng, messages, n_tokens)
            rows.append(_row(f"{real.name}, a={acceptance}" + (f", k={k}" if k else ""), acceptance, rate,
                             rate_before, out == recorded, s))
        eng.draft_fixed_k = None
        ngram = TextNgram(text_tokens, prompt_len, recorded, n_vocab)
        eng._drafter = ngram
        rate, out, s = _timed_run(eng, messages, n_tokens)
        row = _row("n-gram on an R1-style trace", None, rate, rate_before, out == recorded, s)
        row["ngram_right_of_proposed"] = f"{ngram.right}/{ngram.proposed}"
        rows.append(row)
    finally:
        eng._drafter = real
        eng.close()
    plain = Engine.load(target, options)
    plain.chat(messages, Sampling(temperature=0.0, max_tokens=8)).run()
    rate_after, again, _ = _timed_run(plain, messages, n_tokens)
    plain.close()
    for row in rows:
        row["ratio_vs_after"] = row["tok_s"] / rate_after
    return {"target": target.name, "draft": draft.name, "tokens": n_tokens, "prompt_tokens": prompt_len,
            "plain_tok_s_before": rate_before, "plain_tok_s_after": rate_after,
            "plain_repeatable": again == recorded, "rows": rows}


_LAST_RUN: dict = {}  # the last Speculation's counts and policy, kept by _keep_last (where the time went)


def _keep_last(finish):
    def wrapper(self):
        counts = finish(self)
        p = self.policy
        _LAST_RUN.update(counts=counts, k=p.k or p.fixed_k, t_plain=p.t_plain, t_verify=dict(p._t_verify),
                         t_draft=p._t_draft)
        return counts
    return wrapper


Speculation.finish = _keep_last(Speculation.finish)


def _row(label: str, acceptance, rate: float, plain_rate: float, same: bool, s: Stats) -> dict:
    row = {"case": label, "acceptance_set": acceptance, "tok_s": rate, "ratio": rate / plain_rate, "same": same,
           "drafted": s.draft_tokens, "accepted": s.draft_accepted,
           "measured_acceptance": s.draft_accepted / s.draft_tokens if s.draft_tokens else None,
           "speedup_estimate": s.draft_speedup}
    c = _LAST_RUN.get("counts")
    if c is not None:  # per token: the model's decodes and samples, the drafter's, all the rest
        tokens = max(1, s.thinking_tokens + s.answer_tokens)
        row.update(rounds=c.rounds, final_k=_LAST_RUN["k"],
                   model_ms_per_token=1000 * c.model_s / tokens, draft_ms_per_token=1000 * c.draft_s / tokens,
                   other_ms_per_token=1000 * (tokens / rate - c.model_s - c.draft_s) / tokens,
                   policy_ms={"plain": _ms(_LAST_RUN["t_plain"]), "draft": _ms(_LAST_RUN["t_draft"]),
                              "verify": {b: _ms(t) for b, t in sorted(_LAST_RUN["t_verify"].items())}})
        _LAST_RUN.clear()
    return row


def _ms(t):
    return round(1000 * t, 2) if t else None


def print_cost(name: str, table: dict) -> None:
    batches = sorted(table["one_output"])
    print(f"\n{name}: ms per llama_decode of B tokens at depth")
    print("| B | " + " | ".join(str(b) for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for kind in ("one_output", "verify"):
        cells = [f"{table[kind][b]:.2f}" if b in table[kind] else "" for b in batches]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    alt = table.get("alternating")
    if alt:
        print(f"  alternating with a 3-token verify: one-token step {alt['one_token_after_verify3']:.2f} ms "
              f"(in a row: {alt['one_token_in_a_row']:.2f}), verify {alt['verify3_after_one_token']:.2f} ms"
              + (f" (alone: {table['verify'][3]:.2f})" if 3 in table["verify"] else ""))


def print_speed(result: dict) -> None:
    print(f"\n{result['target']} (draft {result['draft']}), {result['tokens']} tokens after a "
          f"{result['prompt_tokens']}-token prompt; plain {result['plain_tok_s_before']:.1f} tok/s before, "
          f"{result['plain_tok_s_after']:.1f} after")
    print("| case | tok/s | × plain (before) | × plain (after) | drafted | accepted | same text | est. "
          "| rounds, last k | ms/token: model, draft, other |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        est = f"{r['speedup_estimate']:.2f}" if r["speedup_estimate"] else ""
        where = (f"| {r['rounds']}, {r['final_k']} | {_f(r['model_ms_per_token'])}, {_f(r['draft_ms_per_token'])}, "
                 f"{_f(r['other_ms_per_token'])} |") if "rounds" in r else "| | |"
        print(f"| {r['case']} | {r['tok_s']:.1f} | {r['ratio']:.3f} | {r['ratio_vs_after']:.3f} | {r['drafted']} "
              f"| {r['accepted']} | {'yes' if r['same'] else 'NO'} | {est} " + where)
    for r in result["rows"]:
        if r.get("policy_ms"):
            print(f"  {r['case']}: the policy's own timings (ms): {r['policy_ms']}")


def _f(x) -> str:
    return f"{x:.2f}" if x is not None else ""


def smoke(args) -> tuple[list[Path], Path, Path]:
    """CPU: the tiny-qwen shape (2 layers, the full Qwen vocabulary) as target and as draft."""
    folder = Path(tempfile.mkdtemp(prefix="bench_spec_"))
    target = folder / "tiny-qwen-Q4_K_M.gguf"
    make_shaped_gguf("tiny-qwen", target, seed=0)
    draft = folder / "draft-0.5B.gguf"
    shutil.copy(target, draft)  # stays random (the same vocabulary needs the same seed)
    return [target], draft, folder


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", help="comma-separated target GGUFs")
    p.add_argument("--draft", type=Path, help="the draft GGUF (e.g. the 1.5B shape)")
    p.add_argument("--cost-models", default="", help="comma-separated GGUFs for the cost table (default: draft + targets)")
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--depth", type=int, default=1024)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--fixed-k", default="2,3", help="also run a=0.8 with these fixed k")
    p.add_argument("--gpu-layers", type=int, default=None, help="default: Ponder's choice (all on a big GPU)")
    p.add_argument("--keep-random-targets", action="store_true",
                   help="measure drafting on the random-weight targets (default: turn each target, in place, into "
                        "a successor model of the same cost first, so the greedy continuation is robust)")
    p.add_argument("--smoke", action="store_true", help="CPU check with tiny shaped models (numbers mean nothing)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    folder = None
    if args.smoke:
        targets, draft, folder = smoke(args)
        args.tokens, args.depth, args.reps = min(args.tokens, 200), 256, 3
    else:
        if not args.targets or not args.draft:
            p.error("--targets and --draft (or --smoke)")
        targets, draft = [Path(t) for t in args.targets.split(",")], args.draft
    cost_models = [Path(m) for m in args.cost_models.split(",") if m] or [draft, *targets]
    fixed_ks = [int(k) for k in args.fixed_k.split(",") if k]
    results = {"cost_depth": args.depth, "cost": {}, "diagnostic": {}, "speed": []}
    t0 = time.perf_counter()
    for model in cost_models:
        info: dict = {}
        table = cost_table(model, args.depth, args.reps, args.gpu_layers, results=info)
        results["cost"][model.name] = table
        results["diagnostic"][model.name] = info["diagnostic"]
        print_cost(model.name, table)
        print(f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
        save(args.out, results)
    try:
        run_targets(args, targets, draft, fixed_ks, results, t0)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def run_targets(args, targets: list[Path], draft: Path, fixed_ks: list[int], results: dict, t0: float) -> None:
    results["successor"] = {}
    for target in targets:
        print(f"\n{target.name}:", flush=True)
        if not args.keep_random_targets:
            t1 = time.perf_counter()
            sigma = make_successor_model(target)
            print(f"  turned into a successor model in {time.perf_counter() - t1:.1f} s "
                  f"(greedy next(t) = sigma(t); e.g. 1000 -> {sigma[1000]} -> {sigma[sigma[1000]]})", flush=True)
            info = {}
            check = cost_table(target, args.depth, args.reps, args.gpu_layers, batches=(1, 2, 4), results=info)
            print_cost(f"{target.name} as a successor model (cost check)", check)
            info["cost"] = check
            random_cost = results["cost"].get(target.name)
            if random_cost:
                ratios = {b: check["one_output"][b] / random_cost["one_output"][b] for b in check["one_output"]
                          if b in random_cost["one_output"]}
                info["ratio_to_random"] = ratios
                print("  successor / random cost: " + ", ".join(f"B={b} {r:.3f}" for b, r in ratios.items()))
            chain, t = [], 1000
            for _ in range(len(info["diagnostic"]["rows"])):
                t = int(sigma[t])
                chain.append(t)
            single = [r["single"] for r in info["diagnostic"]["rows"]]
            info["follows_sigma"] = bool(single) and single == chain
            print(f"  one-token argmax follows sigma: {info['follows_sigma']}", flush=True)
            results["successor"][target.name] = info
        result = bench_target(target, draft, args.tokens, args.depth, args.gpu_layers, fixed_ks)
        results["speed"].append(result)
        print_speed(result)
        print(f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
        save(args.out, results)


def save(out: Path | None, results: dict) -> None:
    """After each part: a run cut short by the device's time limit still leaves what it measured."""
    if out:
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
