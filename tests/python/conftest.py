"""Shared fixtures for the Python tests: devices to test, gemmconv on/off helpers, stats deltas, seeds, tolerances."""

import contextlib
import math
import os
import random
import sys
import tempfile

import pytest
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON_DIR = os.path.join(REPO_ROOT, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

import gemmconv  # noqa: E402  (the tree's package, found through PYTHON_DIR)

# The suites meet thousands of problems once each: no find step unless a test asks for one
# (tests/python/test_find.py), and never the user's own perf database.
os.environ.setdefault("GEMMCONV_FIND", "off")
os.environ.setdefault("GEMMCONV_PERFDB", os.path.join(
    tempfile.mkdtemp(prefix="gemmconv-test-perfdb-"), "perfdb.txt"))

DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")

# "cpu" is always tested, through gemmconv's CPU routing; "cuda" (HIP devices included) where PyTorch sees one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

TORCH_VERSION = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())


def dtypes_for(device):
    """The dtypes the sweep runs on a device. CPU: PyTorch's own CPU conv has no fp16 kernels on 1.13, so fp16 is
    a CUDA-only dtype here; bf16 runs on CPU (cases whose PyTorch CPU kernel lacks bf16 lose only the comparison
    with PyTorch's own result, never the float64 check)."""
    if device == "cuda":
        return [torch.float32, torch.float16, torch.bfloat16]
    return [torch.float32, torch.bfloat16]


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def _disable_all():
    gemmconv.disable(None)


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device this machine can test: "cpu" always (CPU routing), "cuda" when torch.cuda.is_available()."""
    return request.param


@pytest.fixture(autouse=True)
def _clean_state():
    """Each test starts and ends with gemmconv off everywhere, fresh counters and fixed seeds."""
    _disable_all()
    gemmconv.reset_stats()
    torch.manual_seed(0)
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:
        pass
    yield
    _disable_all()


@pytest.fixture(autouse=True, scope="session")
def _no_tf32():
    """fp32 comparisons are against true fp32 (and float64): TF32 off for cuDNN and cuBLAS, restored afterwards."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    with backend_flags_unfrozen():
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    yield
    with backend_flags_unfrozen():
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def backend_flags_unfrozen():
    """torch's own test utilities (imported by test_opinfo) freeze torch.backends flags process-wide; allow
    setting them inside this block all the same."""
    allow = getattr(torch.backends, "__allow_nonbracketed_mutation", None)
    if allow is None:
        yield
    else:
        with allow():
            yield


@pytest.fixture
def gemmconv_on(device):
    """gemmconv enabled for `device` for the whole test (and disabled afterwards); yields the device string."""
    gemmconv.enable(device_types=(device,))
    try:
        yield device
    finally:
        gemmconv.disable(None)


class Helper:
    """Small toolbox handed to tests through the `gc` fixture."""

    directions = DIRECTIONS

    @staticmethod
    @contextlib.contextmanager
    def on(device, **kwargs):
        """gemmconv routing for `device` inside the block (CPU routing for "cpu"), off again after it."""
        device_type = torch.device(device).type
        # gemmconv.enabled() also restores the configuration (disable_solvers, workspace_mb) afterwards.
        with gemmconv.enabled(device_types=(device_type,), **kwargs):
            yield

    @staticmethod
    @contextlib.contextmanager
    def off():
        """PyTorch's own convolution (the baseline): gemmconv disabled everywhere inside the block."""
        gemmconv.disable(None)
        yield

    @staticmethod
    def totals():
        """{direction: total count} from gemmconv.stats()."""
        s = gemmconv.stats()
        out = {}
        for d in DIRECTIONS:
            entry = s.get(d, {}) or {}
            out[d] = int(entry.get("total", sum(v for k, v in entry.items() if k != "total")))
        return out

    @staticmethod
    def delta(before, after):
        return {d: after[d] - before[d] for d in DIRECTIONS}

    @staticmethod
    def solver_counts(direction):
        """{solver: count} of one direction, without the total."""
        entry = gemmconv.stats().get(direction, {}) or {}
        return {k: int(v) for k, v in entry.items() if k != "total"}

    @staticmethod
    def assert_counts(delta, forward=None, backward_data=None, backward_weight=None, backward_bias=None, where=""):
        want = {"forward": forward, "backward_data": backward_data, "backward_weight": backward_weight,
                "backward_bias": backward_bias}
        bad = {d: (delta[d], w) for d, w in want.items() if w is not None and delta[d] != w}
        assert not bad, "{}gemmconv.stats() deltas differ from the calls made, {{direction: (counted, expected)}}: " \
                        "{} (all deltas: {})".format(where + ": " if where else "", bad, delta)

    @staticmethod
    def error_ratio(got, ref, absref, dtype):
        """max_i |got_i - ref_i| / (eps(dtype) * absref_i + floor): the error in units of one rounding of the
        magnitude the result is made of. `ref` is the float64 result, `absref` the float64 result of the same
        computation on absolute values (the sum of |terms| each element is built from)."""
        eps = torch.finfo(dtype).eps
        got = got.detach().to("cpu", torch.float64)
        ref = ref.detach().to("cpu", torch.float64)
        absref = absref.detach().to("cpu", torch.float64)
        if ref.numel() == 0:
            return 0.0
        if not torch.isfinite(got).all():
            return float("inf")
        floor = eps * (1e-3 * float(absref.max()) + 1e-30)
        return float(((got - ref).abs() / (eps * absref + floor)).max())

    @staticmethod
    def budget(reduction_length):
        """How many roundings a GEMM-ordered sum of `reduction_length` terms may be off by (loose: catches wrong
        results and lost precision, not summation-order noise)."""
        return 4.0 + 2.0 * math.sqrt(max(1, reduction_length))

    @staticmethod
    def rel_diff(a, b):
        """Relative max difference of two tensors (normalised by b's largest magnitude)."""
        a = a.detach().to("cpu", torch.float64)
        b = b.detach().to("cpu", torch.float64)
        if b.numel() == 0:
            return 0.0
        return float((a - b).abs().max() / (b.abs().max() + 1e-30))


@pytest.fixture
def gc():
    return Helper


class ConvCallCounter:
    """Counts how often each convolution module runs (forward hooks) and how many of those calls will produce
    backward work, so that gemmconv.stats() can be checked against what the model really did."""

    CONV_TYPES = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
                  torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)

    def __init__(self, model):
        self.handles = []
        self.calls = []  # (module, input requires grad, weight requires grad, bias requires grad)
        for m in model.modules():
            if isinstance(m, self.CONV_TYPES):
                self.handles.append(m.register_forward_hook(self._hook))

    def _hook(self, module, inputs, output):
        x = inputs[0]
        grad_on = torch.is_grad_enabled()
        self.calls.append((module,
                           grad_on and x.requires_grad,
                           grad_on and module.weight.requires_grad,
                           grad_on and module.bias is not None and module.bias.requires_grad))

    def reset(self):
        self.calls = []

    @property
    def forward(self):
        return len(self.calls)

    def expected_backward(self):
        """Counts expected per backward direction for one backward pass through everything recorded."""
        return {"backward_data": sum(1 for c in self.calls if c[1]),
                "backward_weight": sum(1 for c in self.calls if c[2]),
                "backward_bias": sum(1 for c in self.calls if c[3])}

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


@pytest.fixture
def conv_counter():
    made = []

    def make(model):
        c = ConvCallCounter(model)
        made.append(c)
        return c

    yield make
    for c in made:
        c.remove()
