#!/usr/bin/env bash
# The test command (README, CI): installs missing Debian packages (scripts/deps.sh; skip with
# GEMMCONV_SKIP_DEPS=1), then format check, Release build (+CUDA and HIP compile checks), ctest,
# ASan/UBSan build and ctest, the Python tests, and the HIP build with the current ROCm toolchain
# (Debian unstable's hipcc 7 in a debootstrap'd root under build-rocm/, created once and reused;
# scripts/rocm_toolchain.sh) with the ISA audit of its gfx1030 code objects; each stage timed,
# stopping at the first failure.
# GEMMCONV_TEST_STAGES="format build ctest asan python hip" picks stages (default: all, in that
# order); GEMMCONV_BUILD_DIR and GEMMCONV_ASAN_BUILD_DIR move the build directories (build,
# build-asan); GEMMCONV_ROCM_ROOT moves the unstable root (build-rocm/root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ "${GEMMCONV_SKIP_DEPS:-0}" != "1" ]]; then
  scripts/deps.sh
fi

JOBS=${JOBS:-2}
BUILD=${GEMMCONV_BUILD_DIR:-build}
ASAN_BUILD=${GEMMCONV_ASAN_BUILD_DIR:-build-asan}
STAGES=${GEMMCONV_TEST_STAGES:-format build ctest asan python hip}
SUMMARY=()
T_ALL=$(date +%s)

finish() {
  local rc=$?
  echo
  echo "================ summary ================"
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  echo "  total $(($(date +%s) - T_ALL)) s"
  if [[ $rc -ne 0 ]]; then echo "FAILED (exit $rc)"; else echo "all stages passed"; fi
}
trap finish EXIT

# stage NAME COMMAND...: runs a stage with a heading and records its time and outcome.
stage() {
  local name=$1
  shift
  echo
  echo "================ $name ================"
  local t0 rc=0
  t0=$(date +%s)
  "$@" || rc=$?
  local dt=$(($(date +%s) - t0))
  if [[ $rc -ne 0 ]]; then
    SUMMARY+=("$(printf '%-8s FAIL %5d s' "$name" "$dt")")
    echo "stage '$name' failed after ${dt} s (exit $rc)" >&2
    exit 1
  fi
  SUMMARY+=("$(printf '%-8s ok   %5d s' "$name" "$dt")")
}

wants() { [[ " $STAGES " == *" $1 "* ]]; }

cxx_sources() {
  local dirs=() d
  for d in include src tests tools csrc bench examples; do [[ -d $d ]] && dirs+=("$d"); done
  find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cc' \
    -o -name '*.cu' -o -name '*.cuh' \) | sort
}

format_check() {
  command -v clang-format >/dev/null || { echo "clang-format not found (run scripts/deps.sh)"; return 1; }
  local files
  mapfile -t files < <(cxx_sources)
  echo "clang-format $(clang-format --version | grep -o '[0-9][0-9.]*' | head -1): ${#files[@]} files"
  local f bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [[ ${#bad[@]} -ne 0 ]]; then
    echo "not clang-formatted (fix with: clang-format -i FILE, or make format):"
    printf '  %s\n' "${bad[@]}"
    clang-format --dry-run --Werror "${bad[0]}" 2>&1 | head -20
    return 1
  fi
}

NVCC=$(command -v nvcc || true)
[[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc

build_release() {
  local gpu=(-DGEMMCONV_GPU=off)
  if [[ -n $NVCC ]]; then
    echo "CUDA: $NVCC (sm_90, compile and link only when no GPU is present)"
    gpu=(-DGEMMCONV_GPU=cuda -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90)
  else
    echo "CUDA: nvcc not found, CPU build"
  fi
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGEMMCONV_WERROR=ON -DGEMMCONV_HIP_CHECK=ON \
    "${gpu[@]}"
  cmake --build "$BUILD" -j"$JOBS"
}

run_ctest() {
  ctest --test-dir "$1" -j"$JOBS" --output-on-failure --timeout 1200
}

build_asan() {
  cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMCONV_SANITIZE=ON \
    -DGEMMCONV_GPU=off -DGEMMCONV_WERROR=ON
  cmake --build "$ASAN_BUILD" -j"$JOBS"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest "$ASAN_BUILD"
}

python_tests() {
  if ! ls tests/python/test_*.py >/dev/null 2>&1; then
    echo "tests/python has no tests: nothing to run" >&2
    return 1
  fi
  if [[ ! -x scripts/build_ext.sh ]]; then
    echo "scripts/build_ext.sh is missing or not executable: cannot build the extension" >&2
    return 1
  fi
  scripts/build_ext.sh
  # The replay test runs the driver of the build stage.
  if [[ -x "$ROOT/$BUILD/gemmconv-driver" ]]; then export GEMMCONV_DRIVER="$ROOT/$BUILD/gemmconv-driver"; fi
  PYTHONPATH="$ROOT/python" /usr/bin/python3 -m pytest tests/python -q
}

# The HIP target with Debian unstable's ROCm (hipcc 7, clang 21, rocBLAS): library, rocBLAS
# provider, driver and C++ tests for gfx1010 and gfx1030 with -Werror, then the ISA audit tests.
# Compile and link only: nothing runs without the card.
hip_build() {
  scripts/rocm_toolchain.sh setup
  scripts/rocm_toolchain.sh run env HIP_BUILD_DIR=/build-hip JOBS="$JOBS" scripts/hip_build.sh
}

wants format && stage format format_check
wants build && stage build build_release
wants ctest && stage ctest run_ctest "$BUILD"
wants asan && stage asan build_asan
wants python && stage python python_tests
wants hip && stage hip hip_build
exit 0
