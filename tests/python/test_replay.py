"""Replay: an engine error inside a torch program carries a gemmconv-driver command, and that command reproduces
the failure without PyTorch."""

import os
import re
import subprocess

import pytest
import torch
import torch.nn.functional as F

import gemmconv
from conftest import REPO_ROOT

REPLAY = re.compile(r"\(replay: (gemmconv-driver [^)]*)\)")


def _driver():
    """The built gemmconv-driver: $GEMMCONV_DRIVER (scripts/test.sh sets it), else build/gemmconv-driver."""
    path = os.environ.get("GEMMCONV_DRIVER")
    if path:
        assert os.access(path, os.X_OK), f"GEMMCONV_DRIVER={path} is not an executable"
        return path
    path = os.path.join(REPO_ROOT, "build", "gemmconv-driver")
    if not os.access(path, os.X_OK):
        pytest.skip("gemmconv-driver is not built (cmake -S . -B build && cmake --build build), "
                    "so the replay line cannot be run")
    return path


def _failing_conv():
    """A grouped, padded, strided conv2d with every solver disabled: planning fails inside the engine."""
    x = torch.randn(2, 4, 7, 6)
    w = torch.randn(6, 2, 3, 3)
    names = gemmconv.solver_names()
    with gemmconv.enabled(device_types="cpu", disable_solvers=names):
        with pytest.raises(RuntimeError) as err:
            F.conv2d(x, w, padding=(1, 0), stride=(2, 1), groups=2)
    return str(err.value), names


def test_engine_error_carries_the_replay_command():
    message, _ = _failing_conv()
    m = REPLAY.search(message)
    assert m, message
    line = m.group(1)
    for part in ("--device cpu", "--dims 2", "-n 2", "-c 4", "-k 6", "-g 2", "--input 7x6", "--filter 3x3",
                 "--stride 2x1", "--pad-begin 1x0", "--pad-end 1x0", "--dilation 1x1", "--layout contiguous",
                 "--dtype f32", "--direction forward"):
        assert part in line, (part, line)


def test_replay_command_reproduces_the_failure():
    message, names = _failing_conv()
    words = REPLAY.search(message).group(1).split()[1:]
    driver = _driver()
    env = dict(os.environ, GEMMCONV_DISABLE=",".join(names))
    run = subprocess.run([driver] + words, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no enabled solver applies to conv2d n=2 c=4 k=6 in=7x6 filter=3x3 stride=2x1" in run.stderr, run.stderr
    # With the solvers back, the same line runs and verifies.
    env.pop("GEMMCONV_DISABLE")
    run = subprocess.run([driver] + words + ["--verify"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "PASS" in run.stdout, run.stdout + run.stderr
