"""`python -m gemmconv <command>`: dispatches to a command's main(argv) -> exit code."""

import importlib
import importlib.util
import sys
from typing import Dict, List, Optional

# One line per command: name -> "module:function".
COMMANDS = {
    "doctor": "gemmconv.diagnosis.doctor:main",
    "install": "gemmconv.activation.installer:main",
    "capture": "gemmconv.diagnosis.capture:main",
}  # type: Dict[str, str]


def _optional_commands() -> Dict[str, str]:
    found = {}
    try:
        if importlib.util.find_spec("gemmconv.bench") is not None:
            found["bench"] = "gemmconv.bench:main"
    except Exception:
        pass
    return found


def _usage(commands: Dict[str, str]) -> str:
    return "usage: python -m gemmconv {{{}}} [options]   (python -m gemmconv <command> --help)\n".format(
        ",".join(sorted(commands)))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = dict(COMMANDS)
    commands.update(_optional_commands())
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage(commands))
        return 0 if argv else 2
    name = argv[0]
    if name not in commands:
        sys.stderr.write("gemmconv: unknown command {!r}\n".format(name) + _usage(commands))
        return 2
    module, func = commands[name].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
