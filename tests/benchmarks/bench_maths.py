"""Benchmark: the cost of maths in an answer (app/core/maths.py, app/core/formula.py).

Run by hand (not collected by pytest):

    .venv/bin/python tests/benchmarks/bench_maths.py [--repeat 3]

Prints: the first formula (ziamath's import and font load), then per formula the cost of a
cold render (cache cleared) and of a cached one, over R1-shaped formulas, inline and
display; and the cost of finding the maths in a 200+ formula answer. docs/maths.md has the
numbers measured on the development machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.core import formula  # noqa: E402
from app.core.maths import find_maths  # noqa: E402

FORMULAS = [
    ("x", False), ("x^2", False), ("y'", False), ("\\ln x", False), ("a_n", False), ("90^\\circ", False),
    ("\\frac{y'}{y} = \\ln x + 1", False), ("\\frac{dy}{dx} = x^x(\\ln x + 1)", False),
    ("\\sqrt{2}", False), ("\\sqrt[3]{27} = 3", False), ("x_i^2 + a_{n+1}^{k}", False),
    ("a \\equiv b \\pmod{n}", False), ("\\binom{n}{k}", False), ("\\{1, 2, 3\\}", False),
    ("\\lim_{x \\to 0} \\frac{\\sin x}{x} = 1", True), ("\\sum_{k=1}^n k = \\frac{n(n+1)}{2}", True),
    ("\\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}", True), ("\\prod_{p} \\frac{1}{1-p^{-s}}", True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", True),
    ("f(x) = \\begin{cases} x^2 & x \\ge 0 \\\\ -x & x < 0 \\end{cases}", True),
    ("\\left( \\frac{a+b}{2} \\right)^2 \\ge ab", True), ("\\boxed{\\frac{1}{2}}", False), ("\\boxed{42}", False),
    ("x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}", True),
]


def answer_with(n: int) -> str:
    parts = []
    for i in range(n):
        source, display = FORMULAS[i % len(FORMULAS)]
        parts.append(f"Step {i}: we have $${source}$$\n\n" if display else f"so ${source}$ holds, costing $5 and $10; ")
        if i % 10 == 9:
            parts.append("\n\n```python\nprint('$x$')\n```\n\n")
    return "".join(parts)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    formula.render_formula("x^2", False, 16.0, "#000000")
    print(f"first formula (import ziamath, load its font): {ms(time.perf_counter() - start)} ms")

    cold: list[float] = []
    cached: list[float] = []
    for _ in range(args.repeat):
        for size in (15.0, 16.0):
            formula.clear_cache()
            for source, display in FORMULAS:
                t = time.perf_counter()
                result = formula.render_formula(source, display, size, "#1a1a1a")
                cold.append(time.perf_counter() - t)
                assert isinstance(result, formula.FormulaImage), (source, result)
                t = time.perf_counter()
                formula.render_formula(source, display, size, "#1a1a1a")
                cached.append(time.perf_counter() - t)
    cold.sort()
    print(f"cold, per formula ({len(FORMULAS)} formulas x {2 * args.repeat}): median {ms(statistics.median(cold))} ms,"
          f" mean {ms(statistics.mean(cold))} ms, p90 {ms(cold[int(len(cold) * 0.9)])} ms, max {ms(cold[-1])} ms")
    print(f"cached, per formula: median {ms(statistics.median(cached)) } ms, max {ms(max(cached))} ms")

    text = answer_with(240)
    t = time.perf_counter()
    found = find_maths(text)
    took = time.perf_counter() - t
    print(f"find_maths on a {len(text)}-character answer: {len(found)} formulas in {ms(took)} ms")
    formula.clear_cache()
    t = time.perf_counter()
    for m in found:
        formula.render_formula(m.source, m.display, 16.0, "#1a1a1a")
    print(f"typesetting all of them (distinct: {len({(m.source, m.display) for m in found})}): {ms(time.perf_counter() - t)} ms")


if __name__ == "__main__":
    main()
