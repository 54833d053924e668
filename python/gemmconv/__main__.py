"""`gemmconv <command>` (or `python -m gemmconv <command>`): dispatches to a command's main(argv) -> exit code."""

import importlib
import importlib.util
import sys
from typing import Dict, List, Optional

from ._cli import version_line

# One line per command: name -> "module:function".
COMMANDS = {
    "doctor": "gemmconv.diagnosis.doctor:main",
    "install": "gemmconv.activation.installer:main",
    "capture": "gemmconv.diagnosis.capture:main",
    "replay": "gemmconv.replay:main",
}  # type: Dict[str, str]

# Commands whose module may be absent from a build; listed only when it imports.
OPTIONAL_COMMANDS = {
    "bench": "gemmconv.bench:main",
}  # type: Dict[str, str]

# What each command does, for the top-level help; a command without a line here shows its module.
DESCRIPTIONS = {
    "doctor": "check this machine (GPUs, driver, ROCm, torch, compilers, gemmconv) and say what to fix",
    "install": "turn activation on for the programs of one scope (venv, user, system) that import torch",
    "bench": "time gemmconv against the vendor library and PyTorch's fallback, per layer and per step",
    "capture": "copy this machine's facts into a folder that `doctor --sysroot` reads back elsewhere",
    "replay": "rerun a logged or failing convolution's replay line through gemmconv-driver, with --verify",
}  # type: Dict[str, str]


def _available(target: str) -> bool:
    try:
        return importlib.util.find_spec(target.split(":")[0]) is not None
    except Exception:
        return False


def commands() -> Dict[str, str]:
    found = dict(COMMANDS)
    found.update({name: target for name, target in OPTIONAL_COMMANDS.items() if _available(target)})
    return found


def _prog() -> str:
    return "python -m gemmconv" if sys.argv and sys.argv[0].endswith("__main__.py") else "gemmconv"


def usage(cmds: Dict[str, str]) -> str:
    prog = _prog()
    width = max(len(n) for n in cmds)
    lines = ["usage: {} [--version] [--help] <command> [options]".format(prog), "",
             "gemmconv runs every PyTorch convolution through GEMM, for GPUs whose vendor convolution library "
             "is broken.", "", "commands:"]
    for name in sorted(cmds):
        lines.append("  {}  {}".format(name.ljust(width), DESCRIPTIONS.get(name, cmds[name].split(":")[0])))
    lines += ["", "options:", "  -h, --help  show this message and exit",
              "  --version   print gemmconv's version and exit", "",
              "`{} <command> --help` lists a command's options with their defaults; every command also takes "
              "--version.".format(prog), ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmds = commands()
    if not argv:
        sys.stderr.write(usage(cmds))
        return 2
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(usage(cmds))
        return 0
    if argv[0] in ("-V", "--version"):
        sys.stdout.write(version_line() + "\n")
        return 0
    name = argv[0]
    if name not in cmds:
        sys.stderr.write("{}: unknown command {!r}\n".format(_prog(), name) + usage(cmds))
        return 2
    module, func = cmds[name].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
