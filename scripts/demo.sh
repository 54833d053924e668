#!/usr/bin/env bash
# `make demo`: make sure the dependencies are there, build the extension, then train the digits CNN through
# gemmconv (GPU if there is one, CPU routing otherwise). Extra arguments go to examples/digits_demo.py
# (e.g. scripts/demo.sh --epochs 3). GEMMCONV_SKIP_DEPS=1 skips the dependency step.
set -euo pipefail
cd "$(dirname "$0")/.."

# The interpreter that has torch: $PYTHON if given, else python3 on the PATH, else Debian's /usr/bin/python3.
pick_python() {
  local cand
  for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    # Checked from / : nothing in the checkout may pass for the torch package.
    if command -v "$cand" >/dev/null 2>&1 &&
      (cd / && "$cand" -c "import torch; torch.__version__") >/dev/null 2>&1; then
      echo "$cand"
      return 0
    fi
  done
  return 1
}

if [[ "${GEMMCONV_SKIP_DEPS:-0}" != "1" && -x scripts/deps.sh ]]; then
  echo "== demo: checking dependencies (scripts/deps.sh)"
  if ! scripts/deps.sh; then
    echo "warning: scripts/deps.sh failed; going on with what is installed" >&2
  fi
fi

if ! PY="$(pick_python)"; then
  echo "error: no Python interpreter with torch found (tried \$PYTHON, python3, /usr/bin/python3)" >&2
  exit 1
fi
export PYTHON="$PY"
echo "== demo: using $PY ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"

if [[ -x scripts/build_ext.sh ]]; then
  echo "== demo: building the extension (scripts/build_ext.sh)"
  scripts/build_ext.sh
elif [[ -f scripts/build_ext.sh ]]; then
  bash scripts/build_ext.sh
else
  echo "error: scripts/build_ext.sh is missing" >&2
  exit 1
fi

echo "== demo: training"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" examples/digits_demo.py "$@"
