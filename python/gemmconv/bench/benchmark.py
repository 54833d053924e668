"""`python -m gemmconv bench`: gemmconv against cuDNN (benchmark off and on), PyTorch's fallback and the GEMM floor.

Sections (``--what``):
  layers   per layer set (--sets; see layersets.py) and dtype, every pass timed on its own (forward, backward_data,
           backward_weight through aten::convolution_backward) plus fwd+bwd through autograd.
  steps    model training steps: ResNet-50 fp32 and AMP (torch.autocast fp16), MobileNetV2, a small UNet with a
           transposed-convolution decoder; ms/step, first step, peak memory.
Modes on a GPU: ``gemmconv``; ``cudnn`` (gemmconv off, cudnn.benchmark off); ``cudnn_bm`` (cudnn.benchmark on);
``native`` (gemmconv off, cuDNN off: PyTorch's own fallback, today's workaround on RDNA1); plus ``floor``, the time of
torch.matmul/bmm of each pass's implicit-GEMM shape in the same dtype. fp32 runs with TF32 off everywhere (dtype
``tf32`` turns it on for every mode and the floor). Timing: warm-up calls, then samples of back-to-back calls (CUDA
events on a GPU) until --min-time-ms of samples or --reps samples, median. Without a GPU a small CPU version compares
gemmconv's CPU routing with PyTorch's own CPU convolution (a smoke run, not a measurement). ``--profile-check`` runs
one ResNet-50 training step under torch.profiler with gemmconv on and lists every convolution kernel or op that did
not come from gemmconv.
"""

import argparse
import contextlib
import copy
import csv
import gc
import io
import math
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional

from . import report
from .layersets import (LAYER_SETS, PASSES, Conv, conv, conv_flops, gemm_flops, gemm_shapes, output_size,
                        parse_sets, problem_key, scaled, select_layers)

DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")
DTYPES = ("fp32", "fp16", "bf16", "tf32")
MODELS = ("resnet50", "resnet50-amp", "mobilenetv2", "unet")
GPU_MODES = report.GPU_MODES
CPU_MODES = report.CPU_MODES

# Kernels and ops that mean a convolution ran somewhere other than gemmconv.
_FOREIGN_KERNEL = re.compile(r"cudnn|miopen|implicit_gemm|conv(?!er)|winograd|fprop|dgrad|wgrad", re.I)
_BATCHNORM = re.compile(r"(^|[^a-z])bn_|batch_?norm|batchnorm", re.I)
_FOREIGN_OPS = ("mkldnn_conv", "slow_conv", "thnn_conv", "cudnn_conv", "miopen_conv", "miopen_depthwise",
                "nnpack", "conv_depthwise", "convolution_overrideable", "convolution_backward_overrideable",
                "mps_convolution")


def _torch():
    import torch

    return torch


def _gemmconv():
    import gemmconv

    return gemmconv


def _torch_dtype(name: str):
    torch = _torch()
    return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def parse_dtypes(text: Optional[str], gpu: bool) -> List[str]:
    if text is None:
        return ["fp32", "fp16"] if gpu else ["fp32"]
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in DTYPES]
    if not names or unknown:
        raise ValueError("unknown dtype(s): {}; valid dtypes: {}".format(", ".join(unknown) or "(none given)",
                                                                       ", ".join(DTYPES)))
    return list(dict.fromkeys(names))


def parse_models(text: Optional[str]) -> List[str]:
    if text is None:
        return list(MODELS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in MODELS]
    if not names or unknown:
        raise ValueError("unknown model(s): {}; valid models: {}".format(", ".join(unknown) or "(none given)",
                                                                       ", ".join(MODELS)))
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------------------------------------------
# Modes and timing


def _set_tf32(torch, on: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.9 suggests its fp32_precision settings; these still apply
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = on


@contextlib.contextmanager
def mode(name: str, device: str, tf32: bool = False):
    """Switch to one comparison mode for the block; TF32 as given (off unless the dtype is tf32). The flags are
    restored after."""
    torch = _torch()
    gc_ = _gemmconv()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
                 torch.backends.cuda.matmul.allow_tf32)
    _set_tf32(torch, tf32)
    try:
        torch.backends.cudnn.benchmark = name == "cudnn_bm"
        if name == "gemmconv":
            gc_.enable(device_types=(device,))
        else:
            gc_.disable(None)
            if name in ("cudnn", "cudnn_bm"):
                torch.backends.cudnn.enabled = True
            elif name == "native":
                torch.backends.cudnn.enabled = False
        yield
    finally:
        gc_.disable(None)
        torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark = saved[0], saved[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[2], saved[3]


class Timer:
    """Adaptive timing: `warmup` calls (cut short once they took 4 x min_time_ms), one timed call to size a sample
    (enough back-to-back calls to last sample_ms), then samples until they add up to min_time_ms and there are at
    least min_samples of them (2 when one call alone exceeds min_time_ms), or max_samples; the median per call."""

    def __init__(self, device: str, warmup: int = 2, min_time_ms: float = 20.0, max_samples: int = 10,
                 min_samples: int = 3, sample_ms: float = 0.5, clock=None):
        self.device = device
        self.warmup = max(0, int(warmup))
        self.min_time_ms = float(min_time_ms)
        self.max_samples = max(1, int(max_samples))
        self.min_samples = max(1, min(int(min_samples), self.max_samples))
        self.sample_ms = float(sample_ms)
        self.clock = clock or time.perf_counter

    def policy(self) -> str:
        return ("{} warm-up call(s), then samples of back-to-back calls lasting >= {} ms each until {} ms of samples "
                "and >= {} samples, or {} samples; median per call").format(
                    self.warmup, self.sample_ms, self.min_time_ms, self.min_samples, self.max_samples)

    def sync(self) -> None:
        if self.device == "cuda":
            _torch().cuda.synchronize()

    def first_call(self, fn):
        """(wall ms, result) of one call, synchronised before and after."""
        self.sync()
        t0 = self.clock()
        out = fn()
        self.sync()
        return (self.clock() - t0) * 1e3, out

    def _sample(self, fn, inner: int) -> float:
        if self.device == "cuda":
            torch = _torch()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = self.clock()
        for _ in range(inner):
            fn()
        return (self.clock() - t0) * 1e3

    def measure(self, fn) -> dict:
        t0 = self.clock()
        for i in range(self.warmup):
            fn()
            if i and (self.clock() - t0) * 1e3 > 4 * self.min_time_ms:
                break
        self.sync()
        one = max(self._sample(fn, 1), 1e-6)
        inner = int(min(100, max(1, math.ceil(self.sample_ms / one))))
        min_samples = 2 if one > self.min_time_ms and self.min_samples > 2 else self.min_samples
        samples, total = [], 0.0
        while True:
            t = self._sample(fn, inner)
            samples.append(t / inner)
            total += t
            if len(samples) >= self.max_samples or (total >= self.min_time_ms and len(samples) >= min_samples):
                break
        return {"ms": statistics.median(samples), "samples": len(samples), "inner": inner}


def _stats_snapshot() -> Dict[str, Dict[str, int]]:
    return _gemmconv().stats()


def _solvers_between(before, after) -> List[str]:
    """Solver names whose counters moved between two gemmconv.stats() snapshots; prefixed with the pass when more
    than one pass moved (fwd+bwd), e.g. ["fwd:im2col_gemm", "bwd_data:im2col_gemm", "bwd_weight:gemm_1x1"]."""
    moved = []
    for d in DIRECTIONS:
        for name, n in (after.get(d) or {}).items():
            if name != "total" and n - (before.get(d) or {}).get(name, 0) > 0:
                moved.append((d, name))
    if len({d for d, _ in moved}) <= 1:
        return [name for _, name in moved]
    short = {"forward": "fwd", "backward_data": "bwd_data", "backward_weight": "bwd_weight", "backward_bias": "bias"}
    return ["{}:{}".format(short[d], name) for d, name in moved]


def _totals() -> Dict[str, int]:
    s = _gemmconv().stats()
    return {d: int((s.get(d) or {}).get("total", 0)) for d in DIRECTIONS}


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        _torch().cuda.empty_cache()


def _err(e: BaseException) -> str:
    return "{}: {}".format(type(e).__name__, (str(e).splitlines() or [""])[0][:160])


# ----------------------------------------------------------------------------------------------------------------
# Layers


def _conv_fn(layer: Conv):
    F = _torch().nn.functional
    direct = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    transposed = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    if layer.transposed:
        f = transposed[layer.dims]
        return lambda x, w: f(x, w, None, layer.stride, layer.pad, layer.output_padding, layer.groups,
                              layer.dilation)
    f = direct[layer.dims]
    return lambda x, w: f(x, w, None, layer.stride, layer.pad, layer.dilation, layer.groups)


def layer_tensors(layer: Conv, batch: int, dtype, device: str, seed: int = 0):
    """Input, weight and output gradient of the layer, drawn on the device (in float32, then cast) with a fixed
    seed: a big layer's tensors would take seconds to draw on the host."""
    torch = _torch()
    g = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape):
        return torch.randn(shape, generator=g, device=device, dtype=torch.float32)

    if layer.transposed:
        wshape = (layer.c, layer.k // layer.groups) + tuple(layer.kernel)
    else:
        wshape = (layer.k, layer.c // layer.groups) + tuple(layer.kernel)
    fan = (layer.c // layer.groups) * layer.taps
    x = randn(batch, layer.c, *layer.size).to(dtype)
    w = (randn(*wshape) / fan ** 0.5).to(dtype)
    gy = randn(batch, layer.k, *output_size(layer)).to(dtype)
    return x, w, gy


def pass_functions(layer: Conv, x, w, gy) -> dict:
    """Callables for each pass: forward (torch.nn.functional), backward_data and backward_weight (one output of
    aten::convolution_backward each, as autograd calls it), fwd+bwd (autograd, both gradients)."""
    torch = _torch()
    f = _conv_fn(layer)
    args = (list(layer.stride), list(layer.pad), list(layer.dilation), layer.transposed, list(layer.output_padding),
            layer.groups)
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()

    def forward():
        with torch.no_grad():
            return f(x, w)

    def backward_data():
        with torch.no_grad():
            return torch.ops.aten.convolution_backward(gy, x, w, None, *args, [True, False, False])[0]

    def backward_weight():
        with torch.no_grad():
            return torch.ops.aten.convolution_backward(gy, x, w, None, *args, [False, True, False])[1]

    def fwd_bwd():
        return torch.autograd.grad(f(xr, wr), [xr, wr], gy)

    return {"forward": forward, "backward_data": backward_data, "backward_weight": backward_weight,
            "fwd+bwd": fwd_bwd}


def _rel_diff(a, ref) -> float:
    a, ref = a.float(), ref.float()
    return float((a - ref).abs().max() / (ref.abs().max() + 1e-30))


def floor_times(layer: Conv, batch: int, dtype, device: str, timer: Timer, tf32: bool) -> Dict[str, dict]:
    """Median ms of torch.mm (one group) or torch.bmm (batched over groups) of each pass's implicit-GEMM shape."""
    torch = _torch()
    out = {}
    for p, (g, m, n, k) in gemm_shapes(layer, batch).items():
        try:
            with mode("floor", device, tf32):
                a = torch.randn(g, m, k, device=device, dtype=dtype)
                b = torch.randn(g, k, n, device=device, dtype=dtype)
                if g == 1:
                    a2, b2 = a[0], b[0]
                    res = timer.measure(lambda: torch.mm(a2, b2))
                else:
                    res = timer.measure(lambda: torch.bmm(a, b))
            out[p] = {"ms": res["ms"]}
        except Exception as e:  # out of memory, an unsupported dtype on this device
            out[p] = {"error": _err(e)}
        finally:
            a = b = a2 = b2 = None  # noqa: F841
            _free(device)
    return out


def _over(deadline: Optional[float]) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def layer_rows(device: str, pairs, dtypes: List[str], batch_for, timer: Timer, seen: set, log,
               deadline: Optional[float] = None, skipped: Optional[List[str]] = None) -> List[dict]:
    """Rows for every (set, layer) pair and dtype: one per pass. Pairs reached after `deadline` (perf_counter
    seconds) are not run; their names go to `skipped`."""
    modes = report.modes_for(device)
    base = "cudnn" if "cudnn" in modes else "pytorch"
    rows = []
    for set_name, layer in pairs:
        if _over(deadline):
            if skipped is not None:
                skipped.append("{}/{}".format(set_name, layer.name))
            continue
        batch = batch_for(set_name)
        flops = conv_flops(layer, batch)
        shapes = gemm_shapes(layer, batch)
        for dt in dtypes:
            dtype = _torch_dtype(dt)
            tf32 = dt == "tf32"
            key = problem_key(layer, batch, dt)
            was_seen = key in seen
            prows = {}
            for p in PASSES + ("fwd+bwd",):
                shape = shapes.get(p)
                prows[p] = {"section": "layer", "set": set_name, "name": layer.name, "dtype": dt, "pass": p,
                            "batch": batch, "shape": layer.describe(batch), "kernel": list(layer.kernel),
                            "stride": list(layer.stride), "groups": layer.groups, "depthwise": layer.depthwise,
                            "transposed": layer.transposed,
                            "gemm": "{}x{}x{}x{}".format(*shape) if shape else "sum of the three",
                            "gflop": round((flops if shape else 3 * flops) / 1e9, 3)}
                if p != "fwd+bwd":
                    prows[p]["gemm_gflop"] = round(gemm_flops(shape) / 1e9, 3)
                    prows[p]["seen_before"] = was_seen
            try:
                x, w, gy = layer_tensors(layer, batch, dtype, device)
            except Exception as e:
                for r in prows.values():
                    r["error"] = _err(e)
                rows += prows.values()
                log("{:<12} {:<26} {:<5} inputs: {}".format(set_name, layer.name, dt, _err(e)))
                _free(device)
                continue
            fns = pass_functions(layer, x, w, gy)
            ours = {}
            for m in modes:
                for p, fn in fns.items():
                    r = prows[p]
                    try:
                        with mode(m, device, tf32):
                            before = _stats_snapshot() if m == "gemmconv" else None
                            if p != "fwd+bwd":
                                first, out = timer.first_call(fn)
                                r[m + "_first_ms"] = round(first, 3)
                                if m == "gemmconv":
                                    ours[p] = out
                                elif m == base and p in ours:
                                    r["max_rel_diff"] = _rel_diff(ours.pop(p), out)
                                out = None
                            res = timer.measure(fn)
                            r[m + "_ms"] = round(res["ms"], 4)
                            r[m + "_samples"] = res["samples"] * res["inner"]
                            if m == "gemmconv":
                                moved = _solvers_between(before, _stats_snapshot())
                                r["gemmconv_routed"] = bool(moved)
                                r["solver"] = "+".join(moved) or "none"
                    except Exception as e:
                        r[m + "_error"] = _err(e)
                        _free(device)
            ours.clear()
            seen.add(key)
            floors = floor_times(layer, batch, dtype, device, timer, tf32)
            for p in PASSES:
                if "ms" in floors[p]:
                    prows[p]["floor_ms"] = round(floors[p]["ms"], 4)
                else:
                    prows[p]["floor_error"] = floors[p]["error"]
            if all("ms" in floors[p] for p in PASSES):
                prows["fwd+bwd"]["floor_ms"] = round(sum(floors[p]["ms"] for p in PASSES), 4)
            for r in prows.values():
                report.add_ratios(r, device)
                rows.append(r)
            log(_row_line(prows["fwd+bwd"], device, first=prows["forward"]))
            x = w = gy = fns = None  # noqa: F841
            _free(device)
    return rows


def _row_line(row: dict, device: str, first: Optional[dict] = None) -> str:
    parts = ["{:<12} {:<26} {:<5} {}".format(row["set"], row["name"], row["dtype"], row["pass"])]
    for m in list(report.modes_for(device)) + ["floor"]:
        v = row.get(m + "_ms")
        parts.append("{} {}".format(m, "{:.3f}".format(v) if v is not None else
                                    ("error" if row.get(m + "_error") else "-")))
    for k in report.ratios_for(device):
        if row.get(k) is not None:
            parts.append("{} {:.2f}".format(k, row[k]))
    if first and first.get("gemmconv_first_ms") is not None:
        parts.append("1st fwd {:.1f} ms{}".format(first["gemmconv_first_ms"], " (seen)" if first.get("seen_before")
                                                   else ""))
    return "  ".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# Model training steps


def _resnet50():
    import torchvision

    try:
        return torchvision.models.resnet50(weights=None)
    except TypeError:
        return torchvision.models.resnet50(pretrained=False)


def _mobilenetv2():
    import torchvision

    try:
        return torchvision.models.mobilenet_v2(weights=None)
    except TypeError:
        return torchvision.models.mobilenet_v2(pretrained=False)


def unet(classes: int = 2, width: int = 32):
    """A small UNet: three conv blocks with max-pooling down, a bottleneck, and a decoder that up-samples with
    ConvTranspose2d (kernel 2, stride 2), concatenates the skip connection and runs a conv block; a 1x1 head."""
    torch = _torch()
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            c = [width, width * 2, width * 4, width * 8]
            self.down = nn.ModuleList([block(3, c[0]), block(c[0], c[1]), block(c[1], c[2])])
            self.pool = nn.MaxPool2d(2)
            self.mid = block(c[2], c[3])
            self.up = nn.ModuleList([nn.ConvTranspose2d(c[3], c[2], 2, stride=2),
                                     nn.ConvTranspose2d(c[2], c[1], 2, stride=2),
                                     nn.ConvTranspose2d(c[1], c[0], 2, stride=2)])
            self.dec = nn.ModuleList([block(c[3], c[2]), block(c[2], c[1]), block(c[1], c[0])])
            self.head = nn.Conv2d(c[0], classes, 1)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = self.pool(x)
            x = self.mid(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], 1))
            return self.head(x)

    return UNet()


def _conv_hook(seen: set, batch_dtype):
    """A forward hook that adds each convolution's problem (as the layer benchmark keys it) to `seen`."""
    torch = _torch()
    names = {torch.float32: batch_dtype if batch_dtype == "tf32" else "fp32", torch.float16: "fp16",
             torch.bfloat16: "bf16"}

    def hook(module, inputs, output):
        try:
            x = inputs[0]
            pad = module.padding if not isinstance(module.padding, str) else 0
            layer = conv(type(module).__name__, module.in_channels, module.out_channels, tuple(x.shape[2:]),
                         module.kernel_size, module.stride, pad, module.groups, module.dilation,
                         module.transposed, module.output_padding)
            seen.add(problem_key(layer, int(x.shape[0]), names.get(output.dtype, str(output.dtype))))
        except Exception:
            pass

    return hook


def step_rows(device: str, models: List[str], batch: int, size: int, unet_size: int, timer: Timer, seen: set,
              log, deadline: Optional[float] = None, skipped: Optional[List[str]] = None) -> List[dict]:
    torch = _torch()
    nn = torch.nn
    modes = report.modes_for(device)
    rows = []
    for name in models:
        if _over(deadline):
            if skipped is not None:
                skipped.append(name)
            continue
        amp = name.endswith("-amp")
        arch = name[:-4] if amp else name
        dtype = "amp" if amp else "fp32"
        s = unet_size if arch == "unet" else size
        row = {"section": "step", "name": arch, "dtype": dtype, "batch": batch,
               "shape": "batch {} {}x{}{}".format(batch, s, s, ", autocast fp16" if amp else "")}
        if amp and device != "cuda":
            row["skipped"] = "AMP here is torch.autocast('cuda', float16), which needs a GPU"
            rows.append(row)
            log("{:<12} {:<5} skipped: {}".format(arch, dtype, row["skipped"]))
            continue
        torch.manual_seed(0)
        base = {"resnet50": _resnet50, "mobilenetv2": _mobilenetv2, "unet": unet}[arch]()
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(batch, 3, s, s, generator=g).to(device)
        classes = 2 if arch == "unet" else 1000
        y = torch.randint(0, classes, (batch, s, s) if arch == "unet" else (batch,), generator=g).to(device)
        for m in modes:
            model = opt = scaler = None
            try:
                model = copy.deepcopy(base).to(device).train()
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                if amp:
                    scaler = (torch.amp.GradScaler("cuda") if hasattr(torch, "amp") and
                              hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler())

                def step():
                    opt.zero_grad(set_to_none=True)
                    if amp:
                        with torch.autocast(device_type="cuda", dtype=torch.float16):
                            loss = nn.functional.cross_entropy(model(x), y)
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                        scaler.update()
                    else:
                        loss = nn.functional.cross_entropy(model(x), y)
                        loss.backward()
                        opt.step()

                hooks = []
                if m == "gemmconv":
                    hooks = [mod.register_forward_hook(_conv_hook(seen, dtype)) for mod in model.modules()
                             if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                                                 nn.ConvTranspose2d, nn.ConvTranspose3d))]
                with mode(m, device):
                    if device == "cuda":
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    before = _stats_snapshot()
                    first, _ = timer.first_call(step)
                    for h in hooks:
                        h.remove()
                    if device == "cuda":  # the steady-state peak: without find or cuDNN benchmark searches
                        row[m + "_first_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
                        torch.cuda.reset_peak_memory_stats()
                    res = timer.measure(step)
                    counted = _stats_snapshot()["forward"]["total"] - before["forward"]["total"]
                    if device == "cuda":
                        row[m + "_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
                row[m + "_first_ms"] = round(first, 2)
                row[m + "_ms"] = round(res["ms"], 3)
                row[m + "_samples"] = res["samples"]
                if m == "gemmconv":
                    row["gemmconv_routed"] = counted > 0
            except Exception as e:
                row[m + "_error"] = _err(e)
            model = opt = scaler = None  # noqa: F841
            _free(device)
        report.add_ratios(row, device)
        rows.append(row)
        line = "{:<12} {:<5} ".format(arch, dtype) + "  ".join(
            "{} {}".format(m, "{:.2f} ms".format(row[m + "_ms"]) if m + "_ms" in row else "error") for m in modes)
        line += "".join("  {} {:.2f}".format(k, row[k]) for k in report.ratios_for(device) if row.get(k))
        line += "".join("  {} peak {} MiB".format(m, row[m + "_peak_mib"]) for m in modes if m + "_peak_mib" in row)
        log(line)
        base = x = y = None  # noqa: F841
        _free(device)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Profile check


def classify_profile(events) -> dict:
    """Split profiler events into convolution work that is not gemmconv's (kernels and ops), cuDNN/MIOpen batch
    norm (allowed: not a convolution), and gemmconv's own kernels."""
    foreign_kernels, foreign_ops, bn_kernels, ours = {}, {}, {}, {}
    for e in events:
        name = str(getattr(e, "name", ""))
        kind = str(getattr(e, "device_type", ""))
        is_kernel = "CUDA" in kind or "HIP" in kind
        low = name.lower()
        if is_kernel:
            if "gemmconv" in low:
                ours[name] = ours.get(name, 0) + 1
            elif _FOREIGN_KERNEL.search(name):
                if _BATCHNORM.search(name):
                    bn_kernels[name] = bn_kernels.get(name, 0) + 1
                else:
                    foreign_kernels[name] = foreign_kernels.get(name, 0) + 1
        elif low.startswith("aten::") and any(t in low for t in _FOREIGN_OPS):
            foreign_ops[name] = foreign_ops.get(name, 0) + 1
    return {"foreign_kernels": foreign_kernels, "foreign_ops": foreign_ops, "batchnorm_kernels": bn_kernels,
            "gemmconv_kernels": ours}


def profile_check(device: str, batch: int, size: int, log) -> int:
    torch = _torch()
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = _resnet50().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with mode("gemmconv", device):
        step()  # warm-up outside the profile
        before = _totals()
        with profile(activities=activities) as prof:
            step()
            if device == "cuda":
                torch.cuda.synchronize()
        counted = {d: _totals()[d] - before[d] for d in DIRECTIONS}
    found = classify_profile(prof.events())
    log("profile check: one ResNet-50 training step (batch {}, {}x{}) on {} with gemmconv on".format(
        batch, size, size, device))
    log("  gemmconv.stats() during the step: {}".format(counted))
    if found["gemmconv_kernels"]:
        log("  gemmconv kernels: {} distinct".format(len(found["gemmconv_kernels"])))
    if found["batchnorm_kernels"]:
        log("  vendor batch-norm kernels (allowed, not convolutions): {}".format(
            ", ".join(sorted(found["batchnorm_kernels"]))[:300]))
    bad = dict(found["foreign_kernels"])
    bad.update(found["foreign_ops"])
    if bad:
        log("  FOUND convolution work that did not go through gemmconv:")
        for name, n in sorted(bad.items(), key=lambda kv: -kv[1]):
            log("    {:>4}x {}".format(n, name[:160]))
    else:
        log("  no cudnn/miopen/implicit_gemm/conv kernel and no foreign convolution op: every convolution ran "
            "through gemmconv")
    if counted["forward"] == 0:
        log("  FAILED: gemmconv counted no forward convolution")
        return 1
    return 1 if bad else 0


# ----------------------------------------------------------------------------------------------------------------
# Output


def to_csv(rows: List[dict]) -> str:
    cols = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def find_info() -> Dict[str, str]:
    """What gemmconv says about its find step and perf database: config() keys that mention find/perf/db, and
    GEMMCONV_FIND as set in the environment."""
    out = {}
    try:
        cfg = _gemmconv().config()
    except Exception as e:
        cfg = {}
        out["config"] = "unavailable ({})".format(_err(e))
    for k, v in cfg.items():
        low = str(k).lower()
        if "find" in low or "perf" in low or low.endswith("db") or "database" in low:
            out[str(k)] = str(v)
    if os.environ.get("GEMMCONV_FIND") is not None:
        out["GEMMCONV_FIND (environment)"] = os.environ["GEMMCONV_FIND"]
    return out


def _write(path: str, text: str) -> str:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gemmconv bench", description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=("layers", "steps", "step", "all"), default="all",
                    help="layers, model training steps (steps; 'step' is accepted too), or all (default)")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--sets", default=None, help="comma-separated layer sets (default: all): " +
                    ",".join(LAYER_SETS))
    ap.add_argument("--layers", default=None, help="comma-separated layer names within the chosen sets")
    ap.add_argument("--dtypes", default=None, help="comma-separated: {} (GPU default fp32,fp16; CPU fp32)".format(
        ",".join(DTYPES)))
    ap.add_argument("--models", default=None, help="comma-separated training steps (default: all): " +
                    ",".join(MODELS))
    ap.add_argument("--batch", type=int, default=None, help="batch of every layer set (default: each set's own, "
                    "32 for 2-D and 1-D, 8 for 3-D; 2 on the CPU)")
    ap.add_argument("--step-batch", type=int, default=None, help="training step batch (GPU default 32)")
    ap.add_argument("--image-size", type=int, default=None, help="ResNet-50/MobileNetV2 image size (GPU default "
                    "224; the UNet runs at half of it)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls before timing (default 2)")
    ap.add_argument("--reps", type=int, default=None, help="at most this many timed samples (default 10 for "
                    "layers, 10 for steps; --quick 5)")
    ap.add_argument("--min-time-ms", type=float, default=None, help="time samples until they add up to this "
                    "(default 20 ms per layer pass, 300 ms per step; --quick 10 / 150)")
    ap.add_argument("--quick", action="store_true", help="a few layers per set and fewer samples")
    ap.add_argument("--budget-s", type=float, default=None, help="after this many seconds, run no further model "
                    "or layer (those left out are listed) so that the tables are still written; default: no limit")
    ap.add_argument("--fresh-cache", action="store_true", help="point XDG_CACHE_HOME at a new empty directory "
                    "first, so that first calls do their find work instead of reading a perf database")
    ap.add_argument("--profile-check", action="store_true",
                    help="run one training step under torch.profiler with gemmconv on and list convolution "
                         "kernels/ops not from gemmconv (exit 1 if any)")
    ap.add_argument("--out", default=None, help="write the tables here: FILE.md gives Markdown, anything else CSV")
    ap.add_argument("--json", default=None, help="write every row, the geomeans and the targets as JSON here")
    ap.add_argument("--png", default=None, help="write a chart here (one panel per layer set and one for steps)")
    return ap


def _positive(args) -> Optional[str]:
    for name in ("batch", "step_batch", "image_size", "reps"):
        v = getattr(args, name)
        if v is not None and v < 1:
            return "--{} must be a positive integer, got {}".format(name.replace("_", "-"), v)
    if args.warmup is not None and args.warmup < 0:
        return "--warmup must be >= 0, got {}".format(args.warmup)
    if args.budget_s is not None and not args.budget_s > 0:
        return "--budget-s must be > 0, got {}".format(args.budget_s)
    if args.min_time_ms is not None and not args.min_time_ms >= 0:
        return "--min-time-ms must be >= 0, got {}".format(args.min_time_ms)
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    what = "steps" if args.what == "step" else args.what

    # Everything given by name is checked before anything runs.
    try:
        sets = parse_sets(args.sets)
        pairs = select_layers(sets, args.layers, quick=False)
        models = parse_models(args.models)
        bad = _positive(args)
        if bad:
            raise ValueError(bad)
    except ValueError as e:
        print("python -m gemmconv bench: error: {}".format(e), file=sys.stderr)
        return 2

    if args.fresh_cache:
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gemmconv-bench-cache-")
    torch = _torch()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("python -m gemmconv bench: error: --device cuda, but PyTorch sees no GPU", file=sys.stderr)
        return 2
    gpu = device == "cuda"
    try:
        dtypes = parse_dtypes(args.dtypes, gpu)
    except ValueError as e:
        print("python -m gemmconv bench: error: {}".format(e), file=sys.stderr)
        return 2

    def log(msg):
        print(msg, flush=True)

    quick = args.quick
    if args.layers is None:
        pairs = select_layers(sets, None, quick=quick or not gpu)
    scale = 1 if gpu else 4
    if not gpu:
        pairs = [(s, scaled(layer, scale)) for s, layer in pairs]

    def batch_for(set_name):
        if args.batch:
            return args.batch
        return LAYER_SETS[set_name][1] if gpu else 2

    # The CPU smoke run keeps every count small: it checks the plumbing, not performance.
    warmup = args.warmup if args.warmup is not None else (2 if gpu else 1)
    reps = args.reps or (5 if quick else 10 if gpu else 3)
    if args.min_time_ms is not None:
        layer_ms = step_ms = args.min_time_ms
    else:
        layer_ms, step_ms = ((10.0, 150.0) if quick else (20.0, 300.0)) if gpu else (5.0, 10.0)
    layer_timer = Timer(device, warmup, layer_ms, reps)
    step_timer = Timer(device, warmup if gpu else 0, step_ms, reps if gpu else min(reps, 2), sample_ms=0.0)

    if gpu:
        props = torch.cuda.get_device_properties(0)
        where = "{} ({})".format(props.name, getattr(props, "gcnArchName", "") or "sm_{}{}".format(
            props.major, props.minor))
        backend = "HIP " + torch.version.hip if getattr(torch.version, "hip", None) else \
            "CUDA {}".format(torch.version.cuda)
        cudnn_v = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        header = ("gemmconv {} on {}: torch {}, {}, cuDNN {}; fp32 with TF32 off{}").format(
            _gemmconv().__version__, where, torch.__version__, backend, cudnn_v,
            "; tf32 rows with TF32 on" if "tf32" in dtypes else "")
    else:
        header = ("CPU SMOKE RUN (no GPU): gemmconv {} CPU routing vs PyTorch's own CPU convolution, shapes scaled "
                  "down (channels and sizes / {}); torch {}, {} threads. Not a GPU measurement.").format(
                      _gemmconv().__version__, scale, torch.__version__, torch.get_num_threads())
    log(header)

    if args.profile_check:
        batch = args.step_batch or (32 if gpu and not quick else (8 if gpu else 2))
        size = args.image_size or (224 if gpu and not quick else (64 if gpu else 32))
        return profile_check(device, batch, size, log)

    find = find_info()
    notes = ["timing, layers: " + layer_timer.policy(), "timing, steps: " + step_timer.policy(),
             "order: model steps first, then layers (so that the ResNet-50 step's first call is a true first call); "
             "a layer problem that already ran in this process is marked (seen)"]
    if find:
        notes.append("find: " + "; ".join("{} = {}".format(k, v) for k, v in sorted(find.items())))
        log("gemmconv find: " + "; ".join("{} = {}".format(k, v) for k, v in sorted(find.items())))
    else:
        notes.append("find: gemmconv.config() shows no find mode and GEMMCONV_FIND is unset")
    if args.fresh_cache:
        notes.append("XDG_CACHE_HOME = {} (fresh, --fresh-cache)".format(os.environ["XDG_CACHE_HOME"]))

    t_start = time.perf_counter()
    deadline = t_start + args.budget_s if args.budget_s else None
    skipped = []
    seen = set()
    rows = []
    if gpu:  # CUDA context, cuBLAS and cuDNN handles: paid here, not by the first timed call
        with mode("cudnn", device):
            a = torch.randn(64, 64, device=device)
            torch.mm(a, a)
            torch.nn.functional.conv2d(torch.randn(1, 4, 8, 8, device=device), torch.randn(4, 4, 3, 3,
                                                                                          device=device))
            torch.cuda.synchronize()
    if what in ("steps", "all"):
        batch = args.step_batch or (32 if gpu else 2)
        size = args.image_size or (224 if gpu else 32)
        usize = max(16, size // 2)
        usize -= usize % 8
        notes.append("steps: batch {}, ResNet-50/MobileNetV2 {}x{}, UNet {}x{}; SGD with momentum; AMP with "
                     "GradScaler".format(batch, size, size, usize, usize))
        log("\nmodel training steps: batch {}".format(batch))
        t0 = time.perf_counter()
        rows += step_rows(device, models, batch, size, usize, step_timer, seen, log, deadline, skipped)
        notes.append("steps took {:.0f} s".format(time.perf_counter() - t0))
    if what in ("layers", "all"):
        used = list(dict.fromkeys(s for s, _ in pairs))
        notes.append("layers: " + "; ".join("{} batch {} ({} layers)".format(
            s, batch_for(s), sum(1 for t, _ in pairs if t == s)) for s in used) + "; dtypes " + ",".join(dtypes))
        log("\nlayers: {} layer(s) x {} dtype(s), every pass".format(len(pairs), len(dtypes)))
        t0 = time.perf_counter()
        rows += layer_rows(device, pairs, dtypes, batch_for, layer_timer, seen, log, deadline, skipped)
        notes.append("layers took {:.0f} s".format(time.perf_counter() - t0))
    total = time.perf_counter() - t_start
    notes.append("total {:.0f} s".format(total))
    if skipped:
        notes.append("NOT RUN (--budget-s {} s reached): {}".format(args.budget_s, ", ".join(skipped)))
        log("--budget-s reached: not run: {}".format(", ".join(skipped)))

    result = {"meta": {"header": header, "device": device, "torch": torch.__version__,
                       "gemmconv": _gemmconv().__version__, "find": find, "notes": notes, "quick": quick,
                       "dtypes": dtypes, "sets": sets, "models": models if what != "layers" else [],
                       "seconds": round(total, 1), "not_run": skipped},
              "rows": rows}
    result["summary"] = report.summarize(rows, device)
    result["targets"] = report.targets(rows) if gpu else []
    md = report.to_markdown(result)
    log("\n" + md)
    if args.out:
        log("table written to {}".format(_write(args.out, md if args.out.endswith(".md") else to_csv(rows))))
    if args.json:
        log("JSON written to {}".format(_write(args.json, report.to_json(result))))
    if args.png:
        try:
            path = os.path.abspath(args.png)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            report.write_png(result, path)
            log("chart written to {}".format(path))
        except Exception as e:
            log("FAILED: chart not written: {}".format(_err(e)))
            return 1
    log("bench took {:.0f} s".format(total))
    unrouted = sorted({"{} {} {}".format(r["name"], r["dtype"], r.get("pass", "")).strip() for r in rows
                       if r.get("gemmconv_routed") is False})
    errors = sorted({"{} {} {}: {}".format(r["name"], r["dtype"], r.get("pass", ""), r[k]) for r in rows
                     for k in r if k == "gemmconv_error"})
    if unrouted:
        log("FAILED: gemmconv counted no convolution in: {}".format(", ".join(unrouted)))
    if errors:
        log("FAILED: gemmconv errors:\n  " + "\n  ".join(errors))
    return 1 if unrouted or errors else 0


if __name__ == "__main__":
    sys.exit(main())
