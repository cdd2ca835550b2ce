"""Engine throughput, run by hand (not a test):

    .venv/bin/python tests/benchmarks/bench_engine.py [--model PATH] [--tokens N] [--chat-completion]

Streams one long answer through Ponder's engine and, in the same run, through bare
`Llama.generate()` (and optionally `create_chat_completion(stream=True)`), and prints:
- Ponder's wall-clock tokens/s and llama.cpp's own decode rate (its perf counters);
- the wall cost per token over the first and last 10% of tokens (flat = good);
- the same for the baselines.
Without --model it writes a scripted model with a long thinking trace (real
llama.cpp, tiny weights: this measures the per-token overhead around llama.cpp).
With --model (e.g. a random-weight model with a distill's real shapes, see
make_shaped_gguf.py) the output is whatever the weights produce.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402,F401  (llama_cpp before numpy)
from app.core.engine import Engine, LoadOptions, Sampling  # noqa: E402

PROMPT = [{"role": "user", "content": "Think at length about the number 42, then answer."}]


def slice_cost(stamps: list[tuple], lo: float, hi: float, column: int = 1) -> float:
    """Mean ms per token between fractions lo and hi of the tokens (column 1: wall seconds)."""
    n = stamps[-1][0]
    a = next(s for s in stamps if s[0] >= max(1, int(n * lo)))
    b = next(s for s in stamps if s[0] >= int(n * hi))
    return (b[column] - a[column]) / max(1, b[0] - a[0]) * 1000


def bench_ponder(path: Path, n_ctx: int, max_tokens: int, backend_sampling: bool | None = None) -> dict:
    engine = Engine.load(path, LoadOptions(n_ctx=n_ctx, backend_sampling=backend_sampling))
    try:
        engine.chat(PROMPT, Sampling(max_tokens=8)).run()  # warm-up
        run = engine.chat(PROMPT, Sampling(max_tokens=max_tokens, seed=1))
        lc, ctx = engine._lc, engine._ctx
        # (tokens, wall s, llama.cpp's cumulative decode s): wall minus decode is Ponder's own cost.
        stamps = [(0, time.perf_counter(), 0.0)]
        t_start = None
        for _ in run:
            n = run.thinking_tokens + run.answer_tokens
            if n != stamps[-1][0]:
                stamps.append((n, time.perf_counter(), lc.llama_perf_context(ctx).t_eval_ms / 1000))
                if t_start is None:
                    t_start = stamps[-1]
        end = stamps[-1]
        wall_rate = (end[0] - t_start[0]) / (end[1] - t_start[1])
        return {
            "tokens": end[0],
            "wall_tps": wall_rate,
            "llama_decode_tps": run.stats.decode_tokens_per_s,
            "first10_ms": slice_cost(stamps, 0.0, 0.1),
            "last10_ms": slice_cost(stamps, 0.9, 1.0),
            "overhead_first10_ms": slice_cost(stamps, 0.0, 0.1) - slice_cost(stamps, 0.0, 0.1, column=2),
            "overhead_last10_ms": slice_cost(stamps, 0.9, 1.0) - slice_cost(stamps, 0.9, 1.0, column=2),
            "backend": engine.info.backend,
            "prompt": engine._prompts.render(PROMPT).text,
            "backend_sampling": engine._backend_sampling,
        }
    finally:
        engine.close()


def bench_generate(path: Path, n_ctx: int, max_tokens: int, prompt: str, chat_completion: bool) -> dict:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=n_ctx, flash_attn=True, n_gpu_layers=-1, verbose=False)
    stamps = [(0, time.perf_counter())]
    if chat_completion:
        stream = llm.create_chat_completion(PROMPT, stream=True, max_tokens=max_tokens,
                                            temperature=0.6, top_p=0.95, top_k=40, min_p=0.0, seed=1)
        for n, _chunk in enumerate(stream, 1):
            stamps.append((n, time.perf_counter()))
    else:
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)  # Ponder's rendered prompt
        for n, token in enumerate(llm.generate(tokens, top_k=40, top_p=0.95, min_p=0.0, temp=0.6), 1):
            if token == llm.token_eos() or n > max_tokens:
                break
            llm.detokenize([token])
            stamps.append((n, time.perf_counter()))
    end = stamps[-1]
    return {
        "tokens": end[0],
        "wall_tps": (end[0] - 1) / (end[1] - stamps[1][1]),
        "first10_ms": slice_cost(stamps, 0.0, 0.1),
        "last10_ms": slice_cost(stamps, 0.9, 1.0),
    }


def scripted_long_trace(folder: Path, n_tokens: int) -> Path:
    from tests.fixtures.scripted_gguf import split_script, words_script, write_scripted_gguf

    pieces = words_script(n_tokens) + ["</think>"] + split_script("\n\nThe answer is **42**.")
    return write_scripted_gguf(folder / "long.gguf", pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=6000, help="tokens to generate")
    parser.add_argument("--ctx", type=int, default=16384)
    parser.add_argument("--compare-sampling", action="store_true",
                        help="also run Ponder with sampling moved to the other side (host vs in-graph)")
    parser.add_argument("--chat-completion", action="store_true",
                        help="also time llama-cpp-python's create_chat_completion(stream=True)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or scripted_long_trace(Path(tmp), args.tokens)
        ponder = bench_ponder(path, args.ctx, args.tokens)
        generate = bench_generate(path, args.ctx, args.tokens, ponder["prompt"], chat_completion=False)
        label = "in-graph" if ponder["backend_sampling"] else "host"
        rows = [(f"ponder engine ({label} sampling)", ponder), ("Llama.generate()", generate)]
        if args.compare_sampling:
            other = bench_ponder(path, args.ctx, args.tokens, backend_sampling=not ponder["backend_sampling"])
            rows.insert(1, (f"ponder engine ({'host' if ponder['backend_sampling'] else 'in-graph'} sampling)", other))
        if args.chat_completion:
            rows.append(("create_chat_completion(stream)", bench_generate(path, args.ctx, args.tokens, ponder["prompt"], True)))
    print(f"model: {path.name if args.model else f'scripted long trace ({args.tokens} tokens)'}"
          f"  backend: {ponder['backend']}")
    print(f"{'':36} {'tokens':>7} {'wall tok/s':>11} {'ms/tok first10%':>16} {'ms/tok last10%':>15}")
    for name, r in rows:
        print(f"{name:36} {r['tokens']:>7} {r['wall_tps']:>11.1f} {r['first10_ms']:>16.3f} {r['last10_ms']:>15.3f}")
    decode = ponder["llama_decode_tps"]
    print(f"llama.cpp decode rate (perf counters, Ponder run): {decode:.1f} tok/s")
    print(f"Ponder wall / llama.cpp decode: {ponder['wall_tps'] / decode:.3f}")
    print(f"Ponder wall / Llama.generate() wall: {ponder['wall_tps'] / generate['wall_tps']:.2f}x")
    print(f"Ponder last10% / first10% per-token wall cost: {ponder['last10_ms'] / ponder['first10_ms']:.2f}"
          " (includes llama.cpp's attention over a growing context)")
    print(f"Ponder's own cost per token outside llama_decode (sampling, detokenize, split):"
          f" first10% {ponder['overhead_first10_ms'] * 1000:.1f} us, last10% {ponder['overhead_last10_ms'] * 1000:.1f} us")


if __name__ == "__main__":
    main()
