"""Builds captured-machine trees (sysfs, /dev/kfd, /opt/rocm) for the card-tooling tests; plain files only."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

AMD, NVIDIA = 0x1002, 0x10DE


@dataclass(frozen=True)
class Card:
    device: int
    address: str
    vendor: int = AMD
    gfx_target_version: Optional[int] = None  # None: no KFD node (not an AMD GPU, or no KFD)
    driver: str = "amdgpu"
    subsystem: tuple = (0x1da2, 0xe411)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _location_id(address: str) -> (int, int):
    domain, bus, devfn = address.split(":")
    dev, fn = devfn.split(".")
    return int(domain, 16), (int(bus, 16) << 8) | (int(dev, 16) << 3) | int(fn, 16)


def build_tree(root: str, cards: Sequence[Card], rocm: Optional[str] = "6.2.4-120", amdgpu: bool = True,
               kfd: bool = True, capture: Optional[Dict[str, Any]] = None, host_bridge: bool = True) -> str:
    """Write a machine with `cards` under `root`. KFD node 0 is the CPU; GPU nodes follow in card order."""
    pci = os.path.join(root, "sys/bus/pci/devices")
    os.makedirs(pci, exist_ok=True)
    if host_bridge:  # a non-display device the reader must skip
        for name, value in (("vendor", "0x8086"), ("device", "0x1234"), ("class", "0x060000")):
            _write(os.path.join(pci, "0000:00:00.0", name), value + "\n")
    for card in cards:
        d = os.path.join(pci, card.address)
        _write(os.path.join(d, "vendor"), "0x{:04x}\n".format(card.vendor))
        _write(os.path.join(d, "device"), "0x{:04x}\n".format(card.device))
        _write(os.path.join(d, "class"), "0x030000\n")
        _write(os.path.join(d, "subsystem_vendor"), "0x{:04x}\n".format(card.subsystem[0]))
        _write(os.path.join(d, "subsystem_device"), "0x{:04x}\n".format(card.subsystem[1]))
        _write(os.path.join(d, "uevent"), "DRIVER={}\nPCI_SLOT_NAME={}\n".format(card.driver, card.address))
    if amdgpu and any(c.vendor == AMD for c in cards):
        os.makedirs(os.path.join(root, "sys/module/amdgpu"), exist_ok=True)
    if kfd and amdgpu and any(c.gfx_target_version for c in cards):
        nodes = os.path.join(root, "sys/class/kfd/kfd/topology/nodes")
        _write(os.path.join(nodes, "0", "properties"),
               "cpu_cores_count 8\nsimd_count 0\ngfx_target_version 0\nvendor_id 0\ndevice_id 0\n"
               "location_id 0\ndomain 0\n")
        _write(os.path.join(nodes, "0", "gpu_id"), "0\n")
        n = 1
        for card in cards:
            if not card.gfx_target_version:
                continue
            domain, loc = _location_id(card.address)
            _write(os.path.join(nodes, str(n), "properties"),
                   "cpu_cores_count 0\nsimd_count 72\ngfx_target_version {}\nvendor_id {}\ndevice_id {}\n"
                   "location_id {}\ndomain {}\ndrm_render_minor {}\n".format(
                       card.gfx_target_version, card.vendor, card.device, loc, domain, 127 + n))
            _write(os.path.join(nodes, str(n), "gpu_id"), "{}\n".format(1000 + n))
            n += 1
        _write(os.path.join(root, "dev/kfd"), "")
    if rocm:
        _write(os.path.join(root, "opt/rocm/.info/version"), rocm + "\n")
    _write(os.path.join(root, "proc/sys/kernel/osrelease"), "6.1.0-18-amd64\n")
    # The captured machine's own gemmconv state, so that the doctor's verdict does not depend on this checkout.
    cap = {"user": "u", "groups": ["u", "render", "video"], "kfd_access": True, "kfd_group": "render",
           "extension": {"built": False, "archs": None, "error": None}}
    cap.update(capture or {})
    _write(os.path.join(root, "gemmconv-capture.json"), json.dumps(cap))
    return root


RX5600XT = Card(0x731F, "0000:03:00.0", gfx_target_version=100100)
RX5500XT = Card(0x7340, "0000:03:00.0", gfx_target_version=100102)
RX6800 = Card(0x73BF, "0000:0b:00.0", gfx_target_version=100300)
RX6700XT = Card(0x73DF, "0000:0c:00.0", gfx_target_version=100301)
RTX = Card(0x2684, "0000:01:00.0", vendor=NVIDIA, driver="nvidia", subsystem=(0x10de, 0x167c))

FIXTURES = {
    "rx5600xt": dict(cards=[RX5600XT]),
    "rx5500xt": dict(cards=[RX5500XT]),
    "rx6800": dict(cards=[RX6800]),
    "rdna1_rdna2": dict(cards=[RX5600XT, RX6800]),
    "rdna1_rdna2_rocm61": dict(cards=[RX5600XT, RX6800], rocm="6.1.3-122"),
    "rx6700xt": dict(cards=[RX6700XT]),
    "nvidia": dict(cards=[RTX], rocm=None),
    "nogpu": dict(cards=[], rocm=None),
    "rx5600xt_nokfd_access": dict(cards=[RX5600XT], capture={"kfd_access": False, "groups": ["u"],
                                                             "kfd_group": "render"}),
}


def make(name: str, root: str, **overrides: Any) -> str:
    """Build fixture `name` under `root` (which may not exist yet) and return root."""
    spec = dict(FIXTURES[name])
    spec.update(overrides)
    return build_tree(root, **spec)


# The interpreter the tests run `python -m gemmconv` and activation programs under. Tests only: it lets a run with
# this interpreter's pytest check what happens under another one, e.g. a virtual environment without system site
# packages (`python3 -m venv DIR`), which never reads the user site-packages directory.
CHILD_PYTHON = os.environ.get("GEMMCONV_TEST_CHILD_PYTHON") or sys.executable

_CHILD_INFO = """
import importlib.util, json, site, sys, sysconfig
print(json.dumps({"version": list(sys.version_info[:2]), "enable_user_site": bool(site.ENABLE_USER_SITE),
                  "purelib": sysconfig.get_paths()["purelib"],
                  "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
                  "has_torch": getattr(importlib.util.find_spec("torch"), "origin", None) is not None}))
"""
_child_info_cache = {}  # type: Dict[str, Any]


def child_info() -> Dict[str, Any]:
    """Facts about CHILD_PYTHON as it starts in a clean environment: version, whether it reads the user site, ..."""
    if not _child_info_cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMMCONV_", "PYTHONUSERBASE"))}
        out = subprocess.run([CHILD_PYTHON, "-c", _CHILD_INFO], cwd="/", env=env, stdout=subprocess.PIPE,
                             check=True, universal_newlines=True, timeout=60).stdout
        _child_info_cache.update(json.loads(out.strip().splitlines()[-1]))
    return dict(_child_info_cache)


def installed_hook_dir(root: str, config_dir: str) -> str:
    """The directory (as this machine sees it) that holds the gemmconv-activate.pth an install into `root` wrote,
    read from that install's manifest; `config_dir` is gemmconv's config directory as the target sees it."""
    with open(os.path.join(root, config_dir.lstrip("/"), "install-manifest.json")) as f:
        files = json.load(f)["files"]
    pth = [p for p in files if os.path.basename(p) == "gemmconv-activate.pth"]
    assert len(pth) == 1, sorted(files)
    return os.path.join(root, os.path.dirname(pth[0]).lstrip("/"))


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON_DIR = os.path.join(REPO, "python")


def stub_package(dest: str, init_source: str, with_extension: bool = True) -> str:
    """A `gemmconv` package under `dest` made of links to this tree's modules and sub-packages, a stand-in
    __init__.py and, when
    `with_extension`, an empty `_C.py` standing in for the compiled extension (the tree's own build is left out).
    Returns the directory to put on PYTHONPATH."""
    pkg = os.path.join(dest, "gemmconv")
    os.makedirs(pkg)
    real = os.path.join(PYTHON_DIR, "gemmconv")
    for name in sorted(os.listdir(real)):
        sub = os.path.join(real, name)
        is_subpackage = os.path.isfile(os.path.join(sub, "__init__.py"))
        if (name.endswith(".py") and name != "__init__.py") or is_subpackage:
            os.symlink(sub, os.path.join(pkg, name))
    _write(os.path.join(pkg, "__init__.py"), init_source)
    if with_extension:
        _write(os.path.join(pkg, "_C.py"), "")
    return dest


def clean_env(home: str, pythonpath: Sequence[str] = (), **extra: str) -> Dict[str, str]:
    """This process's environment without variables that steer ROCm or gemmconv, for child processes."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HSA_OVERRIDE_GFX_VERSION", "GEMMCONV_", "XDG_CONFIG_HOME", "PYTHONUSERBASE",
                                "TORCH_DEVICE_BACKEND_AUTOLOAD"))}
    env["HOME"] = home
    env["PYTHONPATH"] = os.pathsep.join(list(pythonpath) + [PYTHON_DIR])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env
