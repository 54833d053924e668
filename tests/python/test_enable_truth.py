"""enable() says it when nothing will happen, config() tells the truth, and the public names are what the docs say."""

import warnings

import pytest
import torch

import gemmconv

TORCH_SERVES_CUDA = bool(getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None))


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(gemmconv, "_warned", set())
    gemmconv.disable()
    yield
    gemmconv.disable()


def _enable_cuda():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gemmconv.enable("cuda")
    return [str(w.message) for w in caught if "gemmconv" in str(w.message)]


@pytest.mark.skipif(TORCH_SERVES_CUDA, reason="this torch is a CUDA/ROCm build: the CPU-only-torch case cannot "
                                              "happen here (the no-GPU-kernels case below still runs)")
def test_cuda_on_cpu_only_torch_warns_once_and_stays_off(fresh):
    first = _enable_cuda()
    assert len(first) == 1 and "CPU-only build" in first[0] and "enable('cuda') has no effect" in first[0]
    assert not gemmconv.is_enabled("cuda")
    cfg = gemmconv.config()
    assert cfg["enabled"]["cuda"] is False and cfg["servable"] == {"cuda": False, "cpu": True}
    assert _enable_cuda() == []  # once per process
    assert not gemmconv.is_enabled("cuda")
    # The default device list is "cuda": the same truth.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gemmconv.enable()
    assert not gemmconv.is_enabled("cuda")


def test_cuda_with_extension_without_gpu_kernels(fresh, monkeypatch):
    ext = gemmconv._extension()
    if ext.gpu_kernels_registered():
        # On a GPU build, pretend the kernels are missing: the same path a CPU-only build takes on a GPU torch.
        monkeypatch.setattr(gemmconv, "_extension", lambda: _NoGpu(ext))
    monkeypatch.setattr(torch.version, "cuda", "12.4")  # torch claims CUDA: only the build can refuse now
    msgs = _enable_cuda()
    assert len(msgs) == 1 and "without GPU kernels" in msgs[0] and "nvcc" in msgs[0], msgs
    assert not ext.is_enabled("cuda") and gemmconv.config()["enabled"]["cuda"] is False


class _NoGpu:
    def __init__(self, ext):
        self._ext = ext

    def gpu_kernels_registered(self):
        return False

    def built_archs(self):
        return ["cpu"]

    def __getattr__(self, name):
        return getattr(self._ext, name)


def test_cpu_is_always_servable(fresh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for what works
        gemmconv.enable("cpu")
    assert gemmconv.is_enabled("cpu") and gemmconv.config()["enabled"]["cpu"] is True


def test_unservable_does_not_block_the_servable(fresh, monkeypatch):
    monkeypatch.setattr(gemmconv, "_unservable", lambda ext, d: "test" if d == "cuda" else None)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        gemmconv.enable(["cuda", "cpu"])
    assert gemmconv.is_enabled("cpu") and not gemmconv.is_enabled("cuda")


def test_public_names():
    for name in ("built_archs", "solver_names", "PLAN_KINDS", "__version__"):
        assert name in gemmconv.__all__ and hasattr(gemmconv, name)
    assert gemmconv.built_archs() and all(isinstance(a, str) for a in gemmconv.built_archs())


def test_stats_keys_are_solvers_or_plan_kinds(fresh):
    """Every name stats() can show is a solver of solver_names() or one of PLAN_KINDS, and the plan kinds are not
    solvers (they cannot be disabled)."""
    import torch.nn.functional as F

    solvers = set(gemmconv.solver_names())
    assert not solvers & set(gemmconv.PLAN_KINDS)
    gemmconv.reset_stats()
    with gemmconv.enabled("cpu"):
        x = torch.randn(2, 3, 6, 6, requires_grad=True)
        w = torch.randn(4, 3, 3, 3, requires_grad=True)
        b = torch.randn(4, requires_grad=True)
        F.conv2d(x, w, b).sum().backward()
        before = gemmconv.stats()
        F.conv2d(torch.randn(0, 3, 6, 6, requires_grad=True), w, b).sum().backward()  # an empty batch
        # The binding answers empty tensors without the engine: nothing is counted (the engine's "empty" plan
        # shows in gemmconv-driver and the C++ API), as the docs say.
        assert gemmconv.stats() == before
    seen = {k for per in gemmconv.stats().values() for k in per if k != "total"}
    assert "bias_reduce" in seen, seen
    assert seen <= solvers | set(gemmconv.PLAN_KINDS), seen - solvers - set(gemmconv.PLAN_KINDS)
    for kind in gemmconv.PLAN_KINDS:
        with pytest.raises(ValueError, match="unknown solver"):
            gemmconv.enable("cpu", disable_solvers=[kind])
