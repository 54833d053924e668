#!/bin/sh
# Builds, tests and times the winograd_gemm solver against im2col_gemm and implicit_gemm on the
# ResNet-50 3x3 stride-1 layers (GPU, N=32).
# Usage: bench/winograd.sh [build|test|verify|picks|time|all]   (default all)
#   WG_BUILD   build directory (default build-gpu)
#   WG_DTYPES  dtypes to time (default "f32 f16")
#   WG_DIRECTIONS  passes for picks and time (default "forward backward_data backward_weight")
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${WG_BUILD:-$ROOT/build-gpu}
WHAT=${1:-all}
[ $# -gt 0 ] && shift

build() {
  cmake -S "$ROOT" -B "$BUILD" -DGEMMCONV_GPU=cuda -DCMAKE_CUDA_ARCHITECTURES=90 "$@" >/dev/null &&
    cmake --build "$BUILD" -j"$(nproc)" --target gemmconv_tests gemmconv-driver 2>&1 |
    grep -v '^\[' | grep -v '^$'
}

# The solver's own tests and every catalog problem on the GPU (winograd_gemm runs by name on all
# it applies to, against float64, with its tolerance).
run_tests() {
  "$BUILD"/tests/cpp/gemmconv_tests --gtest_filter='Winograd*:*Catalog.Gpu/*' --gtest_brief=1
}

LAYERS='c64_56|-c 64 -k 64 --input 56x56
c128_28|-c 128 -k 128 --input 28x28
c256_14|-c 256 -k 256 --input 14x14
c512_7|-c 512 -k 512 --input 7x7'

# One verified run per layer, pass, layout and dtype (N=4, so that the float64 reference on the
# CPU stays quick): the planner's choice (printed) must pass against the float64 reference. Exit
# status 1 when any verification fails. Then the choices at N=32 (picks).
verify_layers() {
  log=$(mktemp)
  echo "$LAYERS" | while IFS='|' read -r name flags; do
    for layout in contiguous channels_last; do
      for dtype in f32 f16; do
        # shellcheck disable=SC2086
        "$BUILD"/gemmconv-driver --device gpu -n 4 $flags --filter 3x3 --pad 1 --layout $layout           --dtype $dtype --direction all --verify 2>&1 | grep -E 'solver=|verify' |
          sed "s/^/$name $layout $dtype: /"
      done
    done
  done | tee "$log"
  ! grep -q FAIL "$log"
  rc=$?
  rm -f "$log"
  picks
  return $rc
}

# The solver the planner picks (make_plan: the solvers' preferred() rules, winograd_gemm's cost
# estimate; the driver never runs the find step) per layer, layout, dtype and pass at N=32, the
# size that time_layers times.
picks() {
  printf '%-9s %-14s %-5s %-14s %s\n' layer layout dtype direction planner
  echo "$LAYERS" | while IFS='|' read -r name flags; do
    for dtype in ${WG_DTYPES:-f32 f16}; do
      for layout in contiguous channels_last; do
        for dir in ${WG_DIRECTIONS:-forward backward_data backward_weight}; do
          # shellcheck disable=SC2086
          pick=$("$BUILD"/gemmconv-driver --device gpu -n 32 $flags --filter 3x3 --pad 1 \
            --layout $layout --dtype $dtype --direction $dir --reps 1 --warmup 0 2>&1 |
            sed -n 's/.*solver=\([a-z0-9_]*\).*/\1/p' | head -n 1)
          printf '%-9s %-14s %-5s %-14s %s\n' "$name" "$layout" "$dtype" "$dir" "${pick:-?}"
        done
      done
    done
  done
}

time_layers() {
  printf '%-9s %-14s %-5s %-14s %-14s %10s %10s\n' layer layout dtype direction solver ms TFLOP/s
  echo "$LAYERS" | while IFS='|' read -r name flags; do
    for dtype in ${WG_DTYPES:-f32 f16}; do
      for layout in contiguous channels_last; do
        for dir in ${WG_DIRECTIONS:-forward backward_data backward_weight}; do
          for solver in winograd_gemm im2col_gemm implicit_gemm; do
            # shellcheck disable=SC2086
            line=$("$BUILD"/gemmconv-driver --device gpu -n 32 $flags --filter 3x3 --pad 1 \
              --layout $layout --dtype $dtype --direction $dir --solver $solver --time --reps 20 \
              --warmup 5 2>&1 | grep 'time: median')
            [ -z "$line" ] && continue
            ms=$(echo "$line" | sed 's/.*median \([0-9.]*\) ms.*/\1/')
            tf=$(echo "$line" | sed -n 's/.*, \([0-9.]*\) TFLOP\/s.*/\1/p')
            printf '%-9s %-14s %-5s %-14s %-14s %10s %10s\n' "$name" "$layout" "$dtype" "$dir" "$solver" \
              "$ms" "$tf"
          done
        done
      done
    done
  done
}

case $WHAT in
  build) build "$@" ;;
  test) run_tests ;;
  verify) verify_layers ;;
  picks) picks ;;
  time) time_layers ;;
  all) build "$@" && run_tests; verify_layers; time_layers ;;
esac
