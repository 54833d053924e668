"""Fast smoke tests of the PyTorch binding: routing, results against PyTorch's own path, state, errors."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import gemmconv

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CUDA = torch.cuda.is_available()


def _devices():
    out = ["cpu"]
    if CUDA:
        out.append("cuda")
    return out


@pytest.fixture(autouse=True)
def _off():
    gemmconv.disable()
    gemmconv.reset_stats()
    yield
    gemmconv.disable()


def _needs_gpu_kernels(device):
    if device == "cuda":
        from gemmconv import _C

        if not _C.gpu_kernels_registered():
            pytest.skip("extension built without GPU kernels")


def _run(fn, tensors, on, device):
    if on:
        gemmconv.enable(device_types=(device,))
    else:
        gemmconv.disable()
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    y = fn(*leaves)
    g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=y.device).reshape(y.shape)
    grads = torch.autograd.grad(y, leaves, g)
    gemmconv.disable()
    return y, grads


CASES = [
    ("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), (2, 4, 9), (6, 4, 3), 6),
    ("conv2d_groups", lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), (2, 4, 7, 6), (6, 2, 3, 3), 6),
    ("conv2d_same", lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=2), (2, 3, 7, 6), (4, 3, 3, 3), 4),
    ("conv3d", lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1)), (1, 2, 4, 5, 4), (3, 2, 2, 2, 2), 3),
    (
        "conv_transpose2d",
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
        (2, 4, 4, 5),
        (4, 3, 3, 3),
        6,
    ),
]


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("name,fn,xs,ws,k", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch_float64(device, name, fn, xs, ws, k):
    _needs_gpu_kernels(device)
    torch.manual_seed(0)
    t = [torch.randn(*xs, dtype=torch.float64, device=device), torch.randn(*ws, dtype=torch.float64, device=device),
         torch.randn(k, dtype=torch.float64, device=device)]
    y1, g1 = _run(fn, t, True, device)
    stats = gemmconv.stats()
    y0, g0 = _run(fn, t, False, device)
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for direction in ("forward", "backward_data", "backward_weight", "backward_bias"):
        assert stats[direction]["total"] >= 1, (direction, stats)


@pytest.mark.parametrize("device", _devices())
def test_channels_last_stays_channels_last(device):
    _needs_gpu_kernels(device)
    x = torch.randn(2, 4, 6, 5, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(3, 4, 3, 3, device=device)
    gemmconv.enable(device_types=(device,))
    y = F.conv2d(x, w, padding=1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    gemmconv.disable()
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", _devices())
def test_empty_batch(device):
    _needs_gpu_kernels(device)
    x = torch.randn(0, 4, 5, 5, device=device, requires_grad=True)
    w = torch.randn(3, 4, 3, 3, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    with gemmconv.enabled(device_types=(device,)):
        y = F.conv2d(x, w, b)
        y.sum().backward()
    assert y.shape == (0, 3, 3, 3)
    assert x.grad.shape == x.shape and float(w.grad.abs().sum()) == 0.0 and float(b.grad.abs().sum()) == 0.0


def test_gradgradcheck_cpu():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    with gemmconv.enabled(device_types=("cpu",)):
        fn = lambda x, w: F.conv2d(x, w, groups=2, stride=2, padding=1)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w))
        assert torch.autograd.gradgradcheck(fn, (x, w))
        assert gemmconv.stats()["forward"]["total"] > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.conv2d(torch.randn(1, 4, 5, 5), torch.randn(2, 4, 3, 3), groups=2),
        lambda: F.conv2d(torch.randn(1, 4, 5, 5), torch.randn(2, 4, 3, 3), padding=-1),
        lambda: F.conv2d(torch.randn(1, 4, 2, 2), torch.randn(2, 4, 3, 3)),
        lambda: F.conv_transpose2d(torch.randn(1, 4, 5, 5), torch.randn(4, 2, 3, 3), output_padding=2),
        lambda: torch.convolution(torch.randn(4, 5, 5), torch.randn(2, 4, 3, 3), None, [1, 1], [0, 0], [1, 1],
                                  False, [0, 0], 1),
    ],
)
def test_errors_read_like_pytorch(call):
    with pytest.raises(RuntimeError) as theirs:
        call()
    with gemmconv.enabled(device_types=("cpu",)):
        with pytest.raises(RuntimeError) as ours:
            call()
    assert str(ours.value).splitlines()[0] == str(theirs.value).splitlines()[0]


def test_state_and_config_round_trip():
    assert not gemmconv.is_enabled("cpu")
    before = gemmconv.config()
    with gemmconv.enabled(device_types="cpu", workspace_mb=7, log_level="error"):
        assert gemmconv.is_enabled("cpu")
        cfg = gemmconv.config()
        assert cfg["workspace_mb"] == 7 and cfg["log_level"] == "error" and cfg["enabled"]["cpu"]
    after = gemmconv.config()
    assert not gemmconv.is_enabled("cpu")
    assert (after["workspace_mb"], after["log_level"], after["disabled"]) == (
        before["workspace_mb"], before["log_level"], before["disabled"])
    with pytest.raises(ValueError):
        gemmconv.enable("cpu", disable_solvers=["no_such_solver"])
    assert not gemmconv.is_enabled("cpu")
    names = gemmconv.solver_names()
    assert names[-1] == "reference"
    from gemmconv import _C

    assert _C.engine_version() == gemmconv.__version__
    assert _C.built_archs()
    # The detail form names the gfx1030 slot's safety for gfx1030 only.
    detail = gemmconv.built_archs(detail=True)
    assert [d["arch"] for d in detail] == gemmconv.built_archs()
    for d in detail:
        if d["arch"] == "gfx1030":
            assert d["gfx1010_safe"] is _C.gfx1030_gfx1010_safe()
        else:
            assert d["gfx1010_safe"] is None
    if gemmconv.built_archs() == ["cpu"]:
        assert _C.gfx1030_gfx1010_safe() is False


def test_disabled_solver_is_not_used():
    x, w = torch.randn(2, 4, 5, 5), torch.randn(3, 4, 1, 1)
    with gemmconv.enabled(device_types="cpu", disable_solvers=[n for n in gemmconv.solver_names() if n != "reference"]):
        F.conv2d(x, w)
    assert set(gemmconv.stats()["forward"]) == {"reference", "total"}


def test_import_is_cheap():
    code = "import sys, gemmconv; print('gemmconv._C' in sys.modules, 'torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_module_imports_without_torch():
    # The activation hook and torch's autoload import the package while torch is still importing; the CLI's
    # commands must run where torch is broken. Every module of the package keeps torch out at import time.
    pkg = os.path.join(ROOT, "python", "gemmconv")
    modules = []
    for folder, _, files in os.walk(pkg):
        for f in sorted(files):
            if f.endswith(".py") and f != "__main__.py":
                rel = os.path.relpath(os.path.join(folder, f), os.path.join(ROOT, "python"))[:-3]
                modules.append(rel.replace(os.sep, ".").replace(".__init__", ""))
    assert "gemmconv.diagnosis.detect" in modules and "gemmconv.activation.activate" in modules
    code = ("import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m == 'gemmconv._C' or m.startswith('torch.')))")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-c", code] + modules, env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["[]"], (modules, out.stdout)
