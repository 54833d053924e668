"""The convolution sweep: forward and every gradient through gemmconv against a float64 reference and against
PyTorch's own result in the same dtype, with gemmconv.stats() proving each direction that ran went through gemmconv."""

import math
import random
import warnings
from functools import reduce

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gemmconv
from conftest import DEVICES, DIRECTIONS, dtype_name, dtypes_for

FUNCS = {
    "conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d,
    "conv_transpose1d": F.conv_transpose1d, "conv_transpose2d": F.conv_transpose2d,
    "conv_transpose3d": F.conv_transpose3d,
}
MODULES = {
    "Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d,
    "ConvTranspose1d": nn.ConvTranspose1d, "ConvTranspose2d": nn.ConvTranspose2d,
    "ConvTranspose3d": nn.ConvTranspose3d,
}


def prod(xs):
    return reduce(lambda a, b: a * b, xs, 1)


class Case:
    """One convolution call. `func` names an F.* function (weight shape given) or an nn module (built from its
    constructor arguments, its parameters then replaced by the test's tensors)."""

    def __init__(self, name, func, x_shape, w_shape=None, bias=True, call_kwargs=None, ctor=None, fwd_kwargs=None):
        self.name = name
        self.func = func
        self.x_shape = tuple(x_shape)
        self.w_shape = tuple(w_shape) if w_shape is not None else None
        self.bias = bias
        self.call_kwargs = dict(call_kwargs or {})
        self.ctor = dict(ctor or {})
        self.fwd_kwargs = dict(fwd_kwargs or {})
        self.transposed = "ranspose" in func
        self.is_module = func in MODULES

    def __repr__(self):
        return self.name

    def shapes(self):
        """(x shape, weight shape, bias shape or None)."""
        if self.is_module:
            m = self._module()
            return self.x_shape, tuple(m.weight.shape), (tuple(m.bias.shape) if m.bias is not None else None)
        out_ch = self.w_shape[1] * self.call_kwargs.get("groups", 1) if self.transposed else self.w_shape[0]
        return self.x_shape, self.w_shape, ((out_ch,) if self.bias else None)

    def _module(self):
        return MODULES[self.func](bias=self.bias, **self.ctor)

    def make_fn(self):
        """A function (x, w, b) -> y making exactly one convolution call."""
        if self.is_module:
            def fn(x, w, b):
                m = self._module()
                del m.weight
                m.weight = w
                if m.bias is not None:
                    del m.bias
                    m.bias = b
                return m(x, **self.fwd_kwargs)
            return fn
        f = FUNCS[self.func]

        def fn(x, w, b):
            return f(x, w, b, **self.call_kwargs)
        return fn

    def groups(self):
        if self.is_module:
            return self.ctor.get("groups", 1)
        return self.call_kwargs.get("groups", 1)


def C(name, func, x, w=None, bias=True, **kw):
    return Case(name, func, x, w, bias=bias, call_kwargs=kw)


def M(name, func, x, bias=True, fwd_kwargs=None, **ctor):
    return Case(name, func, x, None, bias=bias, ctor=ctor, fwd_kwargs=fwd_kwargs)


CASES = [
    # conv1d
    C("c1d_basic", "conv1d", (2, 3, 11), (4, 3, 3)),
    C("c1d_stride_pad", "conv1d", (2, 4, 13), (6, 4, 5), stride=2, padding=2),
    C("c1d_dil_groups", "conv1d", (2, 6, 14), (4, 3, 3), dilation=2, groups=2, padding=1),
    C("c1d_depthwise", "conv1d", (2, 5, 10), (5, 1, 3), groups=5, padding=1, bias=False),
    C("c1d_1x1", "conv1d", (3, 8, 7), (5, 8, 1)),
    C("c1d_same_even", "conv1d", (2, 3, 9), (4, 3, 4), padding="same"),
    C("c1d_valid", "conv1d", (2, 3, 9), (4, 3, 4), padding="valid"),
    # conv2d
    C("c2d_basic", "conv2d", (2, 3, 8, 8), (4, 3, 3, 3)),
    C("c2d_nobias", "conv2d", (2, 3, 8, 8), (4, 3, 3, 3), bias=False),
    C("c2d_asym", "conv2d", (2, 3, 7, 12), (5, 3, 2, 4), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    C("c2d_stride3_pad", "conv2d", (2, 4, 11, 9), (6, 4, 3, 3), stride=3, padding=1),
    C("c2d_groups3", "conv2d", (2, 6, 7, 7), (9, 2, 3, 3), groups=3, padding=1),
    C("c2d_depthwise", "conv2d", (2, 8, 9, 9), (8, 1, 3, 3), groups=8, padding=1),
    C("c2d_depthwise_mult", "conv2d", (2, 4, 8, 8), (8, 1, 3, 3), groups=4, stride=2, padding=1),
    C("c2d_1x1", "conv2d", (2, 16, 5, 5), (8, 16, 1, 1)),
    C("c2d_1x1_stride2", "conv2d", (2, 8, 7, 7), (12, 8, 1, 1), stride=2),
    C("c2d_dilated", "conv2d", (1, 3, 12, 12), (4, 3, 3, 3), dilation=3, padding=3),
    C("c2d_kernel_eq_input", "conv2d", (2, 3, 5, 5), (4, 3, 5, 5)),
    C("c2d_big_pad", "conv2d", (1, 2, 4, 4), (3, 2, 3, 3), padding=3),
    C("c2d_same_dil_even", "conv2d", (2, 3, 9, 8), (4, 3, 2, 4), padding="same", dilation=(2, 1)),
    C("c2d_valid", "conv2d", (2, 3, 9, 8), (4, 3, 3, 2), padding="valid", stride=2),
    C("c2d_batch1", "conv2d", (1, 5, 6, 6), (3, 5, 3, 3), padding=1),
    C("c2d_wide_k", "conv2d", (2, 2, 6, 20), (3, 2, 1, 7), padding=(0, 3)),
    # long reductions for the weight and bias gradients (N*P*Q in the thousands): summation accuracy
    C("c2d_long_reduce", "conv2d", (4, 2, 40, 40), (3, 2, 3, 3), padding=1),
    C("c1d_long_reduce", "conv1d", (4, 2, 1500), (2, 2, 5), padding=2),
    # conv3d
    C("c3d_basic", "conv3d", (2, 2, 5, 6, 5), (3, 2, 3, 3, 3), padding=1),
    C("c3d_stride_groups", "conv3d", (2, 4, 6, 6, 6), (4, 2, 3, 2, 3), stride=(2, 1, 2), groups=2),
    C("c3d_dil_nobias", "conv3d", (1, 3, 7, 7, 7), (2, 3, 2, 2, 2), dilation=2, bias=False),
    C("c3d_depthwise", "conv3d", (2, 3, 5, 5, 5), (3, 1, 3, 3, 3), groups=3, padding=1),
    C("c3d_1x1", "conv3d", (2, 6, 3, 4, 5), (4, 6, 1, 1, 1)),
    C("c3d_same", "conv3d", (1, 2, 5, 6, 4), (3, 2, 2, 3, 2), padding="same"),
    # transposed
    C("t1d_basic", "conv_transpose1d", (2, 4, 7), (4, 3, 3)),
    C("t1d_stride_outpad", "conv_transpose1d", (2, 4, 6), (4, 5, 3), stride=3, padding=1, output_padding=2),
    C("t1d_groups_dil", "conv_transpose1d", (2, 6, 5), (6, 2, 3), groups=3, dilation=2),
    C("t2d_basic", "conv_transpose2d", (2, 4, 5, 5), (4, 3, 3, 3)),
    C("t2d_stride2", "conv_transpose2d", (2, 4, 5, 4), (4, 6, 4, 4), stride=2, padding=1),
    C("t2d_asym_outpad", "conv_transpose2d", (2, 3, 4, 6), (3, 2, 3, 2), stride=(2, 3), padding=(1, 0),
      output_padding=(1, 2), dilation=(1, 1)),
    C("t2d_groups", "conv_transpose2d", (2, 6, 5, 5), (6, 2, 3, 3), groups=2, stride=2, padding=1,
      output_padding=1),
    C("t2d_depthwise", "conv_transpose2d", (2, 4, 5, 5), (4, 1, 3, 3), groups=4, padding=1, bias=False),
    C("t2d_dilated", "conv_transpose2d", (1, 3, 4, 4), (3, 2, 3, 3), dilation=2, padding=1),
    C("t2d_1x1", "conv_transpose2d", (2, 8, 4, 4), (8, 4, 1, 1)),
    C("t1d_long_reduce", "conv_transpose1d", (4, 2, 800), (2, 3, 3), stride=2, padding=1),
    C("t3d_basic", "conv_transpose3d", (2, 3, 3, 4, 3), (3, 2, 3, 3, 3), stride=2, padding=1, output_padding=1),
    C("t3d_groups", "conv_transpose3d", (1, 4, 3, 3, 3), (4, 3, 2, 2, 2), groups=2, dilation=(1, 2, 1)),
    # medium, odd sizes: GEMM tile edges in M, N and K
    C("c2d_medium_odd", "conv2d", (3, 37, 17, 19), (70, 37, 3, 3), padding=1),
    C("c2d_medium_grouped", "conv2d", (2, 64, 15, 15), (96, 16, 3, 3), groups=4, stride=2, padding=1),
    C("c1d_medium", "conv1d", (3, 65, 129), (130, 65, 5), padding=2),
    C("t2d_medium", "conv_transpose2d", (2, 48, 9, 11), (48, 33, 4, 4), stride=2, padding=1),
    C("c3d_medium", "conv3d", (2, 24, 7, 9, 8), (40, 24, 3, 3, 3), padding=1),
    C("c2d_medium_1x1", "conv2d", (4, 129, 9, 9), (67, 129, 1, 1)),
    # nn modules: padding strings, padding modes
    M("m_conv1d_reflect", "Conv1d", (2, 3, 10), in_channels=3, out_channels=4, kernel_size=3, padding=2,
      padding_mode="reflect"),
    M("m_conv1d_circular_same", "Conv1d", (2, 3, 10), in_channels=3, out_channels=4, kernel_size=4, padding="same",
      padding_mode="circular"),
    M("m_conv2d_same", "Conv2d", (2, 3, 7, 9), in_channels=3, out_channels=6, kernel_size=(3, 4), padding="same"),
    M("m_conv2d_valid", "Conv2d", (2, 3, 7, 9), in_channels=3, out_channels=6, kernel_size=3, padding="valid",
      stride=2),
    M("m_conv2d_reflect", "Conv2d", (2, 4, 8, 8), in_channels=4, out_channels=4, kernel_size=3, padding=1,
      padding_mode="reflect", groups=2),
    M("m_conv2d_replicate", "Conv2d", (2, 3, 6, 7), in_channels=3, out_channels=5, kernel_size=3, padding=(2, 1),
      padding_mode="replicate", stride=2),
    M("m_conv2d_circular", "Conv2d", (2, 3, 6, 6), in_channels=3, out_channels=3, kernel_size=3, padding=1,
      padding_mode="circular", dilation=1),
    M("m_conv2d_same_reflect_dil", "Conv2d", (1, 2, 9, 9), in_channels=2, out_channels=4, kernel_size=3,
      padding="same", padding_mode="reflect", dilation=2),
    M("m_conv3d_replicate", "Conv3d", (1, 2, 5, 5, 5), in_channels=2, out_channels=3, kernel_size=3, padding=1,
      padding_mode="replicate"),
    M("m_conv3d_same", "Conv3d", (2, 2, 4, 5, 6), in_channels=2, out_channels=2, kernel_size=(2, 3, 1),
      padding="same"),
    M("m_convt1d", "ConvTranspose1d", (2, 4, 6), in_channels=4, out_channels=2, kernel_size=4, stride=2, padding=1),
    M("m_convt2d_outsize", "ConvTranspose2d", (2, 4, 5, 5), in_channels=4, out_channels=3, kernel_size=3, stride=2,
      padding=1, fwd_kwargs={"output_size": [10, 10]}),
    M("m_convt2d_groups", "ConvTranspose2d", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=(2, 3),
      groups=2, stride=(1, 2)),
    M("m_convt3d", "ConvTranspose3d", (1, 2, 3, 3, 4), in_channels=2, out_channels=3, kernel_size=2, stride=2),
]
CASE_IDS = [c.name for c in CASES]
CASE_BY_NAME = {c.name: c for c in CASES}


def random_cases(seed, count):
    """Random valid convolutions (dims, transposed, groups, kernel, stride, padding, dilation, output padding)."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        nd = rng.choice([1, 2, 2, 3])
        transposed = rng.random() < 0.35
        g = rng.choice([1, 1, 2, 3])
        cpg, kpg = rng.randint(1, 3), rng.randint(1, 3)
        n = rng.randint(1, 3)
        kmax = 2 if nd == 3 else 4
        k = [rng.randint(1, kmax) for _ in range(nd)]
        s = [rng.randint(1, 3) for _ in range(nd)]
        d = [rng.randint(1, 2) for _ in range(nd)]
        p = [rng.randint(0, (d[i] * (k[i] - 1)) // 2 + 1) for i in range(nd)]
        size = [rng.randint(3, 8 if nd < 3 else 5) for _ in range(nd)]
        kw = {"stride": tuple(s), "padding": tuple(p), "dilation": tuple(d), "groups": g}
        if transposed:
            op = [rng.randint(0, max(s[i], d[i]) - 1) for i in range(nd)]
            kw["output_padding"] = tuple(op)
            outsz = [(size[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(nd)]
            w = (g * cpg, kpg) + tuple(k)
            func = "conv_transpose%dd" % nd
        else:
            outsz = [(size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
            w = (g * kpg, cpg) + tuple(k)
            func = "conv%dd" % nd
        if min(outsz) < 1:
            continue
        x = (n, g * cpg) + tuple(size)
        out.append(C("rand%d_%s" % (len(out), func), func, x, w, bias=rng.random() < 0.7, **kw))
    return out


RANDOM_CASES = random_cases(20240611, 40)


# ----------------------------------------------------------------------------------------------------------------
# The runner


def _make_inputs(case, dtype, layout=None):
    """float64 master copies of x, w, b and grad_output's generator, already rounded to `dtype`."""
    xs, ws, bs = case.shapes()
    x = torch.randn(xs, dtype=torch.float64).to(dtype).double()
    w = (torch.randn(ws, dtype=torch.float64) / math.sqrt(max(1, prod(ws[1:])))).to(dtype).double()
    b = torch.randn(bs, dtype=torch.float64).to(dtype).double() if bs is not None else None
    return x, w, b


def _leaf(t, device, dtype, requires_grad, memory_format=None):
    if t is None:
        return None
    t = t.to(device=device, dtype=dtype)
    if memory_format is not None and t.dim() in (4, 5):
        t = t.contiguous(memory_format=memory_format)
    return t.detach().requires_grad_(requires_grad)


def _run(fn, x, w, b, gy_fn, need_grad, ctx=None):
    """Run fn, then autograd.grad for the tensors in need_grad. Returns (y, {name: grad})."""
    y = fn(x, w, b)
    grads = {}
    wanted = [(n, t) for n, t in (("input", x), ("weight", w), ("bias", b)) if t is not None and n in need_grad]
    if wanted and torch.is_grad_enabled():
        gy = gy_fn(y)
        got = torch.autograd.grad(y, [t for _, t in wanted], gy)
        grads = {n: g for (n, _), g in zip(wanted, got)}
    return y, grads


def reduction_length(xs, ws, ys, transposed):
    k = prod(ws[2:])
    return max(ws[0] * k, ws[1] * k, xs[0] * prod(ys[2:]), xs[0] * prod(xs[2:]), 1)


MEMORY_FORMATS = {"cl2d": torch.channels_last, "cl3d": torch.channels_last_3d}


def check_case(gc, case, device, dtype, need_grad=("input", "weight", "bias"), memory_format=None,
               autocast=None, no_grad=False, enable_kwargs=None, check_layout=False):
    """The whole check for one case. `autocast` is the autocast dtype (inputs then stay float32 and the conv runs
    in that dtype); `need_grad` names the leaves that require grad."""
    enable_kwargs = enable_kwargs or {}
    run_dtype = autocast if autocast is not None else dtype
    leaf_dtype = torch.float32 if autocast is not None else dtype
    x64, w64, b64 = _make_inputs(case, run_dtype)
    fn = case.make_fn()
    need = tuple(n for n in need_grad if not (n == "bias" and b64 is None))

    # grad_output: made from the output's shape once known, rounded to the run dtype, same for every run.
    gy_store = {}

    def gy_fn(y):
        if "gy" not in gy_store:
            gy_store["gy"] = torch.randn(y.shape, dtype=torch.float64).to(run_dtype).double()
        return gy_store["gy"].to(device=y.device, dtype=y.dtype)

    def abs_gy_fn(y):
        return gy_fn(y).abs()

    # 1. float64 reference (PyTorch's own conv, gemmconv off) and the same on absolute values for the error scale.
    with gc.off():
        x, w, b = (_leaf(t, "cpu", torch.float64, n in need) for t, n in ((x64, "input"), (w64, "weight"),
                                                                          (b64, "bias")))
        ref_y, ref_g = _run(fn, x, w, b, gy_fn, need)
        ax, aw, ab = (_leaf(None if t is None else t.abs(), "cpu", torch.float64, n in need)
                      for t, n in ((x64, "input"), (w64, "weight"), (b64, "bias")))
        abs_y, abs_g = _run(fn, ax, aw, ab, abs_gy_fn, need)

    grad_ctx = torch.no_grad() if no_grad else _null()

    def run_in_dtype():
        x, w, b = (_leaf(t, device, leaf_dtype, n in need and not no_grad, memory_format)
                   for t, n in ((x64, "input"), (w64, "weight"), (b64, "bias")))
        ac = torch.autocast(device_type=torch.device(device).type, dtype=autocast) if autocast is not None \
            else _null()
        with grad_ctx:
            with ac:
                return _run(fn, x, w, b, gy_fn, need)

    # 2. PyTorch's own result in the test dtype (may be missing where PyTorch has no kernel for it).
    torch_err = None
    with gc.off():
        try:
            t_y, t_g = run_in_dtype()
        except RuntimeError as e:
            torch_err = str(e).splitlines()[0]
            t_y, t_g = None, None

    # 3. gemmconv.
    where = "{} {} {}".format(case.name, device, dtype_name(run_dtype))
    before = gc.totals()
    winograd_before = sum(gc.solver_counts(d).get("winograd_gemm", 0) for d in DIRECTIONS)
    with gc.on(device, **enable_kwargs):
        try:
            g_y, g_g = run_in_dtype()
        except RuntimeError as e:
            msg = str(e).splitlines()[0]
            if torch_err is not None and msg == torch_err:
                # The same error with gemmconv off: a kernel PyTorch itself lacks (e.g. reflection_pad1d in bf16
                # on torch 1.13 CPU), outside the convolution.
                pytest.skip("PyTorch itself fails this case in {} on {}: {}".format(dtype_name(run_dtype), device,
                                                                                  msg))
            raise
        if device == "cuda":
            torch.cuda.synchronize()
    delta = gc.delta(before, gc.totals())
    # Winograd's transforms amplify rounding by a documented factor (docs/design.md, "Tolerance"):
    # typically 31.4 for F(4x4), 1.67 for F(2x2); compared with PyTorch's direct sums it may be that
    # much worse, and no more.
    winograd_ran = sum(gc.solver_counts(d).get("winograd_gemm", 0) for d in DIRECTIONS) > winograd_before
    amplification = 283.0 / 9.0 if winograd_ran else 1.0

    # Every direction that ran went through gemmconv, exactly once each.
    ran_bwd = not no_grad and len(need) > 0
    want = {"forward": 1,
            "backward_data": int(ran_bwd and "input" in need),
            "backward_weight": int(ran_bwd and "weight" in need),
            "backward_bias": int(ran_bwd and "bias" in need and b64 is not None)}
    if x64.numel() == 0:
        # An empty problem has no GEMM to run: the binding answers it itself (empty output, zero gradients)
        # without reaching the engine, which is what counts. Never more than the calls made.
        assert all(0 <= delta[d] <= want[d] for d in want), "{}: stats deltas {} (calls made: {})".format(
            where, delta, want)
    else:
        gc.assert_counts(delta, where=where, **want)

    # Shapes and dtypes as PyTorch's own.
    assert tuple(g_y.shape) == tuple(ref_y.shape), where
    assert g_y.device.type == torch.device(device).type, where
    assert g_y.dtype == run_dtype, "{}: output dtype {} (expected {})".format(where, g_y.dtype, run_dtype)
    if t_y is not None:
        assert g_y.dtype == t_y.dtype
        if check_layout and memory_format is not None:
            # Where PyTorch keeps channels-last, so must gemmconv (the reverse is allowed: torch 1.13's CPU
            # conv3d, for one, returns a contiguous output for a channels-last-3d input).
            assert g_y.is_contiguous(memory_format=memory_format) or \
                not t_y.is_contiguous(memory_format=memory_format), \
                "{}: PyTorch returns channels-last, gemmconv does not (gemmconv strides {}, PyTorch {})".format(
                    where, g_y.stride(), t_y.stride())
    if no_grad:
        assert not g_y.requires_grad and not g_g, where
        ref_g = {}
    assert set(g_g) == set(ref_g), where

    L = reduction_length(tuple(x64.shape), tuple(w64.shape), tuple(ref_y.shape), case.transposed)
    budget = gc.budget(L)
    results = [("output", g_y, t_y, ref_y, abs_y)]
    for n in sorted(ref_g):
        results.append(("grad_" + n, g_g[n], None if t_g is None else t_g[n], ref_g[n], abs_g[n]))
    problems = []
    for name, got, theirs, ref, absref in results:
        assert tuple(got.shape) == tuple(ref.shape), "{} {}: shape {} vs {}".format(where, name, got.shape,
                                                                                   ref.shape)
        if name != "output":
            assert got.dtype == leaf_dtype, "{} {}: dtype {}".format(where, name, got.dtype)
        e_g = gc.error_ratio(got, ref, absref, run_dtype)
        if e_g > budget:
            problems.append("{}: gemmconv error {:.3g} roundings > budget {:.3g} (max abs diff {:.3g})".format(
                name, e_g, budget, float((got.detach().cpu().double() - ref).abs().max())))
        if theirs is not None:
            e_t = gc.error_ratio(theirs, ref, absref, run_dtype)
            if e_t > budget:
                # PyTorch's own kernel is off by more than rounding (seen: torch 1.13 CPU bf16 depthwise
                # conv_transpose2d). Not gemmconv's fault; say so and compare gemmconv with float64 only.
                warnings.warn("{} {}: PyTorch's own result is off by {:.3g} roundings (budget {:.3g})".format(
                    where, name, e_t, budget))
            elif e_g > amplification * (4.0 * e_t + 2.0):
                problems.append("{}: gemmconv error {:.3g} roundings is much worse than PyTorch's own {:.3g}{}".format(
                    name, e_g, e_t, " (winograd_gemm, amplification {:.1f})".format(amplification)
                    if winograd_ran else ""))
    assert not problems, "{} (L={}): {}".format(where, L, "; ".join(problems))
    return torch_err


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ----------------------------------------------------------------------------------------------------------------
# Tests

def _dtype_params():
    out = []
    for dev in DEVICES:
        for dt in dtypes_for(dev):
            out.append(pytest.param(dev, dt, id="{}-{}".format(dev, dtype_name(dt))))
    return out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("device,dtype", _dtype_params())
def test_sweep(gc, case, device, dtype):
    check_case(gc, case, device, dtype)


@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c.name for c in RANDOM_CASES])
@pytest.mark.parametrize("device,dtype", _dtype_params())
def test_random_configs(gc, case, device, dtype):
    check_case(gc, case, device, dtype)


GRAD_SUBSETS = [("input",), ("weight",), ("bias",), ("weight", "bias"), ("input", "bias"), ()]


@pytest.mark.parametrize("need", GRAD_SUBSETS, ids=["+".join(s) or "none" for s in GRAD_SUBSETS])
@pytest.mark.parametrize("case_name", ["c2d_asym", "t2d_groups", "c3d_stride_groups", "c1d_stride_pad"])
def test_requires_grad_subsets(gc, device, case_name, need):
    """Backward counts follow requires_grad exactly: only the requested gradients are computed."""
    check_case(gc, CASE_BY_NAME[case_name], device, torch.float32, need_grad=need)


@pytest.mark.parametrize("case_name", ["c2d_basic", "t2d_stride2", "c3d_basic", "m_conv2d_reflect"])
def test_no_grad(gc, device, case_name):
    check_case(gc, CASE_BY_NAME[case_name], device, torch.float32, no_grad=True)


CL_CASES = ["c2d_medium_odd", "c3d_medium", "c2d_basic", "c2d_groups3", "c2d_depthwise", "c2d_1x1", "c2d_asym",
            "t2d_stride2", "t2d_groups", "c3d_basic", "c3d_stride_groups", "t3d_basic", "m_conv2d_reflect"]


@pytest.mark.parametrize("case_name", CL_CASES)
@pytest.mark.parametrize("device,dtype", _dtype_params())
def test_channels_last(gc, device, dtype, case_name):
    case = CASE_BY_NAME[case_name]
    fmt = torch.channels_last_3d if len(case.x_shape) == 5 else torch.channels_last
    check_case(gc, case, device, dtype, memory_format=fmt)


@pytest.mark.parametrize("case_name", ["c2d_basic", "c2d_groups3", "c3d_basic"])
def test_channels_last_output_layout(gc, device, case_name):
    """The output's memory format follows PyTorch's own choice for channels-last inputs."""
    case = CASE_BY_NAME[case_name]
    fmt = torch.channels_last_3d if len(case.x_shape) == 5 else torch.channels_last
    check_case(gc, case, device, torch.float32, memory_format=fmt, check_layout=True)


AUTOCAST_CASES = ["c2d_basic", "c2d_groups3", "t2d_stride2", "c3d_basic", "c1d_dil_groups", "m_conv2d_same"]


@pytest.mark.parametrize("case_name", AUTOCAST_CASES)
@pytest.mark.parametrize("ac_dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_autocast_cuda(gc, case_name, ac_dtype):
    if not torch.cuda.is_available():
        pytest.skip("autocast on CUDA needs a CUDA/HIP device")
    check_case(gc, CASE_BY_NAME[case_name], "cuda", torch.float32, autocast=ac_dtype)


@pytest.mark.parametrize("case_name", ["c2d_basic", "c2d_groups3", "t2d_stride2"])
def test_autocast_cpu_bf16(gc, case_name):
    """CPU autocast runs conv in bf16; the routed kernel must receive and honour the cast dtype."""
    try:
        torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    except Exception as e:  # pragma: no cover - very old torch
        pytest.skip("CPU autocast unavailable in this torch: {}".format(e))
    case = CASE_BY_NAME[case_name]
    # Probe that CPU autocast casts conv inputs in this torch build.
    x = torch.randn(case.shapes()[0])
    w = torch.randn(case.shapes()[1])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        probe = case.make_fn()(x, w, None)
    if probe.dtype != torch.bfloat16:
        pytest.skip("this torch's CPU autocast does not run conv in bf16")
    check_case(gc, case, "cpu", torch.float32, autocast=torch.bfloat16)


@pytest.mark.parametrize("case_name", ["c2d_basic", "c1d_stride_pad", "c3d_basic", "t2d_stride2", "t1d_basic",
                                       "t3d_basic"])
def test_empty_batch(gc, device, case_name):
    """N=0 is valid: an empty output, empty input gradient, zero weight and bias gradients."""
    base = CASE_BY_NAME[case_name]
    case = Case(base.name + "_n0", base.func, (0,) + base.x_shape[1:], base.w_shape, bias=base.bias,
                call_kwargs=base.call_kwargs)
    check_case(gc, case, device, torch.float32)


def _solver_param_list():
    try:
        names = list(gemmconv.solver_names())
    except Exception:  # reported by test_solver_names_listed
        names = []
    return [n for n in names if n != "reference"] + ["reference"]


FORCED_CASES = ["c2d_basic", "c2d_1x1", "c2d_1x1_stride2", "c1d_1x1", "c3d_1x1", "t2d_1x1", "c2d_groups3",
                "c2d_depthwise", "t2d_groups", "c3d_stride_groups", "c1d_dil_groups", "m_conv2d_circular"]


def test_solver_names_listed():
    names = list(gemmconv.solver_names())
    assert "reference" in names, names
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("solver", _solver_param_list())
@pytest.mark.parametrize("case_name", FORCED_CASES)
def test_each_solver(gc, device, solver, case_name):
    """Every solver, not only the first applicable one, against the float64 reference: all other solvers but
    the reference are switched off, so `solver` runs wherever it says it applies."""
    others = [n for n in gemmconv.solver_names() if n not in (solver, "reference")]
    gemmconv.reset_stats()
    check_case(gc, CASE_BY_NAME[case_name], device, torch.float32, enable_kwargs={"disable_solvers": others})
    for direction in ("forward", "backward_data", "backward_weight"):
        used = {k: v for k, v in gc.solver_counts(direction).items() if v}
        assert not (set(used) & set(others)), "{} ran a disabled solver: {}".format(direction, used)
    # Where a solver must apply, it really ran (else this test would only ever check the reference).
    must = MUST_APPLY.get(solver)
    if must is not None and (must == "all" or case_name in must):
        assert gc.solver_counts("forward").get(solver, 0) > 0, "{} did not run the forward pass of {}: {}".format(
            solver, case_name, gemmconv.stats()["forward"])


# Solvers that must take every forward pass of these cases when left alone with the reference.
MUST_APPLY = {
    "im2col_gemm": "all",
    "gemm_1x1": ("c2d_1x1", "c1d_1x1", "c3d_1x1"),
    "depthwise_direct": ("c2d_depthwise",),
}


def test_small_workspace_still_correct(gc, device):
    """A workspace budget far below what im2col needs must still give the right answer (chunking or another
    solver), never a wrong one."""
    case = C("ws_c2d", "conv2d", (4, 16, 24, 24), (16, 16, 3, 3), padding=1)
    check_case(gc, case, device, torch.float32, enable_kwargs={"workspace_mb": 1})


def test_stats_totals_consistent(gc, device):
    case = CASE_BY_NAME["c2d_basic"]
    check_case(gc, case, device, torch.float32)
    s = gemmconv.stats()
    for d in gc.directions:
        assert d in s, "gemmconv.stats() lacks direction {!r}: {}".format(d, s)
        per_solver = sum(v for k, v in s[d].items() if k != "total")
        assert per_solver == s[d]["total"], "{}: solver counts {} do not add up to total".format(d, s[d])
    gemmconv.reset_stats()
    assert all(v == 0 for v in gc.totals().values()), gemmconv.stats()


def test_disabled_means_pytorch(gc, device):
    """With gemmconv off for the device, convolutions are PyTorch's own and nothing is counted."""
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, device=device, requires_grad=True)
    before = gc.totals()
    F.conv2d(x, w).sum().backward()
    gc.assert_counts(gc.delta(before, gc.totals()), forward=0, backward_data=0, backward_weight=0,
                     backward_bias=0)
    other = "cuda" if device == "cpu" else "cpu"
    if other == "cuda" and not torch.cuda.is_available():
        return
    # Enabled for the other device type only: still PyTorch's own here.
    with gc.on(other):
        assert gemmconv.is_enabled(other) and not gemmconv.is_enabled(device)
        F.conv2d(x, w).sum().backward()
    gc.assert_counts(gc.delta(before, gc.totals()), forward=0, backward_data=0, backward_weight=0,
                     backward_bias=0)


def test_non_contiguous_inputs(gc, device):
    """Sliced and transposed views as input, weight and grad_output."""
    xb = torch.randn(2, 8, 10, 12, dtype=torch.float64)
    wb = torch.randn(3, 6, 3, 3, dtype=torch.float64) / 5
    gyb = torch.randn(2, 4, 8, 16, dtype=torch.float64)

    def run(dev, dtype):
        xl = xb.to(dev, dtype).requires_grad_()
        wl = wb.to(dev, dtype).requires_grad_()
        x = xl[:, ::2, :, 1:11][:, :3].transpose(2, 3)  # (2, 3, 10, 10), strided and transposed
        w = wl.transpose(0, 1)[:4]                      # (4, 3, 3, 3), non-contiguous
        assert not x.is_contiguous() and not w.is_contiguous()
        y = F.conv2d(x, w)
        gy = gyb.to(dev, dtype)[:, :, :, ::2]           # (2, 4, 8, 8), strided
        gx, gw = torch.autograd.grad(y, [xl, wl], gy)
        return y, gx, gw

    with gc.off():
        ref = run("cpu", torch.float64)
    before = gc.totals()
    with gc.on(device):
        got = run(device, torch.float32)
    gc.assert_counts(gc.delta(before, gc.totals()), forward=1, backward_data=1, backward_weight=1)
    for name, a, b in zip(("output", "grad_input", "grad_weight"), got, ref):
        assert gc.rel_diff(a, b) < 1e-5, "{}: rel diff {}".format(name, gc.rel_diff(a, b))


def test_double_backward_routed(gc, device):
    """Double backward (a gradient penalty) is built from convolutions too, all routed."""
    def run(dev, dtype):
        x = torch.linspace(-1, 1, 2 * 3 * 7 * 7, dtype=torch.float64).reshape(2, 3, 7, 7).to(dev, dtype)
        x.requires_grad_()
        w = torch.linspace(-0.5, 0.4, 5 * 3 * 3 * 3, dtype=torch.float64).reshape(5, 3, 3, 3).to(dev, dtype)
        w.requires_grad_()
        y = F.conv2d(x, w, padding=1)
        (gx,) = torch.autograd.grad((y * y).sum(), [x], create_graph=True)
        penalty = (gx * gx).sum()
        return torch.autograd.grad(penalty, [x, w])

    with gc.off():
        ref = run("cpu", torch.float64)
    before = gc.totals()
    with gc.on(device):
        got = run(device, torch.float32)
    d = gc.delta(before, gc.totals())
    assert d["forward"] >= 2 and d["backward_data"] >= 2 and d["backward_weight"] >= 1, d
    for a, b in zip(got, ref):
        assert gc.rel_diff(a, b) < 1e-4, gc.rel_diff(a, b)
