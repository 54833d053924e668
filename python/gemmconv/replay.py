"""`gemmconv replay LINE...`: rerun one convolution from its replay line through gemmconv-driver, with --verify.

The line is what the engine prints (every engine error ends with `(replay: gemmconv-driver ...)`, and
GEMMCONV_LOG_LEVEL=info logs one per planned convolution): `gemmconv-driver --device ... --solver ...`, the
same without the leading `gemmconv-driver`, or a whole error message that contains `(replay: ...)`. It may be
given as one quoted argument or as separate words. The exit status is the driver's (0 pass, 1 a verification
failed or a run returned an error, 2 the line cannot be run), 127 when there is no driver.
"""

import re
import subprocess
import sys
from typing import List, Optional

from ._cli import version_line
from ._driver import HOW_TO_GET_IT, driver_path

REPLAY = re.compile(r"\(replay: ([^)]*)\)")

USAGE = """usage: gemmconv replay [--dry-run] LINE...

Reruns one convolution through gemmconv-driver, adding --verify (the float64 check). LINE is a replay
line as the engine prints it:
  gemmconv-driver --device cpu --dims 2 -n 2 -c 4 ... --solver im2col_gemm
the same without the leading gemmconv-driver, or a whole error message containing "(replay: ...)"; quoted
as one argument or not. Add driver flags to the line as you like (--time, --seed S, --solver NAME).

options:
  -h, --help  show this message and exit
  --version   print gemmconv's version and exit
  --dry-run   print the driver command instead of running it

The driver is $GEMMCONV_DRIVER, else the one installed with gemmconv (the gemmconv-driver command), else a
source checkout's build/gemmconv-driver. Exit status: the driver's (0 pass, 1 fail, 2 the line cannot be
run); 2 for a usage error here; 127 when no driver is installed.
"""


def driver_words(text: str) -> List[str]:
    """The driver's arguments from a replay line or an error message holding one (ValueError when empty)."""
    found = REPLAY.findall(text)
    if found:
        text = found[-1]
    words = text.split()
    if words and (words[0] == "gemmconv-driver" or words[0].endswith("/gemmconv-driver")):
        words = words[1:]
    if not words:
        raise ValueError("no replay line given (expected gemmconv-driver flags such as --device cpu -n 2 ...)")
    if "--verify" not in words:
        words.append("--verify")
    return words


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    dry_run = False
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if args and args[0] == "--version":
        sys.stdout.write(version_line() + "\n")
        return 0
    if args and args[0] == "--dry-run":
        dry_run = True
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    try:
        words = driver_words(" ".join(args))
    except ValueError as exc:
        sys.stderr.write("gemmconv replay: {}\n{}".format(exc, USAGE))
        return 2
    path = driver_path()
    if dry_run:
        sys.stdout.write(" ".join([path or "gemmconv-driver"] + words) + "\n")
        return 0
    if path is None:
        sys.stderr.write("gemmconv replay: " + HOW_TO_GET_IT + "\n")
        return 127
    sys.stdout.flush()
    try:
        return subprocess.run([path] + words).returncode
    except OSError as exc:
        sys.stderr.write("gemmconv replay: cannot run {}: {}\n".format(path, exc))
        return 127


if __name__ == "__main__":
    sys.exit(main())
