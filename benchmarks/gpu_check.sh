#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one call (see the README's
# "GPU" section). Run from the repository root on the device machine, after
# `bash .gpu/install-warp.sh stash` in an earlier call:
#
#   source .gpu/install-warp.sh && bash benchmarks/gpu_check.sh [quick]
#
# Writes to $OUT (or ./gpu-out): nvidia-smi.txt, pytest-gpu.txt (the CUDA
# variants of the device-parametrised tests) and bench.jsonl (the benchmark
# suite on cuda:0). Each step has its own time limit so that one slow kernel
# compile cannot eat the whole call; a fresh machine has no kernel cache and a
# tile_matmul module has taken ~40 s to compile there (and the width-64
# backward 227 s for sm_90 through NVRTC on a busy 2-core CPU). "quick" runs
# only the tiled-MLP tests of the width-64 bucket and one iteration of each
# benchmark.
set -u
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
MODE="${1:-full}"
pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.txt" 2>&1 || true
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
python -c "import warp as wp; wp.init(); print(wp.__version__, wp.get_cuda_device_count())" \
  >"$OUT/warp.txt" 2>&1

if [ "$MODE" = quick ]; then
  # the width-64 bucket only (each tiled module is a tile_matmul compile), and
  # device rays against host rays (NVRTC contracts to FMA by default)
  TESTS=(tests/test_mlp_tiled.py tests/test_camera.py -k "64 or device_rays")
  ITER=1
else
  TESTS=(tests)
  ITER=5
fi
start=$(date +%s)
timeout 300 python -m pytest -m gpu -q -p no:cacheprovider "${TESTS[@]}" >"$OUT/pytest-gpu.txt" 2>&1
echo "pytest -m gpu: exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"

start=$(date +%s)
{
  timeout 240 python -m benchmarks.fit --device cuda --iterations "$ITER"
  timeout 120 python -m benchmarks.render --device cuda --case neural_init --resolution 1920x1080
  timeout 60 python -m benchmarks.render --device cuda --case airplane --resolution 512
} >"$OUT/bench.jsonl" 2>"$OUT/bench-stderr.txt"
echo "benchmarks: $(wc -l <"$OUT/bench.jsonl") lines after $(( $(date +%s) - start )) s" \
  | tee -a "$OUT/summary.txt"
tail -5 "$OUT/pytest-gpu.txt"
cat "$OUT/bench.jsonl"
