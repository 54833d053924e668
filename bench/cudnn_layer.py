"""Times one convolution layer through cuDNN, pass by pass, for comparison with gemmconv-driver.

Usage: python bench/cudnn_layer.py [--dtype f32|f16] [--tf32] (the ResNet-50 3x3 layer N=32, C=K=64,
56x56, pad 1). Prints the median milliseconds of forward, backward_data and backward_weight, each
run alone through aten::convolution_backward with the matching output mask.
"""
import argparse
import statistics

import torch


def median_ms(fn, warmup=5, reps=50):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--tf32", action="store_true")
    args = ap.parse_args()
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    dtype = torch.float32 if args.dtype == "f32" else torch.float16
    n, c, k, hw = 32, 64, 64, 56
    x = torch.randn(n, c, hw, hw, device="cuda", dtype=dtype)
    w = torch.randn(k, c, 3, 3, device="cuda", dtype=dtype)
    dy = torch.randn(n, k, hw, hw, device="cuda", dtype=dtype)
    conv = torch.ops.aten.convolution
    bwd = torch.ops.aten.convolution_backward
    geom = ([1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    flops = 2 * n * k * hw * hw * c * 9
    passes = {
        "forward": lambda: conv(x, w, None, *geom),
        "backward_data": lambda: bwd(dy, x, w, None, *geom, [True, False, False]),
        "backward_weight": lambda: bwd(dy, x, w, None, *geom, [False, True, False]),
    }
    label = args.dtype + (" tf32" if args.tf32 else "")
    for name, fn in passes.items():
        ms = median_ms(fn)
        print(f"cudnn {label} {name:16s} {ms:8.4f} ms {flops / ms / 1e9:8.2f} TFLOP/s")


if __name__ == "__main__":
    main()
