#!/usr/bin/env bash
# Make the folder a device call carries (the GPU machine has no internet), on this machine:
#   .gpucarry/sdist/llama_cpp_python-0.3.36-trim.tar.gz  llama-cpp-python's sdist without .git,
#                          models/*.gguf, docs, benches, server web UI (~12.5 MB, was 77 MB)
#   .gpucarry/whl/*.whl    its build/run dependencies and gguf, for CPython 3.12 on x86-64
# The saved CUDA build (.gpucarry/build/llama-cuda.tar.xz.part*) comes back from a device call
# made with SAVE_BUILD=1 (see run_on_device.sh and tests/benchmarks/GPU_NOTES.md).
#
#   bash tests/benchmarks/gpu/prepare_carry.sh        # DEST=.gpucarry by default
set -euo pipefail
cd "$(dirname "$0")/../../.."
DEST=${DEST:-.gpucarry}
PY=${PY:-.venv/bin/python}
VERSION=0.3.36
grep -qx '/.gpucarry/' .git/info/exclude 2>/dev/null || echo /.gpucarry/ >>.git/info/exclude
mkdir -p "$DEST/sdist" "$DEST/whl"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$PY -m pip download -q --no-deps --no-binary :all: llama-cpp-python==$VERSION -d "$tmp"
tar -xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp"
src=$tmp/llama_cpp_python-$VERSION
rm -rf "$src/.git" "$src/vendor/llama.cpp/.git" "$src"/vendor/llama.cpp/models/*.gguf "$src/docs" \
    "$src/vendor/llama.cpp/docs" "$src/vendor/llama.cpp/benches" "$src"/vendor/llama.cpp/tools/server/public*
tar -czf "$DEST/sdist/llama_cpp_python-$VERSION-trim.tar.gz" -C "$tmp" "llama_cpp_python-$VERSION"

platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d "$DEST/whl" scikit-build-core pathspec packaging==26.3 diskcache==5.6.3 jinja2==3.1.6 markupsafe==3.0.4 \
    typing-extensions==4.16.0 gguf==0.19.0 pyyaml==6.0.3 tqdm==4.70.1
du -sh "$DEST"/*
