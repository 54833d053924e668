"""`gemmconv-driver` from a pip install: runs the gemmconv-driver executable shipped in the package
(gemmconv/bin/gemmconv-driver, built by setup.py) with the same arguments and exit status.

Imports nothing heavy. `driver_path()` is also what `gemmconv replay` runs.
"""

import os
import sys
from typing import List, Optional

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(PACKAGE_DIR, "bin", "gemmconv-driver")
# A source checkout run with PYTHONPATH=python: the CMake build's driver.
CHECKOUT = os.path.join(os.path.dirname(os.path.dirname(PACKAGE_DIR)), "build", "gemmconv-driver")

HOW_TO_GET_IT = (
    "gemmconv-driver is not part of this installation: setup.py printed a warning saying why it could not be "
    "built (a C++17 compiler is needed; OpenBLAS's headers and library, e.g. Debian's libopenblas-dev, give it "
    "the CPU GEMM solvers), or GEMMCONV_NO_DRIVER was set. Reinstall (pip install --no-build-isolation .) once "
    "that is fixed, or build it from a checkout with CMake (cmake -S . -B build && cmake --build build "
    "--target gemmconv-driver) and point GEMMCONV_DRIVER at build/gemmconv-driver.")


def driver_path() -> Optional[str]:
    """The driver to run: $GEMMCONV_DRIVER, else the one shipped in the package, else a source checkout's
    build/gemmconv-driver; None when there is none."""
    env = os.environ.get("GEMMCONV_DRIVER")
    if env:
        return env
    for path in (SHIPPED, CHECKOUT):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = driver_path()
    if path is None:
        sys.stderr.write("gemmconv-driver: " + HOW_TO_GET_IT + "\n")
        return 127
    if not os.access(path, os.X_OK):
        sys.stderr.write("gemmconv-driver: GEMMCONV_DRIVER={} is not an executable file\n".format(path))
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(path, [path] + args)  # the driver's exit status is the command's
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
