"""How long inspect_gguf takes on a distill-shaped file, against gguf.GGUFReader.

The file has a real distill's header (152k-token vocabulary, 151k merges, all
tensors) over sparse tensor data, so it costs no disk. Only the header matters:
inspect_gguf never reads tensor data.

    python tests/benchmarks/bench_modelfile.py --model qwen-1.5b [--quantize] [--reader]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import app  # noqa: E402,F401  (llama_cpp before numpy/gguf)

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from app.core.modelfile import inspect_gguf  # noqa: E402
from tests.benchmarks.make_shaped_gguf import SHAPES, quantize, write_source_gguf  # noqa: E402


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen-1.5b", choices=sorted(SHAPES))
    parser.add_argument("--quantize", action="store_true", help="also time a Q4_K_M file (llama.cpp quantises)")
    parser.add_argument("--reader", action="store_true", help="also time gguf.GGUFReader for comparison")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder) / f"{args.model}-F16.gguf"]
        write_source_gguf(SHAPES[args.model], files[0])
        if args.quantize:
            files.append(Path(folder) / f"{args.model}-Q4_K_M.gguf")
            quantize(files[0], files[1])
        for path in files:
            summary = inspect_gguf(path)
            seconds = best_of(5, lambda: inspect_gguf(path))
            print(f"{path.name}: {summary.file_size / 1e9:.2f} GB, {summary.file_type}, vocab {summary.vocab_size}, "
                  f"{summary.n_params / 1e9:.2f} B params -> inspect_gguf {seconds * 1000:.1f} ms")  # fmt: skip
            if args.reader:
                from gguf import GGUFReader

                seconds = best_of(1, lambda: GGUFReader(path))
                print(f"    gguf.GGUFReader: {seconds * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
