"""Run a helper in a child process with a hard timeout that also kills whatever the child started."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class ChildResult:
    returncode: Optional[int]
    stdout: str
    stderr: str
    timed_out: bool
    elapsed: float
    error: Optional[str] = None


def _package_parents() -> List[str]:
    """Where this process found the gemmconv package, then where this file lives (they differ when a test
    stands a stub package in front of the real modules)."""
    found = []
    pkg = sys.modules.get("gemmconv")
    if pkg is not None and getattr(pkg, "__file__", None):
        found.append(os.path.dirname(os.path.dirname(os.path.abspath(pkg.__file__))))
    if PACKAGE_PARENT not in found:
        found.append(PACKAGE_PARENT)
    return found


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """This environment, with the gemmconv this process uses first on PYTHONPATH, so the child finds the same.
    Entries are made absolute: the child runs in a neutral directory (a source tree's torch/ folder in the
    current directory would shadow the real torch)."""
    env = dict(os.environ)
    path = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    first = _package_parents()
    env["PYTHONPATH"] = os.pathsep.join(first + [p for p in path if p not in first])
    env.update(extra or {})
    return env


def run_child(cmd: List[str], timeout: float, env: Optional[Dict[str, str]] = None) -> ChildResult:
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or child_env(),
                                start_new_session=True, universal_newlines=True, cwd=tempfile.gettempdir())
    except OSError as exc:
        return ChildResult(None, "", "", False, 0.0, error="cannot start {}: {}".format(cmd[0], exc))
    try:
        out, err = proc.communicate(timeout=timeout)
        return ChildResult(proc.returncode, out, err, False, time.monotonic() - start)
    except subprocess.TimeoutExpired:
        # A GPU job stuck in the driver ignores SIGTERM often enough; kill the whole session.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        return ChildResult(proc.returncode, out or "", err or "", True, time.monotonic() - start)


def python_script(path: str, *args: str) -> List[str]:
    return [sys.executable, path] + list(args)
