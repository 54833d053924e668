"""The doctor on the two roads to an RDNA1 card, and its ISA audit of the installed extension.

Road A: the PyTorch in use carries gfx1010 itself (TheRock's gfx101X wheels, distribution builds): no override,
gemmconv's gfx1010 objects load, MIOpen still flagged. Road B: the official wheels (no gfx1010 code) with
HSA_OVERRIDE_GFX_VERSION=10.3.0: gemmconv's gfx1030 objects load on the gfx1010 hardware.
"""

import types

import pytest

import sysfs_fixtures as fx
from test_doctor import doctor_json, home, run  # noqa: F401  (home is a fixture)

from gemmconv.diagnosis import doctor, isa_audit

NATIVE_TORCH = {"torch_version": "2.11.0+rocm7.0", "hip_version": "7.0.51831", "gpu_available": True,
                "arch_list": ["gfx1010", "gfx1011", "gfx1012"]}
OFFICIAL_TORCH = {"torch_version": "2.4.1+rocm6.1", "hip_version": "6.1.40091", "gpu_available": True,
                  "arch_list": ["gfx900", "gfx906", "gfx908", "gfx90a", "gfx942", "gfx1030", "gfx1100"]}
EXT = {"built": True, "archs": ["gfx1010", "gfx1030"], "error": None, "gfx1030_safe": True}


def tree(tmp_path, runtime, ext=EXT):
    return fx.make("rx5600xt", str(tmp_path / "t"), capture={"runtime": runtime, "extension": dict(ext)})


def test_torch_carrying_gfx1010_needs_no_override_and_miopen_stays_flagged(tmp_path, home):
    _, data = doctor_json(tree(tmp_path, NATIVE_TORCH), home)
    (g,) = data["gpus"]
    assert g["physical_arch"] == "gfx1010" and g["flagged"] is True
    assert g["torch_has_arch"] is True and g["override_needed"] is False and g["recommended_override"] is None
    assert data["machine"]["recommended_env"] in ({}, None)
    (road,) = data["roads"].values()
    assert road["road"] == "native" and road["loads"] == "gfx1010"
    assert not any("override" in f["message"].lower() and f["severity"] == "problem" for f in data["findings"])
    proc = run(["doctor", "--sysroot", tree(tmp_path / "x", NATIVE_TORCH)], home)
    assert "Road:               native" in proc.stdout and "KNOWN BROKEN" in proc.stdout


def test_official_wheels_get_the_override_recommended(tmp_path, home):
    _, data = doctor_json(tree(tmp_path, OFFICIAL_TORCH), home)
    (g,) = data["gpus"]
    assert g["torch_has_arch"] is False and g["override_needed"] is True and g["recommended_override"] == "10.3.0"
    assert data["machine"]["recommended_env"] == {"HSA_OVERRIDE_GFX_VERSION": "10.3.0"}
    assert any("no override is in force" in f["message"] and f["severity"] == "problem" for f in data["findings"])
    assert data["roads"] and list(data["roads"].values())[0]["road"] == "override"


def test_override_road_with_a_plain_gfx1030_build_is_warned(tmp_path, home):
    plain = dict(EXT, gfx1030_safe=False)
    _, data = doctor_json(tree(tmp_path, OFFICIAL_TORCH, plain), home, HSA_OVERRIDE_GFX_VERSION="10.3.0")
    (road,) = data["roads"].values()
    assert road["road"] == "override" and "PLAIN" in road["text"] and "PyTorch's own gfx1030" in road["text"]
    assert any("without gfx1010's workarounds" in f["message"] and f["severity"] == "warning"
               for f in data["findings"])
    _, safe = doctor_json(tree(tmp_path / "s", OFFICIAL_TORCH), home, HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert "gfx1010-safe" in list(safe["roads"].values())[0]["text"]
    assert not any("without gfx1010's workarounds" in f["message"] for f in safe["findings"])


def _bundle_with_gfx1030(tmp_path):
    from test_isa_audit import bundle, fake_code_object

    so = tmp_path / "_C.so"
    so.write_bytes(b"\0" * 64 + bundle([("hipv4-amdgcn-amd-amdhsa--gfx1030", fake_code_object(0x36))]))
    return str(so)


def test_doctor_audits_the_installed_extension(tmp_path, monkeypatch):
    from test_isa_audit import ENDPGM, disasm

    so = _bundle_with_gfx1030(tmp_path)
    ext = dict(EXT, path=so)
    monkeypatch.setattr(isa_audit, "find_objdump", lambda explicit=None: None)
    res = doctor.audit_extension(ext)
    assert res["ran"] is False and "llvm-objdump not found" in res["reason"]
    monkeypatch.setattr(isa_audit, "find_objdump", lambda explicit=None: "/usr/bin/llvm-objdump")
    monkeypatch.setattr(isa_audit, "disassemble", lambda obj, tool: disasm(("s_inst_prefetch 0x3", 0xBFA00003),
                                                                          ENDPGM))
    res = doctor.audit_extension(ext)
    assert res["ran"] and res["counts"]["inst-prefetch"] == 1
    diag = types.SimpleNamespace(extension=dict(ext, audit=res), findings=[],
                                 report=types.SimpleNamespace(amd_gpus=[]))
    doctor._road_findings(diag)
    (where, f), = diag.findings
    assert "1 site(s) unsafe on gfx1010" in f.message and "inst-prefetch 1" in f.message
    # nothing to audit: a CPU build, or no path
    assert doctor.audit_extension(dict(EXT, archs=["cpu"], path=so)) is None
    assert doctor.audit_extension(dict(EXT, path=None)) is None


@pytest.mark.parametrize("arch,road", [("gfx1030", None), ("gfx1100", None)])
def test_no_road_for_other_chips(arch, road):
    g = types.SimpleNamespace(is_amd=True, physical_arch=arch, override_arch=None, override_needed=False,
                              torch_has_arch=True, recommended_override=None)
    assert doctor.gpu_road(g, EXT) is road
