"""Raw facts read from a machine tree (sysfs, /dev, /opt/rocm) under a root directory; no judgment here.

Every read is bounded, because the tree may be a hostile capture: only regular files are opened (never a FIFO, a
socket or a device node: checked with stat before opening and again on the open descriptor, opened with
O_NONBLOCK), at most MAX_READ bytes are read, directory listings stop at MAX_ENTRIES, and the capture JSON is
refused beyond MAX_CAPTURE bytes or MAX_DEPTH levels of nesting, and checked field by field (CAPTURE_SCHEMA).
"""

import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

CAPTURE_FILE = "gemmconv-capture.json"
MAX_READ = 64 * 1024  # bytes read from one sysfs file
VERSION_READ = 256  # bytes read from a version file (ROCm, amdgpu, kernel)
MAX_CAPTURE = 1 << 20  # bytes of gemmconv-capture.json
MAX_DEPTH = 16  # nesting of gemmconv-capture.json
MAX_ENTRIES = 4096  # PCI devices, KFD nodes, /opt/rocm-* directories considered


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
    capture_problems: List[str] = field(default_factory=list)  # what was wrong in gemmconv-capture.json
    local: bool = True  # read from this machine (root "/"), not from a captured tree


def under(root: str, path: str) -> str:
    """`path` (absolute) inside the tree `root`."""
    return os.path.join(root, path.lstrip("/"))


def read_bytes(path: str, limit: int = MAX_READ) -> Optional[bytes]:
    """The first `limit` bytes of a regular file; None for anything else (missing, a FIFO, a device node, a
    socket, a directory, unreadable). Never blocks on a special file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the stat and the open
            return None
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text(path: str, limit: int = MAX_READ) -> Optional[str]:
    data = read_bytes(path, limit)
    return None if data is None else data.decode("utf-8", "replace").strip()


def list_dir(path: str) -> List[str]:
    """At most MAX_ENTRIES names in a directory, sorted; [] when it is not one."""
    try:
        with os.scandir(path) as it:
            names = []
            for entry in it:
                names.append(entry.name)
                if len(names) >= MAX_ENTRIES:
                    break
    except (OSError, ValueError):
        return []
    return sorted(names)


def _read_int(path: str, base: int = 0) -> Optional[int]:
    text = read_text(path)
    if text is None:
        return None
    try:
        value = int(text.split()[0], base)
    except (ValueError, IndexError):
        return None
    return value if 0 <= value < 1 << 64 else None  # sysfs ids are 64-bit at most


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
    base = under(root, "/sys/bus/pci/devices")
    for devdir in (os.path.join(base, n) for n in list_dir(base)):
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
                value = int(parts[1]) if len(parts[1]) <= 20 else -1
            except ValueError:
                continue
            if 0 <= value < 1 << 64:  # KFD properties are unsigned 64-bit
                props[parts[0]] = value
    return props


def read_kfd_nodes(root: str) -> List[KfdNode]:
    base = under(root, "/sys/class/kfd/kfd/topology/nodes")
    ids = sorted(int(n) for n in list_dir(base) if n.isdigit() and len(n) < 10)
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
    return [int(x) for x in re.findall(r"\d{1,9}", text)[:4]]


def read_rocm(root: str) -> Tuple[Optional[str], Optional[str]]:
    """(version, path) of the ROCm in /opt/rocm, else of the newest /opt/rocm-*."""
    main = under(root, "/opt/rocm")
    version = read_text(os.path.join(main, ".info", "version"), VERSION_READ)
    if version:
        return version.splitlines()[0].strip(), "/opt/rocm"
    found = []
    opt = under(root, "/opt")
    for path in [os.path.join(opt, n) for n in list_dir(opt) if n.startswith("rocm-")]:
        v = read_text(os.path.join(path, ".info", "version"), VERSION_READ)
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


# The fields of gemmconv-capture.json. A type is a Python type, a tuple of them (None allowed as type(None)), a
# ("list", item type), ("map", value type) or ("object", fields, required names). Unknown fields are reported.
_STR_OR_NONE = (str, type(None))
_DEVICE = ("object", {"index": int, "name": str, "arch": str, "pci_bus_id": _STR_OR_NONE},
           ("index", "name", "arch"))
CAPTURE_SCHEMA = ("object", {
    "format": int,
    "captured": ("object", {"by": str, "time": str, "version": str, "machine": str}, ()),
    "user": _STR_OR_NONE,
    "groups": ("list", str),
    "kfd_access": (bool, type(None)),
    "kfd_group": _STR_OR_NONE,
    "env": ("map", str),
    "runtime": ("object", {
        "torch_version": _STR_OR_NONE, "hip_version": _STR_OR_NONE, "cuda_version": _STR_OR_NONE,
        "arch_list": ("list", str), "gpu_available": bool, "devices": ("list", _DEVICE), "error": _STR_OR_NONE,
    }, ()),
    "extension": ("object", {"built": (bool, type(None)), "archs": (("list", str), type(None)),
                             "error": _STR_OR_NONE, "gfx1030_safe": (bool, type(None))}, ()),
    "activation": ("object", {
        "policy": str, "source": str, "error": _STR_OR_NONE, "pth_files": ("list", str),
        "autoload_registered": (bool, type(None)), "autoload_applies": (bool, type(None)),
    }, ()),
}, ())


def _type_name(t: Any) -> str:
    if isinstance(t, tuple) and t and t[0] == "list":
        return "a list of " + _type_name(t[1])
    if isinstance(t, tuple) and t and t[0] == "map":
        return "an object of " + _type_name(t[1])
    if isinstance(t, tuple) and t and t[0] == "object":
        return "an object"
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {str: "text", int: "an integer", bool: "true or false", type(None): "null"}.get(t, t.__name__)


def _matches(value: Any, t: Any) -> bool:
    if isinstance(t, tuple) and t and t[0] in ("list", "map", "object"):
        return isinstance(value, list if t[0] == "list" else dict)
    if isinstance(t, tuple):
        return any(_matches(value, x) for x in t)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _check(value: Any, t: Any, where: str, problems: List[str]) -> Any:
    """`value` with every part that does not fit `t` dropped (and said in `problems`); _INVALID when `value`
    itself does not fit."""
    if isinstance(t, tuple) and t and t[0] not in ("list", "map", "object"):  # alternatives
        for alt in t:
            if _matches(value, alt):
                return _check(value, alt, where, problems)
    if not _matches(value, t):
        shown = json.dumps(value)[:60] if isinstance(value, (str, int, float, bool, type(None))) else \
            type(value).__name__.replace("dict", "an object").replace("list", "a list")
        problems.append("{} is {}, expected {}; ignored".format(where, shown, _type_name(t)))
        return _INVALID
    if not isinstance(t, tuple):
        return value
    kind = t[0]
    if kind == "list":
        out = [_check(v, t[1], "{}[{}]".format(where, i), problems) for i, v in enumerate(value)]
        return [v for v in out if v is not _INVALID]
    if kind == "map":
        out = {k: _check(v, t[1], "{}.{}".format(where, k), problems) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _INVALID}
    fields, required = t[1], t[2]
    missing = [k for k in required if k not in value]
    if missing:
        problems.append("{} has no {}; ignored".format(where, ", ".join(repr(k) for k in missing)))
        return _INVALID
    result = {}
    for k, v in value.items():
        name = "{}.{}".format(where, k) if where else k
        if k not in fields:
            problems.append("unknown field {}; ignored".format(name))
            continue
        checked = _check(v, fields[k], name, problems)
        if checked is not _INVALID:
            result[k] = checked
    if any(k not in result for k in required):  # a required field was there but wrong: the whole object goes
        problems.append("{} lacks a valid {}; ignored".format(where, ", ".join(
            repr(k) for k in required if k not in result)))
        return _INVALID
    return result


_INVALID = object()


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, counted without recursion, up to limit + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def validate_capture(data: Any) -> Tuple[Dict[str, Any], List[str]]:
    """(the fields of a parsed capture that fit CAPTURE_SCHEMA, what was wrong)."""
    problems = []  # type: List[str]
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        return {}, ["nested deeper than {} levels; ignored".format(MAX_DEPTH)]
    if not isinstance(data, dict):
        return {}, ["the top level is {}, expected an object; ignored".format(type(data).__name__)]
    checked = _check(data, CAPTURE_SCHEMA, "", problems)
    return (checked if isinstance(checked, dict) else {}), problems


def read_capture_checked(root: str) -> Tuple[Dict[str, Any], List[str]]:
    """The valid part of `root`/gemmconv-capture.json and what was wrong with it; ({}, []) for root "/" or no file."""
    if os.path.abspath(root) == "/":
        return {}, []
    path = os.path.join(root, CAPTURE_FILE)
    if not os.path.lexists(path):
        return {}, []
    raw = read_bytes(path, MAX_CAPTURE + 1)
    if raw is None:
        return {}, ["not a readable regular file; ignored"]
    if len(raw) > MAX_CAPTURE:
        return {}, ["larger than {} bytes; ignored".format(MAX_CAPTURE)]
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return {}, ["not valid JSON ({}); ignored".format(str(exc).splitlines()[0][:100] if str(exc) else
                                                         type(exc).__name__)]
    return validate_capture(data)


def read_capture(root: str) -> Dict[str, Any]:
    """Facts a captured tree cannot hold as files (access rights, groups, torch); only for root != "/"."""
    return read_capture_checked(root)[0]


def read_machine(root: str) -> MachineFacts:
    """Facts of the machine under `root`. For a captured tree, what only the captured machine knows (access to
    /dev/kfd, its group, the user and groups) comes from the capture, or stays unknown: never from this machine."""
    capture, problems = read_capture_checked(root)
    local = os.path.abspath(root) == "/"
    facts = MachineFacts(capture=capture, capture_problems=problems, local=local)
    facts.pci_gpus = read_pci_gpus(root)
    facts.kfd_nodes = read_kfd_nodes(root)
    facts.kernel = read_text(under(root, "/proc/sys/kernel/osrelease"), VERSION_READ)
    facts.amdgpu_loaded = os.path.isdir(under(root, "/sys/module/amdgpu"))
    facts.amdgpu_version = read_text(under(root, "/sys/module/amdgpu/version"), VERSION_READ) or None
    kfd = under(root, "/dev/kfd")
    facts.kfd_present = os.path.exists(kfd)
    if facts.kfd_present and local:
        facts.kfd_access = os.access(kfd, os.R_OK | os.W_OK)
        try:
            facts.kfd_group = _group_name(os.stat(kfd).st_gid)
        except OSError:
            pass
    if local:
        facts.user, facts.user_groups = _local_user_and_groups()
    facts.rocm_version, facts.rocm_path = read_rocm(root)
    if "kfd_access" in capture and facts.kfd_present:
        facts.kfd_access = capture["kfd_access"]
    if "kfd_group" in capture:
        facts.kfd_group = capture["kfd_group"]
    if "user" in capture:
        facts.user = capture["user"]
    if "groups" in capture:
        facts.user_groups = sorted(str(g) for g in capture["groups"])
    return facts
