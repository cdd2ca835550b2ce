"""Benchmark: ziamath (Ponder's maths typesetter) against the alternatives, on the same formulas.

Run by hand (not collected by pytest); the alternatives are not Ponder dependencies, so install
them somewhere apart first:

    .venv/bin/pip install --target /tmp/mpl matplotlib          # matplotlib's mathtext
    (cd /tmp/katex && npm install katex)                        # KaTeX (needs node)
    PYTHONPATH=/tmp/mpl .venv/bin/python tests/benchmarks/bench_maths_alternatives.py --katex /tmp/katex

For each typesetter, over tests/benchmarks/bench_maths.py's 24 R1-shaped formulas: how many it
typesets, and its cold per-formula time (median, mean, max; ms). ziamath and mathtext draw (SVG
/ a PNG); KaTeX only lays out to HTML here: drawing that needs a browser engine (QtWebEngine),
which costs its own start-up and memory on top. docs/maths.md has the numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.core import formula  # noqa: E402
from tests.benchmarks.bench_maths import FORMULAS  # noqa: E402


def summary(name: str, times: list[float], failed: list[str]) -> None:
    ms = [t * 1000 for t in times]
    stats = f"median {statistics.median(ms):.1f}, mean {statistics.mean(ms):.1f}, max {max(ms):.1f} ms" if ms else "-"
    print(f"{name:<22} typeset {len(times)}/{len(FORMULAS)}; {stats}")
    for source in failed:
        print(f"    fails: {source}")


def bench_ziamath() -> None:
    formula.warm_up()
    formula.clear_cache()
    times, failed = [], []
    for source, display in FORMULAS:
        t0 = time.perf_counter()
        result = formula.render_formula(source, display, 16.0, "#000000")
        elapsed = time.perf_counter() - t0
        (times.append(elapsed) if isinstance(result, formula.FormulaImage) else failed.append(source))
    summary("ziamath (SVG)", times, failed)


def bench_mathtext() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import mathtext
    except ImportError:
        print("matplotlib mathtext     not installed (see the docstring)")
        return
    t0 = time.perf_counter()
    mathtext.math_to_image("$x$", io.BytesIO(), dpi=96, format="png")
    print(f"matplotlib first formula (import, fonts): {(time.perf_counter() - t0) * 1000:.0f} ms")
    times, failed = [], []
    for source, _display in FORMULAS:
        t0 = time.perf_counter()
        try:
            mathtext.math_to_image(f"${source}$", io.BytesIO(), dpi=96, format="png")
        except Exception:  # noqa: BLE001 (counted as not typeset)
            failed.append(source)
            continue
        times.append(time.perf_counter() - t0)
    summary(f"mathtext {matplotlib.__version__} (PNG)", times, failed)


KATEX_SCRIPT = """
const katex = require(process.argv[1] + '/node_modules/katex');
const formulas = JSON.parse(require('fs').readFileSync(0, 'utf8'));
katex.renderToString('x');
const out = [];
for (const [source, display] of formulas) {
  const t0 = process.hrtime.bigint();
  try { katex.renderToString(source, {displayMode: display, throwOnError: true});
        out.push([source, Number(process.hrtime.bigint() - t0) / 1e9]); }
  catch (e) { out.push([source, null]); }
}
console.log(JSON.stringify(out));
"""


def bench_katex(folder: str | None) -> None:
    if not folder or not (Path(folder) / "node_modules" / "katex").exists():
        print("KaTeX                   not installed (see the docstring)")
        return
    result = subprocess.run(["node", "-e", KATEX_SCRIPT, folder], input=json.dumps(FORMULAS),
                            capture_output=True, text=True, check=True)
    rows = json.loads(result.stdout)
    summary("KaTeX (HTML only)", [t for _s, t in rows if t is not None], [s for s, t in rows if t is None])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--katex", help="a folder with node_modules/katex")
    args = parser.parse_args()
    bench_ziamath()
    bench_mathtext()
    bench_katex(args.katex)
    return 0


if __name__ == "__main__":
    sys.exit(main())
