"""The digits demo and the benchmark command, run as a user would run them (subprocesses)."""

import csv
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


def test_bench_quick(tmp_path):
    """`python -m gemmconv bench --quick` runs every mode side by side and writes the table (on CPU: the
    labelled CPU smoke run)."""
    out_csv = tmp_path / "bench.csv"
    rc, out = _run(["-m", "gemmconv", "bench", "--quick", "--reps", "2", "--warmup", "1", "--out", str(out_csv)],
                   timeout=600)
    assert rc == 0, out[-4000:]
    rows = list(csv.DictReader(open(str(out_csv))))
    layers = [r for r in rows if r["section"] == "layer"]
    steps = [r for r in rows if r["section"] == "step"]
    assert len(layers) >= 5 and len(steps) == 1, rows
    modes = ("gemmconv", "cudnn", "native") if DEVICE == "cuda" else ("gemmconv", "pytorch")
    for r in layers:
        for m in modes:
            assert float(r[m + "_fwdbwd_ms"]) > 0, r
        assert r["gemmconv_routed"] == "True", r
        ref_key = "max_rel_diff_vs_" + ("cudnn" if DEVICE == "cuda" else "pytorch")
        tol = 1e-2 if r["dtype"] == "fp16" else 1e-4
        assert float(r[ref_key]) < tol, r
    ratio = "gemmconv_over_cudnn" if DEVICE == "cuda" else "gemmconv_over_pytorch_cpu"
    assert all(float(r[ratio]) > 0 for r in layers + steps)
    if DEVICE == "cuda":
        assert all(float(steps[0][m + "_peak_mem_mb"]) > 0 for m in modes)
    else:
        assert "CPU SMOKE RUN" in out
    assert "| layer | dtype |" in out


def test_bench_profile_check():
    rc, out = _run(["-m", "gemmconv", "bench", "--profile-check", "--quick"], timeout=600)
    assert rc == 0, out[-4000:]
    assert "every convolution ran through gemmconv" in out, out[-3000:]


def test_profile_classifier_flags_foreign_work():
    """The profile check's classifier is not blind: vendor conv kernels and PyTorch's own conv ops are flagged,
    batch norm and gemmconv's kernels are not."""
    sys.path.insert(0, PYTHON_DIR)
    from gemmconv.bench import classify_profile

    class Ev:
        def __init__(self, name, kind):
            self.name, self.device_type = name, kind

    events = [Ev("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nchw", "DeviceType.CUDA"),
              Ev("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>", "DeviceType.CUDA"),
              Ev("void gemmconv::im2col_kernel<float>(...)", "DeviceType.CUDA"),
              Ev("void at::native::elementwise_kernel<128, 2>(...) convert", "DeviceType.CUDA"),
              Ev("aten::mkldnn_convolution", "DeviceType.CPU"),
              Ev("aten::convolution", "DeviceType.CPU"),
              Ev("void at::native::conv_depthwise2d_forward_kernel<float>", "DeviceType.CUDA")]
    found = classify_profile(events)
    assert set(found["foreign_kernels"]) == {events[0].name, events[6].name}
    assert set(found["foreign_ops"]) == {"aten::mkldnn_convolution"}
    assert set(found["batchnorm_kernels"]) == {events[1].name}
    assert set(found["gemmconv_kernels"]) == {events[2].name}
