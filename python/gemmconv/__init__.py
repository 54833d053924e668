"""gemmconv: every PyTorch convolution through GEMM, underneath torch.nn, with no change to user code.

    import gemmconv
    gemmconv.enable()              # CUDA/HIP convolutions (forward and every gradient) now run in gemmconv
    ...
    gemmconv.stats()               # which solver ran how often, per pass
    gemmconv.disable()             # back to PyTorch's own kernels

Every environment variable and every enable() argument, with its default, is documented in one place:
docs/configuration.md.

Importing this package is cheap: it imports neither torch nor the compiled extension; enable() loads both.
"""

import os
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ._version import __version__

__all__ = [
    "__version__",
    "enable",
    "disable",
    "enabled",
    "is_enabled",
    "stats",
    "reset_stats",
    "config",
    "solver_names",
    "built_archs",
    "PLAN_KINDS",
    "find_stats",
]

DEVICE_TYPES = ("cuda", "cpu")
DIRECTIONS = ("forward", "backward_data", "backward_weight", "backward_bias")
# What stats() counts besides solvers: the bias gradient's reduction and problems with an empty batch.
PLAN_KINDS = ("bias_reduce", "empty")
_DEFAULT_DEVICES = ("cuda",)  # compared by identity: enable() called without device_types

_lock = threading.RLock()
# torch.backends.cudnn.enabled as it was before enable() turned it off on a card whose vendor
# library is broken; None while gemmconv has not touched it.
_saved_cudnn: Optional[bool] = None
_warned = set()


def _extension() -> Any:
    """The compiled extension, loaded on first use (its kernels register with PyTorch's dispatcher as it loads)."""
    module = sys.modules.get("gemmconv._C")
    if module is not None:
        return module
    import torch  # noqa: F401  (libtorch must be loaded before the extension)

    try:
        from . import _C
    except ImportError as exc:
        raise ImportError(
            "gemmconv's compiled extension gemmconv._C is not available ({}). Build it with "
            "`scripts/build_ext.sh` (in place) or `pip install --no-build-isolation .`, against the "
            "torch you run.".format(exc)
        ) from exc
    return _C


def _loaded() -> Any:
    return sys.modules.get("gemmconv._C")


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _device_list(device_types: Union[str, Iterable[str], None]) -> List[str]:
    if device_types is None:
        return list(DEVICE_TYPES)
    if isinstance(device_types, str):
        device_types = [device_types]
    out: List[str] = []
    for d in device_types:
        name = str(getattr(d, "type", d)).strip().lower()  # accepts torch.device too
        if name == "hip":  # ROCm devices are torch.device("cuda")
            name = "cuda"
        if name not in DEVICE_TYPES:
            raise ValueError("gemmconv: unknown device type {!r} (expected 'cuda' or 'cpu')".format(d))
        if name not in out:
            out.append(name)
    return out


def _solver_list(names: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(names, str):
        names = names.split(",")
    return [n.strip() for n in names if n and n.strip()]


# The largest workspace budget in MiB whose size in bytes fits the engine's size_t; larger values are refused
# rather than wrapped.
MAX_WORKSPACE_MB = (2 * sys.maxsize + 1) >> 20


def _check_workspace_mb(value: Any) -> None:
    """ValueError, naming the value, unless it is an integer budget the engine can hold."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and 0 <= value <= MAX_WORKSPACE_MB
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError("gemmconv: workspace_mb must be an integer from 0 to {} (MiB), got {!r}".format(
            MAX_WORKSPACE_MB, value))


def _warn_once(key: str, message: str) -> None:
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, UserWarning, stacklevel=4)  # the caller of enable()


def _vendor_conv_broken() -> bool:
    try:
        from .diagnosis.detect import vendor_conv_broken
    except Exception:
        return False
    try:
        return bool(vendor_conv_broken())
    except Exception:
        return False


def _unservable(ext: Any, device: str) -> Optional[str]:
    """Why gemmconv cannot route convolutions on `device` in this process (None: it can). The torch build
    and the extension's build decide; whether a GPU is plugged in right now does not."""
    if device != "cuda":
        return None
    import torch

    if not (getattr(torch.version, "hip", None) or getattr(torch.version, "cuda", None)):
        return ("this torch ({}) is a CPU-only build, so there are no 'cuda' tensors to route; install a CUDA or "
                "ROCm build of torch, then rebuild gemmconv against it".format(torch.__version__))
    if not ext.gpu_kernels_registered():
        return ("gemmconv's extension was built without GPU kernels (built for {}); rebuild it where nvcc (CUDA) "
                "or hipcc (ROCm) is installed: pip install --no-build-isolation .".format(
                    ", ".join(ext.built_archs())))
    return None


def _on_gpu_enabled(ext: Any) -> None:
    global _saved_cudnn
    import torch

    hip = getattr(torch.version, "hip", None)
    if not hip or _saved_cudnn is not None or not _vendor_conv_broken():
        return
    # The convolution override sits in front of PyTorch's cuDNN/MIOpen dispatch, so convolutions
    # reach gemmconv whatever this flag says; turning it off keeps batch-norm and RNNs away from
    # MIOpen too.
    _saved_cudnn = bool(torch.backends.cudnn.enabled)
    torch.backends.cudnn.enabled = False
    _warn_once(
        "cudnn",
        "gemmconv: this GPU's vendor convolution library (MIOpen) is known to be broken, so "
        "torch.backends.cudnn.enabled is now False: convolutions run in gemmconv, batch-norm and RNNs in "
        "PyTorch's native kernels. gemmconv.disable() restores the setting.",
    )


def _on_gpu_disabled() -> None:
    global _saved_cudnn
    if _saved_cudnn is None:
        return
    import torch

    torch.backends.cudnn.enabled = _saved_cudnn
    _saved_cudnn = None


def enable(
    device_types: Union[str, Iterable[str]] = _DEFAULT_DEVICES,
    *,
    workspace_mb: Optional[int] = None,
    disable_solvers: Union[str, Iterable[str], None] = None,
    log_level: Optional[str] = None,
) -> None:
    """Route convolutions on `device_types` ("cuda" covers HIP devices; "cpu") through gemmconv.

    Called without `device_types`, CPU tensors are routed too when GEMMCONV_CPU=1. `workspace_mb`,
    `disable_solvers` (names, a list or a comma-separated string; replaces the set from
    GEMMCONV_DISABLE) and `log_level` change the engine's configuration; None keeps what is set.
    Invalid arguments raise ValueError before anything changes. A device type that this torch or the built
    extension cannot serve ("cuda" on a CPU-only torch, or with an extension built without GPU kernels) is
    left off with a warning (once per process): is_enabled() and config() then say False for it.
    """
    with _lock:
        devices = _device_list(device_types)
        if device_types is _DEFAULT_DEVICES and _truthy(os.environ.get("GEMMCONV_CPU")) and "cpu" not in devices:
            devices.append("cpu")
        ext = _extension()
        if disable_solvers is not None:
            known = set(ext.solver_names())
            unknown = [n for n in _solver_list(disable_solvers) if n not in known]
            if unknown:
                raise ValueError("gemmconv: unknown solver(s) {} (known: {})".format(
                    ", ".join(unknown), ", ".join(ext.solver_names())))
        if workspace_mb is not None or disable_solvers is not None or log_level is not None:
            current = ext.get_config()
            if workspace_mb is not None:
                _check_workspace_mb(workspace_mb)
            ext.set_config(
                list(current["disabled"]) if disable_solvers is None else _solver_list(disable_solvers),
                int(current["workspace_mb"] if workspace_mb is None else workspace_mb),
                str(current["log_level"] if log_level is None else log_level).strip().lower(),
            )
        for d in devices:
            why = _unservable(ext, d)
            if why is not None:
                # Nothing would be routed: say so once, and keep is_enabled()/config() truthful.
                _warn_once("unservable-" + d, "gemmconv: enable({!r}) has no effect: {}. Convolutions on {!r} "
                           "stay with PyTorch.".format(d, why, d))
                continue
            ext.set_enabled(d, True)
            if d == "cuda":
                _on_gpu_enabled(ext)


def disable(device_types: Union[str, Iterable[str], None] = None) -> None:
    """Hand convolutions on `device_types` (None: all) back to PyTorch's own implementation."""
    with _lock:
        devices = _device_list(device_types)
        ext = _loaded()
        if ext is not None:
            for d in devices:
                ext.set_enabled(d, False)
        if "cuda" in devices:
            _on_gpu_disabled()


def is_enabled(device_type: str = "cuda") -> bool:
    """Whether convolutions on `device_type` currently run in gemmconv."""
    name = _device_list(device_type)[0]
    ext = _loaded()
    return bool(ext is not None and ext.is_enabled(name))


def _snapshot(ext: Any) -> Tuple[Dict[str, bool], Dict[str, Any]]:
    return {d: bool(ext.is_enabled(d)) for d in DEVICE_TYPES}, dict(ext.get_config())


def _restore(ext: Any, snap: Tuple[Dict[str, bool], Dict[str, Any]]) -> None:
    on, cfg = snap
    ext.set_config(list(cfg["disabled"]), int(cfg["workspace_mb"]), str(cfg["log_level"]))
    for d, value in on.items():
        ext.set_enabled(d, value)


# Open enabled() blocks, process-wide, oldest first: [token, state in force once the block's enable() ran].
# The state before the first block is _ctx_base. A block that ends hands over to the newest block still open, so
# blocks that overlap in several threads, in any order, end with the state from before the first one.
_ctx_stack: List[List[Any]] = []
_ctx_base: Optional[Tuple[Tuple[Dict[str, bool], Dict[str, Any]], Optional[bool]]] = None


@contextmanager
def enabled(device_types: Union[str, Iterable[str]] = _DEFAULT_DEVICES, **kwargs: Any) -> Iterator[None]:
    """enable(device_types, **kwargs) for the duration of a `with` block; the previous state comes back after.

    The engine's state is one per process. Blocks may nest and may overlap across threads: while several are open,
    the newest one's settings are in force; when one ends, the newest block still open is put back in force; when
    the last one ends, the state from before the first comes back (LIFO or not).
    """
    global _ctx_base
    token = object()
    with _lock:
        ext = _extension()
        first = not _ctx_stack
        if first:
            base = (_snapshot(ext), _saved_cudnn)
        try:
            enable(device_types, **kwargs)
        except BaseException:
            if first:
                _restore(ext, base[0])
            raise
        if first:
            _ctx_base = base
        _ctx_stack.append([token, _snapshot(ext)])
    try:
        yield
    finally:
        with _lock:
            _ctx_stack[:] = [entry for entry in _ctx_stack if entry[0] is not token]
            if _ctx_stack:
                _restore(ext, _ctx_stack[-1][1])
            else:
                (snap, base_cudnn), _ctx_base = _ctx_base, None  # type: ignore[misc]
                _restore(ext, snap)
                if base_cudnn is None and _saved_cudnn is not None:
                    _on_gpu_disabled()


def stats() -> Dict[str, Dict[str, int]]:
    """Calls per pass and plan since the last reset_stats(), e.g.
    {"forward": {"im2col_gemm": 12, "total": 12}, "backward_data": {...}, "backward_weight": {...},
     "backward_bias": {"bias_reduce": 12, "total": 12}}; every pass has a "total".

    The keys are the solvers of solver_names() plus the plan kinds of PLAN_KINDS, which are not solvers:
    "bias_reduce" computes every bias gradient (a reduction, no GEMM); "empty" is the engine's plan for a
    batch of zero samples (nothing to compute). Neither can be disabled. Through PyTorch, empty tensors are
    answered before the engine is called, so "empty" shows in gemmconv-driver and the C++ API, not here."""
    ext = _loaded()
    raw = ext.stats() if ext is not None else {}
    out: Dict[str, Dict[str, int]] = {}
    for direction in DIRECTIONS:
        per = {str(k): int(v) for k, v in dict(raw.get(direction, {})).items()}
        per["total"] = sum(per.values())
        out[direction] = per
    return out


def reset_stats() -> None:
    """Zero the counters behind stats()."""
    ext = _loaded()
    if ext is not None:
        ext.reset_stats()


def config() -> Dict[str, Any]:
    """The current state: which device types are routed ("enabled"), the engine configuration ("disabled"
    solvers, "workspace_mb", "log_level", the find mode "find_mode", the perf database "perfdb_path" and
    "perfdb_size"), the build ("built_archs", "gpu_kernels_registered": the extension was built with GPU
    kernels and registers them for "cuda" tensors, "engine_version") and "servable": per device type,
    whether this torch and this build can route it at all."""
    ext = _extension()
    cfg = dict(ext.get_config())
    cfg["disabled"] = list(cfg["disabled"])
    cfg["enabled"] = {d: bool(ext.is_enabled(d)) for d in DEVICE_TYPES}
    cfg["built_archs"] = list(ext.built_archs())
    cfg["gpu_kernels_registered"] = bool(ext.gpu_kernels_registered())
    cfg["engine_version"] = str(ext.engine_version())
    cfg["cudnn_disabled_by_gemmconv"] = _saved_cudnn is not None
    cfg["servable"] = {d: _unservable(ext, d) is None for d in DEVICE_TYPES}
    cfg["perfdb_size"] = int(ext.perfdb_size())
    return cfg


def find_stats() -> Dict[str, int]:
    """The find step's counters in this process: {"finds": problems timed, "trials": candidate runs,
    "database_hits": plans taken from the perf database, "table_plans": plans from the default table}."""
    ext = _loaded()
    if ext is None:
        return {"finds": 0, "trials": 0, "database_hits": 0, "table_plans": 0}
    return {str(k): int(v) for k, v in dict(ext.find_stats()).items()}


def solver_names() -> List[str]:
    """The engine's solvers in the order the planner tries them (the reference solver last): the names that
    GEMMCONV_DISABLE and enable(disable_solvers=...) accept. stats() may also show the plan kinds in
    PLAN_KINDS, which are not solvers and are not listed here."""
    return list(_extension().solver_names())


def built_archs(detail: bool = False) -> List[Any]:
    """The GPU architectures the extension carries code for ("sm_90", "gfx1010", ...), or ["cpu"].

    With detail=True, one dict per arch: {"arch": "gfx1030", "gfx1010_safe": True}. gfx1010_safe is
    set for gfx1030 only and tells whether that slot was built with gfx1010's workarounds (safe to
    load on an RDNA1 card under HSA_OVERRIDE_GFX_VERSION=10.3.0; see docs/card-guide.md); it is None
    for every other arch."""
    ext = _extension()
    archs = [str(a) for a in ext.built_archs()]
    if not detail:
        return archs
    safe_fn = getattr(ext, "gfx1030_gfx1010_safe", None)
    safe = bool(safe_fn()) if safe_fn is not None else False
    return [{"arch": a, "gfx1010_safe": safe if a == "gfx1030" else None} for a in archs]

