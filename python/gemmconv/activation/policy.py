"""The activation policy (auto, always, never): from GEMMCONV_ACTIVATE, else the config file the installer wrote."""

import os
import sys
from dataclasses import dataclass
from typing import List, Mapping, Optional

POLICIES = ("auto", "always", "never")
ENV_VAR = "GEMMCONV_ACTIVATE"
DEFAULT_POLICY = "never"  # opt-in: nothing happens until the user installs activation or sets the variable
SYSTEM_CONFIG = "/etc/gemmconv/activate"


@dataclass
class PolicyChoice:
    policy: str
    source: str
    error: Optional[str] = None


def user_config_dir(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "gemmconv")


def venv_config(prefix: str) -> str:
    return os.path.join(prefix, "etc", "gemmconv", "activate")


def config_files(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Config files in the order they are consulted; the first that exists decides. A virtual environment's own
    file (written by `install --scope venv`) comes first: it is the most specific."""
    files = []
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        files.append(venv_config(sys.prefix))
    files.append(os.path.join(user_config_dir(env), "activate"))
    files.append(SYSTEM_CONFIG)
    return files


def parse_policy(text: str) -> Optional[str]:
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().lower()
        if word:
            return word
    return None


def resolve_policy(env: Optional[Mapping[str, str]] = None) -> PolicyChoice:
    """Never raises. An invalid value counts as `never` and says why in `error`."""
    env = os.environ if env is None else env
    value = env.get(ENV_VAR, "").strip().lower()
    if value:
        if value in POLICIES:
            return PolicyChoice(value, ENV_VAR)
        return PolicyChoice("never", ENV_VAR, "{}={!r} is not one of {}".format(ENV_VAR, value, ", ".join(POLICIES)))
    for path in config_files(env):
        try:
            with open(path, "r", encoding="utf-8") as f:
                word = parse_policy(f.read())
        except OSError:
            continue
        if word in POLICIES:
            return PolicyChoice(word, path)
        return PolicyChoice("never", path, "{} holds {!r}, not one of {}".format(path, word, ", ".join(POLICIES)))
    return PolicyChoice(DEFAULT_POLICY, "default (nothing configured)")
