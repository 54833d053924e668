"""Raw facts read from a machine tree (sysfs, /dev, /opt/rocm) under a root directory; no judgment here."""

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

CAPTURE_FILE = "gemmconv-capture.json"


@dataclass
class PciGpu:
    address: str
    vendor: int
    device: int
    class_code: int
    subsystem_vendor: Optional[int] = None
    subsystem_device: Optional[int] = None
    driver: Optional[str] = None


@dataclass
class KfdNode:
    """One KFD topology node. `user_id` is the node's position among the nodes (CPU nodes included), which is
    the number libhsakmt gives it and the <n> of HSA_OVERRIDE_GFX_VERSION_<n>."""

    sysfs_id: int
    user_id: int
    gfx_target_version: int = 0
    vendor_id: int = 0
    device_id: int = 0
    location_id: int = 0
    domain: int = 0
    simd_count: int = 0
    drm_render_minor: Optional[int] = None

    @property
    def is_gpu(self) -> bool:
        return self.simd_count > 0 or self.gfx_target_version > 0

    @property
    def pci_address(self) -> Optional[str]:
        if not self.location_id and not self.domain:
            return None
        bus, dev, fn = self.location_id >> 8, (self.location_id >> 3) & 0x1F, self.location_id & 0x7
        return "{:04x}:{:02x}:{:02x}.{:x}".format(self.domain, bus, dev, fn)


@dataclass
class MachineFacts:
    pci_gpus: List[PciGpu] = field(default_factory=list)
    kfd_nodes: List[KfdNode] = field(default_factory=list)
    kernel: Optional[str] = None
    amdgpu_loaded: bool = False
    amdgpu_version: Optional[str] = None
    kfd_present: bool = False
    kfd_access: Optional[bool] = None
    kfd_group: Optional[str] = None
    user: Optional[str] = None
    user_groups: List[str] = field(default_factory=list)
    rocm_version: Optional[str] = None
    rocm_path: Optional[str] = None
    capture: Dict[str, Any] = field(default_factory=dict)


def under(root: str, path: str) -> str:
    """`path` (absolute) inside the tree `root`."""
    return os.path.join(root, path.lstrip("/"))


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str, base: int = 0) -> Optional[int]:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0], base)
    except (ValueError, IndexError):
        return None


def _driver_of(devdir: str) -> Optional[str]:
    try:
        return os.path.basename(os.readlink(os.path.join(devdir, "driver")))
    except OSError:
        pass
    for line in (read_text(os.path.join(devdir, "uevent")) or "").splitlines():
        if line.startswith("DRIVER="):
            return line.split("=", 1)[1].strip() or None
    return None


def read_pci_gpus(root: str) -> List[PciGpu]:
    gpus = []
    for devdir in sorted(glob.glob(under(root, "/sys/bus/pci/devices/*"))):
        cls = _read_int(os.path.join(devdir, "class"), 16)
        vendor = _read_int(os.path.join(devdir, "vendor"), 16)
        device = _read_int(os.path.join(devdir, "device"), 16)
        if cls is None or vendor is None or device is None or (cls >> 16) != 0x03:
            continue
        gpus.append(PciGpu(
            address=os.path.basename(devdir).lower(), vendor=vendor, device=device, class_code=cls,
            subsystem_vendor=_read_int(os.path.join(devdir, "subsystem_vendor"), 16),
            subsystem_device=_read_int(os.path.join(devdir, "subsystem_device"), 16),
            driver=_driver_of(devdir),
        ))
    return gpus


def _parse_properties(text: str) -> Dict[str, int]:
    props = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                props[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return props


def read_kfd_nodes(root: str) -> List[KfdNode]:
    base = under(root, "/sys/class/kfd/kfd/topology/nodes")
    try:
        ids = sorted(int(n) for n in os.listdir(base) if n.isdigit())
    except OSError:
        return []
    nodes = []
    for user_id, sysfs_id in enumerate(ids):
        props = _parse_properties(read_text(os.path.join(base, str(sysfs_id), "properties")) or "")
        nodes.append(KfdNode(
            sysfs_id=sysfs_id, user_id=user_id,
            gfx_target_version=props.get("gfx_target_version", 0), vendor_id=props.get("vendor_id", 0),
            device_id=props.get("device_id", 0), location_id=props.get("location_id", 0),
            domain=props.get("domain", 0), simd_count=props.get("simd_count", 0),
            drm_render_minor=props.get("drm_render_minor"),
        ))
    return nodes


def _version_key(text: str) -> List[int]:
    return [int(x) for x in re.findall(r"\d+", text)[:4]]


def read_rocm(root: str) -> Tuple[Optional[str], Optional[str]]:
    """(version, path) of the ROCm in /opt/rocm, else of the newest /opt/rocm-*."""
    main = under(root, "/opt/rocm")
    version = read_text(os.path.join(main, ".info", "version"))
    if version:
        return version.splitlines()[0].strip(), "/opt/rocm"
    found = []
    for path in glob.glob(under(root, "/opt/rocm-*")):
        v = read_text(os.path.join(path, ".info", "version"))
        if v:
            found.append((_version_key(v), v.splitlines()[0].strip(), "/opt/" + os.path.basename(path)))
    if not found:
        return None, None
    found.sort()
    return found[-1][1], found[-1][2]


def _local_user_and_groups() -> Tuple[Optional[str], List[str]]:
    try:
        import grp
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
        names = set()
        for gid in set(os.getgroups()) | {os.getgid()}:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                pass
        return user, sorted(names)
    except (ImportError, KeyError, OSError):
        return os.environ.get("USER"), []


def _group_name(gid: int) -> Optional[str]:
    try:
        import grp
        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return None


def read_capture(root: str) -> Dict[str, Any]:
    """Facts a captured tree cannot hold as files (access rights, groups, torch); only for root != "/"."""
    if os.path.abspath(root) == "/":
        return {}
    text = read_text(os.path.join(root, CAPTURE_FILE))
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_machine(root: str) -> MachineFacts:
    capture = read_capture(root)
    facts = MachineFacts(capture=capture)
    facts.pci_gpus = read_pci_gpus(root)
    facts.kfd_nodes = read_kfd_nodes(root)
    facts.kernel = read_text(under(root, "/proc/sys/kernel/osrelease"))
    facts.amdgpu_loaded = os.path.isdir(under(root, "/sys/module/amdgpu"))
    facts.amdgpu_version = read_text(under(root, "/sys/module/amdgpu/version")) or None
    kfd = under(root, "/dev/kfd")
    facts.kfd_present = os.path.exists(kfd)
    if facts.kfd_present:
        facts.kfd_access = os.access(kfd, os.R_OK | os.W_OK)
        try:
            facts.kfd_group = _group_name(os.stat(kfd).st_gid)
        except OSError:
            pass
    facts.user, facts.user_groups = _local_user_and_groups()
    facts.rocm_version, facts.rocm_path = read_rocm(root)
    if "kfd_access" in capture and facts.kfd_present:
        facts.kfd_access = bool(capture["kfd_access"])
    if "kfd_group" in capture:
        facts.kfd_group = capture["kfd_group"]
    if "user" in capture:
        facts.user = capture["user"]
    if "groups" in capture:
        facts.user_groups = sorted(str(g) for g in capture["groups"])
    return facts
