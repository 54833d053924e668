#!/usr/bin/env python3
"""ResNet-50 training-step benchmark (ms/step, peak memory) in the three modes, or --profile-check (thin wrapper
over gemmconv.bench).

    python3 bench/bench_resnet50_step.py [--step-batch 32] [--out bench-step.md] [--profile-check]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from gemmconv.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--what", "step"] + sys.argv[1:]))
