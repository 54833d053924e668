"""Property-based tests over the whole convolution space (hypothesis): for any convolution PyTorch accepts, gemmconv's
forward and every gradient agree with a float64 computation; for any call PyTorch refuses, gemmconv refuses it with
the same exception class and the same wording.

CI runs a small, derandomized budget (the "ci" profile: the same examples on every run). A long run:

    GEMMCONV_FUZZ_PROFILE=long PYTHONPATH=python /usr/bin/python3 -m pytest tests/python/test_fuzz_properties.py -q

("long": 3000 random examples per test, a different sample each run; GEMMCONV_FUZZ_EXAMPLES=N overrides the count).
A failing example is printed by hypothesis with everything needed to replay it.
"""

import os
import re

import pytest
import torch
import torch.nn.functional as F

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis is not installed (scripts/deps.sh)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gemmconv  # noqa: E402

from conftest import DEVICES, Helper  # noqa: E402

# No example database: nothing is written into the checkout, and the ci profile stays the same every run.
_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=3000, derandomize=False, **_COMMON)
_TORCH_MAJOR = int(torch.__version__.split(".")[0])
_PROFILE = os.environ.get("GEMMCONV_FUZZ_PROFILE", "ci")
_EXAMPLES = os.environ.get("GEMMCONV_FUZZ_EXAMPLES")


def _settings():
    base = settings.get_profile(_PROFILE)
    return settings(base, max_examples=int(_EXAMPLES)) if _EXAMPLES else base


# PyTorch messages that come from one particular PyTorch backend and that gemmconv, having no such backend, does not
# reproduce word for word. The exception class must still match; for these the message must only start the same way
# (the second element), or nothing is required of it (None).
_BACKEND_SPECIFIC = [
    (re.compile(r"could not create a descriptor"), None),  # oneDNN (mkldnn) refusing a shape
    (re.compile(r"could not construct a memory descriptor"), None),  # oneDNN refusing a negative output size
    (re.compile(r"should be the same or input should be a MKLDNN tensor"), None),  # oneDNN's dtype check
    (re.compile(r"^kernel size should be greater than zero"), "kernel size should be greater than zero"),
    (re.compile(r"^non-empty 5D .* tensor expected for weight"), "kernel size should be greater than zero"),
    # The dilation check: oneDNN's wording or the slow path's, depending on the backend PyTorch picks.
    (re.compile(r"^non-positive dilation is not supported"), "dilation should be greater than zero"),
    # An empty batch whose transposed output size is negative: PyTorch fails reshaping its empty result, gemmconv
    # names the sizes ("Output size is too small").
    (re.compile(r"^cannot reshape tensor of 0 elements|^invalid shape dimension -|^only one dimension can be inferred"),
     "Given input size per channel"),
]


# PyTorch failures that are PyTorch bugs rather than refusals, all on its empty-batch path: it cannot view a
# non-contiguous (channels-last) weight, and it indexes past a zero-size kernel. gemmconv computes the empty result
# instead (or its own refusal of a negative output size); that is not counted as a difference.
_PYTORCH_BUGS = [re.compile(r"^view size is not compatible with input tensor's size and stride"),
                 re.compile(r"^select\(\): index 0 out of range for tensor of size \[0\]")]


def _out_sizes(case):
    """The output's spatial sizes, as PyTorch computes them."""
    sizes = []
    for i in range(case["dims"]):
        span = case["dilation"][i] * (case["kernel"][i] - 1)
        if case["transposed"]:
            sizes.append((case["size"][i] - 1) * case["stride"][i] - 2 * case["padding"][i] + span + 1 +
                         case["output_padding"][i])
        else:
            sizes.append((case["size"][i] + 2 * case["padding"][i] - span - 1) // case["stride"][i] + 1)
    return sizes


def _pytorch_bug(theirs, ours, case):
    if case["n"] == 0 and any(p.search(theirs[1]) for p in _PYTORCH_BUGS) and (ours is None or ours[0] is RuntimeError):
        return True
    # A transposed convolution whose output size is 0 has an empty result. PyTorch's GPU backends and its oneDNN CPU
    # path compute it; its slow CPU path (PyTorch 1.x's only one, and 2.x's for some dtypes) refuses it. gemmconv
    # computes it everywhere.
    sizes = _out_sizes(case)
    return (case["transposed"] and ours is None and theirs[1].endswith("Output size is too small")
            and min(sizes) == 0)


def _error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (whatever PyTorch raises is compared)
        return type(exc), (str(exc).splitlines() or [""])[0]
    return None


def _same_error(theirs, ours):
    if ours is None or theirs[0] is not ours[0]:
        return False
    if theirs[1] == ours[1]:
        return True
    for pattern, prefix in _BACKEND_SPECIFIC:
        if pattern.search(theirs[1]):
            return prefix is None or ours[1].startswith(prefix)
    return False


@st.composite
def conv_cases(draw, allow_errors):
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    n = draw(st.sampled_from([0, 1, 1, 2, 3]))
    kernel = [draw(st.integers(1, 4)) for _ in range(dims)]
    stride = [draw(st.integers(1, 3)) for _ in range(dims)]
    dilation = [draw(st.integers(1, 3)) for _ in range(dims)]
    padding = [draw(st.integers(0, 2)) for _ in range(dims)]
    output_padding = [draw(st.integers(0, max(stride[i], dilation[i]) - 1)) for i in range(dims)] if transposed \
        else [0] * dims
    # Input sizes that fit the kernel for a regular convolution (errors are drawn separately).
    size = []
    for i in range(dims):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(1, span - 2 * padding[i]) if not transposed else 1
        size.append(draw(st.integers(low, low + 5)))
    case = dict(dims=dims, transposed=transposed, groups=groups, cin=cin, cout=cout, n=n, kernel=kernel,
                stride=stride, dilation=dilation, padding=padding, output_padding=output_padding, size=size,
                bias=draw(st.booleans()), dtype=draw(st.sampled_from([torch.float32, torch.float64])),
                channels_last=dims > 1 and draw(st.booleans()), weight_channels_last=dims > 1 and draw(st.booleans()),
                error=None)
    if allow_errors:
        case["error"] = draw(st.sampled_from([
            "channels", "bias_size", "bias_dtype", "weight_dtype", "stride0", "negative_padding", "dilation0",
            "output_padding", "kernel_too_big", "kernel0", "input_dims", "groups0"]))
    return case


def _tensors(case, device, dtype):
    g = torch.Generator().manual_seed(1234)
    dims, groups = case["dims"], case["groups"]
    x = torch.randn(case["n"], case["cin"], *case["size"], generator=g, dtype=torch.float64)
    if case["transposed"]:
        w = torch.randn(case["cin"], case["cout"] // groups, *case["kernel"], generator=g, dtype=torch.float64)
    else:
        w = torch.randn(case["cout"], case["cin"] // groups, *case["kernel"], generator=g, dtype=torch.float64)
    b = torch.randn(case["cout"], generator=g, dtype=torch.float64) if case["bias"] else None
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims)
    x = x.to(device, dtype)
    w = w.to(device, dtype)
    if case["channels_last"] and fmt is not None:
        x = x.to(memory_format=fmt)
    if case["weight_channels_last"] and fmt is not None:
        w = w.to(memory_format=fmt)
    b = b.to(device, dtype) if b is not None else None
    return x, w, b


def _call(case, x, w, b):
    dims = case["dims"]
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    if case["transposed"]:
        return getattr(F, "conv_transpose{}d".format(dims))(x, w, b, output_padding=case["output_padding"], **kw)
    return getattr(F, "conv{}d".format(dims))(x, w, b, **kw)


def _break(case, x, w, b):
    """Applies the drawn error to the tensors or parameters."""
    e = case["error"]
    case = dict(case)
    if e == "channels":
        x = torch.cat([x, x[:, :1]], 1)
    elif e == "bias_size":
        b = torch.zeros(case["cout"] + 1, dtype=x.dtype, device=x.device)
    elif e == "bias_dtype":
        b = torch.zeros(case["cout"], dtype=torch.float64 if x.dtype == torch.float32 else torch.float32,
                        device=x.device)
    elif e == "weight_dtype":
        w = w.to(torch.float64 if x.dtype == torch.float32 else torch.float32)
    elif e == "stride0":
        case["stride"] = [0] + case["stride"][1:]
    elif e == "negative_padding":
        case["padding"] = case["padding"][:-1] + [-1]
    elif e == "dilation0":
        case["dilation"] = [0] + case["dilation"][1:]
    elif e == "output_padding":
        case["output_padding"] = [max(case["stride"][0], case["dilation"][0])] + case["output_padding"][1:]
    elif e == "kernel_too_big":
        case["padding"] = [0] * case["dims"]
        shape = list(w.shape)
        shape[2] = x.shape[2] + 1
        w = torch.zeros(shape, dtype=w.dtype, device=w.device)
    elif e == "kernel0":
        shape = list(w.shape)
        shape[-1] = 0
        w = torch.zeros(shape, dtype=w.dtype, device=w.device)
    elif e == "input_dims":
        x = x[0] if x.shape[0] > 0 else x.sum(0)
    elif e == "groups0":
        case["groups"] = 0
    return case, x, w, b


def _device_and_reason(device):
    if device == "cuda" and not gemmconv.config()["gpu_kernels_registered"]:
        pytest.skip("the extension was built without GPU support: CUDA tensors stay with PyTorch")


@pytest.mark.parametrize("device", DEVICES)
def test_forward_and_gradients_match_float64(device):
    _device_and_reason(device)

    @_settings()
    @given(case=conv_cases(allow_errors=False))
    def check(case):
        dtype = case["dtype"]
        x, w, b = _tensors(case, device, dtype)
        # PyTorch decides what is valid; the rare valid-looking draw it refuses is an error case here.
        theirs = _error(lambda: _call(case, x, w, b))
        with gemmconv.enabled(device):
            ours = _error(lambda: _call(case, x, w, b))
        if theirs is not None:
            if _pytorch_bug(theirs, ours, case):
                return
            assert _same_error(theirs, ours), "PyTorch: {}\ngemmconv: {}".format(theirs, ours)
            return
        assert ours is None, "gemmconv refused a call PyTorch accepts: {}".format(ours)

        x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        b64 = b.detach().double().requires_grad_() if b is not None else None
        if min(_out_sizes(case)) == 0:
            # An empty result (a transposed output size of 0): no float64 reference is needed, and PyTorch cannot
            # always give one (cuDNN refuses the backward pass of some of these shapes). Zero gradients.
            xs, ws = x.detach().requires_grad_(), w.detach().requires_grad_()
            bs = b.detach().requires_grad_() if b is not None else None
            with gemmconv.enabled(device):
                y = _call(case, xs, ws, bs)
                grads = torch.autograd.grad(y.sum(), [t for t in (xs, ws, bs) if t is not None], allow_unused=True)
            assert y.numel() == 0 and y.shape[:2] == (case["n"], case["cout"]), y.shape
            assert list(y.shape[2:]) == _out_sizes(case), y.shape
            for got, like in zip(grads, (xs, ws, bs)):
                assert got is not None and got.shape == like.shape and not got.any()
            return
        ref = _call(case, x64, w64, b64)
        gout = torch.randn(ref.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(ref.device)
        refs = torch.autograd.grad(ref, [t for t in (x64, w64, b64) if t is not None], gout, allow_unused=True)

        xs, ws = x.detach().requires_grad_(), w.detach().requires_grad_()
        bs = b.detach().requires_grad_() if b is not None else None
        gemmconv.reset_stats()
        with gemmconv.enabled(device):
            y = _call(case, xs, ws, bs)
            grads = torch.autograd.grad(y, [t for t in (xs, ws, bs) if t is not None], gout.to(device, dtype),
                                        allow_unused=True)
        if case["n"] > 0:  # an empty batch is answered in the binding, without the engine
            assert gemmconv.stats()["forward"]["total"] == 1, "the call was not routed through gemmconv"
        assert y.shape == ref.shape and y.dtype == dtype

        # Magnitudes the results are made of (the same computations on absolute values), for the error scale.
        ax, aw = x64.detach().abs().requires_grad_(), w64.detach().abs().requires_grad_()
        absref = _call(case, ax, aw, b64.detach().abs() if b64 is not None else None)
        abs_grads = torch.autograd.grad(absref, [ax, aw], gout.abs())
        reduction = max(1, case["cin"] // case["groups"] * int(torch.tensor(case["kernel"]).prod()))
        tol = Helper.budget(reduction * max(1, case["n"]) * max(1, y[0, 0].numel() if y.numel() else 1))
        checks = [("forward", y, ref, absref)]
        checks.append(("grad_input", grads[0], refs[0], abs_grads[0]))
        checks.append(("grad_weight", grads[1], refs[1], abs_grads[1]))
        if b is not None:
            checks.append(("grad_bias", grads[2], refs[2], gout.abs().sum([0] + list(range(2, gout.dim())))))
        for name, got, want, mag in checks:
            assert got.shape == want.shape, name
            ratio = Helper.error_ratio(got, want, mag, dtype)
            assert ratio <= tol, "{}: error {:.1f} roundings > {:.1f} for {}".format(name, ratio, tol, case)

    check()


@pytest.mark.parametrize("device", DEVICES)
def test_refusals_match_pytorch(device):
    _device_and_reason(device)

    @_settings()
    @given(case=conv_cases(allow_errors=True))
    def check(case):
        # PyTorch checks element types in its backends, which an empty batch never reaches: it accepts a weight or
        # bias of another type there on some paths and not on others. gemmconv always refuses; not compared.
        hypothesis.assume(not (case["n"] == 0 and case["error"] in ("bias_dtype", "weight_dtype")))
        # PyTorch 1.x's 1-D and 3-D CPU paths add a bias of another type with type promotion; 2.x refuses it in
        # conv1d/conv3d themselves, as gemmconv does.
        hypothesis.assume(not (_TORCH_MAJOR < 2 and case["dims"] != 2 and case["error"] == "bias_dtype"))
        x, w, b = _tensors(case, device, case["dtype"])
        # One error at a time: which of two errors a library reports first is not a property worth comparing.
        hypothesis.assume(_error(lambda: _call(case, x, w, b)) is None)
        broken, x, w, b = _break(case, x, w, b)
        theirs = _error(lambda: _call(broken, x, w, b))
        with gemmconv.enabled(device):
            ours = _error(lambda: _call(broken, x, w, b))
        if theirs is None:
            # Some drawn errors are no error for this case (e.g. a zero-size kernel with an empty batch).
            assert ours is None, "gemmconv refused a call PyTorch accepts: {}".format(ours)
        elif not _pytorch_bug(theirs, ours, case):
            assert _same_error(theirs, ours), "{}\nPyTorch: {}\ngemmconv: {}".format(broken["error"], theirs, ours)

    check()
