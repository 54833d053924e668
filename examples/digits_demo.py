#!/usr/bin/env python3
"""Train a small CNN on the 8x8 handwritten digits with every convolution routed through gemmconv, prove it from
gemmconv.stats(), and save a loss curve.

    python3 examples/digits_demo.py [--epochs 6] [--device auto|cpu|cuda] [--out-dir demo-output]

On a GPU gemmconv is enabled for "cuda"; without one it runs through gemmconv's CPU routing. Exits non-zero when
any convolution did not go through gemmconv.
"""

import argparse
import os
import struct
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gemmconv  # noqa: E402

DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


# ---------------------------------------------------------------------------------------------------------------
# Data

# 5x7 glyphs, one string per row, used only when scikit-learn (which ships the real digits) is not installed.
_GLYPHS = {
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}


def synthetic_digits(count, generator):
    """8x8 digits drawn from the glyphs above with random shifts, stroke strength and noise."""
    glyphs = torch.zeros(10, 7, 5)
    for d, rows in _GLYPHS.items():
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                glyphs[d, r, c] = float(ch)
    labels = torch.randint(0, 10, (count,), generator=generator)
    images = torch.zeros(count, 8, 8)
    dy = torch.randint(0, 2, (count,), generator=generator)
    dx = torch.randint(0, 4, (count,), generator=generator)
    strength = 0.6 + 0.4 * torch.rand(count, generator=generator)
    for i in range(count):
        y0, x0 = int(dy[i]), int(dx[i])
        images[i, y0:y0 + 7, x0:x0 + 5] = glyphs[int(labels[i])] * strength[i]
    images += 0.15 * torch.rand(count, 8, 8, generator=generator)
    return images.clamp(0, 1), labels


def load_data(seed):
    """(train_x, train_y, test_x, test_y, source). Images are (N, 1, 8, 8) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32).reshape(-1, 8, 8) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        source = "scikit-learn's 8x8 handwritten digits ({} images)".format(len(y))
    except ImportError:
        x, y = synthetic_digits(1800, g)
        source = "synthetic 8x8 digits (scikit-learn is not installed; {} images)".format(len(y))
    perm = torch.randperm(len(y), generator=g)
    x, y = x[perm].unsqueeze(1), y[perm]
    n_test = len(y) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test], source


# ---------------------------------------------------------------------------------------------------------------
# Model


class DigitsNet(nn.Module):
    """Three convolutions (plain, strided, grouped) with batch norm, then a linear classifier."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)           # 8x8 -> 4x4
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1, groups=4, bias=False)  # grouped
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.conv3(x)) + x
        return self.fc(x.flatten(1))


class ConvCounter:
    """Counts convolution module calls with forward hooks, and the backward passes they imply."""

    def __init__(self, model):
        self.forward = 0
        self.pending = {d: 0 for d in DIRECTIONS[1:]}  # backward work recorded by the last forward
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, CONV_TYPES)]

    def _hook(self, module, inputs, output):
        self.forward += 1
        if torch.is_grad_enabled():
            self.pending["backward_data"] += int(inputs[0].requires_grad)
            self.pending["backward_weight"] += int(module.weight.requires_grad)
            self.pending["backward_bias"] += int(module.bias is not None and module.bias.requires_grad)

    def take_pending(self):
        out, self.pending = self.pending, {d: 0 for d in DIRECTIONS[1:]}
        return out


# ---------------------------------------------------------------------------------------------------------------
# Loss curve


def save_plot(path, step_losses, epoch_losses, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _save_plain_png(path, step_losses)
        return "plain PNG (matplotlib is not installed)"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(range(1, len(step_losses) + 1), step_losses, lw=0.8, alpha=0.6, label="training loss per step")
    if epoch_losses:
        steps_per_epoch = len(step_losses) / len(epoch_losses)
        ax.plot([steps_per_epoch * (i + 1) for i in range(len(epoch_losses))], epoch_losses, "o-",
                label="mean per epoch")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return "matplotlib"


def _save_plain_png(path, values, width=640, height=360):
    """A bare line plot written as an RGB PNG without any plotting library."""
    img = [[(255, 255, 255)] * width for _ in range(height)]
    margin = 20
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0

    def pt(i, v):
        x = margin + int((width - 2 * margin - 1) * i / max(1, len(values) - 1))
        y = height - margin - 1 - int((height - 2 * margin - 1) * (v - lo) / span)
        return x, y

    for x in range(margin, width - margin):
        img[height - margin][x] = (0, 0, 0)
    for y in range(margin, height - margin + 1):
        img[y][margin - 1] = (0, 0, 0)
    prev = None
    for i, v in enumerate(values):
        cur = pt(i, v)
        if prev is not None:
            steps = max(abs(cur[0] - prev[0]), abs(cur[1] - prev[1]), 1)
            for s in range(steps + 1):
                x = prev[0] + (cur[0] - prev[0]) * s // steps
                y = prev[1] + (cur[1] - prev[1]) * s // steps
                img[y][x] = (31, 119, 180)
        prev = cur
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in img)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------------------------


def progress(iterable, desc, total):
    try:
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stdout)
    except ImportError:
        return iterable


def totals():
    s = gemmconv.stats()
    return {d: int((s.get(d) or {}).get("total", 0)) for d in DIRECTIONS}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--out-dir", default="demo-output")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but PyTorch sees no GPU", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    if device == "cpu":
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    train_x, train_y, test_x, test_y, source = load_data(args.seed)
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (gemmconv CPU routing)"
    print("gemmconv digits demo: torch {}, device {}".format(torch.__version__, where))
    print("data: {}; {} for training, {} for testing".format(source, len(train_y), len(test_y)))

    model = DigitsNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    counter = ConvCounter(model)
    expected = {d: 0 for d in DIRECTIONS}
    train_x, train_y, test_x, test_y = (t.to(device) for t in (train_x, train_y, test_x, test_y))

    gemmconv.enable(device_types=(device,))
    gemmconv.reset_stats()
    start_counts = totals()
    step_losses, epoch_losses = [], []
    accuracy = 0.0
    g = torch.Generator().manual_seed(args.seed + 1)
    t_all = time.perf_counter()
    try:
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(train_y), generator=g).to(device)
            batches = [perm[i:i + args.batch_size] for i in range(0, len(perm), args.batch_size)]
            running = 0.0
            bar = progress(batches, "epoch {}/{}".format(epoch, args.epochs), len(batches))
            for idx in bar:
                loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
                opt.zero_grad()
                loss.backward()
                for d, n in counter.take_pending().items():
                    expected[d] += n
                opt.step()
                step_losses.append(float(loss))
                running += step_losses[-1]
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss="{:.3f}".format(step_losses[-1]), refresh=False)
            epoch_losses.append(running / len(batches))
            model.eval()
            correct = 0
            with torch.no_grad():
                for i in range(0, len(test_y), 256):
                    correct += int((model(test_x[i:i + 256]).argmax(1) == test_y[i:i + 256]).sum())
            counter.take_pending()  # eval forwards record no backward work (no_grad), keep the books clean
            if device == "cuda":
                torch.cuda.synchronize()
            accuracy = 100.0 * correct / len(test_y)
            print("epoch {}/{}: loss {:.4f}, test accuracy {:.1f}%, {:.2f} s".format(
                epoch, args.epochs, epoch_losses[-1], accuracy, time.perf_counter() - t0), flush=True)
    finally:
        gemmconv.disable(None)
    elapsed = time.perf_counter() - t_all

    expected["forward"] = counter.forward
    end_counts = totals()
    counted = {d: end_counts[d] - start_counts[d] for d in DIRECTIONS}
    print("final test accuracy: {:.1f}% after {} epochs ({:.1f} s, {:.2f} s/epoch)".format(
        accuracy, args.epochs, elapsed, elapsed / max(1, args.epochs)))
    print("convolutions (module calls counted by hooks vs calls counted by gemmconv.stats()):")
    ok = True
    for d in DIRECTIONS:
        match = counted[d] == expected[d]
        ok = ok and match
        print("  {:<16} expected {:>6}  gemmconv {:>6}  {}".format(d, expected[d], counted[d],
                                                                    "ok" if match else "MISMATCH"))
    solvers = {d: {k: v for k, v in (gemmconv.stats().get(d) or {}).items() if k != "total" and v}
               for d in DIRECTIONS}
    print("  solvers used: {}".format(", ".join("{}={}".format(d, s) for d, s in solvers.items() if s) or "none"))

    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.abspath(os.path.join(args.out_dir, "loss_curve.png"))
    how = save_plot(png, step_losses, epoch_losses,
                    "gemmconv digits demo on {} ({} epochs, {:.1f}% test accuracy)".format(device, args.epochs,
                                                                                          accuracy))
    print("loss curve saved to {} ({})".format(png, how))
    if not ok:
        print("FAILED: some convolutions did not go through gemmconv", file=sys.stderr)
        return 3
    print("every convolution ran through gemmconv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
