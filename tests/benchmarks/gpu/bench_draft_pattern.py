"""What one draft-model decode costs in each pattern speculative decoding drives it through, run by
hand on a GPU (not a test). The draft (e.g. the 1.5B shape) is opened as Ponder's ModelDrafter
opens it (in-graph greedy sampling on a GPU); per pattern, ms per one-token decode (median of rounds):

- `in a row`: llama_decode of one token after another, each sampled (the cost table's B = 1);
- `k=1 rounds`: draft() of one token per round, the round's token appended (no rollback: the last
  draft is never decoded);
- `k=2, all kept`: draft() of 2 per round, both kept (catch-up of 2 tokens, no rollback);
- `k=2, none kept`: draft() of 2 per round, the first rejected (its decoded draft leaves the KV
  cache with llama_memory_seq_rm every round);
- `rollback only`: one-token decodes, every second one removed again with llama_memory_seq_rm;
- `..., model verifies B between`: the same rounds with the model (a second context: --target, by
  default a second copy of the draft) decoding a verify batch of B between them, as in a real run.

    $PY tests/benchmarks/gpu/bench_draft_pattern.py --draft $MODELS_DIR/qwen-1.5b-Q4_K_M.gguf
"""

import llama_cpp  # noqa: F401  (before numpy: a CUDA build segfaulted otherwise)

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from app.core.engine import Engine, LoadOptions  # noqa: E402
from app.core.speculative import _open_model_drafter  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--draft", required=True)
    p.add_argument("--target", help="the model it drafts for (default: a second copy of the draft)")
    p.add_argument("--depth", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    eng = Engine.load(Path(args.target or args.draft), LoadOptions(n_ctx=args.depth + 4 * args.rounds + 512))
    d = _open_model_drafter(eng, Path(args.draft), None)
    lc = d._lc
    base = [1000 + (i * 7919) % 50000 for i in range(args.depth)]
    results = {}

    # The model (a second context) between the draft's rounds, as in a real run: a verify batch of
    # `between` tokens at the end of its own KV cache, rolled back again.
    tlc, tctx = eng._lc, eng._ctx
    tmem = tlc.llama_get_memory(tctx)
    eng_tokens = (tlc.llama_token * len(base))(*base)
    for start in range(0, len(base), 512):
        n = min(512, len(base) - start)
        tlc.llama_decode(tctx, tlc.llama_batch_get_one(ctypes.cast(ctypes.byref(eng_tokens, 4 * start),
                                                                    ctypes.POINTER(tlc.llama_token)), n))
    tbatch = tlc.llama_batch_init(16, 0, 1)

    def model_verify(width):
        for i in range(width):
            tbatch.token[i], tbatch.pos[i], tbatch.n_seq_id[i] = 100 + i, len(base) + i, 1
            tbatch.seq_id[i][0], tbatch.logits[i] = 0, 1
        tbatch.n_tokens = width
        tlc.llama_decode(tctx, tbatch)
        tlc.llama_synchronize(tctx)
        tlc.llama_memory_seq_rm(tmem, -1, len(base), -1)

    def timed_rounds(name, k, kept_all, between=0):
        tokens = list(base)
        d.draft(tokens[:-1], tokens[-1], 1)  # the prompt, as one catch-up batch
        per = []
        for r in range(args.rounds):
            if between:
                model_verify(between)
            t0 = time.perf_counter()
            drafts = d.draft(tokens, 5000 + r, k)
            dt = time.perf_counter() - t0
            per.append(1000 * dt / max(1, d.decodes))
            tokens.append(5000 + r)
            if kept_all:
                tokens.extend(drafts)  # all kept: the next round catches up on the last draft too
            else:
                tokens.append(7 + r % 3)  # the model's own token instead of the first draft
            tokens.pop()  # (the round's last token is the next call's `last`)
        d._lc.llama_memory_clear(d._lc.llama_get_memory(d._ctx), True)
        d._cached.clear()
        results[name] = statistics.median(per[10:])

    def raw(name, rollback):
        mem = lc.llama_get_memory(d._ctx)
        d._decode(base)  # (in n_batch pieces)
        one = (lc.llama_token * 1)()
        per = []
        n = len(base)
        for r in range(args.rounds):
            one[0] = 3000 + r
            t0 = time.perf_counter()
            lc.llama_decode(d._ctx, lc.llama_batch_get_one(one, 1))
            lc.llama_sampler_sample(d._greedy, d._ctx, -1)
            per.append(1000 * (time.perf_counter() - t0))
            n += 1
            if rollback and r % 2:
                n -= 1
                lc.llama_memory_seq_rm(mem, -1, n, -1)
        lc.llama_memory_clear(mem, True)
        d._cached.clear()
        results[name] = statistics.median(per[10:])

    raw("in a row", False)
    timed_rounds("k=1 rounds", 1, False)
    timed_rounds("k=2, all kept", 2, True)
    timed_rounds("k=2, none kept", 2, False)
    raw("rollback only", True)
    timed_rounds("k=2, all kept, model verifies 3 between", 2, True, between=3)
    timed_rounds("k=2, none kept, model verifies 3 between", 2, False, between=3)
    timed_rounds("k=1, model verifies 2 between", 1, False, between=2)
    raw("in a row (again)", False)
    print(f"{Path(args.draft).name}: ms per one-token draft decode (with its sample), depth {args.depth}")
    for name, ms in results.items():
        print(f"  {name:42s} {ms:.3f}")
    d.close()
    eng.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
