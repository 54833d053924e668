"""The software side of a machine, at `python -m torch.utils.collect_env`'s level: gemmconv itself, Python,
the OS, the compilers that can build the extension, ROCm's libraries and the torch packages.

Nothing here imports torch or the compiled extension (versions come from package metadata and headers), and
every external command runs with a timeout, so the doctor stays fast and safe on a broken machine.
"""

import glob
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

from .sysfs import read_rocm, read_text, under

COMMAND_TIMEOUT = 20.0  # hipcc is a script that may probe the GPU; it gets a bound like every command

# ROCm libraries: where their versions are written, under a ROCm root.
_VERSION_HEADERS = {
    "MIOpen": (["include/miopen/version.h"], "MIOPEN_VERSION_"),
    "rocBLAS": (["include/rocblas/internal/rocblas-version.h", "include/rocblas-version.h",
                 "include/internal/rocblas-version.h"], "ROCBLAS_VERSION_"),
}
# Distribution packages that carry the same libraries (Debian/Ubuntu names).
_PACKAGES = {
    "MIOpen": ["libmiopen1", "miopen-hip"],
    "rocBLAS": ["librocblas0", "rocblas"],
    "HIP runtime": ["libamdhip64-5", "libamdhip64-6", "hip-runtime-amd"],
}


def _run(cmd: List[str]) -> Optional[str]:
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              timeout=COMMAND_TIMEOUT, universal_newlines=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def compiler_version(name: str) -> Dict[str, Optional[str]]:
    """{"path", "version"} of a compiler on the PATH; path None when absent, version None when it would not say."""
    path = shutil.which(name)
    if name == "nvcc" and path is None:
        for candidate in (os.path.join(os.environ.get("CUDA_HOME", ""), "bin", "nvcc"), "/usr/local/cuda/bin/nvcc"):
            if candidate and os.access(candidate, os.X_OK):
                path = candidate
                break
    if name == "hipcc" and path is None:
        candidate = os.path.join(os.environ.get("ROCM_PATH", "/opt/rocm"), "bin", "hipcc")
        path = candidate if os.access(candidate, os.X_OK) else None
    if path is None:
        return {"path": None, "version": None}
    if name == "hipcc":
        # `hipcc --version` is a script that enumerates GPUs first (15 s on a machine without one); the
        # version file it prints from answers at once.
        version = _hip_version_file(path)
        if version:
            return {"path": path, "version": version}
    out = _run([path, "--version"]) or ""
    version = None
    for line in out.splitlines():
        line = line.strip()
        if name == "nvcc" and line.startswith("Cuda compilation tools"):
            version = line.split(",", 1)[-1].strip()  # "release 13.0, V13.0.88" -> "release 13.0, V13.0.88"
            break
        if name == "hipcc" and line.startswith("HIP version"):
            version = line.split(":", 1)[-1].strip()
            break
        if name not in ("nvcc", "hipcc") and line:
            version = line  # g++/c++: the first line, e.g. "g++ (Debian 12.2.0-14) 12.2.0"
            break
    return {"path": path, "version": version}


def _hip_version_file(hipcc: str) -> Optional[str]:
    """HIP's version as hipcc prints it ("5.2.21153-0"), from the file next to it (ROCm: bin/.hipVersion) or the
    distribution's (Debian: /usr/share/hip/version)."""
    real = os.path.dirname(os.path.realpath(hipcc))
    for path in (os.path.join(real, ".hipVersion"), os.path.join(os.path.dirname(real), "share", "hip", "version")):
        fields = {}
        for line in (read_text(path) or "").splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                fields[key.strip()] = value.strip()
        if "HIP_VERSION_MAJOR" in fields:
            version = ".".join(fields.get(k, "0") for k in ("HIP_VERSION_MAJOR", "HIP_VERSION_MINOR",
                                                              "HIP_VERSION_PATCH"))
            githash = fields.get("HIP_VERSION_GITHASH", "")
            return version + "-" + (githash or "0")
    return None


def _header_version(root: str, rocm_path: Optional[str], headers: List[str], prefix: str) -> Optional[str]:
    if not rocm_path:
        return None
    for rel in headers:
        text = read_text(os.path.join(under(root, rocm_path), rel))
        if not text:
            continue
        parts = {}
        for key in ("MAJOR", "MINOR", "PATCH"):
            m = re.search(r"#define\s+{}{}\s+(\d+)".format(prefix, key), text)
            if m:
                parts[key] = m.group(1)
        if "MAJOR" in parts:
            return ".".join(parts[k] for k in ("MAJOR", "MINOR", "PATCH") if k in parts)
    return None


def _installed_packages(names: List[str]) -> Dict[str, str]:
    """{package: version} for those of `names` the distribution has installed, in one dpkg-query."""
    if not shutil.which("dpkg-query"):
        return {}
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"] + names,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              timeout=COMMAND_TIMEOUT, universal_newlines=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    found = {}
    for line in proc.stdout.splitlines():  # exit 1 when some are unknown; the others are still listed
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("ii"):
            found[parts[0].split(":")[0]] = parts[1]
    return found


def _package_version(names: List[str], installed: Dict[str, str]) -> Optional[str]:
    for name in names:
        if name in installed:
            return "{} {} (distribution package)".format(name, installed[name])
    return None


def _dist_version(name: str) -> Optional[str]:
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def _module_dir(name: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return os.path.dirname(spec.origin) if spec.origin else None


def _bundled(torch_dir: Optional[str], pattern: str) -> Optional[str]:
    """A library shipped inside torch's wheel (ROCm wheels bundle MIOpen and rocBLAS in torch/lib)."""
    if not torch_dir:
        return None
    found = sorted(glob.glob(os.path.join(torch_dir, "lib", pattern)))
    return os.path.basename(found[0]) if found else None


def _os_name(root: str) -> Optional[str]:
    text = read_text(under(root, "/etc/os-release")) or read_text(under(root, "/usr/lib/os-release"))
    for line in (text or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _compilers(names: Tuple[str, ...]) -> Dict[str, Dict[str, Optional[str]]]:
    """compiler_version() of each, asked at the same time: the doctor waits for the slowest, not the sum."""
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(compiler_version, names)))


def collect(sysroot: str = "/") -> Dict[str, Any]:
    """Software facts. With a captured `sysroot`, the OS and ROCm come from that tree; gemmconv, Python, the
    compilers and the torch packages can only come from the machine running the doctor, and "local" lists
    those keys so that nobody mistakes them for the captured machine's."""
    local = os.path.abspath(sysroot) == "/"
    from .._version import __version__

    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ext = None
    try:
        spec = importlib.util.find_spec("gemmconv._C")
        ext = spec.origin if spec is not None else None
    except Exception:
        ext = None
    info = {
        "gemmconv": {"version": __version__, "location": pkg_dir, "extension": ext,
                     "installed_as": _dist_version("gemmconv")},
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "implementation": platform.python_implementation(),
                   "venv": sys.prefix if sys.prefix != getattr(sys, "base_prefix", sys.prefix) else None},
        "os": {"name": _os_name(sysroot), "kernel": read_text(under(sysroot, "/proc/sys/kernel/osrelease")),
               "machine": platform.machine() if local else None},
        "compilers": _compilers(("g++", "hipcc", "nvcc")),
    }  # type: Dict[str, Any]
    if info["os"]["kernel"]:
        info["os"]["kernel"] = info["os"]["kernel"].strip()
    if local and not info["os"]["kernel"]:
        info["os"]["kernel"] = platform.release()

    rocm_version, rocm_path = read_rocm(sysroot)
    rocm = {"version": rocm_version, "path": rocm_path}  # type: Dict[str, Any]
    torch_dir = _module_dir("torch")
    installed = _installed_packages([n for names in _PACKAGES.values() for n in names]) if local else {}
    for lib, (headers, prefix) in _VERSION_HEADERS.items():
        version = _header_version(sysroot, rocm_path, headers, prefix)
        if version:
            rocm[lib] = "{} ({})".format(version, rocm_path)
        elif local:
            rocm[lib] = _package_version(_PACKAGES[lib], installed)
        else:
            rocm[lib] = None
    if local and not rocm_version:
        rocm["HIP runtime"] = _package_version(_PACKAGES["HIP runtime"], installed)
    if local:
        rocm["torch bundles"] = [b for b in (_bundled(torch_dir, "libMIOpen*.so*"),
                                             _bundled(torch_dir, "librocblas*.so*")) if b]
    info["rocm"] = rocm
    info["torch"] = {"torch": _dist_version("torch"), "torch_location": torch_dir,
                     "torchvision": _dist_version("torchvision")}
    info["local"] = [] if local else ["gemmconv", "python", "compilers", "torch", "os.machine"]
    return info


def render(info: Dict[str, Any], out: Any, captured: bool = False) -> None:
    """The "Software" section of the doctor's text report."""
    w = out.write
    note = "   (this machine, not the captured tree)" if captured else ""
    g, py, osi, rocm, tv = info["gemmconv"], info["python"], info["os"], info["rocm"], info["torch"]
    w("Software\n")
    w("  gemmconv:           {} at {}{}\n".format(g["version"], g["location"], note))
    w("  Extension file:     {}\n".format(g["extension"] or "not built"))
    w("  Python:             {} {} at {}{}{}\n".format(py["implementation"], py["version"], py["executable"],
                                                     " (venv {})".format(py["venv"]) if py["venv"] else "", note))
    # The kernel and ROCm's own version are in the Machine section above.
    w("  OS:                 {}{}\n".format(osi["name"] or "unknown", ", " + osi["machine"] if osi.get("machine")
                                            else ""))
    for name, c in sorted(info["compilers"].items()):
        if c["path"]:
            text = "{} ({})".format(c["version"] or "version unknown", c["path"])
        else:
            text = "not found"
        w("  {:<20}{}{}\n".format(name + ":", text, note))
    for lib in ("HIP runtime", "MIOpen", "rocBLAS"):
        if lib in rocm:
            w("  {:<20}{}\n".format(lib + ":", rocm[lib] or "not found"))
    if rocm.get("torch bundles"):
        w("  Bundled with torch: {}\n".format(", ".join(rocm["torch bundles"])))
    w("  torch package:      {}{}\n".format(
        "{} at {}".format(tv["torch"] or "version unknown", tv["torch_location"]) if tv["torch_location"]
        else "not installed", note))
    w("  torchvision:        {}{}\n\n".format(tv["torchvision"] or "not installed", note))
