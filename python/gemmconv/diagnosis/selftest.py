"""The doctor's selftest, run in a child process: small convolutions in every direction (forward, input, weight and
bias gradients; 1D, 2D, 3D, transposed, grouped) through gemmconv on each device, against a float64 CPU reference
computed with gemmconv disabled. Prints one JSON object as its last line; exit 0 when every case passed."""

import json
import math
import sys
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

# Words in a stats key that mark calls gemmconv did not compute itself.
_NOT_OURS = ("fallback", "native", "skip", "reject", "declin", "unsupported")
# gemmconv.stats() is {direction: {solver: count, "total": count}}; every case here runs all four directions.
DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")


@dataclass(frozen=True)
class Case:
    name: str
    dim: int
    batch: int
    in_ch: int
    out_ch: int
    size: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    transposed: bool = False
    output_padding: int = 0


CASES = (
    Case("conv2d", 2, 2, 3, 4, 8, 3, padding=1),
    Case("conv2d_stride2_dilation2", 2, 2, 3, 5, 9, 3, stride=2, padding=2, dilation=2),
    Case("conv1d", 1, 2, 3, 5, 11, 3, stride=2, padding=1),
    Case("conv3d", 3, 1, 2, 3, 5, 3, padding=1),
    Case("conv_transpose2d", 2, 2, 4, 3, 6, 3, stride=2, padding=1, transposed=True, output_padding=1),
    Case("conv_transpose1d", 1, 2, 3, 2, 7, 4, stride=2, padding=1, transposed=True),
    Case("grouped_conv2d", 2, 2, 4, 6, 7, 3, padding=1, groups=2),
    Case("depthwise_conv2d", 2, 2, 4, 4, 7, 3, padding=1, groups=4),
    Case("grouped_conv_transpose2d", 2, 2, 4, 6, 5, 3, stride=2, groups=2, transposed=True),
)


@dataclass
class Result:
    device: str
    dtype: str
    case: str
    ok: bool = False
    through_gemmconv: Optional[bool] = None
    tolerance: float = 0.0
    errors: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None


def _tensors(torch: Any, case: Case) -> Tuple[Any, Any, Any]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn((case.batch, case.in_ch) + (case.size,) * case.dim, generator=g, dtype=torch.float64)
    if case.transposed:
        wshape = (case.in_ch, case.out_ch // case.groups)
    else:
        wshape = (case.out_ch, case.in_ch // case.groups)
    w = torch.randn(wshape + (case.kernel,) * case.dim, generator=g, dtype=torch.float64) * 0.3
    b = torch.randn(case.out_ch, generator=g, dtype=torch.float64)
    return x, w, b


def _conv(torch: Any, case: Case, x: Any, w: Any, b: Any) -> Any:
    F = torch.nn.functional
    if case.transposed:
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[case.dim - 1]
        return fn(x, w, b, stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                  groups=case.groups, dilation=case.dilation)
    fn = (F.conv1d, F.conv2d, F.conv3d)[case.dim - 1]
    return fn(x, w, b, stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)


def _run(torch: Any, case: Case, x: Any, w: Any, b: Any, gy_seed: int = 99) -> Dict[str, Any]:
    x, w, b = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    y = _conv(torch, case, x, w, b)
    g = torch.Generator().manual_seed(gy_seed)
    gy = torch.randn(tuple(y.shape), generator=g, dtype=torch.float64).to(y.device, y.dtype)
    y.backward(gy)
    return {"output": y.detach(), "grad_input": x.grad, "grad_weight": w.grad, "grad_bias": b.grad}


def _reduction_length(case: Case, out_shape: Tuple[int, ...]) -> int:
    """The longest sum behind any checked value: per-group channels times taps, or batch times output pixels."""
    per_group = max(case.in_ch, case.out_ch) // case.groups
    return max(per_group * case.kernel ** case.dim, case.batch * math.prod(out_shape[2:]))


def _counters(obj: Any, prefix: str = "") -> Dict[str, float]:
    """Numeric leaves of whatever gemmconv.stats() returns (mapping, dataclass, namedtuple or plain object)."""
    if isinstance(obj, bool):
        return {}
    if isinstance(obj, (int, float)):
        return {prefix: float(obj)}
    if isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, "_asdict"):
        items = obj._asdict().items()
    elif hasattr(obj, "__dataclass_fields__"):
        items = asdict(obj).items()
    elif hasattr(obj, "__dict__"):
        items = vars(obj).items()
    else:
        return {}
    out = {}
    for key, value in items:
        out.update(_counters(value, "{}.{}".format(prefix, key) if prefix else str(key)))
    return out


def _ours(stats: Any) -> Dict[str, float]:
    """Calls gemmconv computed itself: per direction when stats() has them, else one generic counter."""
    if isinstance(stats, dict) and any(d in stats for d in DIRECTIONS):
        out = {}
        for d in DIRECTIONS:
            flat = _counters(stats.get(d) or {})
            solvers = {k: v for k, v in flat.items() if k and k != "total"}
            if solvers:
                out[d] = sum(v for k, v in solvers.items() if not any(w in k.lower() for w in _NOT_OURS))
            else:
                out[d] = flat.get("total", flat.get("", 0.0))
        return out
    flat = _counters(stats)
    return {"calls": sum(v for k, v in flat.items() if not any(w in k.lower() for w in _NOT_OURS))}


def _missed(before: Dict[str, float], after: Dict[str, float]) -> List[str]:
    """The directions (or "calls") whose count did not grow."""
    return [k for k in after if after[k] <= before.get(k, 0.0)]


def _disable(gemmconv: Any) -> None:
    try:
        gemmconv.disable(None)  # None: every device type
    except TypeError:
        gemmconv.disable()


def _devices(torch: Any) -> List[Tuple[str, List[Any]]]:
    out = [("cpu", [torch.float32])]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            out.append(("cuda:{}".format(i), [torch.float32, torch.float16]))
    return out


def run_all() -> Dict[str, Any]:
    import torch
    import gemmconv
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _disable(gemmconv)
    results = []  # type: List[Result]
    for device, dtypes in _devices(torch):
        kind = device.split(":")[0]
        for dtype in dtypes:
            eps = torch.finfo(dtype).eps
            for case in CASES:
                res = Result(device, str(dtype).replace("torch.", ""), case.name)
                results.append(res)
                try:
                    # The reference sees the same rounded inputs, so only the arithmetic differs.
                    x, w, b = (t.to(dtype).to(torch.float64) for t in _tensors(torch, case))
                    _disable(gemmconv)
                    ref = _run(torch, case, x, w, b)
                    gemmconv.enable(device_types=(kind,))
                    gemmconv.reset_stats()
                    before = _ours(gemmconv.stats())
                    got = _run(torch, case, *(t.to(device, dtype) for t in (x, w, b)))
                    if kind == "cuda":
                        torch.cuda.synchronize()
                    missed = _missed(before, _ours(gemmconv.stats()))
                    res.through_gemmconv = not missed
                    red = _reduction_length(case, tuple(ref["output"].shape))
                    # A few roundings of the largest magnitude, growing with the square root of the sum length.
                    res.tolerance = eps * (4 + 2 * math.sqrt(red))
                    for key, want in ref.items():
                        have = got[key].detach().to("cpu", torch.float64)
                        scale = max(float(want.abs().max()), 1e-6)
                        res.errors[key] = float((have - want).abs().max()) / scale
                    res.ok = bool(res.through_gemmconv) and all(e <= res.tolerance for e in res.errors.values())
                    if not res.through_gemmconv:
                        res.error = "gemmconv.stats() counts no {} call: the convolution did not go through " \
                                    "gemmconv".format("/".join(missed))
                    elif not res.ok:
                        worst = max(res.errors, key=lambda k: res.errors[k])
                        res.error = "{} off by {:.2e} (relative), tolerance {:.2e}".format(
                            worst, res.errors[worst], res.tolerance)
                except Exception as exc:
                    res.error = "{}: {}".format(type(exc).__name__, exc)
                finally:
                    try:
                        _disable(gemmconv)
                    except Exception:
                        pass
    return {"ok": bool(results) and all(r.ok for r in results), "torch": str(torch.__version__),
            "results": [asdict(r) for r in results], "error": None}


def main() -> int:
    try:
        summary = run_all()
    except Exception as exc:
        summary = {"ok": False, "results": [], "error": "{}: {}".format(type(exc).__name__, exc),
                   "traceback": traceback.format_exc(limit=5)}
    sys.stdout.write("\n" + json.dumps(summary) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
