#!/usr/bin/env bash
# The HIP build: library, rocBLAS provider, driver and C++ tests for gfx1010 and gfx1030, warnings
# as errors, then the ISA audit tests (every gfx1030 code object of the library passes; a plain
# gfx1030 dot-instruction fixture fails). Runs where a ROCm toolchain is installed: inside the
# unstable root of scripts/rocm_toolchain.sh (the `hip` stage of scripts/test.sh), or on a ROCm
# machine. Nothing here runs on a GPU.
#   HIP_BUILD_DIR (default build-hip), HIP_COMPILER (default: clang++-21, else ROCm's clang++),
#   JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${HIP_BUILD_DIR:-build-hip}
JOBS=${JOBS:-2}
if [[ -z ${HIP_COMPILER:-} ]]; then
  HIP_COMPILER=$(command -v clang++-21 || command -v /opt/rocm/llvm/bin/clang++ || command -v clang++)
fi
echo "hip_build: $("$HIP_COMPILER" --version | head -1)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGEMMCONV_WERROR=ON -DGEMMCONV_GPU=hip \
  -DCMAKE_HIP_COMPILER="$HIP_COMPILER" -DCMAKE_HIP_ARCHITECTURES="gfx1010;gfx1030" \
  -DGEMMCONV_GFX1030_SAFE=ON
cmake --build "$BUILD" -j"$JOBS"
ctest --test-dir "$BUILD" -R '^isa_audit\.' --output-on-failure -V
