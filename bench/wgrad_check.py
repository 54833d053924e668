"""Weight gradients at ResNet-50 shapes, each solver forced in turn, against float64 on the CPU.

    PYTHONPATH=python python3 bench/wgrad_check.py            # on the GPU (default), batch 8
    DEV=cpu NB=2 PYTHONPATH=python python3 bench/wgrad_check.py

For each (solver, layer, dtype) it prints the largest error divided by the magnitude of the terms
(the same computation on absolute values), in units of the dtype's rounding unit u, and which
solver ran. A solver that declines a layer (its cost estimate says it does not pay there) is
reported as declined: the reference solver then ran. Exit status 1 if a forced solver that ran was
off by more than 64 u.
"""
import os
import sys

import torch

import gemmconv

DEV = os.environ.get("DEV", "cuda")
NB = int(os.environ.get("NB", "8"))
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

# (channels in, channels out, size, kernel): ResNet-50's 3x3 stride-1 and two 1x1 layers.
LAYERS = [(64, 64, 56, 3), (128, 128, 28, 3), (256, 256, 14, 3), (512, 512, 7, 3), (256, 64, 56, 1),
          (64, 256, 56, 1)]
UNIT = {torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}


def weight_grad(gy, x, w, pad):
    return torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
                                               [False, True, False])[1]


def main():
    names = list(gemmconv.solver_names())
    bad = 0
    for solver in ("winograd_gemm", "im2col_gemm", "gemm_1x1"):
        for c, k, hw, r in LAYERS:
            if (solver == "gemm_1x1") != (r == 1) and solver != "im2col_gemm":
                continue
            for dt in (torch.float32, torch.float16, torch.bfloat16):
                g = torch.Generator().manual_seed(0)
                x = torch.randn(NB, c, hw, hw, generator=g)
                w = torch.randn(k, c, r, r, generator=g) / (c * r * r) ** 0.5
                gy = torch.randn(NB, k, hw, hw, generator=g)
                ref = weight_grad(gy.double(), x.double(), w.double(), r // 2)
                mag = weight_grad(gy.double().abs(), x.double().abs(), w.double(), r // 2)
                gemmconv.reset_stats()
                others = [s for s in names if s not in (solver, "reference")]
                with gemmconv.enabled(DEV, disable_solvers=others):
                    got = weight_grad(gy.to(DEV, dt), x.to(DEV, dt), w.to(DEV, dt), r // 2)
                ran = {s: v for s, v in gemmconv.stats()["backward_weight"].items() if v and s != "total"}
                err = ((got.double().cpu() - ref).abs() / mag.clamp_min(1e-30)).max().item() / UNIT[dt]
                if solver not in ran:
                    verdict = "declined"
                elif err > 64:
                    verdict = "FAIL"
                    bad += 1
                else:
                    verdict = "ok"
                print("{:8s} {:14s} {:9s} n{} c{} k{} {}x{} {}x{}: {:.1f} u; ran {}".format(
                    verdict, solver, str(dt)[6:], NB, c, k, hw, hw, r, r, err, ran))
    print("wgrad_check:", "{} failure(s)".format(bad) if bad else "no failure")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
