"""What every gemmconv command line shares: `--version`, help that shows each flag's default, name checks.

Imports nothing heavy: the commands' --help and --version answer without torch or the compiled extension.
"""

import argparse
from typing import Iterable, List, Optional

from ._version import __version__


def version_line(prog: str = "gemmconv") -> str:
    return "{} {}".format(prog, __version__)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends "(default: X)" to every flag whose help does not
    already say its default; flags that default to nothing or to off show none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        if isinstance(action.default, (list, tuple)):
            shown = ",".join(str(v) for v in action.default)
        else:
            shown = "%(default)s"
        return "{}{}(default: {})".format(text, " " if text else "", shown)


def add_version(parser: argparse.ArgumentParser) -> None:
    """`--version` on a (sub)command: prints "gemmconv X.Y.Z" and exits 0."""
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print gemmconv's version and exit")


def check_names(parser: argparse.ArgumentParser, flag: str, value: Optional[str], known: Iterable[str]) -> List[str]:
    """Splits a comma-separated `value` of `flag` and rejects (exit 2, through parser.error) any name
    not in `known`, naming the offending ones and the accepted ones."""
    if value is None:
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    allowed = list(known)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        parser.error("{}: unknown name(s) {} (choose from {})".format(
            flag, ", ".join(repr(n) for n in unknown), ", ".join(allowed)))
    if not names:
        parser.error("{}: no name given (choose from {})".format(flag, ", ".join(allowed)))
    return names
