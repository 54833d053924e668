"""`python -m gemmconv doctor`: what this machine has, what is wrong with it for gemmconv, and how to fix it.

Exit status: 0 healthy, 1 problems found, 2 usage error. Healthy means no finding of severity "problem": among
them a GPU the runtime cannot reach (/dev/kfd, driver), an override that is missing or wrong, a flagged GPU that
activation would not cover, an extension built without the arch the GPU runs, and a failed selftest.
"""

import argparse
import json
import os
import shlex
import site
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, TextIO, Tuple

from ..activation import activate as _activate
from . import envinfo
from . import isa_audit
from .child import run_child
from .detect import (NOTE, PROBLEM, WARNING, Finding, MachineReport, RuntimeInfo, detect, probe_isolated)
from ..activation.installer import PTH_NAME

SELFTEST_CMD_VAR = "GEMMCONV_DOCTOR_SELFTEST_CMD"  # tests only: replaces the selftest child command


@dataclass
class Activation:
    policy: str
    source: str
    would_engage: bool
    reason: str
    error: Optional[str] = None
    pth_files: List[str] = field(default_factory=list)
    autoload_registered: Optional[bool] = None
    autoload_applies: Optional[bool] = None
    origin: str = "this machine"  # "captured": from the capture of the machine under --sysroot

    @property
    def hooked(self) -> bool:
        return bool(self.pth_files) or bool(self.autoload_registered and self.autoload_applies)


@dataclass
class Selftest:
    ran: bool = False
    ok: bool = False
    timed_out: bool = False
    seconds: float = 0.0
    returncode: Optional[int] = None
    error: Optional[str] = None
    results: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class Diagnosis:
    report: MachineReport
    extension: Dict[str, Any]
    activation: Activation
    selftest: Selftest
    findings: List[Tuple[str, Finding]] = field(default_factory=list)
    software: Dict[str, Any] = field(default_factory=dict)  # envinfo.collect()

    @property
    def healthy(self) -> bool:
        return not any(f.severity == PROBLEM for _, f in self.findings)

    def to_dict(self) -> Dict[str, Any]:
        machine = self.report.to_dict()
        gpus = machine.pop("gpus")
        return {
            "healthy": self.healthy, "exit_code": 0 if self.healthy else 1, "gpus": gpus, "machine": machine,
            "extension": self.extension,
            "roads": {g.label: gpu_road(g, self.extension) for g in self.report.amd_gpus
                      if gpu_road(g, self.extension)},
            "activation": dict(asdict(self.activation), hooked=self.activation.hooked),
            "selftest": asdict(self.selftest) if self.selftest.ran else None,
            "findings": [dict(asdict(f), where=where) for where, f in self.findings],
            "software": self.software,
        }


def _pth_files() -> List[str]:
    dirs = list(sys.path)
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # old virtualenv's site module
        pass
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    found = []
    for d in dirs:
        path = os.path.join(d or ".", PTH_NAME)
        if os.path.isfile(path) and os.path.abspath(path) not in found:
            found.append(os.path.abspath(path))
    return found


def _autoload_registered() -> Optional[bool]:
    try:
        from importlib import metadata
    except ImportError:
        return None
    try:
        eps = metadata.entry_points()
        group = eps.select(group="torch.backends") if hasattr(eps, "select") else eps.get("torch.backends", [])
        return any(ep.name == "gemmconv" for ep in group)
    except Exception:
        return None


def _torch_at_least(version: Optional[str], want: Tuple[int, int]) -> Optional[bool]:
    if not version or version == "unknown":
        return None
    parts = version.split("+")[0].split(".")
    try:
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) >= want
    except (ValueError, IndexError):
        return None


def _captured_activation(cap: Dict[str, Any], report: MachineReport) -> Activation:
    policy = cap.get("policy", "never")
    engage = policy == "always" or (policy == "auto" and report.vendor_conv_broken)
    reason = {"always": "policy is always", "never": "policy is never"}.get(
        policy, "a GPU whose vendor convolution library is broken is present" if engage else
        "no GPU with a broken vendor convolution library")
    return Activation(policy, cap.get("source", "captured"), engage, reason, cap.get("error"),
                      list(cap.get("pth_files", [])), cap.get("autoload_registered"), cap.get("autoload_applies"),
                      origin="captured")


def check_activation(sysroot: str, runtime: Optional[RuntimeInfo]) -> Activation:
    """Activation as this process sees it (policy, hook on its path, autoload) judged against `sysroot`'s GPUs."""
    d = _activate.decide(sysroot=sysroot)
    act = Activation(d.policy, d.source, d.engage, d.reason, d.error, _pth_files(), _autoload_registered())
    if os.environ.get("TORCH_DEVICE_BACKEND_AUTOLOAD", "1") == "0":
        act.autoload_applies = False
    elif runtime is not None and runtime.torch_version:
        act.autoload_applies = _torch_at_least(runtime.torch_version, (2, 5))
    return act


def _selftest_command() -> List[str]:
    custom = os.environ.get(SELFTEST_CMD_VAR, "").strip()
    if custom:
        return json.loads(custom) if custom.startswith("[") else shlex.split(custom)
    return [sys.executable, "-m", "gemmconv.diagnosis.selftest"]


def run_selftest(timeout: float) -> Selftest:
    res = run_child(_selftest_command(), timeout)
    st = Selftest(ran=True, seconds=round(res.elapsed, 2), returncode=res.returncode)
    if res.error:
        st.error = res.error
        return st
    if res.timed_out:
        st.timed_out = True
        st.error = "the selftest did not finish within {:.0f} s and was killed".format(timeout)
        return st
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    st.results = list(data.get("results") or [])
    st.ok = bool(data.get("ok")) and res.returncode == 0
    if not st.ok:
        if res.returncode is not None and res.returncode < 0:
            st.error = "the selftest crashed (signal {})".format(-res.returncode)
        elif data.get("error"):
            st.error = str(data["error"])
        elif not data:
            tail = res.stderr.strip().splitlines()
            st.error = "the selftest exited {} without a result{}".format(
                res.returncode, ": " + tail[-1] if tail else "")
        else:
            bad = [r for r in st.results if not r.get("ok")]
            st.error = "{} of {} cases failed; first: {} on {} {}: {}".format(
                len(bad), len(st.results), bad[0]["case"], bad[0]["device"], bad[0]["dtype"], bad[0].get("error")
            ) if bad else "the selftest reported failure"
    return st


def _extension_findings(diag: Diagnosis) -> None:
    ext, report = diag.extension, diag.report
    flagged = report.flagged_gpus
    if ext.get("built") and ext.get("error"):
        diag.findings.append(("gemmconv", Finding(
            PROBLEM, "gemmconv's compiled extension does not load: {}".format(ext["error"]),
            "Rebuild it against the installed torch: pip install --no-build-isolation .")))
    archs = ext.get("archs")
    if not ext.get("built") or archs is None:
        return
    for g in flagged:
        runs = g.override_arch or g.physical_arch
        if runs != "unknown" and runs not in archs:
            built = ", ".join(a for a in archs if a != "cpu") or "no GPU arch (a CPU-only build)"
            diag.findings.append((g.label, Finding(
                PROBLEM, "gemmconv was built for {} but this GPU runs {} code.".format(built, runs),
                "Rebuild with PYTORCH_ROCM_ARCH=\"{}\" pip install --no-build-isolation .".format(
                    ";".join(sorted({g.physical_arch, runs} | ({"gfx1030"} if g.generation == "RDNA1" else
                                                                set())))))))


RDNA1_ARCHS = ("gfx1010", "gfx1011", "gfx1012")


def gpu_road(g: Any, ext: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """For an RDNA1 GPU: which road it is on and whose code loads there. Road "native": the PyTorch in
    use carries the chip's own arch, so no override is needed and gemmconv's gfx1010 objects load.
    Road "override": the runtime reports gfx1030 (HSA_OVERRIDE_GFX_VERSION=10.3.0, in force or needed),
    so every library's gfx1030 objects load on the gfx1010 hardware. None for other GPUs, or when
    neither can be told."""
    if not g.is_amd or g.physical_arch not in RDNA1_ARCHS:
        return None
    if g.override_arch is None and not g.override_needed and g.torch_has_arch:
        return {"road": "native", "loads": g.physical_arch,
                "text": "PyTorch carries {0} itself: no override; gemmconv's {0} objects load. MIOpen is still "
                        "flagged on {0} (convolutions unverified, BatchNorm backward reported failing), so gemmconv "
                        "takes every convolution.".format(g.physical_arch)}
    if g.override_arch == "gfx1030" or (g.override_needed and str(g.recommended_override) == "10.3.0"):
        safe = ext.get("gfx1030_safe")
        state = {True: "built gfx1010-safe", False: "built PLAIN (not safe on this card)",
                 None: "safety unknown"}[safe]
        return {"road": "override", "loads": "gfx1030",
                "text": "the override makes every library load its gfx1030 code on this {} card: gemmconv's "
                        "gfx1030 objects ({}) load; PyTorch's own gfx1030 kernels carry no gfx10.1 workarounds, "
                        "a risk gemmconv cannot remove. A PyTorch that carries {} itself (TheRock's gfx101X "
                        "wheels, distribution builds) needs no override.".format(g.physical_arch, state,
                                                                                g.physical_arch)}
    return None


def _road_findings(diag: Diagnosis) -> None:
    ext = diag.extension
    for g in diag.report.amd_gpus:
        road = gpu_road(g, ext)
        if not road or road["road"] != "override" or not ext.get("built"):
            continue
        archs = ext.get("archs") or []
        if "gfx1030" in archs and ext.get("gfx1030_safe") is False:
            diag.findings.append((g.label, Finding(
                WARNING, "gemmconv's gfx1030 objects were built without gfx1010's workarounds, and the override "
                         "makes this {} card run them.".format(g.physical_arch),
                "Rebuild with GEMMCONV_GFX1030_SAFE=1 pip install --no-build-isolation . (the default), or use a "
                "PyTorch that carries {} so that no override is needed.".format(g.physical_arch))))
    audit = ext.get("audit") or {}
    if audit.get("ran") and any(audit.get("counts", {}).values()):
        on_b = any((gpu_road(g, ext) or {}).get("road") == "override" for g in diag.report.amd_gpus)
        total = sum(audit["counts"].values())
        diag.findings.append(("gemmconv", Finding(
            PROBLEM if on_b else WARNING,
            "The ISA audit found {} site(s) unsafe on gfx1010 in the extension's gfx1030 code ({}; first: {}).".format(
                total, ", ".join("{} {}".format(k, v) for k, v in audit["counts"].items() if v),
                audit["findings"][0] if audit.get("findings") else "?"),
            "Rebuild with GEMMCONV_GFX1030_SAFE=1 pip install --no-build-isolation .")))


def audit_extension(ext: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ISA audit of the installed extension's gfx1030 objects, when it has some and llvm-objdump is there."""
    path = ext.get("path")
    if not ext.get("built") or not path or "gfx1030" not in (ext.get("archs") or []):
        return None
    if not os.path.isfile(path):
        return {"ran": False, "reason": "{} not found".format(path)}
    return isa_audit.audit_summary([path])


def _activation_findings(diag: Diagnosis) -> None:
    act, report = diag.activation, diag.report
    if act.error:
        diag.findings.append(("activation", Finding(WARNING, act.error, "Use one of: auto, always, never.")))
    if not report.vendor_conv_broken:
        return
    names = ", ".join(g.physical_arch for g in report.flagged_gpus)
    if diag.extension.get("built") is False:
        diag.findings.append(("gemmconv", Finding(
            PROBLEM, "A GPU with a broken vendor convolution library is present ({}) but gemmconv's compiled "
                     "extension is not built, so convolutions go to MIOpen.".format(names),
            "Build it: pip install --no-build-isolation .  (see docs/card-guide.md)")))
    if not act.would_engage:
        diag.findings.append(("activation", Finding(
            PROBLEM, "A GPU with a broken vendor convolution library is present ({}) but activation is off "
                     "({}; policy from {}).".format(names, act.reason, act.source),
            "python -m gemmconv install   (from the environment you run; or export GEMMCONV_ACTIVATE=auto)")))
    elif not act.hooked:
        diag.findings.append(("activation", Finding(
            PROBLEM, "Activation would engage, but no hook runs it: no {} on this interpreter's path{}.".format(
                PTH_NAME, " and torch's backend autoload does not apply" if act.autoload_registered else ""),
            "python -m gemmconv install   (from the environment you run; or call gemmconv.enable() in your program)")))


def _has_gpu(report: MachineReport) -> bool:
    """Whether any GPU is in sight: in PCI sysfs or as a device the runtime reported."""
    rt = report.runtime
    return bool(report.gpus) or bool(rt is not None and (rt.gpu_available or rt.devices))


def _extension_gate(diag: Diagnosis) -> None:
    """Activation needs the compiled extension: without it nothing would engage, and the machine is not
    healthy for gemmconv whatever else is right."""
    ext, act = diag.extension, diag.activation
    if ext.get("built") is not False:
        return
    if act.would_engage:
        act.would_engage = False
        act.reason = "the policy says {} ({}), but gemmconv's compiled extension is not built".format(
            act.policy, act.reason)
    if not diag.report.vendor_conv_broken:  # with a flagged GPU, _activation_findings says it with more
        diag.findings.append(("gemmconv", Finding(
            PROBLEM, "gemmconv's compiled extension is not built, so nothing can run through gemmconv.",
            "Build it against the installed torch: pip install --no-build-isolation .  (or scripts/build_ext.sh "
            "in a checkout; see docs/card-guide.md)")))


def _selftest_findings(diag: Diagnosis, timeout: float) -> None:
    st = diag.selftest
    if not st.ran or st.ok:
        return
    if st.timed_out and not _has_gpu(diag.report):
        advice = ("No GPU is present, so the selftest ran on the CPU only: the machine was busy or slow. Retry "
                  "with a larger --timeout than {:.0f} s.".format(timeout))
    elif st.timed_out:
        advice = ("A GPU job hung. Run `python -m gemmconv doctor` without --selftest to check the override and "
                  "the driver; check `sudo dmesg` for amdgpu ring timeouts; retry with a larger --timeout than "
                  "{:.0f} s if the first kernel compilation is slow.".format(timeout))
    elif st.returncode is not None and st.returncode < 0:
        advice = ("A crash in the GPU runtime: check HSA_OVERRIDE_GFX_VERSION against the advice above and that "
                  "gemmconv was built for the arch the GPU runs.")
    elif diag.extension.get("built") is False:
        advice = "Build gemmconv's compiled extension first: pip install --no-build-isolation ."
    else:
        advice = "Report the failing case with the output of `python -m gemmconv doctor --json --selftest`."
    diag.findings.append(("selftest", Finding(PROBLEM, "Selftest failed: {}".format(st.error), advice)))


def diagnose(sysroot: str = "/", probe: bool = True, selftest: bool = False, timeout: float = 120.0,
             announce: Optional[TextIO] = None) -> Diagnosis:
    local = os.path.abspath(sysroot) == "/"
    runtime, ext = None, {}  # type: Optional[RuntimeInfo], Dict[str, Any]
    if local and probe:
        runtime, ext = probe_isolated(timeout=min(60.0, timeout), extension=True)
    report = detect(sysroot, runtime=runtime)
    capture = report.facts.capture  # validated; {} for this machine
    ext_origin = "this machine"
    if isinstance(capture.get("extension"), dict):
        ext, ext_origin = dict(capture["extension"]), "captured"
    if not ext or (ext.get("built") is None and ext_origin != "captured"):
        ext = {"built": _activate.extension_built(), "archs": None, "error": None}
    ext.setdefault("built", None)
    ext.setdefault("archs", None)
    ext.setdefault("error", None)
    ext.setdefault("gfx1030_safe", None)
    ext["origin"] = ext_origin
    path = ext.pop("path", None)  # where the extension is: for the audit, not part of the report
    if ext_origin == "this machine" and "audit" not in ext:
        audit = audit_extension(dict(ext, path=path))
        if audit is not None:
            ext["audit"] = audit
    # A capture's own activation facts win; without them, this process's are used and labelled as such.
    if isinstance(capture.get("activation"), dict):
        act = _captured_activation(capture["activation"], report)
    else:
        act = check_activation(sysroot, report.runtime)
    diag = Diagnosis(report, ext, act, Selftest())
    diag.software = envinfo.collect(sysroot)
    if selftest:
        if announce is not None:
            announce.write("running selftest (up to {:.0f} s)...\n".format(timeout))
            announce.flush()
        diag.selftest = run_selftest(timeout)
    diag.findings = [(g.label if g else "machine", f) for g, f in report.all_findings()]
    _extension_findings(diag)
    _road_findings(diag)
    _activation_findings(diag)
    _extension_gate(diag)
    _selftest_findings(diag, timeout)
    order = {PROBLEM: 0, WARNING: 1, NOTE: 2}
    diag.findings.sort(key=lambda item: order.get(item[1].severity, 3))
    return diag


def _yes(value: Optional[bool], yes: str = "yes", no: str = "no", unknown: str = "unknown") -> str:
    return unknown if value is None else (yes if value else no)


def _gpu_lines(report: MachineReport, ext: Optional[Dict[str, Any]] = None) -> List[str]:
    lines = []
    if not report.gpus:
        return ["  (none found)"]
    for g in report.gpus:
        lines.append("  [{}] {}".format(g.index, g.name))
        pci = "{} vendor {} device {}".format(g.pci_address or "(not in PCI sysfs)", g.pci_vendor_id, g.pci_device_id)
        if g.pci_subsystem:
            pci += " subsystem " + g.pci_subsystem
        lines.append("      PCI:                {}  driver {}".format(pci, g.driver or "none"))
        if not g.is_amd:
            if g.reported_arch:
                lines.append("      Runtime arch:       {} (cuda:{})".format(g.reported_arch, g.runtime_index))
            lines.append("      Verdict:            {}".format(g.reason))
            continue
        where = "KFD node {}".format(g.kfd_node) if g.kfd_node is not None else "no KFD node"
        lines.append("      Physical arch:      {} (from {}; {})".format(g.physical_arch, g.arch_source, where))
        lines.append("      Reported arch:      {} ({})".format(g.reported_arch or "unknown",
                                                               g.reported_arch_source or "no runtime"))
        lines.append("      Vendor convolution: {}".format(
            "KNOWN BROKEN" if g.flagged else _yes(g.vendor_conv_usable, "works", "broken", "unknown")))
        lines.append("      Why:                {}".format(g.reason))
        lines.append("      Override in force:  {}".format(
            "{}={}".format(g.override_source, g.override) if g.override else "none"))
        lines.append("      Override needed:    {}".format(
            "yes, {}".format(g.recommended_override) if g.override_needed else "no"))
        if g.torch_has_arch is not None:
            lines.append("      torch carries it:   {}".format(_yes(g.torch_has_arch)))
        road = gpu_road(g, ext or {})
        if road:
            lines.append("      Road:               {}: {}".format(road["road"], road["text"]))
    return lines


def perfdb_info(env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Where the find step's perf database is (the engine's rules: GEMMCONV_PERFDB, else
    $XDG_CACHE_HOME/gemmconv/perfdb.txt, else ~/.cache/gemmconv/perfdb.txt), its size in bytes and
    how many problem records it holds; never raises."""
    env = os.environ if env is None else env
    path = env.get("GEMMCONV_PERFDB") or ""
    if not path:
        xdg = env.get("XDG_CACHE_HOME") or ""
        home = env.get("HOME") or ""
        if xdg.startswith("/"):
            path = os.path.join(xdg, "gemmconv", "perfdb.txt")
        elif home:
            path = os.path.join(home, ".cache", "gemmconv", "perfdb.txt")
    info: Dict[str, Any] = {"path": path or None, "exists": False, "size": 0, "winners": 0, "error": None}
    if not path:
        return info
    try:
        with open(path, "rb") as f:
            data = f.read()
        info["exists"] = True
        info["size"] = len(data)
        info["winners"] = sum(1 for line in data.split(b"\n") if line.startswith(b"win\t"))
    except FileNotFoundError:
        pass
    except OSError as exc:
        info["error"] = str(exc)
    return info


def _perfdb_line() -> str:
    db = perfdb_info()
    if not db["path"]:
        return "no location (set GEMMCONV_PERFDB or HOME)"
    if db["error"]:
        return "{} (unreadable: {})".format(db["path"], db["error"])
    if not db["exists"]:
        return "{} (not created yet)".format(db["path"])
    return "{} ({} bytes, {} problem(s) found)".format(db["path"], db["size"], db["winners"])


def render_text(diag: Diagnosis, out: TextIO) -> None:
    r, act, ext, st = diag.report, diag.activation, diag.extension, diag.selftest
    m = r.facts
    w = out.write
    w("gemmconv doctor ({})\n\n".format("this machine" if os.path.abspath(r.root) == "/"
                                        else "captured tree " + r.root))
    w("Machine\n")
    w("  Kernel:             {}\n".format(m.kernel or "unknown"))
    amdgpu = "not loaded"
    if m.amdgpu_loaded:
        amdgpu = "loaded, " + ("version " + m.amdgpu_version if m.amdgpu_version else "in-tree (kernel's own)")
    w("  amdgpu driver:      {}\n".format(amdgpu))
    kfd = "missing"
    if m.kfd_present:
        kfd = "present, " + _yes(m.kfd_access, "read/write OK", "NO ACCESS", "access unknown")
        kfd += " (group {})".format(m.kfd_group) if m.kfd_group else ""
    w("  /dev/kfd:           {}\n".format(kfd))
    if not m.local and "user" not in m.capture:
        w("  User:               not captured\n")
    in_groups = [g for g in ("render", "video") if g in m.user_groups]
    if m.local or "user" in m.capture:
        w("  User:               {} (render/video groups: {})\n".format(m.user or "unknown",
                                                                   ", ".join(in_groups) or "none"))
    w("  ROCm:               {}\n".format("{} at {}".format(m.rocm_version, m.rocm_path) if m.rocm_version
                                          else "not found under /opt"))
    w("  Per-GPU overrides:  {}\n\n".format(_yes(r.per_gpu_override_supported, "supported (ROCm 6.2+)",
                                                 "not supported (ROCm < 6.2)")))
    if diag.software:
        envinfo.render(diag.software, out, captured=os.path.abspath(r.root) != "/")
    w("GPUs\n")
    for line in _gpu_lines(r, ext):
        w(line + "\n")
    w("\nPyTorch\n")
    rt = r.runtime
    if rt is None:
        w("  torch:              not probed{}\n".format(" (captured tree)" if os.path.abspath(r.root) != "/" else ""))
    elif rt.torch_version is None:
        w("  torch:              not installed{}\n".format(" ({})".format(rt.error) if rt.error else ""))
    else:
        backend = "HIP " + rt.hip_version if rt.hip_version else ("CUDA " + rt.cuda_version if rt.cuda_version
                                                                 else "CPU only")
        w("  torch:              {} ({})\n".format(rt.torch_version, backend))
        w("  Archs carried:      {}\n".format(", ".join(rt.arch_list) or "none listed"))
        w("  GPU available:      {}\n".format(_yes(rt.gpu_available)))
        for dev in rt.devices:
            w("    cuda:{}  {}  {}\n".format(dev.index, dev.name, dev.arch))
        if r.torch_missing_archs:
            w("  Missing archs:      {}\n".format(", ".join(r.torch_missing_archs)))
        if rt.error:
            w("  Probe error:        {}\n".format(rt.error))
    w("\ngemmconv\n")
    if ext.get("built"):
        archs = ext.get("archs")
        gpu_archs = [a for a in archs or [] if a != "cpu"]
        if archs is None:
            built = "built (archs not queried)"
        elif gpu_archs:
            built = "built for " + ", ".join(gpu_archs)
        else:
            built = "built for the CPU only (no GPU code)"
        w("  Extension:          {}\n".format(built))
        if "gfx1030" in gpu_archs:
            w("  gfx1030 slot:       {}\n".format(_yes(ext.get("gfx1030_safe"), "gfx1010-safe",
                                                       "plain (not safe on RDNA1 under the override)", "unknown")))
        audit = ext.get("audit")
        if audit:
            if audit.get("ran"):
                total = sum(audit["counts"].values())
                w("  ISA audit:          {} gfx1030 object(s), {} ({})\n".format(
                    audit["gfx1030_objects"], "clean" if not total else "{} UNSAFE SITE(S)".format(total),
                    audit["objdump"]))
            else:
                w("  ISA audit:          not run: {}\n".format(audit.get("reason")))
    elif ext.get("built") is None:
        w("  Extension:          unknown (not captured)\n")
    else:
        w("  Extension:          extension not built\n")
    if not r.facts.local:
        w("  (activation facts: {})\n".format("captured" if act.origin == "captured" else
                                              "from THIS machine, not the captured one: the capture holds none"))
    w("  Activation policy:  {} (from {})\n".format(act.policy, act.source))
    w("  Would engage:       {} ({})\n".format(_yes(act.would_engage), act.reason))
    w("  Import hook (.pth): {}\n".format(", ".join(act.pth_files) or "not installed"))
    if act.autoload_registered:
        autoload = _yes(act.autoload_applies, "registered; torch calls it on import",
                        "registered, but this torch does not call it (needs torch >= 2.5 and "
                        "TORCH_DEVICE_BACKEND_AUTOLOAD unset or 1)", "registered (torch version unknown)")
    else:
        autoload = _yes(act.autoload_registered, "", "entry point not registered (gemmconv not pip-installed)",
                        "unknown")
    w("  torch autoload:     {}\n".format(autoload))
    w("  Perf database:      {}\n".format(_perfdb_line()))
    w("\nEnvironment{}\n".format("" if r.env_source == "this process" else " ({})".format(r.env_source)))
    for k, v in r.env.items():
        w("  {}={}\n".format(k, v))
    if not r.env:
        w("  (none of HSA_OVERRIDE_GFX_VERSION*, MIOPEN_*, GEMMCONV_*, *_VISIBLE_DEVICES set)\n")
    if r.recommended_env:
        w("  Recommended:        {}\n".format(" ".join("{}={}".format(k, v)
                                                       for k, v in sorted(r.recommended_env.items()))))
    w("\nSelftest\n")
    if not st.ran:
        w("  not run (add --selftest)\n")
    elif st.ok:
        devices = sorted({x["device"] for x in st.results})
        w("  passed: {} cases on {} in {:.1f} s\n".format(len(st.results), ", ".join(devices), st.seconds))
    else:
        w("  FAILED: {}\n".format(st.error))
    problems = [f for _, f in diag.findings if f.severity == PROBLEM]
    w("\nVerdict: {}\n".format("healthy" if diag.healthy else "{} problem(s) found".format(len(problems))))
    for where, f in diag.findings:
        w("  {}: [{}] {}\n".format(f.severity.upper(), where, f.message))
        if f.advice:
            w("      fix: {}\n".format(f.advice))


def _parser() -> argparse.ArgumentParser:
    from .._cli import HelpFormatter, add_version
    p = argparse.ArgumentParser(prog="gemmconv doctor", formatter_class=HelpFormatter,
                                description="Check this machine for gemmconv and say what to fix.")
    add_version(p)
    p.add_argument("--sysroot", default=None, help="read a captured machine tree under DIR instead of /")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--selftest", action="store_true", help="run convolutions through gemmconv in a child process")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before the selftest child is killed")
    p.add_argument("--no-runtime", action="store_true", help="do not start torch to ask about the GPU runtime")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        _parser().error("--timeout must be positive")
    sysroot = args.sysroot or os.environ.get("GEMMCONV_SYSROOT") or "/"
    if not os.path.isdir(sysroot):
        _parser().error("--sysroot {} is not a directory".format(sysroot))
    diag = diagnose(sysroot, probe=not args.no_runtime, selftest=args.selftest, timeout=args.timeout,
                    announce=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(diag.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        render_text(diag, sys.stdout)
    return 0 if diag.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
