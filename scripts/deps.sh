#!/usr/bin/env bash
# Installs the Debian packages that building and testing gemmconv need; does nothing when all are there.
set -euo pipefail

PACKAGES=(
  make cmake g++ clang-format libopenblas-dev libgtest-dev hipcc debootstrap
  python3-dev python3-pip python3-setuptools python3-numpy python3-torch python3-torchvision
  python3-pytest python3-hypothesis python3-sklearn python3-matplotlib python3-tqdm
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
    exit 1
  fi
  SUDO=(sudo)
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  "${missing[@]}"
echo "deps: done"
