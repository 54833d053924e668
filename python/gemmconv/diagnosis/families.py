"""The GPU family table: which chips gemmconv knows, their physical arch, and whether MIOpen is known broken."""

from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

AMD_VENDOR = 0x1002
NVIDIA_VENDOR = 0x10DE
INTEL_VENDOR = 0x8086

VENDOR_NAMES = {AMD_VENDOR: "AMD", NVIDIA_VENDOR: "NVIDIA", INTEL_VENDOR: "Intel"}

_RDNA1_REASON = (
    "RDNA1 ({arch}): stock ROCm PyTorch wheels ship no {arch} code (HIP error: invalid device function), "
    "and when the card runs gfx1030 code through HSA_OVERRIDE_GFX_VERSION=10.3.0, MIOpen convolutions "
    "crash with HSA_STATUS_ERROR_MEMORY_APERTURE_VIOLATION, hang in miopenFindConvolution*Algorithm at "
    "100% GPU load, or fault in MIOpen's own GEMM solvers."
)
_RDNA1_NOTE = (
    "10.3.0 makes the runtime load gfx1030 code objects, which carry the element-wise and rocBLAS kernels "
    "PyTorch needs; gemmconv builds its own kernels for both {arch} and gfx1030."
)
_APU_REASON = (
    "APU ({arch}): ROCm does not support this integrated GPU; stock PyTorch wheels carry no {arch} code, "
    "it runs {target} code through HSA_OVERRIDE_GFX_VERSION={override}, and MIOpen convolutions on it "
    "crash or hang (memory aperture violations, stuck find step)."
)


@dataclass(frozen=True)
class Family:
    """One chip family. `ids` and `id_ranges` match PCI device ids; entries without either match by arch."""

    chip: str
    arch: str
    generation: str
    examples: str
    flagged: bool
    summary: str
    reason: str
    override: Optional[str] = None
    override_note: str = ""
    torch_usually_lacks: bool = False
    ids: Tuple[int, ...] = ()
    id_ranges: Tuple[Tuple[int, int], ...] = ()

    def matches_id(self, device_id: int) -> bool:
        return device_id in self.ids or any(lo <= device_id <= hi for lo, hi in self.id_ranges)

    @property
    def by_arch_only(self) -> bool:
        return not self.ids and not self.id_ranges


def _rdna1(chip: str, arch: str, examples: str, ids: Tuple[int, ...]) -> Family:
    return Family(
        chip=chip, arch=arch, generation="RDNA1", examples=examples, flagged=True,
        summary="crashes, hangs in find, or faults; no code for it in stock wheels",
        reason=_RDNA1_REASON.format(arch=arch), override="10.3.0",
        override_note=_RDNA1_NOTE.format(arch=arch), torch_usually_lacks=True, ids=ids,
    )


def _apu(chip: str, arch: str, examples: str, override: str, target: str) -> Family:
    return Family(
        chip=chip, arch=arch, generation="APU", examples=examples, flagged=True,
        summary="unsupported APU; MIOpen crashes or hangs",
        reason=_APU_REASON.format(arch=arch, override=override, target=target), override=override,
        override_note="{} makes the runtime load {} code objects.".format(override, target),
        torch_usually_lacks=True,
    )


def _strix(chip: str, arch: str, examples: str) -> Family:
    return Family(
        chip=chip, arch=arch, generation="APU", examples=examples, flagged=True,
        summary="MIOpen convolutions fail on a supported chip",
        reason="APU ({}): ROCm supports the chip, but MIOpen convolutions fail on it (wrong results or faults "
               "in its solvers, ROCm/MIOpen#3964) while GEMMs run correctly.".format(arch),
        override=None,
        override_note="No override: use a PyTorch build that carries {} code.".format(arch),
    )


def _fine(chip: str, arch: str, generation: str, examples: str, override: Optional[str] = None) -> Family:
    if override:
        note = ("Stock wheels carry no {} code; {} makes the runtime load gfx1030 code, which runs correctly "
                "on this chip.".format(arch, override))
        reason = ("{}: not officially supported by ROCm, but it runs gfx1030 code through the override and "
                  "MIOpen convolutions work there.".format(arch))
    else:
        note = ""
        reason = "{}: supported by ROCm; MIOpen convolutions are expected to work.".format(arch)
    return Family(
        chip=chip, arch=arch, generation=generation, examples=examples, flagged=False,
        summary="works" + (" with the override" if override else ""), reason=reason,
        override=override, override_note=note, torch_usually_lacks=bool(override),
    )


FAMILIES: Tuple[Family, ...] = (
    _rdna1("Navi 10", "gfx1010", "RX 5600 XT, RX 5700, RX 5700 XT, Pro W5700",
           (0x7310, 0x7312, 0x7318, 0x7319, 0x731A, 0x731B, 0x731E, 0x731F)),
    _rdna1("Navi 14", "gfx1012", "RX 5500 XT, RX 5500, RX 5300, Pro W5500",
           (0x7340, 0x7341, 0x7347, 0x734F)),
    _rdna1("Navi 12", "gfx1011", "Pro 5600M, Radeon Pro V520", (0x7360, 0x7362)),
    Family(
        chip="Polaris", arch="gfx803", generation="GCN4", examples="RX 460-590, RX 540/550",
        flagged=True, summary="dropped by ROCm; MIOpen convolutions fail",
        reason="Polaris (gfx803): ROCm dropped gfx803; current PyTorch wheels and MIOpen carry no gfx803 "
               "code, and builds that still target it report MIOpen convolution crashes and wrong results.",
        override=None,
        override_note="No useful override: gfx9 code does not run on gfx8, so only a PyTorch build compiled "
                      "for gfx803 works (8.0.3 only helps such a build on a gfx80x variant the runtime names "
                      "differently).",
        torch_usually_lacks=True, id_ranges=((0x67C0, 0x67FF), (0x6980, 0x699F)),
    ),
    Family(
        chip="Vega 10", arch="gfx900", generation="GCN5", examples="RX Vega 56, RX Vega 64, Instinct MI25",
        flagged=True, summary="deprecated; MIOpen convolutions unreliable",
        reason="Vega 10 (gfx900): ROCm deprecated gfx900 and MIOpen no longer tests it; users report convolutions "
               "crashing or hanging in the find step on recent releases while GEMMs still run.",
        override=None,
        override_note="No useful override: newer gfx9 targets use instructions gfx900 lacks; use a PyTorch "
                      "build that carries gfx900 code.",
        id_ranges=((0x6860, 0x687F),),
    ),
    Family(
        chip="Renoir", arch="gfx90c", generation="APU",
        examples="Ryzen 4000/5000 APU graphics (Renoir, Lucienne, Cezanne)", flagged=True,
        summary="unsupported APU; MIOpen crashes or hangs",
        reason=_APU_REASON.format(arch="gfx90c", override="9.0.0", target="gfx900"), override="9.0.0",
        override_note="9.0.0 makes the runtime load gfx900 code objects.", torch_usually_lacks=True,
        ids=(0x15E7, 0x1636, 0x1638, 0x164C),
    ),
    _apu("Rembrandt", "gfx1035", "Radeon 660M/680M (Ryzen 6000 APUs)", "10.3.0", "gfx1030"),
    _apu("Raphael", "gfx1036", "Ryzen 7000/9000 desktop integrated graphics", "10.3.0", "gfx1030"),
    _apu("Phoenix", "gfx1103", "Radeon 740M/760M/780M (Ryzen 7040/8040 APUs)", "11.0.0", "gfx1100"),
    _strix("Strix Point", "gfx1150", "Radeon 880M/890M"),
    _strix("Strix Halo", "gfx1151", "Radeon 8050S/8060S"),
    _fine("Vega 20", "gfx906", "GCN5", "Radeon VII, Instinct MI50/MI60"),
    _fine("Navi 21", "gfx1030", "RDNA2", "RX 6800, RX 6800 XT, RX 6900 XT, Pro W6800"),
    _fine("Navi 22", "gfx1031", "RDNA2", "RX 6700 XT, RX 6750 XT", override="10.3.0"),
    _fine("Navi 23", "gfx1032", "RDNA2", "RX 6600, RX 6600 XT, RX 6650 XT", override="10.3.0"),
    _fine("Navi 31", "gfx1100", "RDNA3", "RX 7900 XTX, RX 7900 XT, Pro W7900"),
    _fine("Navi 32", "gfx1101", "RDNA3", "RX 7700 XT, RX 7800 XT"),
)


def family_by_pci_id(device_id: int, families: Iterable[Family] = FAMILIES) -> Optional[Family]:
    for fam in families:
        if fam.matches_id(device_id):
            return fam
    return None


def family_by_arch(arch: str, families: Iterable[Family] = FAMILIES) -> Optional[Family]:
    for fam in families:
        if fam.arch == arch:
            return fam
    return None


def arch_from_target_version(value: int) -> Optional[str]:
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) as an arch name; None for 0 (CPU)."""
    if value <= 0:
        return None
    major, minor, step = value // 10000, (value // 100) % 100, value % 100
    if minor > 15 or step > 15:
        return None
    return "gfx{}{:x}{:x}".format(major, minor, step)


def arch_from_override(value: str) -> Optional[str]:
    """An HSA_OVERRIDE_GFX_VERSION value ("10.3.0") as an arch name; None when malformed (HSA refuses those)."""
    parts = value.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    major, minor, step = (int(p) for p in parts)
    if major > 63 or minor > 15 or step > 15:
        return None
    return "gfx{}{:x}{:x}".format(major, minor, step)


def base_arch(name: str) -> str:
    """Strip target features: "gfx90a:sramecc+:xnack-" -> "gfx90a"."""
    return name.split(":", 1)[0].strip()


def _format_ids(fam: Family) -> str:
    if fam.by_arch_only:
        return "by arch (KFD)"
    parts = ["0x{:04X}".format(i) for i in fam.ids]
    parts += ["0x{:04X}-0x{:04X}".format(lo, hi) for lo, hi in fam.id_ranges]
    return " ".join(parts)


def compat_matrix_rows(families: Iterable[Family] = FAMILIES) -> List[List[str]]:
    rows = []
    for fam in families:
        rows.append([
            fam.chip, fam.arch, fam.generation, fam.examples, _format_ids(fam),
            ("known broken: " if fam.flagged else "") + fam.summary,
            fam.override or "none",
            "on (auto)" if fam.flagged else "off (auto)",
        ])
    return rows


def compat_matrix_markdown(families: Iterable[Family] = FAMILIES) -> str:
    """The compatibility table of docs/card-guide.md, generated from FAMILIES."""
    header = ["Chip", "Arch", "Generation", "Example cards", "PCI device ids", "Vendor convolution (MIOpen)",
              "HSA_OVERRIDE_GFX_VERSION if torch lacks the arch", "gemmconv activation"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in compat_matrix_rows(families):
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
