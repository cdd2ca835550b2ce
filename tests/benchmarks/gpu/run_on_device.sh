#!/usr/bin/env bash
# Set up Ponder's GPU measurements on the device machine (no internet there), then run them.
#
#   bash tests/benchmarks/gpu/run_on_device.sh setup            [-- CMD ...]
#   bash tests/benchmarks/gpu/run_on_device.sh models M1,M2,... [-- CMD ...]
#   bash tests/benchmarks/gpu/run_on_device.sh bench  M1,M2,...
#
# setup  installs the carried wheels into /tmp/site and llama-cpp-python with CUDA into
#        /tmp/llama: from the saved build pieces .gpucarry/build/llama-cuda.tar.xz.part*
#        if they were carried (seconds), else compiled from the carried sdist (~4 min;
#        with SAVE_BUILD=1 the build is packed into $OUT as pieces for next time).
#        Skipped when this warm machine already has it. Checks GPU offload works.
# models also writes random-weight Q4_K_M models with the distills' shapes to
#        $MODELS_DIR (default /tmp/shaped), named <model>-Q4_K_M.gguf
#        (qwen-1.5b qwen-7b llama-8b qwen-14b qwen-32b llama-70b).
# bench  makes, loads and measures each model (tests/benchmarks/gpu/bench_shaped_models.py).
# -- CMD runs CMD afterwards with the environment set (PYTHONPATH, PY, MODELS_DIR); the
#        same exports are in /tmp/ponder_gpu_env.sh for later commands on this machine.
#
# The device call carries .gpucarry/whl plus .gpucarry/build (saved CUDA build) or
# .gpucarry/sdist (trimmed llama-cpp-python sdist, to compile); see tests/benchmarks/GPU_NOTES.md.
set -uo pipefail
cd "$(dirname "$0")/../../.."
START=$(date +%s)
CARRY=.gpucarry
SITE=/tmp/site
LLAMA=/tmp/llama
MODELS_DIR=${MODELS_DIR:-/tmp/shaped}
OUT=${OUT:-/tmp/out}
PY=${PY:-/opt/torch/.venv/bin/python3}
[ -x "$PY" ] || PY=python3
DEADLINE=${DEADLINE:-570}  # seconds this script may run (the device allows 600 per command)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$MODELS_DIR"

log() { echo "[$(($(date +%s) - START))s] $*"; }

mode=${1:-setup}
models=""
shift || true
if [ "$mode" != setup ] && [ $# -gt 0 ] && [ "$1" != -- ]; then models=$1; shift; fi
[ "${1:-}" = -- ] && shift

log "$(nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader) | $(nproc) cores"
log "disk: $(df -h /tmp | tail -1) | shm: $(df -h /dev/shm | tail -1)"

if [ ! -f $SITE/.done ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE $CARRY/whl/*.whl \
        && touch $SITE/.done || { log "wheel install failed"; exit 1; }
fi

if [ -f $LLAMA/.done ]; then
    log "llama-cpp-python CUDA build already in $LLAMA"
elif ls $CARRY/build/llama-cuda.tar.xz.part* >/dev/null 2>&1; then
    rm -rf $LLAMA
    cat $CARRY/build/llama-cuda.tar.xz.part* | xz -dc -T0 | tar -x -C /tmp || { log "unpacking the saved build failed"; exit 1; }
    touch $LLAMA/.done
    log "unpacked the saved CUDA build into $LLAMA"
else
    log "building llama-cpp-python with CUDA (~4 min)"
    rm -rf /tmp/llama-src $LLAMA && mkdir -p /tmp/llama-src
    tar -xzf $CARRY/sdist/llama_cpp_python-0.3.36-trim.tar.gz -C /tmp/llama-src
    if ! CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=off -DGGML_NATIVE=off" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) PYTHONPATH=$SITE \
        $PY -m pip install --no-build-isolation --no-deps --no-index --target $LLAMA \
        /tmp/llama-src/llama_cpp_python-0.3.36 >/tmp/llama_build.log 2>&1; then
        tail -40 /tmp/llama_build.log
        log "build failed"
        exit 1
    fi
    # pip --target leaves a second copy of the libraries in lib/ (plus bin/, include/), and
    # each library three times (.so, .so.0, .so.0.x.y: wheels hold no symlinks): 415 MB.
    # Keep one file per library under its soname, which is what the others link against.
    rm -rf $LLAMA/lib $LLAMA/bin $LLAMA/include
    for f in $LLAMA/llama_cpp/lib/*.so.0; do
        for d in "${f%.0}" "${f%.0}".0.*; do
            [ -f "$d" ] && [ ! -L "$d" ] && ln -sf "$(basename "$f")" "$d"
        done
    done
    touch $LLAMA/.done
    log "built: $(du -sh $LLAMA | cut -f1)"
    if [ "${SAVE_BUILD:-0}" = 1 ]; then
        # ~39 MB in 3 pieces: the device returns files of at most 16 MiB.
        tar -C /tmp -cf - llama | xz -T0 -6 | split -b 15M - "$OUT/llama-cuda.tar.xz.part"
        log "saved the build: $(ls -la "$OUT"/llama-cuda.tar.xz.part* | awk '{print $5, $9}' | tr '\n' ' ')"
    fi
fi

export PYTHONPATH=$LLAMA:$SITE${PYTHONPATH:+:$PYTHONPATH} PY MODELS_DIR
cat >/tmp/ponder_gpu_env.sh <<EOF
export PYTHONPATH=$PYTHONPATH PY=$PY MODELS_DIR=$MODELS_DIR PYTHONUNBUFFERED=1
EOF
# llama_cpp first: a CUDA build segfaulted at model load when numpy came before it.
$PY -c "import llama_cpp, sys; ok = llama_cpp.llama_supports_gpu_offload(); print('llama_cpp', llama_cpp.__version__, 'gpu offload:', ok); sys.exit(0 if ok else 1)" \
    || { log "this llama_cpp cannot offload to the GPU"; exit 1; }

case $mode in
setup) ;;
models)
    for m in ${models//,/ }; do
        $PY tests/benchmarks/make_shaped_gguf.py --model "$m" --out "$MODELS_DIR/$m-Q4_K_M.gguf" 2>/tmp/make_$m.log \
            || { tail -20 /tmp/make_$m.log; log "making $m failed"; exit 1; }
    done
    ls -la "$MODELS_DIR"
    ;;
bench)
    left=$((DEADLINE - ($(date +%s) - START)))
    # llama.cpp's quantiser log (stderr) stays on the machine; the driver's lines and table come back.
    $PY tests/benchmarks/gpu/bench_shaped_models.py --models "${models:-qwen-1.5b,qwen-7b,qwen-14b,qwen-32b}" \
        --work-dir "$MODELS_DIR" --out-dir "$OUT" --deadline-s $left 2>/tmp/bench_stderr.log | tee "$OUT/run.log"
    [ "${PIPESTATUS[0]}" = 0 ] || { tail -30 /tmp/bench_stderr.log; log "bench failed"; }
    ;;
*) echo "unknown mode $mode (setup, models, bench)"; exit 2 ;;
esac
log "done"
[ $# -gt 0 ] && exec "$@"
exit 0
