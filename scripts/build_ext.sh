#!/usr/bin/env bash
# Builds gemmconv._C in place (python/gemmconv/_C*.so) against the installed torch; reruns are incremental.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Asked from / so that nothing in the checkout can pass for the torch package.
has_torch() { (cd / && "$1" -c "import torch.utils.cpp_extension") >/dev/null 2>&1; }

# PYTHON overrides everything. An active virtual environment (VIRTUAL_ENV) comes next: the extension is
# built for that environment's python and torch (setup.py stops with a clear message when that torch is
# missing). Otherwise: Debian's torch belongs to /usr/bin/python3, not to whatever python3 comes first on
# the PATH; a python3 on the PATH is used only when /usr/bin/python3 cannot import torch.
if [[ -z "${PYTHON:-}" && -n "${VIRTUAL_ENV:-}" && -x "${VIRTUAL_ENV}/bin/python" ]]; then
  PYTHON="${VIRTUAL_ENV}/bin/python"
  echo "build_ext.sh: building for the active virtual environment ${VIRTUAL_ENV} ($PYTHON)" >&2
fi
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=/usr/bin/python3
  if [[ ! -x "$PYTHON" ]] || { ! has_torch "$PYTHON" && command -v python3 >/dev/null &&
    has_torch "$(command -v python3)"; }; then
    PYTHON="$(command -v python3 || echo /usr/bin/python3)"
  fi
fi

# ninja keeps the objects under build/ and recompiles only what changed; MAX_JOBS caps its workers.
# The in-place build serves the source tree, whose driver is the CMake build's (build/gemmconv-driver); a
# pip install also builds gemmconv/bin/gemmconv-driver (GEMMCONV_NO_DRIVER=0 builds it here too).
export GEMMCONV_NO_DRIVER="${GEMMCONV_NO_DRIVER-1}"
"$PYTHON" setup.py build_ext --inplace "$@"
ls -1 python/gemmconv/_C*.so
