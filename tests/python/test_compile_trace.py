"""gemmconv under torch.jit.trace and torch.compile: the same numbers as eager PyTorch, and the counters show
the traced / compiled code still ran its convolutions (forward and backward) through gemmconv."""

import importlib
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import TORCH_VERSION, ConvCallCounter


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2)
        self.c3 = nn.Conv2d(16, 16, 1, bias=False)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.head = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        x = F.relu(self.c3(F.relu(self.c2(x))))
        return self.head(F.relu(self.up(x)))


def _setup(device):
    torch.manual_seed(0)
    model = SmallNet().to(device).eval()  # eval: batch norm uses running stats, so traced == eager exactly
    x = torch.randn(2, 3, 12, 12, device=device)
    gy = torch.randn(2, 4, 12, 12, device=device)
    return model, x, gy


def _eager_reference(gc, model, x, gy):
    """PyTorch's own eager result (gemmconv off), in float64 for comparison."""
    with gc.off():
        m64 = _clone(model).double()
        x64 = x.double().requires_grad_()
        y = m64(x64)
        gx, = torch.autograd.grad(y, [x64], gy.double())
    return y.detach(), gx


def _clone(model):
    import copy
    return copy.deepcopy(model)


def _expected_counts(gc, model, x, gy, device):
    """What an eager run with gemmconv on counts (cross-checked with forward hooks)."""
    counter = ConvCallCounter(model)
    before = gc.totals()
    with gc.on(device):
        xr = x.clone().requires_grad_()
        y = model(xr)
        torch.autograd.grad(y, [xr] + [p for p in model.parameters()], gy)
    d = gc.delta(before, gc.totals())
    counter.remove()
    assert d["forward"] == counter.forward == 5, (d, counter.forward)
    return d


def _check_close(got, want, what):
    err = float((got.detach().double() - want).abs().max() / (want.abs().max() + 1e-30))
    assert err < 1e-4, "{}: relative difference {:.3g} from PyTorch's eager float64 result".format(what, err)


def test_jit_trace(gc, device):
    model, x, gy = _setup(device)
    want_y, want_gx = _eager_reference(gc, model, x, gy)
    expected = _expected_counts(gc, model, x, gy, device)

    with gc.off():
        traced = torch.jit.trace(model, (x,), check_trace=False)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph or "aten::convolution" in graph, graph

    # Several calls: the profiling executor optimises the graph after the first runs; every run must be ours.
    for i in range(3):
        before = gc.totals()
        with gc.on(device):
            xr = x.clone().requires_grad_()
            y = traced(xr)
            gx, = torch.autograd.grad(y, [xr] + list(traced.parameters()), gy)[:1]
        d = gc.delta(before, gc.totals())
        gc.assert_counts(d, where="traced run {}".format(i), **expected)
        _check_close(y, want_y, "traced output (run {})".format(i))
        _check_close(gx, want_gx, "traced grad_input (run {})".format(i))


def _compile_or_skip(model, backend):
    if TORCH_VERSION < (2, 0) or not hasattr(torch, "compile"):
        pytest.skip("torch.compile needs torch >= 2.0 (this is {})".format(torch.__version__))
    try:
        importlib.import_module("torch._dynamo").reset()
    except Exception as e:
        pytest.skip("torch._dynamo unavailable: {}".format(e))
    return torch.compile(model, backend=backend)


_COMPILER_HINTS = ("compiler", "triton", "gcc", "g++", "clang", "cpp", "Python.h", "InvalidCxxCompiler",
                   "ld returned", "cannot find", "No such file")


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile(gc, device, backend):
    model, x, gy = _setup(device)
    if backend == "inductor" and device == "cpu" and not (shutil.which("g++") or shutil.which("c++")
                                                           or shutil.which("clang++")):
        pytest.skip("torch.compile's inductor backend on CPU needs a C++ compiler, none on the PATH")
    want_y, want_gx = _eager_reference(gc, model, x, gy)
    expected = _expected_counts(gc, model, x, gy, device)
    compiled = _compile_or_skip(model, backend)

    # First call compiles (with gemmconv on, so that anything run for real during compilation is routed too).
    with gc.on(device):
        try:
            xr = x.clone().requires_grad_()
            y = compiled(xr)
            torch.autograd.grad(y, [xr] + list(model.parameters()), gy)
        except Exception as e:
            msg = str(e)
            if backend == "inductor" and any(h in msg for h in _COMPILER_HINTS):
                pytest.skip("inductor cannot build code on this machine: {}".format(msg.splitlines()[0][:200]))
            raise

    for i in range(2):
        before = gc.totals()
        with gc.on(device):
            xr = x.clone().requires_grad_()
            y = compiled(xr)
            gx = torch.autograd.grad(y, [xr] + list(model.parameters()), gy)[0]
            if device == "cuda":
                torch.cuda.synchronize()
        d = gc.delta(before, gc.totals())
        # Every convolution pass is gemmconv's. The bias gradient is a plain reduction, not a convolution:
        # inductor on CUDA computes it in its own generated kernel (convolution_backward is then called without
        # the bias in its output mask), so there it may be counted zero times, never more than eagerly.
        want = dict(expected)
        if backend == "inductor" and d["backward_bias"] == 0:
            want.pop("backward_bias")
        gc.assert_counts(d, where="torch.compile({}) run {}".format(backend, i), **want)
        _check_close(y, want_y, "compiled output")
        _check_close(gx, want_gx, "compiled grad_input")
