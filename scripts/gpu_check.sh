#!/usr/bin/env bash
# On the GPU machine: build the CUDA engine for the local GPU, run the C++ tests (catalog table to
# $OUT/catalog_table.txt), and verify and time the ResNet-50 3x3 layer with gemmconv-driver.
# Needs cmake, nvcc and a C++17 compiler; GoogleTest from an install, $GEMMCONV_GTEST_SOURCE_DIR,
# /usr/src/googletest or shared/googletest; OpenBLAS optional (without it the CPU GEMM solvers
# are off). Logs go to ${OUT:-/tmp/out}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/out}
BUILD=${GEMMCONV_GPU_BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
FAILED=()

section() {
  echo
  echo "================ $* ================"
}

section "environment"
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv || true
NVCC=$(command -v nvcc || true)
[[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
if [[ -z $NVCC ]]; then
  echo "nvcc not found" >&2
  exit 1
fi
"$NVCC" --version | tail -2
cmake --version | head -1
echo "cores: $(nproc), OUT=$OUT, build dir: $BUILD"

# The GPU architecture: what the first GPU reports (9.0 -> 90), else sm_90.
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
[[ $ARCH =~ ^[0-9]+$ ]] || ARCH=90
echo "CUDA architecture: $ARCH"

GTEST_ARGS=()
for d in "${GEMMCONV_GTEST_SOURCE_DIR:-}" /usr/src/googletest "$ROOT/shared/googletest" \
  "$ROOT/build-t-gtest/googletest"; do
  if [[ -n $d && -f $d/CMakeLists.txt ]]; then
    GTEST_ARGS=(-DGEMMCONV_GTEST_SOURCE_DIR="$d")
    echo "GoogleTest sources (used when no installed GoogleTest is found): $d"
    break
  fi
done

if ls /usr/include/cblas.h /usr/include/*/cblas.h /usr/include/openblas/cblas.h >/dev/null 2>&1; then
  echo "cblas.h found: the CPU GEMM solvers will be built if the library links"
else
  echo "no cblas.h: building with GEMMCONV_NO_OPENBLAS (CPU GEMM solvers off, reference only)"
fi

section "configure and build (CUDA, sm_$ARCH, Release)"
t0=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGEMMCONV_GPU=cuda \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${GTEST_ARGS[@]}" \
  2>&1 | tee "$OUT/configure.log"
if ! cmake --build "$BUILD" -j"$JOBS" >"$OUT/build.log" 2>&1; then
  echo "build failed: see $OUT/build.log" >&2
  grep -E "error" "$OUT/build.log" | head -20 >&2 || true
  tail -20 "$OUT/build.log" >&2
  exit 1
fi
grep -iE "warning" "$OUT/build.log" | head -20 || true
echo "build: $(($(date +%s) - t0)) s"

section "C++ tests (catalog table: $OUT/catalog_table.txt)"
rm -f "$OUT/catalog_table.txt"
t0=$(date +%s)
rc=0
GEMMCONV_TEST_REPORT="$OUT/catalog_table.txt" "$BUILD/tests/cpp/gemmconv_tests" --gtest_brief=1 \
  >"$OUT/gemmconv_tests.log" 2>&1 || rc=$?
tail -25 "$OUT/gemmconv_tests.log"
echo "gemmconv_tests: exit $rc, $(($(date +%s) - t0)) s (full log: $OUT/gemmconv_tests.log)"
[[ $rc -eq 0 ]] || FAILED+=("gemmconv_tests")
if [[ -f $OUT/catalog_table.txt ]]; then
  echo "catalog table: $(($(wc -l <"$OUT/catalog_table.txt") - 1)) rows;" \
    "gpu rows: $(grep -c ' gpu ' "$OUT/catalog_table.txt" || true);" \
    "not passing: $(awk 'NR > 1 && $NF != "pass"' "$OUT/catalog_table.txt" | wc -l)"
  echo "largest relative errors on the GPU:"
  awk 'NR > 1 && $6 == "gpu"' "$OUT/catalog_table.txt" | sort -g -k8 | tail -5
fi

section "driver tests (ctest -R driver)"
(cd "$BUILD" && ctest -R driver --output-on-failure) >"$OUT/ctest_driver.log" 2>&1 || FAILED+=("ctest driver")
tail -5 "$OUT/ctest_driver.log"

section "driver: ResNet-50 3x3 layer (N=32, C=K=64, 56x56, pad 1, fp32), verify and time"
LAYER=(-n 32 -c 64 -k 64 --input 56x56 --filter 3x3 --pad 1 --dtype f32 --device gpu)
for dir in forward backward_data backward_weight backward_bias; do
  log="$OUT/driver_resnet50_3x3_${dir}.log"
  rc=0
  "$BUILD/gemmconv-driver" "${LAYER[@]}" --direction "$dir" --verify --time --warmup 5 --reps 50 \
    >"$log" 2>&1 || rc=$?
  cat "$log"
  [[ $rc -eq 0 ]] || FAILED+=("driver $dir (exit $rc)")
done
# The same layer in fp16 and with TF32, for the record (timing only, plus verification).
for extra in "--dtype f16" "--allow-tf32"; do
  name=$(echo "$extra" | tr -d '-' | tr ' ' '_')
  log="$OUT/driver_resnet50_3x3_all_${name}.log"
  rc=0
  # shellcheck disable=SC2086
  "$BUILD/gemmconv-driver" "${LAYER[@]}" $extra --direction all --verify --time --reps 20 \
    >"$log" 2>&1 || rc=$?
  cat "$log"
  [[ $rc -eq 0 ]] || FAILED+=("driver all $extra (exit $rc)")
done

section "summary"
echo "logs in $OUT:"
ls -1 "$OUT"
if [[ ${#FAILED[@]} -ne 0 ]]; then
  printf 'FAILED: %s\n' "${FAILED[@]}"
  exit 1
fi
echo "gpu_check: all passed"
