#!/usr/bin/env bash
# A current ROCm toolchain for the HIP build: Debian unstable's hipcc 7 (clang 21), HIP and rocBLAS
# headers and libraries, and llvm-21 (llvm-objdump for the ISA audit), in a debootstrap'd unstable
# root inside the build directory. The host's own apt sources are never touched.
#
#   scripts/rocm_toolchain.sh setup            create the root once (reused while its package list
#                                              is unchanged); prints the toolchain versions
#   scripts/rocm_toolchain.sh run CMD ARGS...  run CMD inside the root, with the checkout copied to
#                                              /gemmconv (incremental: only changed files are copied)
#
# GEMMCONV_ROCM_ROOT moves the root (default: build-rocm/root); GEMMCONV_DEBIAN_MIRROR picks the
# mirror. Needs root (debootstrap, chroot) and the debootstrap package (scripts/deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
ROOT=${GEMMCONV_ROCM_ROOT:-$SRC/build-rocm/root}
MIRROR=${GEMMCONV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBOOTSTRAP=${DEBOOTSTRAP:-debootstrap}
PACKAGES=(hipcc libamdhip64-dev librocblas-dev llvm-21 cmake make g++ libgtest-dev python3-minimal)
STAMP=$ROOT/.gemmconv-toolchain

die() {
  echo "rocm_toolchain: $*" >&2
  exit 1
}

versions() {
  chroot "$ROOT" dpkg-query -W -f='  ${Package} ${Version}\n' hipcc libamdhip64-dev librocblas-dev \
    llvm-21 clang-21 cmake 2>/dev/null || true
  chroot "$ROOT" sh -c 'clang++-21 --version 2>/dev/null | head -1' | sed 's/^/  /' || true
}

setup() {
  if [[ -f $STAMP && "$(head -1 "$STAMP")" == "${PACKAGES[*]}" ]]; then
    echo "rocm_toolchain: reusing $ROOT"
    versions
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "debootstrap and chroot need root"
  command -v "$DEBOOTSTRAP" >/dev/null || die "debootstrap not found (scripts/deps.sh installs it)"
  if [[ ! -x $ROOT/usr/bin/apt-get ]]; then
    rm -rf "$ROOT"
    mkdir -p "$(dirname "$ROOT")"
    echo "rocm_toolchain: debootstrap unstable into $ROOT"
    local t0=$SECONDS
    "$DEBOOTSTRAP" --variant=minbase unstable "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
      {
        tail -20 "$ROOT.debootstrap.log" >&2
        die "debootstrap failed (log: $ROOT.debootstrap.log)"
      }
    echo "rocm_toolchain: debootstrap took $((SECONDS - t0)) s"
  fi
  # rocBLAS's GPU kernel files (about 2.9 GB) are loaded at run time only; linking needs none of
  # them, and nothing runs here. Documentation is not needed either.
  mkdir -p "$ROOT/etc/dpkg/dpkg.cfg.d"
  cat >"$ROOT/etc/dpkg/dpkg.cfg.d/gemmconv-excludes" <<'EOF'
path-exclude=/usr/lib/*/rocblas/*/library/*
path-exclude=/usr/lib/*/rocblas/library/*
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
EOF
  # A mirror or snapshot that lags behind the clock serves an unstable Release file past its
  # Valid-Until date; the signatures are still checked.
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/90gemmconv-valid-until"
  echo "rocm_toolchain: installing ${PACKAGES[*]}"
  local t1=$SECONDS
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends install \
    "${PACKAGES[@]}" >"$ROOT.install.log" 2>&1 || {
    tail -20 "$ROOT.install.log" >&2
    die "apt-get install in the unstable root failed (log: $ROOT.install.log)"
  }
  chroot "$ROOT" apt-get clean
  echo "rocm_toolchain: install took $((SECONDS - t1)) s, root is $(du -sh "$ROOT" | cut -f1)"
  echo "${PACKAGES[*]}" >"$STAMP"
  versions | tee -a "$STAMP"
}

# Copies the checkout (without build directories and git metadata) to $ROOT/gemmconv afresh, so
# that deleted files do not linger; files keep their modification times, so builds inside the root
# (in /build-*, outside the copy) stay incremental.
sync_tree() {
  rm -rf "$ROOT/gemmconv"
  mkdir -p "$ROOT/gemmconv"
  tar -C "$SRC" -c --exclude='./build*' --exclude='./.git' --exclude='*.so' --exclude='__pycache__' \
    --exclude='*.egg-info' . | tar -C "$ROOT/gemmconv" -x
}

run() {
  [[ -f $STAMP ]] || die "no toolchain at $ROOT: run scripts/rocm_toolchain.sh setup first"
  sync_tree
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc" 2>/dev/null || true
  local rc=0
  chroot "$ROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    ${JOBS:+JOBS=$JOBS} sh -c 'cd /gemmconv && exec "$@"' sh "$@" || rc=$?
  if mountpoint -q "$ROOT/proc"; then umount "$ROOT/proc" || true; fi
  return $rc
}

case "${1:-}" in
  setup) setup ;;
  run)
    shift
    run "$@"
    ;;
  *)
    echo "usage: $0 setup | run CMD [ARGS...]" >&2
    exit 2
    ;;
esac
