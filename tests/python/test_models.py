"""Whole models through gemmconv: forward, backward and a few SGD steps match PyTorch's own convolution, and
gemmconv.stats() proves every convolution module call (counted with forward hooks) went through gemmconv."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ConvCallCounter

try:
    import torchvision
except ImportError:  # pragma: no cover - torchvision ships beside torch on both machines
    torchvision = None


# ------------------------------------------------------------------------------------------------------------
# Small hand-written models


class TinyUNet(nn.Module):
    """Encoder-decoder with a skip connection and ConvTranspose2d upsampling."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.enc2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=2)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Conv2d(16, 8, 3, padding=1, padding_mode="reflect")
        self.up2 = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        e1 = F.relu(self.bn1(self.enc1(x)))
        e2 = F.relu(self.enc2(e1))
        m = F.relu(self.mid(e2))
        u = F.relu(self.up(m))
        d = F.relu(self.dec(torch.cat([u, e1], 1)))
        return self.head(F.relu(self.up2(d)))


class AudioNet(nn.Module):
    """1D stack: strided, dilated, depthwise, pointwise and a transposed Conv1d."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 8, 9, stride=2, padding=4)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 16, 5, dilation=2, padding=4)
        self.dw = nn.Conv1d(16, 16, 3, groups=16, padding=1, padding_mode="circular")
        self.pw = nn.Conv1d(16, 32, 1, bias=False)
        self.up = nn.ConvTranspose1d(32, 8, 4, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        x = F.relu(self.c2(x))
        x = F.relu(self.pw(self.dw(x)))
        x = F.relu(self.up(x))
        return self.fc(x.mean(-1))


class VideoNet(nn.Module):
    """3D stack: full 3x3x3, spatially strided, temporal grouped, and a transposed Conv3d."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.c2 = nn.Conv3d(8, 16, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.c3 = nn.Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0), groups=4)
        self.up = nn.ConvTranspose3d(16, 8, 2, stride=(1, 2, 2), padding=(1, 0, 0))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        x = F.relu(self.c2(x))
        x = F.relu(self.c3(x)) + x
        x = F.relu(self.up(x))
        return self.fc(x.mean((2, 3, 4)))


def _tv(name, **kw):
    if torchvision is None:
        pytest.skip("torchvision is not installed")
    ctor = getattr(torchvision.models, name, None)
    if ctor is None:
        pytest.skip("torchvision {} has no {}".format(torchvision.__version__, name))
    try:
        return ctor(weights=None, **kw)
    except TypeError:  # torchvision before the weights= API
        return ctor(pretrained=False, **kw)


def _vgg11():
    m = _tv("vgg11", num_classes=10)
    # The convolutions stay; the 25088x4096 classifier (irrelevant here, slow on CPU) becomes a small head.
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Linear(512, 10)
    return m


# name -> (builder, input shape on CPU, input shape on CUDA)
MODELS = {
    "resnet18": (lambda: _tv("resnet18", num_classes=10), (2, 3, 32, 32), (4, 3, 64, 64)),
    "vgg11": (_vgg11, (2, 3, 32, 32), (4, 3, 64, 64)),
    "mobilenet_v2": (lambda: _tv("mobilenet_v2", num_classes=10), (2, 3, 32, 32), (4, 3, 64, 64)),
    "densenet121": (lambda: _tv("densenet121", num_classes=10), (2, 3, 32, 32), (4, 3, 64, 64)),
    "efficientnet_b0": (lambda: _tv("efficientnet_b0", num_classes=10), (2, 3, 32, 32), (4, 3, 64, 64)),
    "shufflenet_v2_x1_0": (lambda: _tv("shufflenet_v2_x1_0", num_classes=10), (2, 3, 32, 32), (4, 3, 64, 64)),
    "tiny_unet": (TinyUNet, (2, 3, 16, 16), (4, 3, 64, 64)),
    "audio_net": (AudioNet, (2, 1, 256), (4, 1, 4000)),
    "video_net": (VideoNet, (2, 3, 4, 12, 12), (4, 3, 8, 32, 32)),
}

STEPS = 3


def _no_randomness(model):
    """Dropout and stochastic depth off, so that runs in different dtypes see the same network."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ == "StochasticDepth":
            m.p = 0.0
    return model


BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _calibrate_batchnorm(model, shape):
    """Fill batch-norm running statistics from one batch of 8 (float64, PyTorch's own conv). The tests then run
    batch norm on those statistics: training-mode batch norm over a batch of 2 with 1x1 feature maps divides by
    the spread of two numbers and amplifies rounding differences by many orders of magnitude (PyTorch's own
    float32 result then differs from its float64 result by more than 100%), which would test batch norm's
    conditioning instead of the convolutions."""
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    if not bns:
        return model
    model = model.double().train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the calibration batch
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model(torch.randn((8,) + tuple(shape[1:]), dtype=torch.float64, generator=g))
    return model.float()


def _train(base, x, target, device, dtype, counter_list=None):
    """Forward + backward (recorded), then STEPS SGD steps in total. Returns the first output, the first
    gradients and each parameter's total update. Batch norm uses its calibrated running statistics (see
    _calibrate_batchnorm)."""
    model = copy.deepcopy(base).to(device=device, dtype=dtype).train()
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            m.eval()
    if counter_list is not None:
        counter_list.append(ConvCallCounter(model))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = x.to(device=device, dtype=dtype)
    tgt = target.to(device=device, dtype=dtype)
    first = None
    for step in range(STEPS):
        opt.zero_grad()
        out = model(xs)
        loss = F.mse_loss(out, tgt)
        loss.backward()
        if step == 0:
            first = (out.detach().clone(),
                     {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
        # Clipping keeps three steps of a barely initialised network from blowing up (untrained nets with
        # batch norm on fixed statistics can have gradient norms in the tens of thousands).
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    updates = {n: p.detach() - start[n] for n, p in model.named_parameters()}
    return first[0], first[1], updates


def _rel(a, b, floor=0.0):
    """Relative difference of a from b in norm; `floor` keeps near-zero references (the bias gradient of a
    convolution followed by batch norm, say) from turning rounding noise into a large ratio."""
    a = a.detach().to("cpu", torch.float64)
    b = b.detach().to("cpu", torch.float64)
    return float((a - b).norm() / max(float(b.norm()), floor, 1e-300))


def _model_dtypes(device):
    # float64 is the exact check (gemmconv equals PyTorch up to summation order); tiny inputs keep it quick on CPU.
    # On CUDA float32 runs too (the real use, TF32 off), judged against float64 and against PyTorch's own float32.
    return [torch.float64] if device == "cpu" else [torch.float64, torch.float32]


@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_pytorch(gc, device, name):
    builder, shape_cpu, shape_cuda = MODELS[name]
    torch.manual_seed(0)
    shape = shape_cpu if device == "cpu" else shape_cuda
    with gc.off():
        base = _calibrate_batchnorm(_no_randomness(builder()), shape)
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        out_shape = base.double()(x).shape
    base = base.float()
    target = torch.randn(out_shape, dtype=torch.float64)

    for dtype in _model_dtypes(device):
        with gc.off():
            ref = _train(base, x, target, device, torch.float64)  # PyTorch's own, float64
            theirs = _train(base, x, target, device, dtype) if dtype != torch.float64 else ref
        counters = []
        before = gc.totals()
        with gc.on(device):
            ours = _train(base, x, target, device, dtype, counters)
        delta = gc.delta(before, gc.totals())
        counter = counters[0]
        counter.remove()

        # Every convolution module call went through gemmconv, and every backward direction it implies.
        assert counter.forward > 0
        exp = counter.expected_backward()
        gc.assert_counts(delta, forward=counter.forward, where=name + " forward (hooks count {} conv calls)".format(
            counter.forward))
        gc.assert_counts(delta, where=name + " backward", **exp)

        # Numbers. float64: equal up to summation order (relative 1e-8; near-zero references measured against
        # a thousandth of the largest tensor of their group). float32: end-to-end through deep nets a single
        # ReLU or max-pool decision flipped by rounding moves every gradient by ~1e-2, so this is a coarse
        # check (the sweep checks every convolution's float32 accuracy closely); gemmconv's error against the
        # float64 run may not exceed 4x PyTorch's own plus 5e-2.
        groups = [("output", {"": ours[0]}, {"": theirs[0]}, {"": ref[0]}),
                  ("grad", ours[1], theirs[1], ref[1]),
                  ("update after {} SGD steps".format(STEPS), ours[2], theirs[2], ref[2])]
        bad = []
        for label, o_map, t_map, r_map in groups:
            assert set(o_map) == set(r_map), (label, set(o_map) ^ set(r_map))
            biggest = max(float(r.detach().double().norm()) for r in r_map.values())
            for n, r in r_map.items():
                o, t = o_map[n], t_map[n]
                what = "{} {}".format(label, n).strip()
                assert o.dtype == dtype and o.shape == r.shape, (what, o.dtype, o.shape, r.shape)
                e_o = _rel(o, r, 1e-3 * biggest)
                if dtype == torch.float64:
                    if not e_o <= 1e-8:
                        bad.append("{}: relative difference {:.3g}".format(what, e_o))
                else:
                    e_t = _rel(t, r, 1e-3 * biggest)
                    if not e_o <= 4 * e_t + 5e-2:
                        bad.append("{}: gemmconv rel. error {:.3g} vs PyTorch's own {:.3g}".format(what, e_o, e_t))
        assert not bad, "{} {} {}: {} of the compared tensors differ: {}".format(
            name, device, dtype, len(bad), "; ".join(bad[:12]))


def test_model_counter_sees_every_conv(gc, device):
    """The hook counter used above counts each conv module call: a model calling one conv twice is counted
    twice by gemmconv too (shared weights), and eval under no_grad adds forwards only."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(F.relu(self.c(x)))

    m = Twice().to(device)
    x = torch.randn(2, 3, 8, 8, device=device)
    counter = ConvCallCounter(m)
    before = gc.totals()
    with gc.on(device):
        m(x).sum().backward()
        with torch.no_grad():
            m(x)
    d = gc.delta(before, gc.totals())
    counter.remove()
    assert counter.forward == 4
    gc.assert_counts(d, forward=4, backward_data=1, backward_weight=2, backward_bias=2)
