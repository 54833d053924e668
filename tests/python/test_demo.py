"""The digits demo, run as a user would run it (a subprocess); the benchmark command's tests are in test_bench.py."""

import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import PYTHON_DIR, REPO_ROOT

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run(args, timeout):
    p = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def test_digits_demo(tmp_path):
    out_dir = tmp_path / "demo-output"
    rc, out = _run([os.path.join("examples", "digits_demo.py"), "--epochs", "2", "--out-dir", str(out_dir)],
                   timeout=300)
    out = out.replace("\r", "\n")  # progress-bar redraws
    assert rc == 0, "demo exited {}:\n{}".format(rc, out[-4000:])
    # Accuracy line, with a value well above chance (10%) after two epochs.
    m = re.search(r"final test accuracy: ([\d.]+)%", out)
    assert m, out[-3000:]
    assert float(m.group(1)) > 60.0, "accuracy {}% after 2 epochs:\n{}".format(m.group(1), out[-3000:])
    assert len(re.findall(r"^epoch \d+/2: loss [\d.]+, test accuracy [\d.]+%, [\d.]+ s$", out, re.M)) == 2, out
    # The proof that every convolution went through gemmconv, direction by direction.
    for d in ("forward", "backward_data", "backward_weight", "backward_bias"):
        row = re.search(r"^\s+{}\s+expected\s+(\d+)\s+gemmconv\s+(\d+)\s+(\S+)$".format(d), out, re.M)
        assert row, "no stats line for {}:\n{}".format(d, out[-3000:])
        assert row.group(1) == row.group(2) and row.group(3) == "ok", row.group(0)
        if d == "forward":
            assert int(row.group(1)) > 0
    assert "every convolution ran through gemmconv" in out
    png = out_dir / "loss_curve.png"
    assert png.is_file(), out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert str(png) in out or os.path.realpath(str(png)) in out


def test_demo_refuses_missing_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so --device cuda is valid here")
    rc, out = _run([os.path.join("examples", "digits_demo.py"), "--epochs", "1", "--device", "cuda",
                    "--out-dir", str(tmp_path)], timeout=120)
    assert rc == 2 and "no GPU" in out, (rc, out)


def test_demo_script_is_wired():
    """scripts/demo.sh runs deps, the build and the demo (checked statically: running it would rebuild)."""
    path = os.path.join(REPO_ROOT, "scripts", "demo.sh")
    text = open(path).read()
    assert os.access(path, os.X_OK)
    for needle in ("scripts/deps.sh", "scripts/build_ext.sh", "examples/digits_demo.py"):
        assert needle in text, needle
    rc = subprocess.run(["bash", "-n", path]).returncode
    assert rc == 0
