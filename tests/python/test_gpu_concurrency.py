"""gemmconv on the GPU under streams, threads and CUDA graphs. Every test needs a CUDA/HIP device and an extension built
with GPU support, and is skipped, saying so, without them.

Run on the GPU machine:
    scripts/build_ext.sh && PYTHONPATH=python python3 -m pytest tests/python/test_gpu_concurrency.py -v
"""

import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gemmconv

CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA/HIP GPU (torch.cuda.is_available() is False)")


@pytest.fixture(autouse=True)
def _gpu_kernels_registered():
    if CUDA and not gemmconv.config()["gpu_kernels_registered"]:
        pytest.skip("the extension was built without GPU support (rebuild where nvcc or hipcc is installed)")
    yield
    gemmconv.disable(None)


def _problems():
    """A few layers that take different solvers (1x1 GEMM, im2col GEMM, depthwise, transposed) and need workspace."""
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g).cuda()

    return [
        (lambda x, w: F.conv2d(x, w, padding=1), t(8, 32, 28, 28), t(64, 32, 3, 3)),
        (lambda x, w: F.conv2d(x, w), t(8, 64, 14, 14), t(128, 64, 1, 1)),
        (lambda x, w: F.conv2d(x, w, padding=1, groups=32), t(8, 32, 28, 28), t(32, 1, 3, 3)),
        (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1), t(4, 16, 14, 14),
         t(16, 8, 3, 3)),
        (lambda x, w: F.conv3d(x, w, padding=1), t(2, 8, 8, 12, 12), t(16, 8, 3, 3, 3)),
    ]


def _reference(fn, x, w):
    """float64 on the GPU with gemmconv off: the result to compare with."""
    gemmconv.disable(None)
    return fn(x.double(), w.double())


def _close(got, want, what):
    err = (got.double() - want).abs().max().item()
    scale = want.abs().max().item() + 1e-30
    assert err <= 2e-4 * scale, "{}: max error {:.3g} (scale {:.3g})".format(what, err, scale)


def test_non_default_stream_is_correct():
    probs = _problems()
    refs = [_reference(*p) for p in probs]
    s = torch.cuda.Stream()
    gemmconv.enable("cuda")
    gemmconv.reset_stats()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        outs = [fn(x, w) for fn, x, w in probs]
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    assert gemmconv.stats()["forward"]["total"] == len(probs)
    for i, (o, r) in enumerate(zip(outs, refs)):
        _close(o, r, "problem {} on a side stream".format(i))


def test_several_streams_at_once_are_correct():
    probs = _problems()
    refs = [_reference(*p) for p in probs]
    streams = [torch.cuda.Stream() for _ in range(4)]
    gemmconv.enable("cuda")
    for s in streams:
        s.wait_stream(torch.cuda.current_stream())
    outs = []
    for rep in range(3):  # interleaved launches: each stream's workspace must stay its own while it runs
        for k, s in enumerate(streams):
            with torch.cuda.stream(s):
                fn, x, w = probs[(k + rep) % len(probs)]
                outs.append(((k + rep) % len(probs), fn(x, w)))
    for s in streams:
        torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    for i, o in outs:
        _close(o, refs[i], "problem {} on one of 4 streams".format(i))


def test_backward_on_a_side_stream_is_correct():
    x = torch.randn(4, 16, 20, 20, device="cuda")
    w = torch.randn(32, 16, 3, 3, device="cuda")
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    want = torch.autograd.grad(F.conv2d(x64, w64, padding=1).square().sum(), (x64, w64))
    gemmconv.enable("cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        got = torch.autograd.grad(F.conv2d(xs, ws, padding=1).square().sum(), (xs, ws))
    torch.cuda.synchronize()
    for g, r, name in zip(got, want, ("grad_input", "grad_weight")):
        _close(g, r, name)


def test_multithreaded_inference_is_correct():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Conv2d(32, 10, 1)).cuda().eval()
    inputs = [torch.randn(4, 3, 32, 32, device="cuda") for _ in range(8)]
    with torch.no_grad():
        want = [model.double()(x.double()) for x in inputs]
    model.float()
    gemmconv.enable("cuda")
    gemmconv.reset_stats()
    results, errors = {}, []

    def worker(t):
        try:
            s = torch.cuda.Stream()
            with torch.no_grad(), torch.cuda.stream(s):
                for rep in range(5):
                    i = (t + rep) % len(inputs)
                    results[(t, rep)] = (i, model(inputs[i]))
            s.synchronize()
        except Exception as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a worker thread hung"
    assert not errors, errors
    torch.cuda.synchronize()
    assert len(results) == 30
    assert gemmconv.stats()["forward"]["total"] == 30 * 4
    for (t, rep), (i, y) in results.items():
        _close(y, want[i], "thread {} call {}".format(t, rep))


def _poison_free_memory():
    """Fills whatever the caching allocator has free with NaN: a graph that kept a pointer to a freed workspace would
    now read NaN (or have it overwritten)."""
    junk = []
    try:
        for _ in range(16):
            junk.append(torch.full((8 << 20,), float("nan"), device="cuda"))
    except RuntimeError:
        pass
    torch.cuda.synchronize()
    return junk


def test_cuda_graph_capture_replays_correctly():
    fn, x, w = _problems()[0]
    want = _reference(fn, x, w)
    gemmconv.enable("cuda")
    static_x = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):  # warm-up outside capture (plans, cuBLAS handles)
            fn(static_x, w)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            static_y = fn(static_x, w)
    except RuntimeError as exc:
        # Refusing capture is allowed, but it must say why in words, not as a bare CUDA failure code.
        msg = str(exc)
        assert "gemmconv" in msg and "capture" in msg.lower(), msg
        pytest.skip("gemmconv refused graph capture with a clear error: " + msg.splitlines()[0])
    # Anything freed after capture (a workspace released by the binding, for one) is reused and poisoned here;
    # memory the graph owns stays in its private pool and is untouched.
    junk = _poison_free_memory()
    for rep in range(3):
        static_x.copy_(x * (rep + 1))
        graph.replay()
        torch.cuda.synchronize()
        _close(static_y, want * (rep + 1), "graph replay {}".format(rep))
    del junk


def test_cuda_graph_capture_of_a_training_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)).cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda")
    ref = [p.detach().double() for p in model.parameters()]
    gemmconv.enable("cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            model.zero_grad(set_to_none=False)
            model(x).square().mean().backward()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            model.zero_grad(set_to_none=False)  # captured too: each replay computes the gradient afresh
            loss = model(x).square().mean()
            loss.backward()
    except RuntimeError as exc:
        msg = str(exc)
        assert "gemmconv" in msg and "capture" in msg.lower(), msg
        pytest.skip("gemmconv refused graph capture with a clear error: " + msg.splitlines()[0])
    junk = _poison_free_memory()
    graph.replay()
    torch.cuda.synchronize()
    got = [p.grad.detach().clone() for p in model.parameters()]
    del junk
    # The same gradients computed in float64 without gemmconv.
    gemmconv.disable(None)
    m64 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)).cuda().double()
    with torch.no_grad():
        for p, r in zip(m64.parameters(), ref):
            p.copy_(r)
    m64(x.double()).square().mean().backward()
    for i, (g, p) in enumerate(zip(got, m64.parameters())):
        assert torch.isfinite(g).all(), "parameter {}: non-finite gradient after replay".format(i)
        _close(g, p.grad, "parameter {} gradient after replay".format(i))


def test_torch_compile_reduce_overhead():
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile needs PyTorch 2 (this is {})".format(torch.__version__))
    fn, x, w = _problems()[0]
    want = _reference(fn, x, w)
    gemmconv.enable("cuda")
    gemmconv.reset_stats()
    compiled = torch.compile(lambda a, b: fn(a, b), mode="reduce-overhead")
    try:
        outs = [compiled(x, w).clone() for _ in range(4)]  # the later calls replay the CUDA graph
    except Exception as exc:  # noqa: BLE001  (a refusal must be a clear one)
        msg = str(exc)
        assert "gemmconv" in msg, msg
        pytest.skip("torch.compile(mode='reduce-overhead') refused with a clear error: " + msg.splitlines()[0])
    torch.cuda.synchronize()
    assert gemmconv.stats()["forward"]["total"] >= 1, "the compiled graph did not run gemmconv"
    _poison_free_memory()
    outs.append(compiled(x, w).clone())
    torch.cuda.synchronize()
    for i, o in enumerate(outs):
        _close(o, want, "compiled call {}".format(i))


def test_workspace_oom_backs_off_on_the_gpu(capfd):
    """A real out-of-memory from the caching allocator: the memory fraction is capped just above what the tensors
    need, so the large workspace im2col_gemm asks for cannot be had and the binding plans again with less."""
    torch.cuda.empty_cache()
    x = torch.randn(32, 64, 56, 56, device="cuda")
    w = torch.randn(64, 64, 3, 3, device="cuda")
    want = _reference(lambda a, b: F.conv2d(a, b, padding=1), x, w).float()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    used = torch.cuda.memory_allocated()
    out_bytes = want.numel() * 4
    # Room for the output and a little more: far less than a whole-batch im2col workspace (~1.6 GB).
    fraction = min(1.0, (used + out_bytes + (64 << 20)) / total)
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        # implicit_gemm needs no workspace: switched off so that a workspace-hungry GEMM solver is planned first.
        with gemmconv.enabled("cuda", workspace_mb=8192, disable_solvers="implicit_gemm", log_level="info"):
            gemmconv.reset_stats()
            got = F.conv2d(x, w, padding=1)
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert gemmconv.stats()["forward"]["total"] == 1
    err = capfd.readouterr().err
    assert "planning again with a budget of" in err, "no out-of-memory back-off was logged:\n" + err
    _close(got, want.double(), "forward after an out-of-memory back-off")
