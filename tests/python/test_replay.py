"""Replay: an engine error inside a torch program carries a gemmconv-driver command, and that command reproduces
the failure without PyTorch."""

import os
import re
import subprocess
import sys

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


# ---- `gemmconv replay` and the `gemmconv-driver` console script (gemmconv/_driver.py) ----

from gemmconv.replay import driver_words  # noqa: E402

SAMPLE = ("--device cpu --dims 2 -n 2 -c 4 -k 6 -g 2 --input 7x6 --filter 3x3 --stride 2x1 --pad-begin 1x0 "
          "--pad-end 1x0 --dilation 1x1 --layout contiguous --dtype f32 --direction forward")


@pytest.mark.parametrize("text", [
    "gemmconv-driver " + SAMPLE,
    SAMPLE,
    "/opt/x/build/gemmconv-driver " + SAMPLE,
    "RuntimeError: gemmconv: running the forward pass failed: boom (replay: gemmconv-driver " + SAMPLE + ")",
])
def test_replay_line_forms(text):
    assert driver_words(text) == SAMPLE.split() + ["--verify"]


def test_replay_keeps_one_verify_and_extra_flags():
    assert driver_words(SAMPLE + " --verify --seed 7") == SAMPLE.split() + ["--verify", "--seed", "7"]


@pytest.mark.parametrize("text", ["", "gemmconv-driver", "error (replay: )"])
def test_replay_without_a_line_is_refused(text):
    with pytest.raises(ValueError, match="no replay line"):
        driver_words(text)


def _gemmconv(args, env):
    return subprocess.run([sys.executable, "-m", "gemmconv"] + args, env=env, capture_output=True, text=True,
                          timeout=300)


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, "python"))
    env.pop("GEMMCONV_DISABLE", None)
    env.update(extra)
    return env


def test_gemmconv_replay_runs_the_error_message():
    """The whole error message of a failing torch call, given to `gemmconv replay`: the driver reproduces the
    failure under the same settings (exit 2) and verifies the convolution without them (exit 0, PASS)."""
    message, names = _failing_conv()
    driver = _driver()
    run = _gemmconv(["replay", message], _env(GEMMCONV_DRIVER=driver, GEMMCONV_DISABLE=",".join(names)))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no enabled solver applies to conv2d n=2 c=4 k=6" in run.stderr, run.stderr
    run = _gemmconv(["replay", message], _env(GEMMCONV_DRIVER=driver))
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^  verify: max_rel_err=\S+ tol=\S+ elements=\d+ PASS$", run.stdout, re.M), run.stdout
    # The words of the line as separate arguments, without the leading gemmconv-driver, work the same.
    run = _gemmconv(["replay"] + REPLAY.search(message).group(1).split()[1:], _env(GEMMCONV_DRIVER=driver))
    assert run.returncode == 0 and "PASS" in run.stdout, run.stdout + run.stderr


def test_gemmconv_replay_exit_status_is_the_drivers():
    driver = _driver()
    bad = _gemmconv(["replay", "gemmconv-driver --device cpu --stride 0"], _env(GEMMCONV_DRIVER=driver))
    assert bad.returncode == 2 and "stride[0] = 0" in bad.stderr, bad.stdout + bad.stderr
    dry = _gemmconv(["replay", "--dry-run", SAMPLE], _env(GEMMCONV_DRIVER=driver))
    assert dry.returncode == 0 and dry.stdout.strip() == " ".join([driver] + SAMPLE.split() + ["--verify"])


def test_gemmconv_replay_usage_and_missing_driver():
    assert _gemmconv(["replay"], _env()).returncode == 2
    assert _gemmconv(["replay", "--help"], _env()).returncode == 0
    missing = _gemmconv(["replay", SAMPLE], _env(GEMMCONV_DRIVER="/nonexistent/gemmconv-driver"))
    assert missing.returncode == 127 and "cannot run /nonexistent/gemmconv-driver" in missing.stderr


def test_driver_console_script_passes_argv_and_exit_status():
    driver = _driver()
    shim = [sys.executable, "-c", "import sys; from gemmconv._driver import main; sys.exit(main())"]
    env = _env(GEMMCONV_DRIVER=driver)
    version = subprocess.run(shim + ["--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("gemmconv-driver " + gemmconv.__version__ + "\n")
    bad = subprocess.run(shim + ["--device", "cpu", "--stride", "0"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "stride[0] = 0" in bad.stderr, bad.stderr


def test_driver_console_script_without_a_driver_says_how_to_get_one(monkeypatch, capsys, tmp_path):
    from gemmconv import _driver

    monkeypatch.delenv("GEMMCONV_DRIVER", raising=False)
    monkeypatch.setattr(_driver, "SHIPPED", str(tmp_path / "bin" / "gemmconv-driver"))
    monkeypatch.setattr(_driver, "CHECKOUT", str(tmp_path / "build" / "gemmconv-driver"))
    assert _driver.driver_path() is None
    assert _driver.main(["--version"]) == 127
    err = capsys.readouterr().err
    assert "gemmconv-driver is not part of this installation" in err and "cmake --build build" in err, err
