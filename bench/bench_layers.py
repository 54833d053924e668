#!/usr/bin/env python3
"""ResNet-50 layer benchmark: gemmconv vs cuDNN vs PyTorch's native fallback (thin wrapper over gemmconv.bench).

    python3 bench/bench_layers.py [--dtypes fp32,fp16] [--batch 32] [--out bench-layers.csv] [--quick]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from gemmconv.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--what", "layers"] + sys.argv[1:]))
