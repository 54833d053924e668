"""`python -m gemmconv bench`: gemmconv against cuDNN and PyTorch's native fallback, side by side in one run.

Sections (``--what``):
  layers   ResNet-50's 3x3 and 1x1 convolutions of each stage at batch 32, plus a grouped and a depthwise layer,
           forward and forward+backward, fp32 and fp16.
  step     a torchvision ResNet-50 training step (batch 32, fp32, SGD), ms/step and peak memory.
Modes on a GPU: ``gemmconv`` (gemmconv on), ``cudnn`` (gemmconv off, cuDNN/MIOpen on), ``native`` (gemmconv off,
cuDNN off: PyTorch's own fallback, today's workaround on RDNA1). TF32 is off in every mode. Timing: CUDA events,
warm-up, median of repetitions. Without a GPU a tiny CPU version compares gemmconv's CPU routing with PyTorch's
own CPU convolution (a smoke run, not a GPU measurement). ``--profile-check`` runs one training step under
torch.profiler with gemmconv on and lists every convolution kernel or op that did not come from gemmconv.
"""

import argparse
import contextlib
import copy
import csv
import io
import os
import re
import statistics
import sys
import time
from typing import Dict, List, Optional

from .._cli import HelpFormatter, add_version, check_names

DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")

# name, C, K, H(=W), R(=S), stride, padding, groups: the input is N x C x H x H.
RESNET50_LAYERS = [
    ("stem_7x7_s2", 3, 64, 224, 7, 2, 3, 1),
    ("s1_1x1_64_64", 64, 64, 56, 1, 1, 0, 1),
    ("s1_3x3_64", 64, 64, 56, 3, 1, 1, 1),
    ("s1_1x1_64_256", 64, 256, 56, 1, 1, 0, 1),
    ("s1_1x1_256_64", 256, 64, 56, 1, 1, 0, 1),
    ("s2_3x3_128_s2", 128, 128, 56, 3, 2, 1, 1),
    ("s2_3x3_128", 128, 128, 28, 3, 1, 1, 1),
    ("s2_1x1_128_512", 128, 512, 28, 1, 1, 0, 1),
    ("s2_1x1_512_128", 512, 128, 28, 1, 1, 0, 1),
    ("s3_3x3_256", 256, 256, 14, 3, 1, 1, 1),
    ("s3_1x1_256_1024", 256, 1024, 14, 1, 1, 0, 1),
    ("s3_1x1_1024_256", 1024, 256, 14, 1, 1, 0, 1),
    ("s4_3x3_512", 512, 512, 7, 3, 1, 1, 1),
    ("s4_1x1_512_2048", 512, 2048, 7, 1, 1, 0, 1),
    ("s4_1x1_2048_512", 2048, 512, 7, 1, 1, 0, 1),
    ("grouped_3x3_256_g32", 256, 256, 28, 3, 1, 1, 32),
    ("depthwise_3x3_256", 256, 256, 28, 3, 1, 1, 256),
]
LAYER_NAMES = [layer[0] for layer in RESNET50_LAYERS]
DTYPE_NAMES = ["fp32", "fp16", "bf16"]
QUICK_LAYERS = ["s1_3x3_64", "s2_1x1_512_128", "s3_3x3_256", "grouped_3x3_256_g32", "depthwise_3x3_256"]

GPU_MODES = ("gemmconv", "cudnn", "native")
CPU_MODES = ("gemmconv", "pytorch")
MODE_LABELS = {
    "gemmconv": "gemmconv",
    "cudnn": "cuDNN (vendor library)",
    "native": "PyTorch native fallback (cudnn off)",
    "pytorch": "PyTorch's own CPU conv",
}

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


# ----------------------------------------------------------------------------------------------------------------
# Modes and timing


@contextlib.contextmanager
def mode(name: str, device: str):
    """Switch to one comparison mode for the block. TF32 stays off throughout; flags are restored after."""
    torch = _torch()
    gc = _gemmconv()
    saved = (torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        if name == "gemmconv":
            gc.enable(device_types=(device,))
        else:
            gc.disable(None)
            if name == "cudnn":
                torch.backends.cudnn.enabled = True
            elif name == "native":
                torch.backends.cudnn.enabled = False
        yield
    finally:
        gc.disable(None)
        (torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved


def time_ms(fn, device: str, warmup: int, reps: int) -> float:
    """Median milliseconds of `fn` (CUDA events on a GPU, perf_counter on CPU)."""
    torch = _torch()
    for _ in range(warmup):
        fn()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _totals() -> Dict[str, int]:
    s = _gemmconv().stats()
    return {d: int((s.get(d) or {}).get("total", 0)) for d in DIRECTIONS}


# ----------------------------------------------------------------------------------------------------------------
# Layers


def conv_flops(n, c, k, p, q, r, s, groups):
    """FLOPs of one pass: 2*N*K*P*Q*(C/groups)*R*S."""
    return 2 * n * k * p * q * (c // groups) * r * s


def layer_rows(device: str, dtypes: List[str], batch: int, names: Optional[List[str]], warmup: int, reps: int,
               scale: int, log) -> List[dict]:
    torch = _torch()
    F = torch.nn.functional
    modes = GPU_MODES if device == "cuda" else CPU_MODES
    rows = []
    for (name, c, k, h, r, stride, pad, groups) in RESNET50_LAYERS:
        if names and name not in names:
            continue
        if scale > 1:  # the CPU smoke run: fewer channels, smaller images, same kind of layer
            depthwise = groups == c
            c2 = c if c <= 3 else c // scale
            k2 = k // scale
            groups = c2 if depthwise else max(1, groups // scale)
            c, k, h = c2, k2, max(r, h // scale)
        for dt_name in dtypes:
            dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dt_name]
            g = torch.Generator(device="cpu").manual_seed(0)
            x = torch.randn(batch, c, h, h, generator=g).to(device, dtype).requires_grad_()
            w = (torch.randn(k, c // groups, r, r, generator=g) / ((c // groups) * r * r) ** 0.5)
            w = w.to(device, dtype).requires_grad_()
            p = (h + 2 * pad - r) // stride + 1
            gy = torch.randn(batch, k, p, p, generator=g).to(device, dtype)
            flops = conv_flops(batch, c, k, p, p, r, r, groups)
            row = {"section": "layer", "name": name, "dtype": dt_name,
                   "shape": "N{} C{} K{} {}x{} k{} s{} g{}".format(batch, c, k, h, h, r, stride, groups),
                   "gflop_per_pass": round(flops / 1e9, 3)}

            def fwd():
                with torch.no_grad():
                    return F.conv2d(x, w, None, stride, pad, 1, groups)

            def fwd_bwd():
                y = F.conv2d(x, w, None, stride, pad, 1, groups)
                return torch.autograd.grad(y, [x, w], gy)

            outs = {}
            for m in modes:
                try:
                    with mode(m, device):
                        before = _totals()
                        outs[m] = fwd().float()
                        t_f = time_ms(fwd, device, warmup, reps)
                        t_fb = time_ms(fwd_bwd, device, warmup, reps)
                        counted = _totals()["forward"] - before["forward"]
                    row[m + "_fwd_ms"] = round(t_f, 4)
                    row[m + "_fwdbwd_ms"] = round(t_fb, 4)
                    row[m + "_tflops"] = round(3 * flops / (t_fb * 1e-3) / 1e12, 2)
                    if m == "gemmconv":
                        row["gemmconv_routed"] = counted > 0
                except RuntimeError as e:
                    row[m + "_error"] = str(e).splitlines()[0][:120]
            base = "cudnn" if device == "cuda" else "pytorch"
            if "gemmconv" in outs and base in outs:
                ref = outs[base]
                row["max_rel_diff_vs_" + base] = float((outs["gemmconv"] - ref).abs().max() /
                                                       (ref.abs().max() + 1e-30))
            _add_ratios(row, device)
            rows.append(row)
            log(_row_line(row, device))
    return rows


def _add_ratios(row: dict, device: str, key: str = "fwdbwd_ms"):
    g = row.get("gemmconv_" + key)
    if not g:
        return
    if device == "cuda":
        if row.get("cudnn_" + key):
            row["gemmconv_over_cudnn"] = round(g / row["cudnn_" + key], 3)
        if row.get("native_" + key):
            row["native_over_gemmconv"] = round(row["native_" + key] / g, 3)
    elif row.get("pytorch_" + key):
        row["gemmconv_over_pytorch_cpu"] = round(g / row["pytorch_" + key], 3)


def _row_line(row: dict, device: str) -> str:
    modes = GPU_MODES if device == "cuda" else CPU_MODES
    parts = ["{:<22} {:<5}".format(row["name"], row["dtype"])]
    for m in modes:
        v = row.get(m + "_fwdbwd_ms", row.get(m + "_ms"))
        parts.append("{} {}".format(m, "{:.3f} ms".format(v) if v is not None else "error"))
    for r in ("gemmconv_over_cudnn", "native_over_gemmconv", "gemmconv_over_pytorch_cpu"):
        if r in row:
            parts.append("{} {:.2f}x".format(r, row[r]))
    return "  ".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# ResNet-50 training step


def _resnet50():
    import torchvision

    try:
        return torchvision.models.resnet50(weights=None)
    except TypeError:
        return torchvision.models.resnet50(pretrained=False)


def step_rows(device: str, batch: int, size: int, warmup: int, reps: int, log) -> List[dict]:
    torch = _torch()
    modes = GPU_MODES if device == "cuda" else CPU_MODES
    torch.manual_seed(0)
    base = _resnet50()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    row = {"section": "step", "name": "resnet50_train_step", "dtype": "fp32",
           "shape": "batch {} {}x{}".format(batch, size, size)}
    for m in modes:
        model = copy.deepcopy(base).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        try:
            with mode(m, device):
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                before = _totals()
                t = time_ms(step, device, warmup, reps)
                counted = _totals()["forward"] - before["forward"]
                if device == "cuda":
                    row[m + "_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
            row[m + "_ms"] = round(t, 3)
            if m == "gemmconv":
                row["gemmconv_routed"] = counted > 0
        except RuntimeError as e:
            row[m + "_error"] = str(e).splitlines()[0][:120]
        if device == "cuda":
            torch.cuda.empty_cache()
    _add_ratios(row, device, key="ms")
    log(_row_line(row, device) + "".join("  {} peak {} MiB".format(m, row[m + "_peak_mem_mb"]) for m in modes
                                         if m + "_peak_mem_mb" in row))
    return [row]


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


def _columns(rows: List[dict]) -> List[str]:
    cols = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def to_csv(rows: List[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows))
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def to_markdown(rows: List[dict], device: str, header: str) -> str:
    modes = GPU_MODES if device == "cuda" else CPU_MODES
    out = [header, ""]
    layers = [r for r in rows if r["section"] == "layer"]
    steps = [r for r in rows if r["section"] == "step"]

    def fmt(v, digits=3):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "{:.{}f}".format(v, digits)
        return str(v)

    ratio_cols = ["gemmconv_over_cudnn", "native_over_gemmconv"] if device == "cuda" else \
        ["gemmconv_over_pytorch_cpu"]
    base = "cudnn" if device == "cuda" else "pytorch"
    if layers:
        out.append("| layer | dtype | shape | " + " | ".join("{} fwd / fwd+bwd ms".format(m) for m in modes) +
                   " | " + " | ".join(ratio_cols) + " | gemmconv TFLOP/s | max rel. diff vs {} |".format(base))
        out.append("|" + "---|" * (5 + len(modes) + len(ratio_cols)))
        for r in layers:
            cells = [r["name"], r["dtype"], r["shape"]]
            for m in modes:
                if m + "_fwdbwd_ms" in r:
                    cells.append("{} / {}".format(fmt(r[m + "_fwd_ms"]), fmt(r[m + "_fwdbwd_ms"])))
                else:
                    cells.append("error")
            cells += [fmt(r.get(c), 2) for c in ratio_cols]
            cells.append(fmt(r.get("gemmconv_tflops"), 2))
            diff = r.get("max_rel_diff_vs_" + base)
            cells.append("-" if diff is None else "{:.1e}".format(diff))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if steps:
        out.append("| benchmark | shape | " + " | ".join("{} ms".format(m) for m in modes) + " | " +
                   " | ".join(ratio_cols) + (" | " + " | ".join("{} peak MiB".format(m) for m in modes)
                                             if device == "cuda" else "") + " |")
        ncols = 2 + len(modes) + len(ratio_cols) + (len(modes) if device == "cuda" else 0)
        out.append("|" + "---|" * ncols)
        for r in steps:
            cells = [r["name"], r["shape"]] + [fmt(r.get(m + "_ms")) for m in modes]
            cells += [fmt(r.get(c), 2) for c in ratio_cols]
            if device == "cuda":
                cells += [fmt(r.get(m + "_peak_mem_mb"), 1) for m in modes]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append("Ratios: gemmconv_over_cudnn = gemmconv time / cuDNN time (below 1: faster than cuDNN); "
               "native_over_gemmconv = native fallback time / gemmconv time (speed-up over today's workaround)."
               if device == "cuda" else
               "gemmconv_over_pytorch_cpu = gemmconv CPU-routing time / PyTorch's own CPU time.")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="gemmconv bench", description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter)
    add_version(ap)
    ap.add_argument("--what", choices=("layers", "step", "all"), default="all",
                    help="per-layer timings, the ResNet-50 training step, or both")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                    help="auto: the GPU when PyTorch sees one, else a scaled-down CPU smoke run")
    ap.add_argument("--dtypes", default=None, help="comma-separated, from: {} (default: GPU fp32,fp16; CPU "
                                                    "fp32)".format(",".join(DTYPE_NAMES)))
    ap.add_argument("--layers", default=None, help="comma-separated layer names, from: {} (default: all on the "
                                                    "GPU, {} on the CPU and with --quick)".format(
                                                        ",".join(LAYER_NAMES), ",".join(QUICK_LAYERS)))
    ap.add_argument("--batch", type=int, default=None, help="layer batch (default: GPU 32, CPU and --quick 8 "
                                                            "on the GPU, 2 on the CPU)")
    ap.add_argument("--step-batch", type=int, default=None, help="training step batch (default: GPU 32)")
    ap.add_argument("--image-size", type=int, default=None, help="training step image size (default: GPU 224)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs before timing (default: GPU 5, "
                                                             "CPU and --quick 2)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs, the median is reported (default: GPU "
                                                           "20, CPU 3, --quick 5)")
    ap.add_argument("--quick", action="store_true", help="a few layers and repetitions (smoke test)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune (torch.backends.cudnn."
                                                                    "benchmark=True) in every mode")
    ap.add_argument("--profile-check", action="store_true",
                    help="run one training step under torch.profiler with gemmconv on and list convolution "
                         "kernels/ops not from gemmconv (exit 1 if any)")
    ap.add_argument("--out", default=None, help="write the table here: .md gives markdown, anything else CSV")
    args = ap.parse_args(argv)
    # Names are checked before torch loads: a typo is a usage error (exit 2), never an empty benchmark.
    check_names(ap, "--layers", args.layers, LAYER_NAMES)
    check_names(ap, "--dtypes", args.dtypes, DTYPE_NAMES)
    for flag in ("batch", "step_batch", "image_size", "reps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            ap.error("--{} must be at least 1, got {}".format(flag.replace("_", "-"), getattr(args, flag)))
    if args.warmup is not None and args.warmup < 0:
        ap.error("--warmup must be at least 0, got {}".format(args.warmup))

    torch = _torch()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but PyTorch sees no GPU", file=sys.stderr)
        return 2
    gpu = device == "cuda"
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)

    def log(msg):
        print(msg, flush=True)

    if gpu:
        props = torch.cuda.get_device_properties(0)
        where = "{} ({})".format(props.name, getattr(props, "gcnArchName", "") or "sm_{}{}".format(props.major,
                                                                                                  props.minor))
        header = ("gemmconv benchmark on {}: torch {}, {}; TF32 off; cudnn.benchmark={}; median of {} reps after "
                  "{} warm-up").format(where, torch.__version__, "HIP " + torch.version.hip if torch.version.hip
                                       else "CUDA {}".format(torch.version.cuda), args.cudnn_benchmark,
                                       args.reps or (5 if args.quick else 20), args.warmup or (2 if args.quick else 5))
    else:
        header = ("CPU SMOKE RUN (no GPU): gemmconv CPU routing vs PyTorch's own CPU convolution, scaled-down "
                  "shapes; torch {}, {} threads. Not a GPU measurement.").format(torch.__version__,
                                                                                torch.get_num_threads())
    log(header)

    if args.profile_check:
        batch = args.step_batch or (32 if gpu and not args.quick else (8 if gpu else 2))
        size = args.image_size or (224 if gpu and not args.quick else (64 if gpu else 32))
        return profile_check(device, batch, size, log)

    quick = args.quick
    warmup = args.warmup if args.warmup is not None else (2 if quick or not gpu else 5)
    reps = args.reps if args.reps is not None else (5 if quick else (20 if gpu else 3))
    dtypes = check_names(ap, "--dtypes", args.dtypes, DTYPE_NAMES) if args.dtypes else (["fp32", "fp16"] if gpu else ["fp32"])
    names = check_names(ap, "--layers", args.layers, LAYER_NAMES) if args.layers else (QUICK_LAYERS if quick or not gpu else None)
    rows = []
    if args.what in ("layers", "all"):
        batch = args.batch or (32 if gpu and not quick else (8 if gpu else 2))
        scale = 1 if gpu else 4
        log("\nlayers: forward+backward, batch {}{}".format(batch, "" if gpu else ", channels and sizes / 4"))
        rows += layer_rows(device, dtypes, batch, names, warmup, reps, scale, log)
    if args.what in ("step", "all"):
        batch = args.step_batch or (32 if gpu and not quick else (8 if gpu else 2))
        size = args.image_size or (224 if gpu and not quick else (64 if gpu else 32))
        log("\nResNet-50 training step: batch {}, {}x{}, fp32, SGD".format(batch, size, size))
        rows += step_rows(device, batch, size, max(1, warmup // 2) if not gpu else warmup,
                          max(2, reps // 2) if not gpu else max(5, reps // 2), log)

    md = to_markdown(rows, device, header)
    log("\n" + md)
    unrouted = [r["name"] for r in rows if r.get("gemmconv_routed") is False]
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(md if args.out.endswith(".md") else to_csv(rows))
        log("table written to {}".format(os.path.abspath(args.out)))
    if unrouted:
        log("FAILED: gemmconv counted no convolution in: {}".format(", ".join(unrouted)))
        return 1
    errors = [k for r in rows for k in r if k.startswith("gemmconv_error")]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
