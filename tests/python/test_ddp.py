"""DistributedDataParallel with gemmconv routing every convolution: a small CNN trained by 2 ranks ends with the same
weights as the same training in one process.

- CPU (CI): 2 ranks over gloo, gemmconv.enable('cpu').
- GPU machine: 2 ranks over NCCL when there are 2 GPUs, otherwise 2 ranks sharing one GPU over gloo.

Each rank is this file run as a script (`--rank`), so nothing depends on how pytest imports the module.

Tolerance: both runs compute the same float32 sums in a different order (each rank reduces half the batch and the
all-reduce adds the halves; the single process reduces the whole batch at once). Each gradient element differs by a
few float32 roundings (eps 1.2e-7) of its magnitude; 4 SGD steps with lr 0.05 carry that into the weights at well
under 1e-5 relative, so rtol 1e-4 / atol 1e-5 leaves a margin of ten while a wrong gradient (a missing
all-reduce, a rank's half lost, a wrong scale) moves weights by 1e-3 or more.
"""

import argparse
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
STEPS = 4
BATCH_PER_RANK = 4
WORLD = 2
LR = 0.05


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
        nn.Conv2d(16, 8, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def _data(device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, WORLD * BATCH_PER_RANK, 3, 12, 12, generator=g)
    y = torch.randint(0, 5, (STEPS, WORLD * BATCH_PER_RANK), generator=g)
    return x.to(device), y.to(device)


def _train(model, xs, ys, rank, world):
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    lo, hi = rank * BATCH_PER_RANK * WORLD // world, (rank + 1) * BATCH_PER_RANK * WORLD // world
    for step in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xs[step, lo:hi]), ys[step, lo:hi])
        loss.backward()
        opt.step()


def _worker(args):
    import gemmconv
    import torch.distributed as dist

    device = torch.device(args.device if args.device == "cpu" else "cuda:{}".format(args.gpu))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    gemmconv.enable(device.type)
    world = args.world
    if world > 1:
        dist.init_process_group(args.backend, init_method="tcp://127.0.0.1:{}".format(args.port), rank=args.rank,
                                world_size=world)
    model = _model().to(device)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    xs, ys = _data(device)
    gemmconv.reset_stats()
    _train(model, xs, ys, args.rank, world)
    stats = gemmconv.stats()
    state = {k: v.detach().cpu() for k, v in (model.module if world > 1 else model).state_dict().items()}
    torch.save({"state": state, "stats": stats}, args.out)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, device, backend, world, gpus):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, "python"), OMP_NUM_THREADS="1")
    procs, outs = [], []
    for rank in range(world):
        out = str(tmp_path / "rank{}_{}.pt".format(rank, world))
        outs.append(out)
        cmd = [sys.executable, __file__, "--rank", str(rank), "--world", str(world), "--port", str(port),
               "--backend", backend, "--device", device, "--gpu", str(gpus[rank % len(gpus)]), "--out", out]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a rank hung; output so far:\n" + "\n".join(logs))
    for rank, p in enumerate(procs):
        assert p.returncode == 0, "rank {} failed:\n{}".format(rank, logs[rank])
    return [torch.load(o) for o in outs]


def _compare(tmp_path, device, backend, gpus):
    single = _launch(tmp_path, device, "gloo", 1, gpus[:1])[0]
    ranks = _launch(tmp_path, device, backend, WORLD, gpus)
    convs = 4
    for r, result in enumerate([single] + ranks):
        f = result["stats"]["forward"]
        assert f["total"] == convs * STEPS, "run {}: gemmconv ran {} forward convolutions, expected {}: {}".format(
            r, f["total"], convs * STEPS, result["stats"])
        # The first convolution's input needs no gradient; the weights of all four do.
        assert result["stats"]["backward_weight"]["total"] == convs * STEPS
        assert result["stats"]["backward_data"]["total"] == (convs - 1) * STEPS
    for name, want in single["state"].items():
        for r, result in enumerate(ranks):
            got = result["state"][name]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5,
                                       msg=lambda m: "rank {} {}: {}".format(r, name, m))
    # The training did something: the weights moved.
    start = _model().state_dict()
    moved = max((single["state"][k] - v).abs().max().item() for k, v in start.items())
    assert moved > 1e-3


def test_ddp_gloo_cpu(tmp_path):
    _compare(tmp_path, "cpu", "gloo", [0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/HIP GPU (torch.cuda.is_available() is False)")
def test_ddp_gpu(tmp_path):
    import gemmconv

    if not gemmconv.config()["gpu_kernels_registered"]:
        pytest.skip("the extension was built without GPU support")
    if torch.cuda.device_count() >= 2:
        import torch.distributed as dist

        if not dist.is_nccl_available():
            pytest.skip("this PyTorch has no NCCL backend")
        _compare(tmp_path, "cuda", "nccl", [0, 1])
    else:
        _compare(tmp_path, "cuda", "gloo", [0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("rank", "world", "port", "gpu"):
        parser.add_argument("--" + name, type=int, required=True)
    for name in ("backend", "device", "out"):
        parser.add_argument("--" + name, required=True)
    _worker(parser.parse_args())
