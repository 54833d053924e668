"""torch.autograd.gradcheck and gradgradcheck in float64 through gemmconv (tiny shapes), with the counters proving
that forward, backward and double backward were all routed."""

import pytest
import torch
import torch.nn.functional as F

import gemmconv

# (id, function, input shape, weight shape, kwargs). Transposed weights are (C_in, C_out/groups, k...).
CASES = [
    ("conv1d_bias", F.conv1d, (2, 2, 6), (3, 2, 3), dict(padding=1)),
    ("conv1d_stride_dil", F.conv1d, (1, 2, 9), (2, 2, 3), dict(stride=2, dilation=2)),
    ("conv2d_bias", F.conv2d, (1, 2, 5, 5), (3, 2, 3, 3), dict(padding=1)),
    ("conv2d_grouped", F.conv2d, (1, 4, 4, 5), (4, 2, 2, 3), dict(groups=2, padding=(1, 0))),
    ("conv2d_strided", F.conv2d, (2, 2, 6, 5), (2, 2, 3, 2), dict(stride=(2, 3), padding=1)),
    ("conv2d_dilated", F.conv2d, (1, 2, 7, 7), (2, 2, 3, 3), dict(dilation=2, padding=2)),
    ("conv2d_depthwise", F.conv2d, (1, 3, 5, 5), (3, 1, 3, 3), dict(groups=3)),
    ("conv2d_1x1", F.conv2d, (2, 3, 3, 3), (2, 3, 1, 1), {}),
    ("conv3d_bias", F.conv3d, (1, 2, 3, 4, 3), (2, 2, 2, 3, 2), dict(padding=(0, 1, 1))),
    ("conv3d_grouped_strided", F.conv3d, (1, 4, 4, 4, 4), (2, 2, 2, 2, 2), dict(groups=2, stride=2)),
    ("convT1d", F.conv_transpose1d, (1, 2, 4), (2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("convT2d", F.conv_transpose2d, (1, 2, 3, 4), (2, 2, 3, 3), dict(stride=2, padding=1)),
    ("convT2d_grouped_dil", F.conv_transpose2d, (1, 4, 3, 3), (4, 1, 2, 2), dict(groups=2, dilation=2)),
    ("convT3d", F.conv_transpose3d, (1, 2, 2, 3, 2), (2, 2, 2, 2, 2), dict(stride=(1, 2, 1))),
]


def _make(shape_x, shape_w, func, kwargs, device):
    x = torch.randn(shape_x, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(shape_w, dtype=torch.float64, device=device, requires_grad=True)
    transposed = func in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
    out_ch = shape_w[1] * kwargs.get("groups", 1) if transposed else shape_w[0]
    b = torch.randn(out_ch, dtype=torch.float64, device=device, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("name,func,shape_x,shape_w,kwargs", CASES, ids=[c[0] for c in CASES])
def test_gradcheck(gc, device, name, func, shape_x, shape_w, kwargs):
    x, w, b = _make(shape_x, shape_w, func, kwargs, device)

    def fn(x, w, b):
        return func(x, w, b, **kwargs)

    before = gc.totals()
    with gc.on(device):
        assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-5, rtol=1e-4)
    d = gc.delta(before, gc.totals())
    assert d["forward"] > 0 and d["backward_data"] > 0 and d["backward_weight"] > 0 and d["backward_bias"] > 0, \
        "gradcheck did not run every direction through gemmconv: {}".format(d)


@pytest.mark.parametrize("name,func,shape_x,shape_w,kwargs", CASES, ids=[c[0] for c in CASES])
def test_gradgradcheck(gc, device, name, func, shape_x, shape_w, kwargs):
    x, w, b = _make(shape_x, shape_w, func, kwargs, device)

    def fn(x, w, b):
        return func(x, w, b, **kwargs)

    before = gc.totals()
    with gc.on(device):
        assert torch.autograd.gradgradcheck(fn, (x, w, b), eps=1e-6, atol=1e-5, rtol=1e-4)
    d = gc.delta(before, gc.totals())
    # Double backward is made of convolutions and convolution backwards: all of them must be ours.
    assert d["forward"] > 0 and d["backward_data"] > 0 and d["backward_weight"] > 0, d


def test_gradcheck_padding_mode(gc, device):
    """A padding mode (circular) in front of the convolution, through gradcheck."""
    m = torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular").to(device, torch.float64)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, device=device, requires_grad=True)
    before = gc.totals()
    with gc.on(device):
        assert torch.autograd.gradcheck(lambda t: m(t), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)
    d = gc.delta(before, gc.totals())
    assert d["forward"] > 0 and d["backward_data"] > 0, d


def test_gradcheck_detects_a_wrong_gradient(device):
    """The harness itself can fail: a function with a deliberately wrong backward is rejected."""

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return F.conv2d(x, w)

        @staticmethod
        def backward(ctx, gy):
            x, w = ctx.saved_tensors
            gx, gw, _ = torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0],
                                                            1, [True, True, False])
            return gx * 1.01, gw

    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    with gemmconv.enabled(device_types=(device,)):
        assert not torch.autograd.gradcheck(Wrong.apply, (x, w), eps=1e-6, atol=1e-5, rtol=1e-4,
                                            raise_exception=False)


FWD_AD_CASES = [c for c in CASES if c[0] in ("conv1d_stride_dil", "conv2d_grouped", "conv3d_bias", "convT2d",
                                                 "convT2d_grouped_dil")]


@pytest.mark.parametrize("name,func,shape_x,shape_w,kwargs", FWD_AD_CASES, ids=[c[0] for c in FWD_AD_CASES])
def test_forward_ad(gc, device, name, func, shape_x, shape_w, kwargs):
    """Forward-mode AD (jvp) of a convolution is made of convolutions; they are routed and correct."""
    x, w, b = _make(shape_x, shape_w, func, kwargs, device)

    def fn(x, w, b):
        return func(x, w, b, **kwargs)

    before = gc.totals()
    with gc.on(device):
        assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-5, rtol=1e-4, check_forward_ad=True,
                                        check_backward_ad=False, check_batched_grad=False)
    d = gc.delta(before, gc.totals())
    assert d["forward"] > 0, d
