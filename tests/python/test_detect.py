"""Detection verdicts on captured-machine trees, the family table, and the compatibility matrix in the docs."""

import json
import os
import re

import pytest

import sysfs_fixtures as fx
from gemmconv.diagnosis import detect as det
from gemmconv.diagnosis import families as fam
from gemmconv.diagnosis.detect import OVERRIDE_VAR, RuntimeDevice, RuntimeInfo, detect


def _tree(tmp_path, name, **kw):
    return fx.make(name, str(tmp_path / name), **kw)


def _messages(report, severity=None):
    return [f.message + " " + f.advice for _, f in report.all_findings() if severity in (None, f.severity)]


def _rocm_torch(archs, hip="6.1.40091-a8dbc0c19", devices=()):
    return RuntimeInfo(torch_version="2.4.1+rocm6.1", hip_version=hip, arch_list=list(archs), gpu_available=True,
                       devices=list(devices))


# ---- the fixtures named in the brief ----

def test_rx5600xt_without_override(tmp_path):
    r = detect(_tree(tmp_path, "rx5600xt"), env={})
    assert len(r.gpus) == 1
    g = r.gpus[0]
    assert (g.physical_arch, g.pci_device_id, g.pci_vendor_id, g.kfd_node) == ("gfx1010", "0x731f", "0x1002", 1)
    assert g.flagged and g.vendor_conv_usable is False
    assert "HSA_STATUS_ERROR_MEMORY_APERTURE_VIOLATION" in g.reason and "invalid device function" in g.reason
    assert g.override is None and g.override_needed and g.recommended_override == "10.3.0"
    assert g.reported_arch == "gfx1010" and g.reported_arch_source == "predicted"
    assert r.vendor_conv_broken and not r.override_in_force and r.override_needed
    assert r.recommended_env == {OVERRIDE_VAR: "10.3.0"}
    assert any("HSA_OVERRIDE_GFX_VERSION=10.3.0" in m for m in _messages(r, det.WARNING))
    assert r.problems() == []  # without torch's view the missing override is a warning, not a certainty


def test_rx5600xt_with_override(tmp_path):
    r = detect(_tree(tmp_path, "rx5600xt"), env={OVERRIDE_VAR: "10.3.0"})
    g = r.gpus[0]
    assert g.override == "10.3.0" and g.override_source == OVERRIDE_VAR and g.override_arch == "gfx1030"
    assert g.reported_arch == "gfx1030" and g.physical_arch == "gfx1010"
    assert g.flagged and r.override_in_force
    assert not [m for m in _messages(r) if "override" in m.lower()]


def test_rx5500xt(tmp_path):
    r = detect(_tree(tmp_path, "rx5500xt"), env={})
    g = r.gpus[0]
    assert (g.physical_arch, g.pci_device_id, g.flagged, g.generation) == ("gfx1012", "0x7340", True, "RDNA1")
    assert r.recommended_env == {OVERRIDE_VAR: "10.3.0"}


def test_rx6800_is_not_flagged(tmp_path):
    r = detect(_tree(tmp_path, "rx6800"), env={})
    g = r.gpus[0]
    assert (g.physical_arch, g.pci_device_id, g.flagged, g.arch_source) == ("gfx1030", "0x73bf", False, "kfd topology")
    assert g.vendor_conv_usable is True and not g.override_needed
    assert not r.vendor_conv_broken and r.recommended_env == {} and r.problems() == []


def test_rx6700xt_needs_an_override_but_is_not_flagged(tmp_path):
    r = detect(_tree(tmp_path, "rx6700xt"), env={})
    g = r.gpus[0]
    assert (g.physical_arch, g.flagged, g.override_needed, g.recommended_override) == ("gfx1031", False, True,
                                                                                      "10.3.0")
    assert not r.vendor_conv_broken and r.recommended_env == {OVERRIDE_VAR: "10.3.0"}
    assert det.plan_overrides(r, flagged_only=True)[0] == {}


def test_rdna1_with_gfx1031_on_old_rocm_shares_the_global_override(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.RX5600XT, fx.RX6700XT], rocm="6.1.3")
    r = detect(root, env={})
    assert det.plan_overrides(r, flagged_only=True)[0] == {OVERRIDE_VAR: "10.3.0"}
    # With an RDNA3 card beside it instead, no single value works and ROCm 6.1 reads no per-GPU variable.
    root = fx.build_tree(str(tmp_path / "b"), [fx.RX5600XT, fx.Card(0x744C, "0000:0d:00.0",
                                                                    gfx_target_version=110000)], rocm="6.1.3")
    r = detect(root, env={})
    assert r.recommended_env == {} and any("need different overrides" in p for p in r.problems())


def test_rdna1_and_rdna2_get_a_per_gpu_override(tmp_path):
    r = detect(_tree(tmp_path, "rdna1_rdna2"), env={})
    rdna1, rdna2 = r.gpus
    assert (rdna1.physical_arch, rdna1.flagged, rdna1.kfd_node, rdna1.rocm_gpu_index) == ("gfx1010", True, 1, 0)
    assert (rdna2.physical_arch, rdna2.flagged, rdna2.kfd_node, rdna2.rocm_gpu_index) == ("gfx1030", False, 2, 1)
    assert r.per_gpu_override_supported is True
    assert r.recommended_env == {OVERRIDE_VAR + "_1": "10.3.0"}
    assert any("HSA_OVERRIDE_GFX_VERSION_1=10.3.0" in m for m in _messages(r))


def test_rdna1_and_rdna2_on_old_rocm_share_the_global_override(tmp_path):
    # gfx1030 taking 10.3.0 is a no-op, so the global variable is safe where per-GPU ones are not read.
    r = detect(_tree(tmp_path, "rdna1_rdna2_rocm61"), env={})
    assert r.per_gpu_override_supported is False
    assert r.recommended_env == {OVERRIDE_VAR: "10.3.0"}


def test_per_gpu_override_in_force_needs_rocm_62(tmp_path):
    new = detect(_tree(tmp_path, "rdna1_rdna2"), env={OVERRIDE_VAR + "_1": "10.3.0"})
    assert new.gpus[0].override_source == OVERRIDE_VAR + "_1" and new.gpus[1].override is None
    old = detect(_tree(tmp_path, "rdna1_rdna2_rocm61"), env={OVERRIDE_VAR + "_1": "10.3.0"})
    assert old.gpus[0].override is None
    assert any("predates per-GPU overrides" in m for m in _messages(old, det.WARNING))


def test_nvidia_is_listed_never_flagged(tmp_path):
    r = detect(_tree(tmp_path, "nvidia"), env={OVERRIDE_VAR: "10.3.0"})
    g = r.gpus[0]
    assert (g.vendor, g.pci_vendor_id, g.pci_device_id, g.flagged) == ("NVIDIA", "0x10de", "0x2684", False)
    assert not r.vendor_conv_broken and r.recommended_env == {} and r.problems() == []
    assert g.override is None  # the HSA override means nothing to an NVIDIA GPU


def test_no_gpu(tmp_path):
    r = detect(_tree(tmp_path, "nogpu"), env={})
    assert r.gpus == [] and not r.vendor_conv_broken and r.problems() == []
    assert any("No GPU found" in m for m in _messages(r, det.NOTE))


def test_no_kfd_access_is_a_problem(tmp_path):
    r = detect(_tree(tmp_path, "rx5600xt_nokfd_access"), env={})
    assert r.facts.kfd_present and r.facts.kfd_access is False
    assert any("/dev/kfd" in p for p in r.problems())
    assert any("usermod -aG render,video" in m for m in _messages(r, det.PROBLEM))


def test_missing_kfd_and_driver(tmp_path):
    no_kfd = detect(fx.build_tree(str(tmp_path / "a"), [fx.RX5600XT], kfd=False), env={})
    assert any("/dev/kfd does not exist" in p for p in no_kfd.problems())
    assert no_kfd.gpus[0].physical_arch == "gfx1010"  # the id table still knows it
    no_driver = detect(fx.build_tree(str(tmp_path / "b"), [fx.RX5600XT], amdgpu=False), env={})
    assert any("amdgpu kernel module is not loaded" in p for p in no_driver.problems())


# ---- torch's view injected ----

def test_runtime_without_gfx1010_and_override(tmp_path):
    rt = _rocm_torch(["gfx900", "gfx906", "gfx1030", "gfx1100"],
                     devices=[RuntimeDevice(0, "AMD Radeon RX 5600 XT", "gfx1030")])
    r = detect(_tree(tmp_path, "rx5600xt"), env={OVERRIDE_VAR: "10.3.0"}, runtime=rt)
    g = r.gpus[0]
    assert g.reported_arch == "gfx1030" and g.reported_arch_source == "runtime" and g.runtime_index == 0
    assert g.torch_has_arch is False and g.override_needed and r.torch_missing_archs == ["gfx1010"]
    assert r.problems() == []


def test_runtime_without_gfx1010_and_no_override_is_a_problem(tmp_path):
    r = detect(_tree(tmp_path, "rx5600xt"), env={}, runtime=_rocm_torch(["gfx1030", "gfx1100"]))
    assert any("invalid device function" in p for p in r.problems())


def test_runtime_with_gfx1010_needs_no_override(tmp_path):
    rt = _rocm_torch(["gfx1010", "gfx1030"])
    r = detect(_tree(tmp_path, "rx5600xt"), env={OVERRIDE_VAR: "10.3.0"}, runtime=rt)
    g = r.gpus[0]
    assert g.torch_has_arch and not g.override_needed and r.recommended_env == {}
    assert any("although PyTorch carries gfx1010" in m for m in _messages(r, det.WARNING))
    assert g.flagged  # MIOpen is still broken there


def test_override_to_another_generation_is_a_problem(tmp_path):
    r = detect(_tree(tmp_path, "rx6800"), env={OVERRIDE_VAR: "11.0.0"}, runtime=_rocm_torch(["gfx1030", "gfx1100"]))
    assert any("run gfx1100 code" in p for p in r.problems())


def test_runtime_rocm_version_decides_per_gpu_support(tmp_path):
    # /opt/rocm says 6.2.4, but torch brings its own 6.1 runtime: that one reads the variables.
    r = detect(_tree(tmp_path, "rdna1_rdna2"), env={}, runtime=_rocm_torch(["gfx1030"], hip="6.1.40091"))
    assert r.per_gpu_override_supported is False
    assert r.recommended_env == {OVERRIDE_VAR: "10.3.0"}


def test_runtime_reporting_unexpected_arch_warns(tmp_path):
    rt = _rocm_torch(["gfx1030"], devices=[RuntimeDevice(0, "x", "gfx1010")])
    r = detect(_tree(tmp_path, "rx5600xt"), env={OVERRIDE_VAR: "10.3.0"}, runtime=rt)
    assert any("runtime reports gfx1010" in m for m in _messages(r, det.WARNING))


def test_cuda_torch_with_only_an_amd_gpu(tmp_path):
    rt = RuntimeInfo(torch_version="2.4.1+cu121", cuda_version="12.1")
    r = detect(_tree(tmp_path, "rx6800"), env={}, runtime=rt)
    assert any("not a ROCm build" in p for p in r.problems())


def test_capture_file_carries_runtime(tmp_path):
    rt = _rocm_torch(["gfx1030"])
    root = _tree(tmp_path, "rx5600xt", capture={"runtime": rt.to_dict()})
    r = detect(root, env={})
    assert r.runtime == rt and r.torch_missing_archs == ["gfx1010"]


# ---- other chips and odd trees ----

def test_polaris_has_no_useful_override(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.Card(0x67DF, "0000:01:00.0", gfx_target_version=80003)])
    r = detect(root, env={}, runtime=_rocm_torch(["gfx900", "gfx1030"]))
    g = r.gpus[0]
    assert (g.physical_arch, g.flagged, g.recommended_override) == ("gfx803", True, None)
    assert any("no override maps this GPU" in p for p in r.problems())


def test_apu_flagged_by_kfd_arch(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.Card(0x15BF, "0000:c4:00.0", gfx_target_version=110003)])
    g = detect(root, env={}).gpus[0]
    assert (g.physical_arch, g.arch_source, g.flagged, g.recommended_override) == (
        "gfx1103", "kfd topology", True, "11.0.0")


def test_unknown_amd_id_without_kfd(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.Card(0x7480, "0000:03:00.0")], kfd=False)
    r = detect(root, env={})
    g = r.gpus[0]
    assert (g.physical_arch, g.flagged, g.vendor_conv_usable) == ("unknown", False, None)
    assert any("not in gemmconv's table" in m for m in _messages(r, det.NOTE))


def test_unknown_amd_id_with_kfd_arch(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.Card(0x7550, "0000:03:00.0", gfx_target_version=120001)])
    g = detect(root, env={}).gpus[0]
    assert (g.physical_arch, g.flagged, g.vendor_conv_usable) == ("gfx1201", False, True)


def test_kfd_wins_over_the_id_table(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.Card(0x731F, "0000:03:00.0", gfx_target_version=100300)])
    r = detect(root, env={})
    assert r.gpus[0].physical_arch == "gfx1030" and not r.gpus[0].flagged
    assert any("trusting KFD" in m for m in _messages(r))


def test_kfd_without_location_id_pairs_by_ids(tmp_path):
    root = fx.build_tree(str(tmp_path), [fx.RX6800, fx.RX5600XT])
    props = os.path.join(root, "sys/class/kfd/kfd/topology/nodes")
    for node in ("1", "2"):
        path = os.path.join(props, node, "properties")
        text = open(path).read()
        open(path, "w").write(re.sub(r"location_id \d+\n", "", text))
    r = detect(root, env={})
    by_addr = {g.pci_address: g for g in r.gpus}
    assert len(r.gpus) == 2
    assert by_addr["0000:03:00.0"].kfd_node == 2 and by_addr["0000:0b:00.0"].kfd_node == 1


def test_malformed_override(tmp_path):
    r = detect(_tree(tmp_path, "rx5600xt"), env={OVERRIDE_VAR: "10.3"})
    assert any("malformed" in p for p in r.problems())


def test_to_dict_is_json(tmp_path):
    r = detect(_tree(tmp_path, "rdna1_rdna2"), env={OVERRIDE_VAR: "10.3.0", "MIOPEN_FIND_MODE": "1", "PATH": "/x"})
    data = json.loads(json.dumps(r.to_dict()))
    assert [g["physical_arch"] for g in data["gpus"]] == ["gfx1010", "gfx1030"]
    assert {"pci_device_id", "flagged", "reason", "reported_arch", "override", "name"} <= set(data["gpus"][0])
    assert data["env"] == {OVERRIDE_VAR: "10.3.0", "MIOPEN_FIND_MODE": "1"}


# ---- vendor_conv_broken() ----

def test_vendor_conv_broken_follows_sysroot(tmp_path, monkeypatch):
    det.clear_cache()
    monkeypatch.setenv("GEMMCONV_SYSROOT", _tree(tmp_path, "rx5600xt"))
    assert det.vendor_conv_broken() is True
    monkeypatch.setenv("GEMMCONV_SYSROOT", _tree(tmp_path, "rx6800"))
    assert det.vendor_conv_broken() is False
    assert det.vendor_conv_broken(_tree(tmp_path, "rx5500xt")) is True
    assert det.vendor_conv_broken(str(tmp_path / "does-not-exist")) is False


def test_vendor_conv_broken_never_raises(tmp_path, monkeypatch):
    det.clear_cache()

    def boom(*a, **k):
        raise RuntimeError("sysfs exploded")

    monkeypatch.setattr(det, "detect", boom)
    assert det.vendor_conv_broken(str(tmp_path)) is False
    det.clear_cache()


def test_vendor_conv_broken_is_cached(tmp_path, monkeypatch):
    det.clear_cache()
    root = _tree(tmp_path, "rx5600xt")
    calls = []
    real = det.detect
    monkeypatch.setattr(det, "detect", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert det.vendor_conv_broken(root) and det.vendor_conv_broken(root)
    assert len(calls) == 1
    det.clear_cache()


# ---- the family table ----

FACTS = {  # docs/../facts.md section 2, written out independently of the table
    "gfx1010": [0x7310, 0x7312, 0x7318, 0x7319, 0x731A, 0x731B, 0x731E, 0x731F],
    "gfx1012": [0x7340, 0x7341, 0x7347, 0x734F],
    "gfx1011": [0x7360, 0x7362],
    "gfx803": [0x67C0, 0x67DF, 0x67FF, 0x6980, 0x699F],
    "gfx900": [0x6860, 0x687F],
    "gfx90c": [0x15E7, 0x1636, 0x1638, 0x164C],
}


@pytest.mark.parametrize("arch", sorted(FACTS))
def test_family_ids(arch):
    for dev in FACTS[arch]:
        f = fam.family_by_pci_id(dev)
        assert f is not None and f.arch == arch and f.flagged, hex(dev)


@pytest.mark.parametrize("dev", [0x731C, 0x731D, 0x67BF, 0x69A0, 0x73BF, 0x1234])
def test_ids_outside_the_table(dev):
    assert fam.family_by_pci_id(dev) is None


def test_families_do_not_overlap():
    seen = {}
    for f in fam.FAMILIES:
        for dev in list(f.ids) + [i for lo, hi in f.id_ranges for i in range(lo, hi + 1)]:
            assert dev not in seen, (hex(dev), f.arch, seen.get(dev))
            seen[dev] = f.arch
    assert len({f.arch for f in fam.FAMILIES}) == len(fam.FAMILIES)


@pytest.mark.parametrize("arch", ["gfx1035", "gfx1036", "gfx1103", "gfx1150", "gfx1151"])
def test_apus_flagged_by_arch(arch):
    f = fam.family_by_arch(arch)
    assert f is not None and f.flagged and f.by_arch_only


def test_arch_conversions():
    assert fam.arch_from_target_version(100100) == "gfx1010"
    assert fam.arch_from_target_version(100300) == "gfx1030"
    assert fam.arch_from_target_version(90012) == "gfx90c"
    assert fam.arch_from_target_version(110501) == "gfx1151"
    assert fam.arch_from_target_version(0) is None
    assert fam.arch_from_override("10.3.0") == "gfx1030"
    assert fam.arch_from_override(" 9.0.12 ") == "gfx90c"
    for bad in ("10.3", "10.3.0.1", "ten.3.0", "", "10.16.0"):
        assert fam.arch_from_override(bad) is None, bad
    assert fam.base_arch("gfx90a:sramecc+:xnack-") == "gfx90a"


def test_card_guide_matrix_matches_the_table():
    path = os.path.join(fx.REPO, "docs", "card-guide.md")
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- compat-matrix:begin -->\n(.*?)<!-- compat-matrix:end -->", text, re.S)
    assert m, "docs/card-guide.md lacks the compat-matrix markers"
    assert m.group(1) == fam.compat_matrix_markdown(), (
        "regenerate with: PYTHONPATH=python python3 -c 'from gemmconv.diagnosis.families import compat_matrix_markdown as "
        "m; print(m(), end=\"\")'")
    for f in fam.FAMILIES:
        assert "| {} | {} |".format(f.chip, f.arch) in m.group(1)
