#!/usr/bin/env bash
# The engine's GPU benchmark, prepared for a session that is lent an NVIDIA H100/H200.
#
#   scripts/gpu_bench.sh prepare   # here (with PyPI): wheels the GPU machine lacks -> .whl/
#   scripts/gpu_bench.sh run       # there: install them, run every GPU measurement, JSON -> $OUT
#
# The GPU machine has torch 2.11 and Python 3.12 but not open_clip_torch, ftfy, wcwidth or
# pydantic. `run` measures ViT-L/14, B/16 and B/32 in fp16 at batch 1, 8, 64 and 256 with the
# eager and compile backends, open_clip eager measured in the same process as the baseline.
# Expected to finish in under 6 minutes; give the device call timeout_s=480.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  for spec in open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.2.13 pydantic==2.13.4 pydantic_core==2.46.4 \
              annotated-types==0.7.0 typing-inspection==0.4.2; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$spec"
  done
  ls -la .whl
  ;;
run)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
  out="${OUT:-out}"; mkdir -p "$out"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
  common=(--device cuda --warmup 5 --iters 30 --max-seconds 4 --set engine.cache_dir=/tmp/expstream-cache)
  # 1. eager fp16, three backbones, batch 1/8/64/256 (baseline open_clip eager in the same process)
  python3 -m streamer bench --engine-only --models ViT-L-14,ViT-B-16,ViT-B-32 --backends torch --batch-sizes 1,8,64,256 \
    --precision fp16 "${common[@]}" --json "$out/engine-gpu-eager.json" 2>&1 | tee "$out/engine-gpu-eager.log"
  # 2. compile (CUDA graphs per batch bucket) on ViT-L/14: the batch-1 latency and batch-64 targets
  python3 -m streamer bench --engine-only --models ViT-L-14 --backends compile --batch-sizes 1,64 \
    --precision fp16 "${common[@]}" --json "$out/engine-gpu-compile.json" 2>&1 | tee "$out/engine-gpu-compile.log"
  # 3. fp8 (Hopper) on ViT-L/14 at batch 64, agreement with fp16 eager reported
  python3 -m streamer bench --engine-only --models ViT-L-14 --backends compile --batch-sizes 64 \
    --precision fp8 "${common[@]}" --json "$out/engine-gpu-fp8.json" 2>&1 | tee "$out/engine-gpu-fp8.log"
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
