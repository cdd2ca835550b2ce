"""Speculative decoding on shaped models (issue 13's "How to measure"), run by hand, not a test.

    $PY tests/benchmarks/gpu/bench_speculative.py --targets $MODELS_DIR/qwen-14b-Q4_K_M.gguf,$MODELS_DIR/qwen-32b-Q4_K_M.gguf \\
        --draft $MODELS_DIR/qwen-1.5b-Q4_K_M.gguf --out $OUT/speculative.json
    .venv/bin/python tests/benchmarks/gpu/bench_speculative.py --smoke      # CPU, scripted models, seconds

All ratios come from one process. Per target it prints:
1. the cost of one llama_decode of B tokens at a context depth of 1024 (ms, median): with one
   output (as llama-bench does) and, for B <= K_MAX + 1, as a verify batch (an output at every
   position, each sampled by the target's chain, in-graph on a GPU);
2. Ponder's tokens/s with the real draft model against without. The draft runs its real decodes
   (its real cost); its proposals are replaced by the target's own greedy continuation, recorded
   in a first pass, with a fraction 1 - a replaced by wrong tokens (a = 0, 0.5, 0.7, 0.8, 0.9).
   Random weights give no real acceptance rate; this gives any chosen one, at the real costs.
   The run is greedy, so its text must equal the recorded one ("same" column);
3. the same with n-gram drafting: what the drafter proposes over an R1-style trace (restated
   equations, numbers, code) decides which proposals are right.
The plain rate is measured before and after the drafting runs (a separate engine with drafting
off, as Ponder runs without it).
"""

# llama_cpp before numpy: on the GPU machine a CUDA build segfaulted when numpy came first.
import llama_cpp  # noqa: F401

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from app.core.engine import Engine, LoadOptions, Sampling, Stats  # noqa: E402
from app.core.speculative import K_MAX, NgramDrafter  # noqa: E402

BATCHES = (1, 2, 3, 4, 6, 8, 9, 12, 16)
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


def cost_table(path: Path, depth: int, reps: int, gpu_layers: int | None) -> dict:
    """ms per llama_decode of B tokens at `depth`: one output, and as a verify batch (B <= K_MAX+1)."""
    eng = Engine.load(path, LoadOptions(n_ctx=depth + 64, n_gpu_layers=gpu_layers, draft="ngram"))
    lc, ctx = eng._lc, eng._ctx
    n_vocab = lc.llama_vocab_n_tokens(eng._vocab)
    _fill(eng, depth, n_vocab)
    mem = lc.llama_get_memory(ctx)
    batch = lc.llama_batch_init(max(BATCHES), 0, 1)
    chain = eng._sampler(Sampling(temperature=0.0))
    rng = random.Random(1)
    table: dict[str, dict[int, float]] = {"one_output": {}, "verify": {}}
    try:
        for kind in ("one_output", "verify"):
            attached = kind == "verify" and eng._backend_sampling and lc.llama_set_sampler(ctx, 0, chain)
            for b in BATCHES:
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
            if attached:
                lc.llama_set_sampler(ctx, 0, None)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_sampler_free(chain)
        eng.close()
    return table


class RecordedProposals:
    """The real draft model drafts (its real cost); the proposals are the target's recorded
    greedy continuation, each position wrong with probability 1 - acceptance."""

    def __init__(self, inner, prompt_len: int, recorded: list[int], acceptance: float, n_vocab: int, seed: int = 7):
        self.inner, self.name, self.cost_prior = inner, inner.name, inner.cost_prior
        self.prompt_len, self.recorded, self.n_vocab = prompt_len, recorded, n_vocab
        rng = random.Random(seed)
        self.wrong = [rng.random() >= acceptance for _ in recorded]
        self.catchup_s = 0.0

    def draft(self, tokens: list[int], last: int, k: int) -> list[int]:
        real = self.inner.draft(tokens, last, k)
        self.catchup_s = getattr(self.inner, "catchup_s", 0.0)
        at = len(tokens) + 1 - self.prompt_len  # index of the token after `last` in the continuation
        out = []
        for j in range(at, min(at + len(real), len(self.recorded))):
            token = self.recorded[j]
            out.append((token + 1) % self.n_vocab if self.wrong[j] else token)
        return out

    def close(self) -> None:
        pass  # the engine closes the real drafter


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


def _row(label: str, acceptance, rate: float, plain_rate: float, same: bool, s: Stats) -> dict:
    return {"case": label, "acceptance_set": acceptance, "tok_s": rate, "ratio": rate / plain_rate, "same": same,
            "drafted": s.draft_tokens, "accepted": s.draft_accepted,
            "measured_acceptance": s.draft_accepted / s.draft_tokens if s.draft_tokens else None,
            "speedup_estimate": s.draft_speedup}


def print_cost(name: str, table: dict) -> None:
    print(f"\n{name}: ms per llama_decode of B tokens at depth")
    print("| B | " + " | ".join(str(b) for b in BATCHES) + " |")
    print("|---|" + "---|" * len(BATCHES))
    for kind in ("one_output", "verify"):
        cells = [f"{table[kind][b]:.2f}" if b in table[kind] else "" for b in BATCHES]
        print(f"| {kind} | " + " | ".join(cells) + " |")


def print_speed(result: dict) -> None:
    print(f"\n{result['target']} (draft {result['draft']}), {result['tokens']} tokens after a "
          f"{result['prompt_tokens']}-token prompt; plain {result['plain_tok_s_before']:.1f} tok/s before, "
          f"{result['plain_tok_s_after']:.1f} after")
    print("| case | tok/s | × plain (before) | × plain (after) | drafted | accepted | same text | est. |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        est = f"{r['speedup_estimate']:.2f}" if r["speedup_estimate"] else ""
        print(f"| {r['case']} | {r['tok_s']:.1f} | {r['ratio']:.3f} | {r['ratio_vs_after']:.3f} | {r['drafted']} "
              f"| {r['accepted']} | {'yes' if r['same'] else 'NO'} | {est} |")


def smoke(args) -> tuple[list[Path], Path, Path]:
    """CPU: a scripted model with a long trace as target, a copy of it as draft."""
    from tests.fixtures.scripted_gguf import SCRIPTS

    folder = Path(tempfile.mkdtemp(prefix="bench_spec_"))
    target = SCRIPTS["long_trace"].write(folder / "target.gguf")
    draft = folder / "draft-0.5B.gguf"
    shutil.copy(target, draft)
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
    p.add_argument("--smoke", action="store_true", help="CPU check with scripted models (numbers mean nothing)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.smoke:
        targets, draft, _ = smoke(args)
        args.tokens, args.depth, args.reps = min(args.tokens, 200), 256, 3
    else:
        if not args.targets or not args.draft:
            p.error("--targets and --draft (or --smoke)")
        targets, draft = [Path(t) for t in args.targets.split(",")], args.draft
    cost_models = [Path(m) for m in args.cost_models.split(",") if m] or [draft, *targets]
    fixed_ks = [int(k) for k in args.fixed_k.split(",") if k]
    results = {"cost_depth": args.depth, "cost": {}, "speed": []}
    t0 = time.perf_counter()
    for model in cost_models:
        table = cost_table(model, args.depth, args.reps, args.gpu_layers)
        results["cost"][model.name] = table
        print_cost(model.name, table)
        print(f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
    for target in targets:
        print(f"\n{target.name}:", flush=True)
        result = bench_target(target, draft, args.tokens, args.depth, args.gpu_layers, fixed_ks)
        results["speed"].append(result)
        print_speed(result)
        print(f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
