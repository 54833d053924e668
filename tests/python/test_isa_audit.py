"""The ISA audit's parser and rules on small synthetic llvm-objdump text and bundles (no toolchain needed).

The end-to-end checks (the project's HIP objects pass, a plain gfx1030 dot kernel fails) run in the
`hip` stage of scripts/test.sh, where clang and llvm-objdump are present.
"""

import os
import struct
import subprocess
import sys
import zlib

import pytest

from gemmconv.diagnosis import isa_audit as audit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def disasm(*lines, name="k", base=0x1900):
    """llvm-objdump-style text of one kernel; each line is (mnemonic+operands, word...)."""
    out = ["", "Disassembly of section .text:", "", "%016x <%s>:" % (base, name)]
    addr = base
    for text, *words in lines:
        suffix = ""
        if text.startswith(("s_branch", "s_cbranch")):
            off = words[0] & 0xFFFF
            off = off - 0x10000 if off & 0x8000 else off
            suffix = " <%s+0x%x>" % (name, addr + 4 + 4 * off - base)
        out.append("\t%-58s // %012X: %s%s" % (text, addr, " ".join("%08X" % w for w in words), suffix))
        addr += 4 * len(words)
    return "\n".join(out) + "\n"


def rules(text):
    return sorted(f.rule for f in audit.audit_disassembly(text))


VALU = ("v_mov_b32_e32 v9, v8", 0x7E120308)
GLOBAL_LOAD = ("global_load_dword v1, v[2:3], off", 0xDC308000, 0x017D0002)
DS_READ = ("ds_read_b32 v0, v1", 0xD8D80000, 0x00000001)
ENDPGM = ("s_endpgm", 0xBF810000)


def test_parser_reads_kernels_instructions_and_branch_targets():
    text = disasm(("s_mov_b32 s0, 0", 0xBE800380), ("s_cbranch_scc0 1", 0xBF840001), VALU, ENDPGM,
                  name="_Z3fooPf")
    (k,) = audit.parse_disassembly(text)
    assert k.name == "_Z3fooPf" and k.addr == 0x1900
    assert [i.mnemonic for i in k.instructions] == ["s_mov_b32", "s_cbranch_scc0", "v_mov_b32_e32", "s_endpgm"]
    br = k.instructions[1]
    assert audit.branch_target(br) == 0x1904 + 4 + 4
    assert audit.parse_disassembly("garbage\n") == []


def test_parser_skips_data_words():
    text = disasm(VALU, ENDPGM) + "\t.long 0x00000000                          // 00000000190C: 00000000\n"
    (k,) = audit.parse_disassembly(text)
    assert [i.mnemonic for i in k.instructions] == ["v_mov_b32_e32", "s_endpgm"]


def test_parser_rejects_an_instruction_line_it_cannot_read():
    text = disasm(VALU) + "\t???weird line                       // 000000001904: 7E120308\n"
    with pytest.raises(audit.AuditError):
        audit.parse_disassembly(text)


def test_clean_kernel_passes():
    assert rules(disasm(("s_load_dword s0, s[4:5], 0x0", 0xF4000002, 0xFA000000), VALU, ENDPGM)) == []


@pytest.mark.parametrize("insn", [
    ("v_dot4_i32_i8 v0, v1, v2, v3", 0xD6140000, 0x040E0501),
    ("v_dot2c_f32_f16_e32 v0, v1, v2", 0x04000501),
    ("v_fmac_legacy_f32_e32 v0, v1, v2", 0x0C000501),
    ("v_fma_legacy_f32 v0, v1, v2, v3", 0xD5400000, 0x040E0501),
    ("global_atomic_csub v0, v1, v2, s[0:1] glc", 0xDCD18000, 0x00000201),
    ("global_load_dword_addtid v0, s[0:1]", 0xDC588000, 0x00000000),
    ("image_bvh_intersect_ray v[0:3], v[4:11], s[0:3]", 0xF1980000, 0x00000004),
    ("image_msaa_load v[0:3], v[4:6], s[0:7] dmask:0xf dim:SQ_RSRC_IMG_2D_MSAA", 0xF0000F18, 0x00000004),
    ("s_getreg_b32 s0, hwreg(HW_REG_SHADER_CYCLES, 0, 20)", 0xB900A01D),
    ("scratch_load_dword v1, off, off offset:4", 0xDC304004, 0x017F0000),
    ("scratch_store_dword off, v2, off", 0xDC704000, 0x007F0200),
    ("<unknown>", 0xFFFFFFFF),
])
def test_instructions_gfx1010_lacks(insn):
    assert rules(disasm(insn, ENDPGM)) == ["gfx10_3-only"]


def test_instructions_gfx1010_has_pass():
    ok = [("v_mul_legacy_f32_e32 v0, v1, v2", 0x0E000501), ("ds_read_addtid_b32 v0", 0xDAC40000, 0x00000000),
          ("scratch_load_dword v1, v0, off", 0xDC304000, 0x017F0000), ("v_fmac_f32_e32 v0, v1, v2", 0x56000501)]
    assert rules(disasm(*ok, ENDPGM)) == []


def test_inst_prefetch_and_offset_3f():
    assert rules(disasm(("s_inst_prefetch 0x3", 0xBFA00003), ENDPGM)) == ["inst-prefetch"]
    body = [VALU] * 0x40
    assert rules(disasm(("s_branch 63", 0xBF82003F), *body, ENDPGM)) == ["offset-3f"]
    assert rules(disasm(("s_branch 64", 0xBF820040), *body, ENDPGM)) == []


def test_vmem_to_scalar_write():
    # buffer resource s[4:7] read by the load, then s5 written by SALU
    load = ("buffer_load_dword v1, v2, s[4:7], 0 offen", 0xE0301000, 0x80010102)
    write = ("s_mov_b32 s5, 0", 0xBE850380)
    assert rules(disasm(load, write, ENDPGM)) == ["vmem-to-scalar-write"]
    # EXEC is read by every vector memory instruction
    assert rules(disasm(GLOBAL_LOAD, ("s_mov_b32 exec_lo, s0", 0xBEFE0300), ENDPGM)) == ["vmem-to-scalar-write"]
    # only the explicit destination counts (as in LLVM): s_and_saveexec's implicit EXEC write does not
    assert rules(disasm(GLOBAL_LOAD, ("s_and_saveexec_b32 s0, vcc_lo", 0xBE803C6A), ENDPGM)) == []
    assert rules(disasm(("global_load_dword v1, v2, s[0:1]", 0xDC308000, 0x01000002),
                        ("s_and_saveexec_b32 s0, vcc_lo", 0xBE803C6A), ENDPGM)) == ["vmem-to-scalar-write"]
    # cache control reads no register
    assert rules(disasm(("buffer_gl0_inv", 0xE1C40000, 0x00000000), ("s_mov_b32 exec_lo, s0", 0xBEFE0300),
                        ENDPGM)) == []
    # an SMEM write of a register the load read
    assert rules(disasm(load, ("s_load_dwordx2 s[4:5], s[0:1], 0x0", 0xF4040100, 0xFA000000), ENDPGM)) \
        == ["vmem-to-scalar-write"]
    # unrelated register, or the waits LLVM inserts for gfx1010
    assert rules(disasm(load, ("s_mov_b32 s8, 0", 0xBE880380), ENDPGM)) == []
    assert rules(disasm(load, ("s_waitcnt_depctr 0xffe3", 0xBFA3FFE3), write, ENDPGM)) == []
    assert rules(disasm(load, VALU, write, ENDPGM)) == []
    assert rules(disasm(load, ("s_waitcnt vmcnt(0) expcnt(0) lgkmcnt(0)", 0xBF8C0000), write, ENDPGM)) == []
    # a depctr that does not clear vm_vsrc is no fix
    assert rules(disasm(load, ("s_waitcnt_depctr 0xfffe", 0xBFA3FFFE), write, ENDPGM)) == ["vmem-to-scalar-write"]


def test_vcmpx_exec_war():
    read = ("s_mov_b32 s0, exec_lo", 0xBE80037E)
    cmpx = ("v_cmpx_le_f32_e32 0, v0", 0x7C260080)
    assert rules(disasm(read, cmpx, ENDPGM)) == ["vcmpx-exec-war"]
    assert rules(disasm(GLOBAL_LOAD, cmpx, ENDPGM)) == ["vcmpx-exec-war"]
    assert rules(disasm(read, ("s_waitcnt_depctr 0xfffe", 0xBFA3FFFE), cmpx, ENDPGM)) == []
    assert rules(disasm(read, ("v_cmp_eq_u32_e32 vcc_lo, v0, v1", 0x7D840300), cmpx, ENDPGM)) == []
    assert rules(disasm(read, ("v_add_co_u32 v2, vcc_lo, s0, v0", 0xD70F6A02, 0x00020000), cmpx, ENDPGM)) == []
    # a VALU without a scalar destination does not clear it; an SALU write of exec is no read
    assert rules(disasm(read, VALU, cmpx, ENDPGM)) == ["vcmpx-exec-war"]
    assert rules(disasm(("s_mov_b32 exec_lo, s0", 0xBEFE0300), cmpx, ENDPGM)) == []


def test_lds_branch_vmem_war():
    br = ("s_cbranch_scc0 0", 0xBF840000)  # falls through and jumps to the same next instruction
    assert rules(disasm(DS_READ, br, GLOBAL_LOAD, ENDPGM)) == ["lds-branch-vmem-war"]
    assert rules(disasm(GLOBAL_LOAD, br, DS_READ, ENDPGM)) == ["lds-branch-vmem-war"]
    # no branch in between, the same kind, or the wait LLVM inserts
    assert rules(disasm(DS_READ, GLOBAL_LOAD, ENDPGM)) == []
    assert rules(disasm(DS_READ, br, DS_READ, ENDPGM)) == []
    assert rules(disasm(DS_READ, br, ("s_waitcnt_vscnt null, 0x0", 0xBBFD0000), GLOBAL_LOAD, ENDPGM)) == []


def test_hazard_through_a_loop_back_edge_only():
    # top: global_load / valu ... ; ds at the end jumps back to top: the LDS->branch->VMEM pair
    # exists only along the back edge.
    lines = [GLOBAL_LOAD, VALU, DS_READ, ("s_cbranch_scc1 -6", 0xBF85FFFA), ENDPGM]
    found = audit.audit_disassembly(disasm(*lines))
    assert [(f.rule, f.offset) for f in found] == [("lds-branch-vmem-war", 0)]
    # code after an unconditional branch is not reached by falling through
    lines = [DS_READ, ("s_branch 0", 0xBF820000), GLOBAL_LOAD, ENDPGM]
    assert rules(disasm(*lines)) == ["lds-branch-vmem-war"]
    lines = [DS_READ, ("s_endpgm", 0xBF810000), GLOBAL_LOAD, ENDPGM]
    assert rules(disasm(*lines)) == []


def test_findings_name_kernel_and_offset():
    text = disasm(VALU, ("s_inst_prefetch 0x3", 0xBFA00003), ENDPGM, name="_Z6kernelPf", base=0x2000)
    (f,) = audit.audit_disassembly(text, "lib.so", "bundle/gfx1030")
    assert (f.kernel, f.offset, f.rule, f.source) == ("_Z6kernelPf", 4, "inst-prefetch", "lib.so")


# ---- code objects in containers


def fake_code_object(mach):
    """A minimal 64-bit AMDGPU ELF header with e_flags naming `mach`."""
    hdr = bytearray(64)
    hdr[:4] = b"\x7fELF"
    hdr[4], hdr[5], hdr[6] = 2, 1, 1
    struct.pack_into("<HHI", hdr, 16, 3, 224, 1)
    struct.pack_into("<I", hdr, 48, mach)
    return bytes(hdr) + b"\0" * 64


def bundle(entries):
    head = bytearray(audit.BUNDLE_MAGIC + struct.pack("<Q", len(entries)))
    size = len(head) + sum(24 + len(i) for i, _ in entries)
    body, meta = b"", b""
    for ident, blob in entries:
        meta += struct.pack("<QQQ", size + len(body), len(blob), len(ident)) + ident.encode()
        body += blob
    return bytes(head) + meta + body


def test_bundles_plain_and_compressed_are_found():
    b = bundle([("host-x86_64-unknown-linux-gnu-", b""), ("hipv4-amdgcn-amd-amdhsa--gfx1010", fake_code_object(0x33)),
                ("hipv4-amdgcn-amd-amdhsa--gfx1030", fake_code_object(0x36))])
    data = b"junk" * 100 + b + b"tail"
    assert sorted(o.arch for o in audit.find_code_objects(data, "x.so")) == ["gfx1010", "gfx1030"]
    z = zlib.compress(b)
    for version, header in ((2, struct.pack("<IIQ", 24 + len(z), len(b), 0)),
                            (3, struct.pack("<QQQ", 32 + len(z), len(b), 0))):
        ccob = audit.COMPRESSED_MAGIC + struct.pack("<HH", version, 0) + header + z
        found = audit.find_code_objects(b"\0" * 33 + ccob, "y.so")
        assert sorted(o.arch for o in found) == ["gfx1010", "gfx1030"], version
    # a bare code object, and a stray magic string that is no bundle
    assert [o.arch for o in audit.find_code_objects(fake_code_object(0x36))] == ["gfx1030"]
    assert audit.find_code_objects(audit.BUNDLE_MAGIC + b"\xff" * 40) == []


def test_cli_reports_missing_objects_and_objdump(tmp_path):
    empty = tmp_path / "empty.o"
    empty.write_bytes(b"\0" * 128)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    res = subprocess.run([sys.executable, "-m", "gemmconv.diagnosis.isa_audit", str(empty)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert res.returncode == 2 and "no gfx1030 code object" in res.stderr
    obj = tmp_path / "k.co"
    obj.write_bytes(fake_code_object(0x36))
    res = subprocess.run([sys.executable, "-m", "gemmconv.diagnosis.isa_audit", "--objdump",
                          str(tmp_path / "no-such-objdump"), str(obj)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert res.returncode == 2 and "llvm-objdump not found" in res.stderr


def test_summary_for_reports(tmp_path, monkeypatch):
    obj = tmp_path / "k.co"
    obj.write_bytes(fake_code_object(0x36))
    monkeypatch.setattr(audit, "find_objdump", lambda explicit=None: None)
    s = audit.audit_summary([str(obj)])
    assert s["ran"] is False and "llvm-objdump not found" in s["reason"]
    text = disasm(("v_dot2_f32_f16 v0, v1, v2, v3", 0xCC134000, 0x040E0501), ENDPGM)
    monkeypatch.setattr(audit, "find_objdump", lambda explicit=None: "/bin/true")
    monkeypatch.setattr(audit, "disassemble", lambda o, tool: text)
    s = audit.audit_summary([str(obj)])
    assert s["ran"] and s["gfx1030_objects"] == 1 and s["counts"]["gfx10_3-only"] == 1
    assert s["findings"] == ["k +0x0: gfx10_3-only: v_dot2_f32_f16 v0, v1, v2, v3"]


def test_instruction_stats():
    text = disasm(("s_waitcnt_depctr 0xffe3", 0xBFA3FFE3), ("v_dot2_f32_f16 v0, v1, v2, v3", 0xCC134000, 0x040E0501),
                  VALU, ENDPGM)
    c = audit.instruction_stats(text)
    assert c["total"] == 4 and c["s_waitcnt_depctr"] == 1 and c["v_dot*"] == 1
