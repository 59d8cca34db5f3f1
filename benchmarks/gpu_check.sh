#!/usr/bin/env bash
# The one command for a GPU machine (no network needed; only the checkout travels):
#
#     bash benchmarks/gpu_check.sh              # OUT=/some/folder to choose where results go
#     bash benchmarks/gpu_check.sh --dry-run    # on a CPU: the same steps under the Triton
#                                               # interpreter, small sizes, no install
#
# 1. installs the checkout (pip install --no-build-isolation --no-deps -e .; a copy on
#    PYTHONPATH if that fails), 2. records the machine (info.json), 3. runs the CUDA tests
#    (pytest -m cuda: every Triton kernel against its torch twin, CuPy's Poisson solve
#    against torch.fft), 4. the GPU benchmarks (benchmarks/test_gpu.py: PIC dataset,
#    sampling, training step), 5. a 2-epoch training on a dataset it generates, 6. writes
#    gpu_results.json and gpu_results.md (measured figures, device named, beside the
#    predictions of benchmarks/predicted.json) to $OUT (default ./gpu-check-out).
# Each stage has a time limit (40 + 15 + 130 + 60 + 45 + 10 s: 5 minutes at most); a stage
# that runs out is recorded as timed out and the next one starts.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
START=$(date +%s)
STAGES="$OUT/stages.json"
echo "{}" > "$STAGES"
PY=${PYTHON:-python}
command -v "$PY" > /dev/null 2>&1 || PY=python3

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run it with a time limit, log, record
    local name=$1 limit=$2
    shift 2
    local t0
    t0=$(date +%s)
    echo "[gpu_check +$((t0 - START))s] $name (limit $((limit * SCALE))s)"
    timeout "$((limit * SCALE))" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$OUT/$name.log"
    "$PY" - "$STAGES" "$name" "$rc" "$(( $(date +%s) - t0 ))" <<'PYEOF'
import json, sys
path, name, rc, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = json.load(open(path))
data[name] = {"rc": rc, "seconds": secs, "timed_out": rc in (124, 137)}
json.dump(data, open(path, "w"), indent=1)
PYEOF
    return 0
}

install_copy() {  # the fallback: the package laid out on PYTHONPATH
    local site="$OUT/site"
    rm -rf "$site" && mkdir -p "$site"
    cp -r "$ROOT/src/fastvp" "$site/fastvp" && cp -r "$ROOT/kernels" "$site/fastvp/kernels"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "pip install failed: using a copy of the package on PYTHONPATH ($site)"
}

SCALE=1
# per-stage limits in seconds (install info cuda_tests benchmarks training summary); a
# session short of device time passes tighter ones, e.g. GPU_CHECK_LIMITS="30 10 70 45 35 10"
read -r L_INSTALL L_INFO L_TESTS L_BENCH L_TRAIN L_SUMMARY <<< "${GPU_CHECK_LIMITS:-40 15 130 60 45 10}"
if [ "$DRY" = 1 ]; then
    export TRITON_INTERPRET=1 FASTVP_TEST_DEVICE=cpu OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    echo "[gpu_check] dry run: no install, kernels under the Triton interpreter on the CPU"
    TESTS=(tests/test_cuda_kernels.py -m cuda -k "float64 or cupy or cic")
    SCALE=4
else
    stage install "$L_INSTALL" "$PY" -m pip install --no-build-isolation --no-deps -e "$ROOT"
    "$PY" -c "import fastvp.kernels" 2>/dev/null || install_copy
    TESTS=(tests/ -m cuda)
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # the benchmarks package

stage info "$L_INFO" "$PY" -m benchmarks.gpu_check info "$OUT"
stage cuda_tests "$L_TESTS" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" \
    --junitxml="$OUT/cuda_tests.xml"
stage benchmarks "$L_BENCH" "$PY" -m pytest -q -p no:cacheprovider benchmarks/test_gpu.py \
    --benchmark-only --benchmark-json="$OUT/benchmarks.json"
stage training "$L_TRAIN" "$PY" -m benchmarks.gpu_check train "$OUT"
stage summary "$L_SUMMARY" "$PY" -m benchmarks.gpu_check summary "$OUT"
echo "[gpu_check +$(( $(date +%s) - START ))s] done: $OUT/gpu_results.md, $OUT/gpu_results.json"
cat "$OUT/gpu_results.md" 2>/dev/null
