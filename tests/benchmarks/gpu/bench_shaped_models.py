"""GPU memory and decode speed of R1-distill-shaped Q4_K_M models (run on the GPU machine).

For each model: make it with make_shaped_gguf.py, then in a fresh process load it with
the settings Ponder plans for (all layers on the GPU, flash attention, n_ctx 16384,
f16 KV cache) and record
- llama.cpp's own buffer sizes from its load log (weights per device, KV, compute, output);
- GPU memory used, from nvidia-smi: this process's own use, and the device's use
  before and after load;
- tokens/s over 256 generated tokens for native sampler chains driven from a minimal
  ctypes loop (top_k 40 -> top_p 0.95 -> temp 0.6 -> dist, the recommended chain;
  top_p 0.95 alone over the whole vocabulary; greedy), each with llama.cpp's own decode
  rate from its perf counters, and `Llama.generate()` with the same settings as the
  baseline; prompt evaluation speed (2048 tokens); the recommended chain again at a
  depth of 8192 tokens, as in a long reasoning trace.

Results go to <out-dir>/results.json (rewritten after each model, so a cut run keeps
what it measured) and llama.cpp's logs to <out-dir>/llama_logs.txt; a table is printed.

    python tests/benchmarks/gpu/bench_shaped_models.py --models qwen-1.5b,qwen-7b --out-dir $OUT
"""

# llama_cpp before numpy/gguf: a CUDA build segfaulted at model load otherwise.
import llama_cpp

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
N_CTX = 16384
N_TOKENS = 256
BUFFER_LINE = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|compute|output|RS) buffer size =\s+([\d.]+) MiB")
KEEP_LINE = re.compile(r"buffer size|llama_kv_cache: size|using device|graph splits|n_ctx|flash_attn|offloaded|CUDA0 :")


# ---------------------------------------------------------------- one model, in its own process

def gpu_memory() -> dict:
    """Device memory used/total and this process's own use, in MiB (nvidia-smi)."""
    def query(*args: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True)
        return [[c.strip() for c in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]

    try:
        used, total = (int(v) for v in query("--query-gpu=memory.used,memory.total")[0])
    except (OSError, IndexError, ValueError):  # no NVIDIA GPU here (a CPU trial run)
        return {"device_used_mib": None, "device_total_mib": None, "process_mib": None}
    own = [int(mem) for pid, mem in query("--query-compute-apps=pid,used_memory") if pid == str(os.getpid())]
    return {"device_used_mib": used, "device_total_mib": total, "process_mib": own[0] if own else None}


def _chain(kind: str, seed: int = 1234):
    params = llama_cpp.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(params)
    if kind == "greedy":
        stages = [llama_cpp.llama_sampler_init_greedy()]
    else:
        stages = [llama_cpp.llama_sampler_init_top_k(40)] if kind == "top_k40" else []
        stages += [
            llama_cpp.llama_sampler_init_top_p(0.95, 1),
            llama_cpp.llama_sampler_init_temp(0.6),
            llama_cpp.llama_sampler_init_dist(seed),
        ]
    for s in stages:
        llama_cpp.llama_sampler_chain_add(chain, s)
    return chain


def _clear(llm) -> None:
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm._ctx.ctx), True)
    llm.n_tokens = 0  # keep Llama's own bookkeeping true: these loops bypass it


def _feed(llm, tokens: list[int]) -> None:
    ctx = llm._ctx.ctx
    for i in range(0, len(tokens), llm.n_batch):
        part = tokens[i : i + llm.n_batch]
        arr = (llama_cpp.llama_token * len(part))(*part)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(part)))
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
    llama_cpp.llama_synchronize(ctx)


def native_decode(llm, prompt: list[int], kind: str, n: int) -> dict:
    """Sample and decode n tokens after `prompt` with a native chain; nothing in Python but the loop."""
    ctx = llm._ctx.ctx
    _clear(llm)
    _feed(llm, prompt)
    chain = _chain(kind)
    llama_cpp.llama_perf_context_reset(ctx)
    one = (llama_cpp.llama_token * 1)()
    t0 = time.perf_counter()
    for _ in range(n):
        one[0] = llama_cpp.llama_sampler_sample(chain, ctx, -1)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed")
    llama_cpp.llama_synchronize(ctx)
    wall = time.perf_counter() - t0
    perf = llama_cpp.llama_perf_context(ctx)
    llama_cpp.llama_sampler_free(chain)
    return {
        "wall_tokens_per_s": round(n / wall, 1),
        "llama_decode_tokens_per_s": round(perf.n_eval / perf.t_eval_ms * 1000, 1) if perf.t_eval_ms else None,
        "n_eval": perf.n_eval,
    }


def generate_baseline(llm, prompt: list[int], n: int) -> dict:
    """Llama.generate() with the same sampling settings; times n tokens after the first."""
    _clear(llm)
    llm.reset()
    gen = llm.generate(prompt, top_k=40, top_p=0.95, min_p=0.0, temp=0.6, repeat_penalty=1.0, reset=True)
    next(gen)
    t0 = time.perf_counter()
    for _ in range(n):
        next(gen)
    wall = time.perf_counter() - t0
    gen.close()
    return {"wall_tokens_per_s": round(n / wall, 1)}


def prompt_eval(llm, n: int) -> dict:
    _clear(llm)
    tokens = [(i * 7919) % 100000 + 300 for i in range(n)]  # ordinary vocabulary tokens
    t0 = time.perf_counter()
    _feed(llm, tokens)
    wall = time.perf_counter() - t0
    return {"n_tokens": n, "tokens_per_s": round(n / wall, 1)}


def render_prompt(llm) -> list[int]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"],
        eos_token=llm.detokenize([llm.token_eos()], special=True).decode(),
        bos_token=llm.detokenize([llm.token_bos()], special=True).decode(),
    )
    text = fmt(messages=[{"role": "user", "content": "How many primes are below 100? Please reason step by step."}]).prompt
    return llm.tokenize(text.encode(), add_bos=False, special=True)


def measure(model_path: str, log_path: str, result_path: str, n_ctx: int, n: int, depth: int) -> None:
    # llama.cpp logs to C stderr: send that to the log file for the parent to parse.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 2)
    res: dict = {"gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()), "n_ctx": n_ctx}
    res["memory_before"] = gpu_memory()
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path, n_gpu_layers=-1, flash_attn=True, n_ctx=n_ctx, verbose=True, seed=1)
    res["load_s"] = round(time.perf_counter() - t0, 2)
    res["memory_after_load"] = gpu_memory()
    prompt = render_prompt(llm)
    res["prompt_tokens"] = len(prompt)
    res["decode"] = {kind: native_decode(llm, prompt, kind, n) for kind in ("top_k40", "top_p_only", "greedy")}
    res["decode"]["generate_baseline"] = generate_baseline(llm, prompt, n)
    res["prompt_eval"] = prompt_eval(llm, 2048)
    deep = [(i * 104729) % 100000 + 300 for i in range(depth)]
    res["decode"][f"top_k40_at_depth_{depth}"] = native_decode(llm, deep, "top_k40", n)
    res["memory_after_bench"] = gpu_memory()
    Path(result_path).write_text(json.dumps(res))


# ---------------------------------------------------------------- driver

def parse_log(text: str) -> dict:
    buffers: dict[str, float] = {}
    for line in text.splitlines():
        m = BUFFER_LINE.match(line.strip())
        if m:
            key = f"{m.group(3)}:{m.group(2)}"
            buffers[key] = round(buffers.get(key, 0.0) + float(m.group(4)), 2)
    return buffers


def run_model(name: str, work_dir: Path, out_dir: Path, keep: bool, n_ctx: int, n: int, depth: int) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "benchmarks"))
    import make_shaped_gguf  # imports numpy: only in this (driver) process, after llama_cpp

    path = work_dir / f"{name}-Q4_K_M.gguf"
    rec: dict = {"model": name}
    t0 = time.perf_counter()
    rec["make"] = make_shaped_gguf.make_shaped_gguf(name, path, work_dir)
    rec["make_s"] = round(time.perf_counter() - t0, 1)
    log_path, result_path = work_dir / f"{name}.log", work_dir / f"{name}.json"
    t1 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", str(path), "--log", str(log_path), "--result", str(result_path),
         "--n-ctx", str(n_ctx), "--tokens", str(n), "--depth", str(depth)],
        capture_output=True, text=True,
    )
    rec["measure_s"] = round(time.perf_counter() - t1, 1)
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    with open(out_dir / "llama_logs.txt", "a") as f:
        f.write(f"===== {name}\n" + "\n".join(line for line in log.splitlines() if KEEP_LINE.search(line)) + "\n")
    rec["buffers_mib"] = parse_log(log)
    if proc.returncode != 0 or not result_path.exists():
        rec["error"] = f"measure exited {proc.returncode}: {proc.stderr[-2000:]} {log[-3000:]}"
    else:
        rec.update(json.loads(result_path.read_text()))
    if not keep:
        path.unlink(missing_ok=True)
    return rec


def summary(records: list[dict]) -> str:
    head = ("model", "GB", "weights", "embd RAM", "KV", "compute", "proc MiB", "overhead",
            "k40 tok/s", "llama dec", "top_p only", "greedy", "generate()", "k40@8k", "pp t/s")
    rows = [head]
    for r in records:
        if "error" in r or "decode" not in r:
            rows.append((r["model"], "error" if "error" in r else r.get("skipped", "?")) + ("",) * (len(head) - 2))
            continue
        b, d = r["buffers_mib"], r["decode"]
        gpu_bufs = sum(v for k, v in b.items() if "CUDA0" in k and not k.startswith("RS"))
        after, before = r["memory_after_bench"], r["memory_before"]
        proc = after["process_mib"] or ((after["device_used_mib"] or 0) - (before["device_used_mib"] or 0))
        deep = next(v for k, v in d.items() if k.startswith("top_k40_at_depth"))
        rows.append((
            r["model"], f"{r['make']['bytes'] / 1e9:.2f}", f"{b.get('model:CUDA0', 0):.1f}",
            f"{b.get('model:CPU_Mapped', b.get('model:CPU', 0)):.1f}", f"{b.get('KV:CUDA0', 0):.0f}",
            f"{b.get('compute:CUDA0', 0):.1f}", str(proc), f"{proc - gpu_bufs:.0f}",
            str(d["top_k40"]["wall_tokens_per_s"]), str(d["top_k40"]["llama_decode_tokens_per_s"]),
            str(d["top_p_only"]["wall_tokens_per_s"]), str(d["greedy"]["wall_tokens_per_s"]),
            str(d["generate_baseline"]["wall_tokens_per_s"]), str(deep["wall_tokens_per_s"]),
            str(r["prompt_eval"]["tokens_per_s"]),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(" | ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="qwen-1.5b,qwen-7b,qwen-14b,qwen-32b")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/shaped"))
    p.add_argument("--out-dir", type=Path, default=Path(os.environ.get("OUT", "/tmp/out")))
    p.add_argument("--keep", action="store_true", help="keep the model files (default: delete each after measuring)")
    p.add_argument("--deadline-s", type=float, default=0, help="skip a model that would not finish within this many seconds")
    p.add_argument("--depth", type=int, default=8192)
    p.add_argument("--measure", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--n-ctx", type=int, default=N_CTX)
    p.add_argument("--tokens", type=int, default=N_TOKENS, help="tokens generated per decode run")
    args = p.parse_args()
    if args.measure:
        measure(args.measure, args.log, args.result, args.n_ctx, args.tokens, args.depth)
        return 0

    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    s_per_gb, records = 25.0, []  # first guess; learnt from each finished model
    sizes_gb = {"qwen-1.5b": 1.1, "qwen-7b": 4.7, "llama-8b": 4.9, "qwen-14b": 9.0, "qwen-32b": 19.8, "llama-70b": 42.5}
    for name in args.models.split(","):
        need = 20 + s_per_gb * sizes_gb.get(name, 1.0)
        left = args.deadline_s - (time.perf_counter() - start) if args.deadline_s else None
        if left is not None and need > left:
            print(f"skip {name}: needs ~{need:.0f}s, {left:.0f}s left", flush=True)
            records.append({"model": name, "skipped": "time"})
            continue
        t0 = time.perf_counter()
        rec = run_model(name, args.work_dir, args.out_dir, args.keep, args.n_ctx, args.tokens, args.depth)
        took = time.perf_counter() - t0
        s_per_gb = max(5.0, (took - 20) / (rec["make"]["bytes"] / 1e9))
        records.append(rec)
        print(f"{name}: {took:.0f}s (make {rec['make_s']}s, measure {rec['measure_s']}s) "
              f"{json.dumps({k: rec.get(k) for k in ('buffers_mib', 'memory_after_load', 'memory_after_bench', 'decode', 'error')})}",
              flush=True)
        (args.out_dir / "results.json").write_text(json.dumps(records, indent=1))
    print(summary(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
