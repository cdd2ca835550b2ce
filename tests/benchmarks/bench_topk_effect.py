"""How much does top_k 40 in front of top_p 0.95 change R1's sampling? Run by hand:

    .venv/bin/python tests/benchmarks/bench_topk_effect.py [--logits FILE.npy]

Sampling with top_k 40 then top_p 0.95 differs from top_p 0.95 alone only when the
nucleus (the smallest set of tokens holding 95% of the probability at temperature
0.6) has more than 40 tokens. The total variation distance between the two
distributions is then the nucleus mass ranked below 40, renormalised. This prints
that distance and the nucleus size for next-token distributions.

Without --logits it uses Zipf-shaped distributions over R1's 152,064-token
vocabulary, from very peaked to very flat (no real R1 weights are reachable
offline); with --logits, an (N, vocab) array of real logits saved from a model.
"""

from __future__ import annotations

import argparse

import numpy as np

VOCAB = 152_064
TEMPERATURE = 0.6
TOP_P = 0.95
TOP_K = 40


def effect(logits: np.ndarray) -> tuple[int, float, float]:
    """(nucleus size, TV distance top_p vs top_k+top_p, top-1 probability) for one distribution."""
    z = logits / TEMPERATURE
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.sort(p)[::-1]
    cum = np.cumsum(order)
    nucleus = int(np.searchsorted(cum, TOP_P) + 1)
    nucleus_p = order[:nucleus] / cum[nucleus - 1]
    kept = min(nucleus, TOP_K)
    bounded = np.zeros_like(nucleus_p)
    bounded[:kept] = order[:kept] / order[:kept].sum()
    return nucleus, 0.5 * float(np.abs(nucleus_p - bounded).sum()), float(order[0])


def zipf_logits(exponent: float) -> np.ndarray:
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    return -exponent * np.log(ranks)  # at temperature 1: p(rank) ~ rank^-exponent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logits", help=".npy file of shape (N, vocab)")
    args = parser.parse_args()
    print(f"temperature {TEMPERATURE}, top_p {TOP_P}, top_k {TOP_K}")
    print(f"{'distribution':28} {'top-1 p':>8} {'nucleus':>8} {'TV distance':>12}")
    if args.logits:
        rows = np.load(args.logits)
        results = [effect(r.astype(np.float64)) for r in rows]
        sizes = np.array([r[0] for r in results])
        tvs = np.array([r[1] for r in results])
        print(f"{len(rows)} real distributions: nucleus > {TOP_K} in {np.mean(sizes > TOP_K):.1%},"
              f" mean TV {tvs.mean():.4f}, max TV {tvs.max():.4f}")
        return
    for exponent in (2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7):
        nucleus, tv, top1 = effect(zipf_logits(exponent))
        print(f"{f'Zipf exponent {exponent}':28} {top1:>8.3f} {nucleus:>8} {tv:>12.4f}")


if __name__ == "__main__":
    main()
