"""What the installed PyTorch and GPU runtime report. Run as a script, it prints that as JSON (the doctor runs it
in a child process so that a hanging driver cannot hang the caller). No relative imports: it must run as a script."""

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class RuntimeDevice:
    index: int
    name: str
    arch: str
    pci_bus_id: Optional[str] = None


@dataclass
class RuntimeInfo:
    """torch's view of the machine. `torch_version` None means torch is not importable."""

    torch_version: Optional[str] = None
    hip_version: Optional[str] = None
    cuda_version: Optional[str] = None
    arch_list: List[str] = field(default_factory=list)
    gpu_available: bool = False
    devices: List[RuntimeDevice] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def is_hip(self) -> bool:
        return bool(self.hip_version)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "RuntimeInfo":
        devices = [RuntimeDevice(**d) for d in data.get("devices") or []]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "devices"}  # type: ignore
        return cls(devices=devices, **known)


def _bus_id(props: Any) -> Optional[str]:
    bus = getattr(props, "pci_bus_id", None)
    dev = getattr(props, "pci_device_id", None)
    dom = getattr(props, "pci_domain_id", None)
    if not isinstance(bus, int) or not isinstance(dev, int):
        return None
    return "{:04x}:{:02x}:{:02x}.0".format(dom if isinstance(dom, int) else 0, bus, dev)


def probe_runtime() -> RuntimeInfo:
    """Import torch in this process and ask it. Never raises; failures land in `error`."""
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        return RuntimeInfo(error="torch is not installed for {}".format(sys.executable))
    try:
        import torch
    except Exception as exc:  # a broken install must not break the caller
        return RuntimeInfo(error="import torch failed: {}: {}".format(type(exc).__name__, exc))
    info = RuntimeInfo(torch_version=str(torch.__version__), hip_version=getattr(torch.version, "hip", None),
                       cuda_version=getattr(torch.version, "cuda", None))
    try:
        # The build's arch flags, readable even when no device is visible (get_arch_list() then says []).
        flags = getattr(torch._C, "_cuda_getArchFlags", lambda: None)()
        info.arch_list = flags.split() if flags else []
        info.gpu_available = bool(torch.cuda.is_available())
        if info.gpu_available:
            info.arch_list = info.arch_list or list(torch.cuda.get_arch_list())
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                # CUDA builds have gcnArchName too, holding the device name: only HIP's is an arch.
                arch = getattr(props, "gcnArchName", None) if info.hip_version else None
                arch = arch or "sm_{}{}".format(props.major, props.minor)
                info.devices.append(RuntimeDevice(index=i, name=str(props.name), arch=str(arch),
                                                  pci_bus_id=_bus_id(props)))
    except Exception as exc:
        info.error = "GPU runtime query failed: {}: {}".format(type(exc).__name__, exc)
    return info


def probe_extension() -> Dict[str, Any]:
    """Whether gemmconv's compiled extension loads, and the GPU archs it was built for."""
    import importlib.util
    try:
        if importlib.util.find_spec("gemmconv._C") is None:
            return {"built": False, "archs": None, "error": None}
    except Exception as exc:
        return {"built": False, "archs": None, "error": "gemmconv is not importable: {}".format(exc)}
    try:
        path = importlib.util.find_spec("gemmconv._C").origin
    except Exception:
        path = None
    try:
        import torch  # noqa: F401  (the extension needs libtorch loaded first)
        from gemmconv import _C
        archs = getattr(_C, "built_archs", None)
        safe = getattr(_C, "gfx1030_gfx1010_safe", None)
        return {"built": True, "archs": [str(a) for a in archs()] if archs else None, "error": None,
                "path": path, "gfx1030_safe": bool(safe()) if safe else None}
    except Exception as exc:
        return {"built": True, "archs": None, "error": "{}: {}".format(type(exc).__name__, exc), "path": path}


if __name__ == "__main__":
    out = probe_runtime().to_dict()
    if "--extension" in sys.argv[1:]:
        out["extension"] = probe_extension() if out.get("torch_version") else {
            "built": None, "archs": None, "error": "not checked: torch is not importable"}
    print(json.dumps(out))
