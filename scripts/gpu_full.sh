#!/usr/bin/env bash
# On the GPU machine, everything the GPU has to prove in one call: the CUDA engine with its C++
# tests and the driver (scripts/gpu_check.sh), cuDNN on the same layer, the PyTorch extension with
# the pytest suite on CUDA, the benchmark, the profiler check and the doctor's selftest.
# Logs go flat into $OUT (so they come back even when a step is cut short); GPU_STEPS picks steps.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHON=${PYTHON:-python3}
STEPS=${GPU_STEPS:-engine ext pytest bench doctor}
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
wants() { [[ " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME SECONDS LOG COMMAND...
  local name=$1 limit=$2 log=$3 t0 rc=0
  shift 3
  t0=$(date +%s)
  timeout "$limit" "$@" >>"$log" 2>&1 || rc=$?
  printf '%-26s exit %3d  %4d s\n' "$name" "$rc" "$(($(date +%s) - t0))" | tee -a "$SUMMARY"
}

# The extension build (nvcc through setuptools) overlaps the CMake build of the engine.
if wants ext; then
  (t0=$(date +%s); rc=0; MAX_JOBS=8 timeout 400 scripts/build_ext.sh >"$OUT/build_ext.log" 2>&1 || rc=$?
   printf '%-26s exit %3d  %4d s\n' "extension build" "$rc" "$(($(date +%s) - t0))" >>"$SUMMARY") &
fi
if wants engine; then
  step "engine build+tests+driver" 400 "$OUT/engine.log" env OUT=/tmp/engine JOBS=8 scripts/gpu_check.sh
  cp /tmp/engine/catalog_table.txt "$OUT/" 2>/dev/null
  # The generated report docs/reports/test-catalog-gpu.md, from that table (copy it into docs/reports/).
  gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  cuda=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  if [[ -f $OUT/catalog_table.txt ]] && "$PYTHON" scripts/catalog_report.py "$OUT/catalog_table.txt" \
    --machine "an ${gpu_name:-unknown GPU} with CUDA ${cuda:-?}" >"$OUT/test-catalog-gpu.md.tmp"; then
    mv "$OUT/test-catalog-gpu.md.tmp" "$OUT/test-catalog-gpu.md"
  fi
  rm -f "$OUT/test-catalog-gpu.md.tmp"
  for a in "--dtype f32" "--dtype f16" "--tf32"; do
    # shellcheck disable=SC2086
    step "cudnn layer $a" 60 "$OUT/engine.log" "$PYTHON" bench/cudnn_layer.py $a
  done
fi
wait
export PYTHONPATH=$PWD/python
if wants pytest; then
  step "pytest (CUDA)" 300 "$OUT/pytest.log" "$PYTHON" -m pytest tests/python -q -rs -p no:cacheprovider
fi
if wants doctor; then
  step "doctor --selftest" 120 "$OUT/doctor.log" "$PYTHON" -m gemmconv doctor --selftest
fi
if wants bench; then
  step "bench profile-check" 120 "$OUT/bench.log" "$PYTHON" -m gemmconv bench --profile-check
  step "bench layers+steps" 480 "$OUT/bench.log" "$PYTHON" -m gemmconv bench --what all --out "$OUT/bench.md" \
    --json "$OUT/bench.json" --png "$OUT/bench.png" --budget-s 420
fi

echo "================ details ================"
grep -E "^(gemmconv_tests|catalog table|FAILED|gpu_check)|ms |TFLOP|^cudnn" "$OUT/engine.log" 2>/dev/null | head -60
tail -3 "$OUT/build_ext.log" 2>/dev/null
grep -E "passed|failed|FAILED|ERROR" "$OUT/pytest.log" 2>/dev/null | tail -30
tail -25 "$OUT/doctor.log" 2>/dev/null
tail -50 "$OUT/bench.log" 2>/dev/null
echo "================ summary ================"
cat "$SUMMARY"
