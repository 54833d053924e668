"""Regressions for hostile calls through the binding: every case here was once a crash, a wrong answer or an
error that read differently from PyTorch's (see issue "Trust under fire")."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import gemmconv

from conftest import REPO_ROOT

PYTHON_DIR = os.path.join(REPO_ROOT, "python")


def _error(fn):
    """(exception class, first line of the message) of fn(), or (None, None)."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (comparing whatever PyTorch raises)
        return type(exc), str(exc).splitlines()[0] if str(exc) else ""
    return None, None


def _both(fn):
    """fn() with gemmconv off and on (CPU routing): ((class, message), (class, message))."""
    gemmconv.disable(None)
    theirs = _error(fn)
    with gemmconv.enabled("cpu"):
        ours = _error(fn)
    return theirs, ours


def _run_child(code, **env):
    full = dict(os.environ, PYTHONPATH=PYTHON_DIR, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True,
                          text=True, timeout=300)


# ---------------------------------------------------------------- defect 1: bias_sizes is not trusted


@pytest.mark.parametrize("bias_sizes", [[1], [4096 * 4], [2, 2], []])
def test_convolution_backward_ignores_bias_sizes(bias_sizes):
    k = 4096
    args = (torch.randn(1, k, 6, 6), torch.randn(1, 3, 8, 8), torch.randn(k, 3, 3, 3), bias_sizes,
            [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, False, True])
    want = torch.ops.aten.convolution_backward(*args)[2]
    with gemmconv.enabled("cpu"):
        got = torch.ops.aten.convolution_backward(*args)[2]
    assert gemmconv.stats()["backward_bias"]["total"] == 1
    assert got.shape == want.shape == (k,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------- defect 6: zero-size kernel


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 0, 3)),
    lambda: F.conv1d(torch.randn(1, 3, 8), torch.randn(4, 3, 0)),
    lambda: F.conv3d(torch.randn(1, 3, 8, 8, 8), torch.randn(4, 3, 3, 0, 3)),
    lambda: F.conv_transpose2d(torch.randn(1, 3, 8, 8), torch.randn(3, 4, 0, 3)),
    lambda: F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 0, 3), dilation=2),
], ids=["2d", "1d", "3d", "transposed2d", "dilated2d"])
def test_zero_size_kernel_is_refused_like_pytorch(call):
    theirs, ours = _both(call)
    assert theirs[0] is not None, "PyTorch accepted a zero-size kernel"
    assert ours[0] is RuntimeError, ours
    assert ours[1].startswith("kernel size should be greater than zero"), ours[1]


def test_zero_size_kernel_matches_pytorch_wording_2d():
    theirs, ours = _both(lambda: F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 0, 3)))
    assert ours == theirs


# ---------------------------------------------------------------- defect 7: workspace budget that wraps


@pytest.mark.parametrize("value", [2 ** 44, 2 ** 63, 2 ** 64 + 5, -1, 1.5, "12", True])
def test_workspace_mb_out_of_range_is_a_value_error_naming_it(value):
    before = gemmconv.config()["workspace_mb"]
    with pytest.raises(ValueError) as info:
        gemmconv.enable("cpu", workspace_mb=value)
    assert repr(value) in str(info.value)
    assert gemmconv.config()["workspace_mb"] == before


def test_workspace_mb_largest_value_is_kept_exactly():
    before = gemmconv.config()["workspace_mb"]
    with gemmconv.enabled("cpu", workspace_mb=gemmconv.MAX_WORKSPACE_MB):
        assert gemmconv.config()["workspace_mb"] == gemmconv.MAX_WORKSPACE_MB
    assert gemmconv.config()["workspace_mb"] == before


def test_workspace_mb_from_the_environment_never_wraps_to_zero():
    code = """
        import torch, gemmconv
        print(gemmconv.config()["workspace_mb"])
        """
    default = _run_child(code)
    r = _run_child(code, GEMMCONV_WORKSPACE_MB=str(2 ** 44))
    assert default.returncode == 0 and r.returncode == 0, default.stderr + r.stderr
    assert int(default.stdout) > 0
    assert r.stdout.strip() == default.stdout.strip(), r.stdout  # the default, not 0
    assert str(2 ** 44) in r.stderr


# ---------------------------------------------------------------- defect 8: overflowing sizes


@pytest.mark.parametrize("kwargs", [dict(padding=2 ** 62), dict(dilation=2 ** 62), dict(padding=2 ** 61, stride=3)])
def test_overflowing_sizes_are_refused_with_a_clear_message(kwargs):
    with gemmconv.enabled("cpu"):
        with pytest.raises(RuntimeError) as info:
            F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), **kwargs)
    msg = str(info.value)
    assert "overflow" in msg, msg  # never a size computed with wrapped arithmetic


@pytest.mark.parametrize("kwargs", [dict(stride=2 ** 62), dict(padding=2 ** 62), dict(dilation=2 ** 62)])
def test_overflowing_transposed_sizes_are_refused(kwargs):
    with gemmconv.enabled("cpu"):
        with pytest.raises(RuntimeError) as info:
            F.conv_transpose2d(torch.randn(1, 3, 8, 8), torch.randn(3, 4, 3, 3), **kwargs)
    assert "overflow 64-bit arithmetic" in str(info.value), str(info.value)


# ---------------------------------------------------------------- defect 10: NaN through padded taps


@pytest.mark.parametrize("channels_last", [False, True])
def test_nan_weight_propagates_through_padding_like_pytorch(channels_last):
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(4, 1, 3, 3)
    w[1, 0, 0, 0] = float("nan")
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    # PyTorch's zero-padded GEMM path (float64 on CPU; cuDNN) gives 0 * NaN = NaN wherever a padded tap meets the
    # NaN weight. (Its float32 CPU path, oneDNN, skips padded taps and so differs from its own float64 result.)
    want = F.conv2d(x.double(), w.double(), padding=1, groups=4)
    with gemmconv.enabled("cpu"):
        got = F.conv2d(x, w, padding=1, groups=4)
    assert "depthwise_direct" in gemmconv.stats()["forward"]
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.isnan(got[:, 1]).all()


# ---------------------------------------------------------------- defect 11: slow path warns once


def test_budget_forcing_reference_warns_once_naming_problem_and_budget():
    r = _run_child("""
        import torch, torch.nn.functional as F, gemmconv
        gemmconv.enable("cpu", workspace_mb=0)
        x, w = torch.randn(2, 8, 9, 9), torch.randn(16, 8, 3, 3)
        for _ in range(3):
            F.conv2d(x, w)
        print(gemmconv.stats()["forward"])
        """)
    assert r.returncode == 0, r.stderr
    assert "reference" in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if "'reference' solver runs instead" in ln]
    assert len(lines) == 1, r.stderr
    assert "budget of 0 bytes" in lines[0] and "conv2d n=2 c=8 k=16 in=9x9" in lines[0], lines[0]


# ---------------------------------------------------------------- item 5: workspace OOM back-off


def test_workspace_allocation_failure_plans_again_with_a_smaller_budget():
    r = _run_child("""
        import torch, torch.nn.functional as F, gemmconv
        x, w = torch.randn(4, 8, 12, 12, dtype=torch.float64), torch.randn(16, 8, 3, 3, dtype=torch.float64)
        want = F.conv2d(x, w, padding=1)
        gemmconv.enable("cpu", log_level="info")
        got = F.conv2d(x, w, padding=1)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), (got - want).abs().max()
        print(gemmconv.stats()["forward"])
        """, GEMMCONV_TEST_WORKSPACE_FAIL_BYTES="4096")
    assert r.returncode == 0, r.stderr
    assert "planning again with a budget of" in r.stderr, r.stderr
    assert "simulated by GEMMCONV_TEST_WORKSPACE_FAIL_BYTES" in r.stderr


def test_no_budget_warning_when_the_budget_is_not_the_reason():
    # winograd_gemm declines fp16 on the CPU whatever the budget: the reference solver that runs when everything else
    # is switched off was not forced by the workspace budget, and no warning may say so.
    r = _run_child("""
        import torch, torch.nn.functional as F, gemmconv
        x, w = torch.randn(2, 64, 14, 14).half(), torch.randn(64, 64, 3, 3).half()
        others = [s for s in gemmconv.solver_names() if s not in ("winograd_gemm", "reference")]
        gemmconv.enable("cpu", disable_solvers=others)
        F.conv2d(x, w, padding=1)
        print(gemmconv.stats()["forward"])
        """)
    assert r.returncode == 0, r.stderr
    assert "'reference': 1" in r.stdout, r.stdout
    assert "too small" not in r.stderr, r.stderr


def test_workspace_allocation_failure_down_to_the_reference_solver_warns():
    r = _run_child("""
        import torch, torch.nn.functional as F, gemmconv
        x, w = torch.randn(2, 8, 9, 9, dtype=torch.float64), torch.randn(16, 8, 3, 3, dtype=torch.float64)
        want = F.conv2d(x, w)
        gemmconv.enable("cpu")
        got = F.conv2d(x, w)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
        print(gemmconv.stats()["forward"])
        """, GEMMCONV_TEST_WORKSPACE_FAIL_BYTES="0")
    assert r.returncode == 0, r.stderr
    assert "'reference'" in r.stdout
    assert "'reference' solver runs instead" in r.stderr, r.stderr


# ---------------------------------------------------------------- defect 12: memory format, dtype wording, N=0


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_weight_gives_pytorch_memory_format(dims, transposed):
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    size = (2, 4) + (7,) * dims
    x = torch.randn(*size)
    w = torch.randn(*((4, 3) + (3,) * dims)).to(memory_format=fmt)
    conv = getattr(F, ("conv_transpose{}d" if transposed else "conv{}d").format(dims))
    if not transposed:
        w = torch.randn(*((3, 4) + (3,) * dims)).to(memory_format=fmt)
    want = conv(x, w)
    with gemmconv.enabled("cpu"):
        got = conv(x, w)
    assert gemmconv.stats()["forward"]["total"] == 1
    for f in (torch.contiguous_format, fmt):
        assert got.is_contiguous(memory_format=f) == want.is_contiguous(memory_format=f), f
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_channels_last_weight_gradients_match_pytorch_memory_format():
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    w = torch.randn(3, 4, 3, 3).to(memory_format=torch.channels_last).requires_grad_()
    want_y = F.conv2d(x, w)
    want = torch.autograd.grad(want_y.sum(), (x, w))
    with gemmconv.enabled("cpu"):
        got_y = F.conv2d(x, w)
        got = torch.autograd.grad(got_y.sum(), (x, w))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3).double()),
    lambda: F.conv2d(torch.randn(1, 3, 8, 8).double(), torch.randn(4, 3, 3, 3)),
    lambda: F.conv1d(torch.randn(1, 3, 8), torch.randn(4, 3, 3).double()),
    lambda: F.conv3d(torch.randn(1, 3, 5, 5, 5), torch.randn(4, 3, 3, 3, 3).double()),
    lambda: F.conv_transpose2d(torch.randn(1, 3, 8, 8), torch.randn(3, 4, 3, 3).double()),
    lambda: F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4).double()),
], ids=["f32-f64", "f64-f32", "1d", "3d", "transposed", "bias"])
def test_dtype_mismatch_reads_like_pytorch(call):
    theirs, ours = _both(call)
    assert ours == theirs


def test_transposed_empty_batch_with_zero_size_output_is_accepted():
    x = torch.randn(0, 3, 2, 4, requires_grad=True)
    w = torch.randn(3, 4, 1, 1, requires_grad=True)
    want = F.conv_transpose2d(x, w, padding=(1, 0))
    with gemmconv.enabled("cpu"):
        got = F.conv_transpose2d(x, w, padding=(1, 0))
        gw = torch.autograd.grad(got.sum(), w)[0]
    assert got.shape == want.shape == (0, 4, 0, 4)
    assert torch.equal(gw, torch.zeros_like(w))
    # With a sample the result is just as empty, and gemmconv computes it. PyTorch's oneDNN CPU path and its GPU
    # backends do too; its slow CPU path (PyTorch 1.x's only one) refuses it, naming the sizes.
    x1 = torch.randn(1, 3, 2, 4, requires_grad=True)
    with gemmconv.enabled("cpu"):
        got = F.conv_transpose2d(x1, w, padding=(1, 0))
        gx, gw = torch.autograd.grad(got.sum(), (x1, w))
    assert got.shape == (1, 4, 0, 4)
    assert torch.equal(gx, torch.zeros_like(x1)) and torch.equal(gw, torch.zeros_like(w))
    theirs = _error(lambda: F.conv_transpose2d(x1, w, padding=(1, 0)))
    assert theirs[0] is None or (theirs[0] is RuntimeError and theirs[1].endswith("Output size is too small")), theirs
    # A negative size is refused, as PyTorch refuses it.
    theirs, ours = _both(lambda: F.conv_transpose2d(torch.randn(1, 3, 2, 4), w, padding=(2, 0)))
    assert ours[0] is RuntimeError and ours[1].endswith("Output size is too small"), ours
    assert theirs[0] is RuntimeError, theirs


# ---------------------------------------------------------------- defect 13: bias gradient accuracy


def test_bias_gradient_is_accurate_on_cpu():
    # One large term among many small ones per channel: a plain float32 running sum loses every small one.
    dy = torch.ones(8, 2, 64, 64)
    dy[0, :, 0, 0] = 1e8
    args = (dy, torch.randn(8, 3, 66, 66), torch.randn(2, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], False,
            [0, 0], 1, [False, False, True])
    exact = dy.double().sum((0, 2, 3))
    with gemmconv.enabled("cpu"):
        got = torch.ops.aten.convolution_backward(*args)[2]
        again = torch.ops.aten.convolution_backward(*args)[2]
    assert torch.equal(got, exact.float())
    assert torch.equal(got, again)
