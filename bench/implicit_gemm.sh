#!/bin/sh
# Builds, tests and times the implicit_gemm solver against im2col_gemm on ResNet-50 layers (GPU).
# Usage: bench/implicit_gemm.sh [build|test|time|all]   (default all)
# The build runs on a snapshot of the tree holding only the solvers and tests it needs, so that
# work in progress elsewhere in the tree cannot break it.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${IG_SRC:-/tmp/ig-src}
BUILD=${IG_BUILD:-$ROOT/build-ig}
WHAT=${1:-all}
[ $# -gt 0 ] && shift

snapshot() {
  rm -rf "$SRC" && mkdir -p "$SRC"
  (cd "$ROOT" && tar cf - --exclude='./build*' --exclude=./.git .) | (cd "$SRC" && tar xf -)
  for d in "$SRC"/src/solvers/*/; do
    case $(basename "$d") in
      common | gemm_1x1 | im2col_gemm | reference | implicit_gemm) ;;
      *)
        rm -rf "$d"
        sed -i "/$(basename "$d")_solver()/d" "$SRC"/src/core/registry.cpp "$SRC"/src/solvers/solvers.h
        ;;
    esac
  done
  for f in "$SRC"/tests/cpp/test_*.cpp; do
    case $(basename "$f" .cpp) in
      test_catalog | test_engine | test_gemm | test_implicit_gemm | test_ops | test_problem | \
        test_solver_contracts | test_workspace_budget) ;;
      *) rm -f "$f" ;;
    esac
  done
}

build() {
  snapshot
  cmake -S "$SRC" -B "$BUILD" -DGEMMCONV_GPU=cuda -DCMAKE_CUDA_ARCHITECTURES=90 "$@" >/dev/null &&
    cmake --build "$BUILD" -j"$(nproc)" --target gemmconv_tests gemmconv-driver 2>&1 |
    grep -v '^\[' | grep -v '^$'
}

run_tests() {
  "$BUILD"/tests/cpp/gemmconv_tests --gtest_filter='*Implicit*' --gtest_brief=1
}

# name, then driver flags; N=32, fp32
LAYERS='3x3_c64_56|-c 64 -k 64 --input 56x56 --filter 3x3 --pad 1
3x3_c128_28|-c 128 -k 128 --input 28x28 --filter 3x3 --pad 1
3x3_c256_14|-c 256 -k 256 --input 14x14 --filter 3x3 --pad 1
3x3_c512_7|-c 512 -k 512 --input 7x7 --filter 3x3 --pad 1
1x1_c256_k64_56|-c 256 -k 64 --input 56x56 --filter 1x1
7x7s2_c3_224|-c 3 -k 64 --input 224x224 --filter 7x7 --stride 2 --pad 3'

time_layers() {
  dirs=${IG_DIRECTIONS:-forward backward_data}
  printf '%-18s %-14s %-14s %-14s %10s %10s\n' layer layout direction solver ms TFLOP/s
  echo "$LAYERS" | while IFS='|' read -r name flags; do
    for layout in contiguous channels_last; do
      for dir in $dirs; do
        for solver in implicit_gemm im2col_gemm gemm_1x1; do
          # shellcheck disable=SC2086
          line=$("$BUILD"/gemmconv-driver -n 32 $flags --layout $layout --direction $dir \
            --solver $solver --time --reps 20 --warmup 5 2>&1 | grep 'time: median')
          [ -z "$line" ] && continue
          ms=$(echo "$line" | sed 's/.*median \([0-9.]*\) ms.*/\1/')
          tf=$(echo "$line" | sed -n 's/.*, \([0-9.]*\) TFLOP\/s.*/\1/p')
          printf '%-18s %-14s %-14s %-14s %10s %10s\n' "$name" $layout $dir $solver "$ms" "$tf"
        done
      done
    done
  done
}

case $WHAT in
  build) build "$@" ;;
  test) run_tests ;;
  time) time_layers ;;
  all) build "$@" && run_tests; time_layers ;;
esac
