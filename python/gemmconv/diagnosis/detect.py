"""Detection with no GPU runtime: the machine's GPUs from PCI sysfs and the KFD topology, whether the vendor
convolution library (MIOpen) is known broken on them, and which HSA_OVERRIDE_GFX_VERSION they need.

Everything is read under a `root` directory, so a captured tree can stand in for the machine. Facts a tree cannot
hold as files (access rights, groups, what torch reported) may come from `gemmconv-capture.json` at its top.
"""

import functools
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from . import families as fam_table
from .runtime_probe import RuntimeDevice, RuntimeInfo, probe_runtime
from .sysfs import CAPTURE_FILE, KfdNode, MachineFacts, PciGpu, read_machine
from .families import AMD_VENDOR, NVIDIA_VENDOR, VENDOR_NAMES, Family

__all__ = ["Finding", "GpuInfo", "MachineReport", "RuntimeDevice", "RuntimeInfo", "detect", "probe_runtime",
           "probe_runtime_isolated", "probe_isolated", "plan_overrides", "vendor_conv_broken", "clear_cache", "OVERRIDE_VAR", "relevant_env"]

OVERRIDE_VAR = "HSA_OVERRIDE_GFX_VERSION"
PER_GPU_OVERRIDE_SINCE = (6, 2)
VISIBILITY_VARS = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")
_RELEVANT_PREFIXES = (OVERRIDE_VAR, "MIOPEN_", "GEMMCONV_")
_RELEVANT_VARS = VISIBILITY_VARS + ("PYTORCH_ROCM_ARCH", "TORCH_DEVICE_BACKEND_AUTOLOAD", "ROCM_PATH",
                                    "HSA_ENABLE_SDMA", "AMD_SERIALIZE_KERNEL")

PROBLEM, WARNING, NOTE = "problem", "warning", "note"


@dataclass
class Finding:
    """Something the doctor reports. Only `problem` makes the machine unhealthy."""

    severity: str
    message: str
    advice: str = ""


@dataclass
class GpuInfo:
    index: int
    pci_vendor_id: str
    pci_device_id: str
    vendor: str
    name: str
    pci_address: Optional[str] = None
    pci_subsystem: Optional[str] = None
    driver: Optional[str] = None
    kfd_node: Optional[int] = None  # libhsakmt's node number: the <n> of HSA_OVERRIDE_GFX_VERSION_<n>
    rocm_gpu_index: Optional[int] = None  # position among ROCm GPU agents: torch's cuda index when all are visible
    physical_arch: str = "unknown"
    arch_source: str = "none"
    family: Optional[str] = None
    generation: Optional[str] = None
    flagged: bool = False
    reason: str = ""
    vendor_conv_usable: Optional[bool] = None
    reported_arch: Optional[str] = None
    reported_arch_source: Optional[str] = None
    runtime_index: Optional[int] = None
    override: Optional[str] = None
    override_source: Optional[str] = None
    override_arch: Optional[str] = None
    override_needed: bool = False
    recommended_override: Optional[str] = None
    override_note: str = ""
    torch_has_arch: Optional[bool] = None
    findings: List[Finding] = field(default_factory=list)

    @property
    def is_amd(self) -> bool:
        return self.pci_vendor_id == "0x{:04x}".format(AMD_VENDOR)

    @property
    def label(self) -> str:
        where = self.pci_address or ("KFD node {}".format(self.kfd_node) if self.kfd_node is not None else "?")
        return "GPU {} ({}, {})".format(self.index, where, self.physical_arch)


@dataclass
class MachineReport:
    """The judgment of one machine: the raw facts read under `root` (held, not copied), each GPU with its findings,
    and the machine-wide findings and advice."""
    root: str
    facts: MachineFacts = field(default_factory=MachineFacts)
    gpus: List[GpuInfo] = field(default_factory=list)
    runtime: Optional[RuntimeInfo] = None
    env: Dict[str, str] = field(default_factory=dict)
    per_gpu_override_supported: Optional[bool] = None
    vendor_conv_broken: bool = False
    override_in_force: bool = False
    override_needed: bool = False
    recommended_env: Dict[str, str] = field(default_factory=dict)
    torch_missing_archs: List[str] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    env_source: str = "this process"  # or "captured", "this machine (the capture holds none)", "given"

    @property
    def amd_gpus(self) -> List[GpuInfo]:
        return [g for g in self.gpus if g.is_amd]

    @property
    def flagged_gpus(self) -> List[GpuInfo]:
        return [g for g in self.gpus if g.flagged]

    def all_findings(self) -> List[Tuple[Optional[GpuInfo], Finding]]:
        out = [(None, f) for f in self.findings]  # type: List[Tuple[Optional[GpuInfo], Finding]]
        for gpu in self.gpus:
            out.extend((gpu, f) for f in gpu.findings)
        return out

    def problems(self) -> List[str]:
        return [(g.label + ": " if g else "") + f.message for g, f in self.all_findings() if f.severity == PROBLEM]

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems()
        return data


def relevant_env(env: Mapping[str, str]) -> Dict[str, str]:
    """The variables that change how ROCm, MIOpen, torch or gemmconv behave here."""
    return {k: env[k] for k in sorted(env) if k.startswith(_RELEVANT_PREFIXES) or k in _RELEVANT_VARS}


def _version_tuple(text: Optional[str]) -> Optional[Tuple[int, int]]:
    m = re.match(r"\s*(\d{1,9})\.(\d{1,9})", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _pair(pci: Sequence[PciGpu], nodes: Sequence[KfdNode]) -> List[Tuple[Optional[PciGpu], Optional[KfdNode]]]:
    gpu_nodes = [n for n in nodes if n.is_gpu]
    used = set()  # type: Set[int]
    pairs = []  # type: List[Tuple[Optional[PciGpu], Optional[KfdNode]]]
    for dev in pci:
        node = next((n for n in gpu_nodes if n.pci_address == dev.address), None)
        if node is None:  # old kernels lack location_id: take the next node with the same ids
            node = next((n for n in gpu_nodes if n.sysfs_id not in used and n.vendor_id == dev.vendor
                         and n.device_id == dev.device), None)
        if node is not None:
            used.add(node.sysfs_id)
        pairs.append((dev, node))
    pairs.extend((None, n) for n in gpu_nodes if n.sysfs_id not in used)
    return pairs


def _identify(vendor: int, device: int, node: Optional[KfdNode]) -> Tuple[str, str, Optional[Family], List[Finding]]:
    """(physical arch, where it came from, family, findings) for one AMD device."""
    kfd_arch = fam_table.arch_from_target_version(node.gfx_target_version) if node else None
    by_id = fam_table.family_by_pci_id(device)
    if by_id and (kfd_arch is None or kfd_arch == by_id.arch):
        return by_id.arch, "pci id table", by_id, []
    if kfd_arch:
        found = []
        if by_id:
            found.append(Finding(NOTE, "PCI id 0x{:04x} suggests {} but the KFD topology says {}; trusting KFD."
                                 .format(device, by_id.arch, kfd_arch)))
        return kfd_arch, "kfd topology", fam_table.family_by_arch(kfd_arch), found
    return "unknown", "none", None, [Finding(
        NOTE, "AMD device 0x{:04x} is not in gemmconv's table and there is no KFD topology to give its arch; "
              "treated as not broken.".format(device),
        "Load amdgpu with KFD (ROCm) so the arch can be read; if convolutions crash or hang, set "
        "GEMMCONV_ACTIVATE=always.")]


def _name(vendor: int, device: int, family: Optional[Family], arch: str) -> str:
    vname = VENDOR_NAMES.get(vendor, "vendor 0x{:04x}".format(vendor))
    if family:
        return "{} {} ({})".format(vname, family.chip, family.examples)
    if vendor == AMD_VENDOR and arch != "unknown":
        return "AMD GPU 0x{:04x} ({})".format(device, arch)
    return "{} GPU 0x{:04x}".format(vname, device)


def _override_for(node: Optional[KfdNode], env: Mapping[str, str], per_gpu: Optional[bool],
                  findings: List[Finding]) -> Tuple[Optional[str], Optional[str]]:
    """The override libhsakmt applies to this node: its per-node variable first, then the global one."""
    if node is not None:
        name = "{}_{}".format(OVERRIDE_VAR, node.user_id)
        if env.get(name):
            if per_gpu is False:
                findings.append(Finding(WARNING, "{} is set, but this ROCm predates per-GPU overrides (6.2): it is "
                                                 "ignored.".format(name), "Use {} or ROCm 6.2+.".format(OVERRIDE_VAR)))
            else:
                return env[name], name
    if env.get(OVERRIDE_VAR):
        return env[OVERRIDE_VAR], OVERRIDE_VAR
    return None, None


def _judge_amd(gpu: GpuInfo, family: Optional[Family], torch_archs: Optional[Set[str]]) -> None:
    """Fill the verdict fields of an AMD GPU whose arch and override are known."""
    phys = gpu.physical_arch
    if family:
        gpu.flagged, gpu.reason, gpu.override_note = family.flagged, family.reason, family.override_note
        gpu.vendor_conv_usable = not family.flagged
    elif phys != "unknown":
        gpu.reason = ("{} is not in gemmconv's table; MIOpen is assumed to work on it. If convolutions crash or "
                      "hang, set GEMMCONV_ACTIVATE=always.".format(phys))
        gpu.vendor_conv_usable = True
    else:
        gpu.reason = "arch unknown: gemmconv cannot tell whether MIOpen works on this GPU."
    if phys == "unknown":
        return
    candidate = family.override if family else None
    if torch_archs is not None:
        gpu.torch_has_arch = phys in torch_archs
        if not gpu.torch_has_arch:
            if candidate and fam_table.arch_from_override(candidate) in torch_archs:
                gpu.override_needed, gpu.recommended_override = True, candidate
            elif not (gpu.override_arch and gpu.override_arch in torch_archs):
                gpu.findings.append(Finding(
                    PROBLEM, "The installed PyTorch carries no {} code, and no override maps this GPU onto an arch "
                             "it carries ({}).".format(phys, ", ".join(sorted(torch_archs)) or "none"),
                    "Use a PyTorch build that includes {0} (build it with PYTORCH_ROCM_ARCH={0}).".format(phys)))
    elif family and family.torch_usually_lacks and candidate:
        gpu.override_needed, gpu.recommended_override = True, candidate
    gpu.reported_arch = gpu.override_arch or phys
    gpu.reported_arch_source = "predicted"


def _check_override(gpu: GpuInfo, torch_archs: Optional[Set[str]], var_for: Dict[int, str]) -> None:
    """Findings about the override in force against the one this GPU needs."""
    phys, value, oarch = gpu.physical_arch, gpu.override, gpu.override_arch
    var = var_for.get(gpu.index, OVERRIDE_VAR)
    if value is not None and oarch is None:
        gpu.findings.append(Finding(
            PROBLEM, "{}={!r} is malformed (major.minor.stepping expected); the ROCm runtime refuses to start."
                     .format(gpu.override_source, value),
            "Set {}={}".format(var, gpu.recommended_override) if gpu.recommended_override
            else "Unset {}.".format(gpu.override_source)))
        return
    if gpu.override_needed:
        rec = gpu.recommended_override
        writes = " (python -m gemmconv install writes it)" if gpu.flagged else ""
        if value is None:
            if torch_archs is not None:
                gpu.findings.append(Finding(
                    PROBLEM, "PyTorch carries no {} code and no override is in force: GPU kernels fail with "
                             "'HIP error: invalid device function'.".format(phys),
                    "Set {}={}{}.".format(var, rec, writes)))
            else:
                gpu.findings.append(Finding(
                    WARNING, "Stock ROCm PyTorch wheels carry no {} code and no override is in force.".format(phys),
                    "Unless your PyTorch build includes {}, set {}={}{}.".format(phys, var, rec, writes)))
        elif oarch != fam_table.arch_from_override(str(rec)) and not (torch_archs is not None
                                                                       and oarch in torch_archs):
            sev = PROBLEM if torch_archs is not None else WARNING
            gpu.findings.append(Finding(
                sev, "{}={} selects {}; this GPU needs {}.".format(gpu.override_source, value, oarch, rec),
                "Set {}={}.".format(var, rec)))
        return
    if value is not None and oarch != phys and gpu.torch_has_arch:
        different_major = fam_table.base_arch(oarch)[:-2] != phys[:-2]
        gpu.findings.append(Finding(
            PROBLEM if different_major else WARNING,
            "{}={} makes this GPU run {} code although PyTorch carries {} code for it.".format(
                gpu.override_source, value, oarch, phys),
            "Unset {0}, or use per-GPU {0}_<n> variables (ROCm 6.2+) for the GPUs that need one."
            .format(OVERRIDE_VAR)))


def _match_runtime(gpus: List[GpuInfo], runtime: RuntimeInfo, env: Mapping[str, str]) -> None:
    def key(addr: Optional[str]) -> Optional[str]:
        return addr.rsplit(".", 1)[0] if addr else None

    matched = False
    for dev in runtime.devices:
        gpu = next((g for g in gpus if dev.pci_bus_id and key(g.pci_address) == key(dev.pci_bus_id)), None)
        if gpu is not None:
            gpu.runtime_index, gpu.reported_arch, gpu.reported_arch_source = dev.index, fam_table.base_arch(
                dev.arch), "runtime"
            matched = True
    if matched or not runtime.is_hip or any(env.get(v) for v in VISIBILITY_VARS):
        return
    amd = sorted((g for g in gpus if g.is_amd and g.rocm_gpu_index is not None), key=lambda g: g.rocm_gpu_index)
    for dev, gpu in zip(runtime.devices, amd):  # with nothing hidden, HIP numbers GPUs in KFD order
        gpu.runtime_index, gpu.reported_arch, gpu.reported_arch_source = dev.index, fam_table.base_arch(
            dev.arch), "runtime"


def plan_overrides(report: "MachineReport", flagged_only: bool = False
                   ) -> Tuple[Dict[str, str], Dict[int, str], Optional[Finding]]:
    """The override variables to set, the variable that carries each GPU's override (by GPU index), and a
    problem when no set of variables works. `flagged_only` limits it to GPUs whose vendor library is broken (what
    the installer writes); the doctor's advice covers every GPU that needs an override.

    One AMD GPU, or several that can all take the same value harmlessly: the global variable, which works with
    every ROCm. Several GPUs that need different treatment: per-GPU variables where ROCm >= 6.2 reads them.
    """
    amd = report.amd_gpus
    needs = [g for g in amd if g.override_needed and g.recommended_override and (g.flagged or not flagged_only)]
    if not needs:
        return {}, {}, None
    values = {g.recommended_override for g in needs}
    others = [g for g in amd if g not in needs]
    value = str(next(iter(values)))
    # The global variable also reaches the other GPUs: fine where it is a no-op or what they want anyway.
    global_safe = len(values) == 1 and all(g.physical_arch == fam_table.arch_from_override(value)
                                           or g.recommended_override == value for g in others)
    per_gpu_ok = report.per_gpu_override_supported and all(g.kfd_node is not None for g in needs)
    if len(amd) > 1 and per_gpu_ok:
        names = {g.index: "{}_{}".format(OVERRIDE_VAR, g.kfd_node) for g in needs}
        return {names[g.index]: str(g.recommended_override) for g in needs}, names, None
    if global_safe:
        return {OVERRIDE_VAR: value}, {g.index: OVERRIDE_VAR for g in needs}, None
    return {}, {}, Finding(
        PROBLEM, "The AMD GPUs need different overrides ({}), and ROCm {} has no per-GPU override variables "
                 "(they need 6.2 or newer).".format(
                     ", ".join("{}: {}".format(g.physical_arch, g.recommended_override or "none") for g in amd),
                     report.facts.rocm_version or "(version unknown)"),
        "Use ROCm (and a PyTorch build) 6.2 or newer, or hide the other GPU with ROCR_VISIBLE_DEVICES.")


def _machine_findings(report: MachineReport) -> None:
    amd = report.amd_gpus
    rt = report.runtime
    facts = report.facts
    if not report.gpus:
        report.findings.append(Finding(NOTE, "No GPU found (no display-class PCI device, no KFD GPU node).",
                                       "gemmconv can still run on the CPU."))
    if amd:
        if not facts.amdgpu_loaded:
            report.findings.append(Finding(
                PROBLEM, "An AMD GPU is present but the amdgpu kernel module is not loaded.",
                "Load it (sudo modprobe amdgpu; see dmesg for firmware errors). gemmconv never changes drivers."))
        for g in amd:
            if g.driver and g.driver != "amdgpu":
                g.findings.append(Finding(PROBLEM, "Bound to the {} driver, not amdgpu; ROCm cannot use it."
                                          .format(g.driver), "Bind the GPU to amdgpu (check the kernel command "
                                                             "line and modprobe blacklists)."))
        if facts.amdgpu_loaded and not facts.kfd_present:
            report.findings.append(Finding(
                PROBLEM, "/dev/kfd does not exist: ROCm cannot see any GPU.",
                "Use a kernel with HSA_AMD (KFD) enabled; in a container pass --device=/dev/kfd --device=/dev/dri."))
        if facts.kfd_present and facts.kfd_access is False:
            report.findings.append(Finding(
                PROBLEM, "No read/write access to /dev/kfd (group {}); user {} is in: {}.".format(
                    facts.kfd_group or "?", facts.user or "?", ", ".join(facts.user_groups) or "no groups"),
                "sudo usermod -aG render,video {}  then log out and back in.".format(facts.user or "$USER")))
    if rt is None:
        return
    if rt.torch_version is None:
        report.findings.append(Finding(NOTE, "PyTorch is not importable{}.".format(
            ": " + rt.error if rt.error else ""), "Install a ROCm build of PyTorch to use the GPU."))
        return
    if amd and not rt.is_hip and not any(g.vendor == "NVIDIA" for g in report.gpus):
        report.findings.append(Finding(
            PROBLEM, "PyTorch {} is not a ROCm build: it cannot use the AMD GPU.".format(rt.torch_version),
            "Install PyTorch's ROCm wheels (see docs/card-guide.md)."))
    if amd and rt.is_hip and not rt.gpu_available and facts.kfd_access is not False:
        report.findings.append(Finding(
            PROBLEM, "PyTorch {} (HIP {}) sees no GPU{}.".format(rt.torch_version, rt.hip_version,
                                                                 ": " + rt.error if rt.error else ""),
            "Run rocminfo; check HSA_OVERRIDE_GFX_VERSION and the *_VISIBLE_DEVICES variables."))
    if rt.error and rt.gpu_available:
        report.findings.append(Finding(WARNING, rt.error))


def _runtime_checks(report: MachineReport) -> None:
    for g in report.amd_gpus:
        if g.reported_arch_source != "runtime":
            continue
        expected = g.override_arch or g.physical_arch
        if g.physical_arch != "unknown" and g.reported_arch != expected:
            g.findings.append(Finding(
                WARNING, "The runtime reports {} for this GPU; expected {}.".format(g.reported_arch, expected),
                "A per-GPU variable may name the wrong node: <n> in {}_<n> is the KFD node number, CPU nodes "
                "included (the first discrete GPU is usually 1).".format(OVERRIDE_VAR)))


def detect(root: str = "/", env: Optional[Mapping[str, str]] = None,
           runtime: Optional[RuntimeInfo] = None) -> MachineReport:
    """Read the machine under `root` and judge every GPU. `runtime` is torch's view (see probe_runtime); when None,
    torch is not asked (a captured tree may carry one)."""
    facts = read_machine(root)
    env_source = "given"
    if env is None:
        # A captured tree's environment is the one in its capture; a tree without one is judged with this
        # process's, and the report says so.
        if facts.local:
            env, env_source = os.environ, "this process"
        elif "env" in facts.capture:
            env, env_source = facts.capture["env"], "captured"
        else:
            env, env_source = os.environ, "this machine (the capture holds none)"
    if runtime is None and isinstance(facts.capture.get("runtime"), dict):
        runtime = RuntimeInfo.from_dict(facts.capture["runtime"])
    report = _report_from_facts(root, facts, runtime, dict(env))
    report.env_source = env_source
    for problem in facts.capture_problems:
        report.findings.append(Finding(WARNING, "{}: {}.".format(CAPTURE_FILE, problem),
                                       "Write the capture again with: python -m gemmconv capture DIR"))
    return report


def _report_from_facts(root: str, facts: MachineFacts, runtime: Optional[RuntimeInfo],
                       env: Dict[str, str]) -> MachineReport:
    report = MachineReport(root=root, facts=facts, runtime=runtime, env=relevant_env(env))
    # The override is read by the runtime torch loads (its bundled ROCm) when torch says which; else /opt/rocm's.
    version = _version_tuple(runtime.hip_version if runtime and runtime.is_hip else facts.rocm_version)
    report.per_gpu_override_supported = None if version is None else version >= PER_GPU_OVERRIDE_SINCE
    torch_archs = None  # type: Optional[Set[str]]
    if runtime and runtime.is_hip and runtime.arch_list:
        torch_archs = {fam_table.base_arch(a) for a in runtime.arch_list}
    gpu_nodes = [n for n in facts.kfd_nodes if n.is_gpu]
    for index, (pci, node) in enumerate(_pair(facts.pci_gpus, facts.kfd_nodes)):
        vendor = pci.vendor if pci else node.vendor_id  # type: ignore[union-attr]
        device = pci.device if pci else node.device_id  # type: ignore[union-attr]
        gpu = GpuInfo(index=index, pci_vendor_id="0x{:04x}".format(vendor), pci_device_id="0x{:04x}".format(device),
                      vendor=VENDOR_NAMES.get(vendor, "0x{:04x}".format(vendor)), name="",
                      pci_address=pci.address if pci else None, driver=pci.driver if pci else None)
        if pci and pci.subsystem_vendor is not None and pci.subsystem_device is not None:
            gpu.pci_subsystem = "0x{:04x}:0x{:04x}".format(pci.subsystem_vendor, pci.subsystem_device)
        family = None
        if vendor == AMD_VENDOR:
            if node is not None:
                gpu.kfd_node, gpu.rocm_gpu_index = node.user_id, gpu_nodes.index(node)
            gpu.physical_arch, gpu.arch_source, family, found = _identify(vendor, device, node)
            gpu.findings.extend(found)
            if family:
                gpu.family, gpu.generation = family.chip, family.generation
            gpu.override, gpu.override_source = _override_for(node, env, report.per_gpu_override_supported,
                                                              gpu.findings)
            if gpu.override:
                gpu.override_arch = fam_table.arch_from_override(gpu.override)
            _judge_amd(gpu, family, torch_archs)
        elif vendor == NVIDIA_VENDOR:
            gpu.reason = "NVIDIA GPU: convolutions go through cuDNN, which works; gemmconv is optional here."
            gpu.vendor_conv_usable = True
        else:
            gpu.reason = "{} GPU: not a device PyTorch's cuda/HIP backend uses; gemmconv does not apply.".format(
                gpu.vendor)
        gpu.name = _name(vendor, device, family, gpu.physical_arch)
        report.gpus.append(gpu)
    if runtime is not None:
        _match_runtime(report.gpus, runtime, env)
    report.recommended_env, var_for, conflict = plan_overrides(report)
    if conflict:
        report.findings.append(conflict)
    for gpu in report.amd_gpus:
        _check_override(gpu, torch_archs, var_for)
    _runtime_checks(report)
    _machine_findings(report)
    report.vendor_conv_broken = any(g.flagged for g in report.gpus)
    report.override_in_force = any(g.override for g in report.amd_gpus)
    report.override_needed = any(g.override_needed for g in report.amd_gpus)
    if torch_archs is not None:
        report.torch_missing_archs = sorted({g.physical_arch for g in report.amd_gpus
                                             if g.physical_arch != "unknown" and g.physical_arch not in torch_archs})
    return report


def probe_isolated(timeout: float = 60.0, extension: bool = False) -> Tuple[RuntimeInfo, Dict[str, Any]]:
    """probe_runtime() in a child process, so that a hanging driver costs at most `timeout` seconds; with
    `extension`, also whether gemmconv's compiled extension loads there and which archs it carries."""
    import json
    from .child import python_script, run_child
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime_probe.py")
    res = run_child(python_script(script, *(["--extension"] if extension else [])), timeout)
    if res.timed_out:
        return RuntimeInfo(torch_version="unknown", error="the torch/GPU probe hung and was killed after {:.0f} s"
                           .format(timeout)), {}
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or [res.error or "no output"])[-1]
        return RuntimeInfo(torch_version="unknown", error="the torch/GPU probe failed (exit {}): {}".format(
            res.returncode, tail)), {}
    try:
        data = json.loads(lines[-1])
        ext = data.pop("extension", {})
        return RuntimeInfo.from_dict(data), ext if isinstance(ext, dict) else {}
    except (ValueError, TypeError) as exc:
        return RuntimeInfo(torch_version="unknown", error="unreadable probe output: {}".format(exc)), {}


def probe_runtime_isolated(timeout: float = 60.0) -> RuntimeInfo:
    return probe_isolated(timeout)[0]


@functools.lru_cache(maxsize=8)
def _broken_under(root: str) -> bool:
    return detect(root, env={}).vendor_conv_broken


def vendor_conv_broken(root: Optional[str] = None) -> bool:
    """True when this machine has an AMD GPU on which the vendor convolution library is known broken.

    Reads a few sysfs files once per process (cached); never imports torch and never raises.
    `root` defaults to $GEMMCONV_SYSROOT, else "/".
    """
    try:
        return _broken_under(os.path.abspath(root or os.environ.get("GEMMCONV_SYSROOT") or "/"))
    except Exception:
        return False


def clear_cache() -> None:
    _broken_under.cache_clear()
