"""`python -m gemmconv capture DIR`: copy what detection reads from this machine into DIR, plus the facts a tree
of files cannot hold (gemmconv-capture.json), so that `python -m gemmconv doctor --sysroot DIR` reaches the same
diagnosis anywhere.

Copied (only what exists, only regular files, each read with the bounds of sysfs.read_bytes):
  /sys/bus/pci/devices/<addr>/{vendor,device,class,subsystem_vendor,subsystem_device,uevent}
  /sys/class/kfd/kfd/topology/nodes/<n>/{properties,gpu_id}
  /sys/module/amdgpu/version (and the directory /sys/module/amdgpu when the module is loaded)
  /proc/sys/kernel/osrelease, /opt/rocm/.info/version, /opt/rocm-*/.info/version
  /dev/kfd as an empty file when it exists
gemmconv-capture.json holds: the user and groups, access to /dev/kfd and its group, the variables that matter
(detect.relevant_env), torch's view (runtime probe), gemmconv's extension, the activation policy and hooks.
Nothing else (no home directory, no other variable, no host name) is written.
"""

import argparse
import datetime
import json
import os
import sys
from typing import Any, Dict, List, Optional

from .. import _version
from .sysfs import CAPTURE_FILE, list_dir, read_bytes, read_machine, under

PCI_FILES = ("vendor", "device", "class", "subsystem_vendor", "subsystem_device", "uevent")
NODE_FILES = ("properties", "gpu_id")


def files_to_copy(source: str) -> List[str]:
    """The absolute paths (as the machine sees them) detection reads and that exist under `source`."""
    paths = []
    pci = "/sys/bus/pci/devices"
    for dev in list_dir(under(source, pci)):
        paths += ["{}/{}/{}".format(pci, dev, name) for name in PCI_FILES]
    nodes = "/sys/class/kfd/kfd/topology/nodes"
    for n in list_dir(under(source, nodes)):
        if n.isdigit():
            paths += ["{}/{}/{}".format(nodes, n, name) for name in NODE_FILES]
    paths += ["/sys/module/amdgpu/version", "/proc/sys/kernel/osrelease", "/opt/rocm/.info/version"]
    paths += ["/opt/{}/.info/version".format(n) for n in list_dir(under(source, "/opt")) if n.startswith("rocm-")]
    return paths


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def local_facts(probe: bool) -> Dict[str, Any]:
    """The capture's JSON facts about this machine and this process."""
    from .detect import probe_isolated, relevant_env
    from .doctor import check_activation
    facts = read_machine("/")
    data = {"user": facts.user, "groups": list(facts.user_groups), "env": relevant_env(os.environ)}  # type: Dict
    if facts.kfd_present:
        data["kfd_access"] = facts.kfd_access
        data["kfd_group"] = facts.kfd_group
    runtime = None
    if probe:
        runtime, ext = probe_isolated(timeout=60.0, extension=True)
        data["runtime"] = runtime.to_dict()
        if ext:
            data["extension"] = {k: ext.get(k) for k in ("built", "archs", "error", "gfx1030_safe")}
    if "extension" not in data:
        from ..activation.activate import extension_built
        data["extension"] = {"built": extension_built(), "archs": None, "error": None}
    act = check_activation("/", runtime)
    data["activation"] = {"policy": act.policy, "source": act.source, "error": act.error,
                          "pth_files": list(act.pth_files), "autoload_registered": act.autoload_registered,
                          "autoload_applies": act.autoload_applies}
    return data


def capture(dest: str, source: str = "/", probe: bool = True) -> List[str]:
    """Write the capture of the machine under `source` into `dest`; returns the paths copied. From a source other
    than "/" (a capture itself), its own gemmconv-capture.json is carried over, checked, instead of this
    machine's facts."""
    copied = []
    for path in files_to_copy(source):
        data = read_bytes(under(source, path))
        if data is not None:
            _write(under(dest, path), data)
            copied.append(path)
    if os.path.isdir(under(source, "/sys/module/amdgpu")):
        os.makedirs(under(dest, "/sys/module/amdgpu"), exist_ok=True)
    if os.path.exists(under(source, "/dev/kfd")):
        _write(under(dest, "/dev/kfd"), b"")
        copied.append("/dev/kfd")
    if os.path.abspath(source) == "/":
        facts = local_facts(probe)
    else:
        facts = dict(read_machine(source).capture)
    facts["format"] = 1
    facts["captured"] = {"by": "python -m gemmconv capture", "version": _version.__version__,
                         "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    _write(os.path.join(dest, CAPTURE_FILE), (json.dumps(facts, indent=2, sort_keys=True) + "\n").encode())
    return copied


def _parser() -> argparse.ArgumentParser:
    from .._cli import HelpFormatter, add_version
    p = argparse.ArgumentParser(prog="gemmconv capture", formatter_class=HelpFormatter,
                                description="Write a capture of this machine that `python -m gemmconv doctor "
                                            "--sysroot DIR` diagnoses anywhere.")
    add_version(p)
    p.add_argument("dir", metavar="DIR", help="where to write it: a new or empty directory")
    p.add_argument("--no-runtime", action="store_true",
                   help="do not start torch to record its view of the GPUs (default: record it)")
    p.add_argument("--sysroot", default="/", help="capture this tree instead of the machine (default: /)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    dest = os.path.abspath(args.dir)
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        _parser().error("{} exists and is not an empty directory".format(dest))
    if not os.path.isdir(args.sysroot):
        _parser().error("--sysroot {} is not a directory".format(args.sysroot))
    try:
        copied = capture(dest, args.sysroot, probe=not args.no_runtime)
    except OSError as exc:
        sys.stderr.write("gemmconv: capture failed: {}\n".format(exc))
        return 1
    sys.stdout.write("gemmconv: captured {} files and {} into {}\n"
                     "  diagnose it anywhere with: python -m gemmconv doctor --sysroot {}\n".format(
                         len(copied), CAPTURE_FILE, dest, dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
