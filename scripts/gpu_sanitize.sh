#!/usr/bin/env bash
# On the GPU machine: runs GPU kernels of the catalog under compute-sanitizer's memcheck, racecheck
# and initcheck, and a few Python binding cases under memcheck; one log per run under $OUT.
#
# Time: compute-sanitizer slows kernels 10-100x, so the whole catalog does not fit the few minutes
# a GPU session has. By default each tool gets GEMMCONV_SANITIZE_SECONDS (default 60) and runs a
# representative subset: one shard in GEMMCONV_SANITIZE_SHARDS (default 6) of the GPU catalog
# (every solver and dtype appears in each shard, since the catalog interleaves them), plus the
# depthwise and implicit-GEMM GPU tests. GEMMCONV_SANITIZE_SHARDS=1 checks the whole catalog.
# A run cut short by its time limit is reported as "timeout" (exit 124), not as clean.
#
#   OUT=/tmp/out scripts/gpu_sanitize.sh        # builds build-gpu when it is missing
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/out}
BUILD=${GEMMCONV_GPU_BUILD_DIR:-build-gpu}
SECONDS_PER_TOOL=${GEMMCONV_SANITIZE_SECONDS:-60}
SHARDS=${GEMMCONV_SANITIZE_SHARDS:-6}
SHARD=${GEMMCONV_SANITIZE_SHARD:-0}
mkdir -p "$OUT/sanitize"
LOGS="$OUT/sanitize"
RESULTS=()

CS=$(command -v compute-sanitizer || true)
[[ -z $CS && -x /usr/local/cuda/bin/compute-sanitizer ]] && CS=/usr/local/cuda/bin/compute-sanitizer
if [[ -z $CS ]]; then
  echo "compute-sanitizer not found (it ships with the CUDA toolkit)" >&2
  exit 1
fi
if ! nvidia-smi >/dev/null 2>&1; then
  echo "no NVIDIA GPU visible: compute-sanitizer needs one" >&2
  exit 1
fi

if [[ ! -x $BUILD/tests/cpp/gemmconv_tests ]]; then
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
  [[ $ARCH =~ ^[0-9]+$ ]] || ARCH=90
  GTEST=()
  for d in "${GEMMCONV_GTEST_SOURCE_DIR:-}" /usr/src/googletest "$ROOT/shared/googletest"; do
    [[ -n $d && -f $d/CMakeLists.txt ]] && GTEST=(-DGEMMCONV_GTEST_SOURCE_DIR="$d") && break
  done
  echo "building $BUILD (CUDA sm_$ARCH, with line info for the sanitizer's reports)"
  if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGEMMCONV_GPU=cuda \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_CUDA_FLAGS=-lineinfo \
    "${GTEST[@]}" >"$LOGS/configure.log" 2>&1; then
    echo "configure failed: see $LOGS/configure.log" >&2
    exit 1
  fi
  if ! cmake --build "$BUILD" -j"$(nproc)" --target gemmconv_tests >"$LOGS/build.log" 2>&1; then
    echo "build failed: see $LOGS/build.log" >&2
    tail -20 "$LOGS/build.log" >&2
    exit 1
  fi
fi

# run NAME TOOL_ARGS... -- COMMAND...: one sanitizer run with a time limit; records its outcome.
run() {
  local name=$1
  shift
  local args=()
  while [[ $1 != -- ]]; do
    args+=("$1")
    shift
  done
  shift
  local log="$LOGS/$name.log" rc=0 t0
  t0=$(date +%s)
  timeout --signal=INT --kill-after=15 "$SECONDS_PER_TOOL" \
    "$CS" "${args[@]}" --error-exitcode 86 --log-file "$log.sanitizer" "$@" >"$log" 2>&1 || rc=$?
  local verdict=clean
  case $rc in
    0) verdict=clean ;;
    86) verdict="ERRORS (see $log.sanitizer)" ;;
    124 | 130 | 137) verdict="timeout after ${SECONDS_PER_TOOL} s (partial: no error seen so far = $(
      grep -c 'ERROR SUMMARY: 0 errors' "$log.sanitizer" 2>/dev/null || echo 0) clean summaries)" ;;
    *) verdict="test failure, exit $rc (see $log)" ;;
  esac
  local summary
  summary=$(grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$log.sanitizer" 2>/dev/null | tail -1)
  RESULTS+=("$(printf '%-22s %-5ss %s %s' "$name" "$(($(date +%s) - t0))" "$verdict" "$summary")")
  echo "${RESULTS[-1]}"
}

TESTS="$BUILD/tests/cpp/gemmconv_tests"
CATALOG=(env GTEST_TOTAL_SHARDS="$SHARDS" GTEST_SHARD_INDEX="$SHARD" "$TESTS" --gtest_brief=1
  "--gtest_filter=*Catalog.Gpu/*")
KERNELS=("$TESTS" --gtest_brief=1 "--gtest_filter=Depthwise.Gpu*:ImplicitGemmGpu*")

echo "compute-sanitizer: $("$CS" --version | tail -1); ${SECONDS_PER_TOOL} s per run;" \
  "catalog shard $SHARD of $SHARDS; logs in $LOGS"
# No --leak-check: the engine's cuBLAS handles live as long as the process (one per device,
# created on first use), and the leak report would list them as three "errors" on every run.
run memcheck_catalog --tool memcheck -- "${CATALOG[@]}"
run racecheck_catalog --tool racecheck --racecheck-report analysis -- "${CATALOG[@]}"
run initcheck_catalog --tool initcheck -- "${CATALOG[@]}"
run memcheck_kernels --tool memcheck -- "${KERNELS[@]}"
run racecheck_kernels --tool racecheck -- "${KERNELS[@]}"
run initcheck_kernels --tool initcheck -- "${KERNELS[@]}"

# A few binding cases through PyTorch (its caching allocator hands the workspace in).
PY=${PYTHON:-python3}
if PYTHONPATH=python "$PY" -c "import torch, gemmconv; gemmconv.enable(); assert gemmconv.config()['gpu_kernels_registered']" \
  >/dev/null 2>&1; then
  run memcheck_python --tool memcheck --target-processes all -- \
    env PYTHONPATH=python "$PY" -m pytest -q -x tests/python/test_smoke_binding.py -k cuda
else
  RESULTS+=("memcheck_python       not run: gemmconv._C with GPU support is not built (scripts/build_ext.sh)")
fi

echo
echo "================ compute-sanitizer summary ================"
printf '%s\n' "${RESULTS[@]}" | tee "$LOGS/summary.txt"
if printf '%s\n' "${RESULTS[@]}" | grep -q "ERRORS\|test failure"; then
  exit 1
fi
