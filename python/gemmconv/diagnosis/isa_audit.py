"""Audits the AMD GPU code objects inside built files for code that is unsafe on gfx1010 (RDNA1).

Users of RDNA1 cards on the official PyTorch ROCm wheels set HSA_OVERRIDE_GFX_VERSION=10.3.0, and
the HIP runtime then loads every library's gfx1030 code object onto gfx1010 hardware. A gfx1030
object is safe there only if it uses no instruction gfx1010 lacks and carries the workarounds that
LLVM applies when it targets gfx1010 itself. This module finds every AMD code object in the files it
is given (clang offload bundles, plain or compressed, inside `.hip_fatbin` sections or anywhere
else in a file, and bare AMDGPU ELF files), disassembles each with llvm-objdump and checks every
gfx1030 object for:

  gfx10_3-only   instructions and encodings gfx1010 lacks: v_dot*, v_fma(c)_legacy_f32, *_csub
                 atomics, global_*_addtid, image_bvh*, image_msaa_load, reads of the
                 SHADER_CYCLES register, scratch instructions in ST mode (no address at all),
                 and any word llvm-objdump cannot decode as gfx1030
  inst-prefetch  s_inst_prefetch (LLVM's inst-fwd-prefetch-bug: it hangs gfx10.1)
  offset-3f      a branch whose offset is 0x3f (LLVM's offset-3f-bug)
  vmem-to-scalar-write
                 a scalar ALU or scalar memory instruction writes an SGPR, EXEC or M0 that an
                 earlier vector memory or LDS instruction reads, with no VALU instruction,
                 `s_waitcnt 0` or `s_waitcnt_depctr` with vm_vsrc(0) in between on some path
  vcmpx-exec-war a v_cmpx (a VALU write of EXEC) follows a non-VALU instruction that reads EXEC
                 (memory instructions read it implicitly), with neither a VALU instruction that
                 writes an SGPR nor `s_waitcnt_depctr` with sa_sdst(0) in between on some path
  lds-branch-vmem-war
                 an LDS instruction and a vector memory instruction (either order) are separated
                 by a branch on some path, with no `s_waitcnt_vscnt null, 0` and no memory
                 instruction of either kind in between

Paths are followed backwards through the kernel's control flow (fall-through and branch
targets), as LLVM's hazard recognizer does. gfx1010 objects are listed but not checked: their
workarounds come from the compiler. Each finding names the file, the object, the kernel and the
offset of the instruction inside the kernel.

    python3 -m gemmconv.diagnosis.isa_audit [--objdump PATH] [--json] [--verbose] FILE...

exits 0 when every gfx1030 object is clean, 1 when there are findings, 2 when a file or the
disassembler cannot be used. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter, namedtuple

BUNDLE_MAGIC = b"__CLANG_OFFLOAD_BUNDLE__"
COMPRESSED_MAGIC = b"CCOB"
ELF_MAGIC = b"\x7fELF"
EM_AMDGPU = 224
EF_AMDGPU_MACH = 0x0FF
# EF_AMDGPU_MACH values of the LLVM AMDGPU ELF ABI for the chips this project is about.
MACH_NAMES = {
    0x033: "gfx1010", 0x034: "gfx1011", 0x035: "gfx1012", 0x042: "gfx1013",
    0x036: "gfx1030", 0x037: "gfx1031", 0x038: "gfx1032", 0x039: "gfx1033",
    0x03E: "gfx1034", 0x03D: "gfx1035", 0x045: "gfx1036",
}
AUDITED_ARCH = "gfx1030"

RULES = ("gfx10_3-only", "inst-prefetch", "offset-3f", "vmem-to-scalar-write", "vcmpx-exec-war",
         "lds-branch-vmem-war")
# How far back a hazard search may look (instructions visited), so that a pathological kernel
# cannot make the audit quadratic; LLVM's own searches end at the first expiring instruction,
# which in compiled code comes within a few dozen.
SEARCH_LIMIT = 20000

Instruction = namedtuple("Instruction", "addr mnemonic operands words")
Kernel = namedtuple("Kernel", "name addr instructions")
CodeObject = namedtuple("CodeObject", "source where arch data")
Finding = namedtuple("Finding", "source where arch kernel offset rule text detail")


class AuditError(Exception):
    """A file or the disassembler could not be used."""


# ----------------------------------------------------------------------------------------------
# Finding code objects


def _elf_sections(data):
    """(name, offset, size) of every section of a 64-bit little-endian ELF, or [] if not one."""
    if len(data) < 64 or data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shentsize < 64 or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        return []
    headers = []
    for i in range(shnum):
        name, stype, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        headers.append((name, stype, off, size))
    _, _, stroff, strsize = headers[shstrndx]
    out = []
    for name, stype, off, size in headers:
        end = data.find(b"\0", stroff + name, stroff + strsize)
        sname = data[stroff + name:end].decode("latin-1") if end >= 0 else ""
        if stype != 8 and off + size <= len(data):  # 8 = SHT_NOBITS
            out.append((sname, off, size))
    return out


def _amdgpu_arch(data):
    """The processor of an AMDGPU ELF code object ('gfx1030'), or None if `data` is not one."""
    if len(data) < 64 or data[:4] != ELF_MAGIC or data[4] != 2:
        return None
    machine, = struct.unpack_from("<H", data, 18)
    if machine != EM_AMDGPU:
        return None
    flags, = struct.unpack_from("<I", data, 48)
    mach = flags & EF_AMDGPU_MACH
    return MACH_NAMES.get(mach, "mach-0x%03x" % mach)


def _parse_bundle(data, start):
    """Entries (id, bytes) of an uncompressed clang offload bundle at `start`, or None if invalid."""
    pos = start + len(BUNDLE_MAGIC)
    if pos + 8 > len(data):
        return None
    count, = struct.unpack_from("<Q", data, pos)
    pos += 8
    if count == 0 or count > 4096:
        return None
    entries = []
    for _ in range(count):
        if pos + 24 > len(data):
            return None
        off, size, idlen = struct.unpack_from("<QQQ", data, pos)
        pos += 24
        if idlen > 4096 or pos + idlen > len(data) or start + off + size > len(data):
            return None
        ident = data[pos:pos + idlen].decode("latin-1")
        pos += idlen
        entries.append((ident, data[start + off:start + off + size]))
    return entries


def _zstd_decompress(payload):
    """zstd through the standard library where it has it (3.14+), else the zstd command."""
    try:
        from compression import zstd  # type: ignore  # Python 3.14+
        return zstd.decompress(payload)
    except ImportError:
        pass
    tool = shutil.which("zstd")
    if not tool:
        raise AuditError("a zstd-compressed offload bundle needs Python 3.14 or the zstd command")
    res = subprocess.run([tool, "-d", "-c", "-q"], input=payload, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        raise AuditError("zstd could not decompress an offload bundle: "
                         + res.stderr.decode("utf-8", "replace").strip())
    return res.stdout


def _decompress_bundle(data, start):
    """The uncompressed bundle of a compressed one ('CCOB', versions 1-3) at `start`, or None."""
    if start + 8 > len(data):
        return None
    version, method = struct.unpack_from("<HH", data, start + 4)
    # Header after magic, version and method: v1 uncompressed size (4) and hash (8); v2 total
    # size (4), uncompressed size (4) and hash (8); v3 the same with 8-byte sizes.
    layouts = {1: ("<IQ", 20), 2: ("<IIQ", 24), 3: ("<QQQ", 32)}
    if version not in layouts or start + layouts[version][1] > len(data):
        return None
    fmt, header = layouts[version]
    fields = struct.unpack_from(fmt, data, start + 8)
    total, usize = (None, fields[0]) if version == 1 else (fields[0], fields[1])
    end = start + total if total else len(data)
    if end > len(data) or end <= start + header:
        return None
    payload = data[start + header:end]
    if method == 0:  # zlib
        out = zlib.decompressobj().decompress(payload)
    elif method == 1:  # zstd
        out = _zstd_decompress(payload)
    else:
        return None
    if usize and len(out) < usize:
        return None
    return out if out.startswith(BUNDLE_MAGIC) else None


def _objects_in_bundle(entries, source, where, depth):
    out = []
    for ident, blob in entries:
        if "amdgcn" not in ident:
            continue
        label = ident.rsplit("--", 1)[-1] if "--" in ident else ident
        out.extend(find_code_objects(blob, source, "%s/%s" % (where, label), depth + 1))
    return out


def find_code_objects(data, source="<bytes>", where="", depth=0):
    """Every AMDGPU code object in `data`: itself if it is one, else those in its offload bundles."""
    arch = _amdgpu_arch(data)
    if arch is not None:
        return [CodeObject(source, where or "code object", arch, data)]
    if depth > 4:
        return []
    found = []
    seen = set()
    # Sections first, for their names; then a scan of the whole file, which also finds bundles in
    # files that are not ELF or whose section table is stripped.
    regions = [(name, off, size) for name, off, size in _elf_sections(data)
               if name == ".hip_fatbin" or name.startswith("__CLANG_OFFLOAD_BUNDLE__")
               or name.startswith(".llvm.offloading")]
    regions.append(("", 0, len(data)))
    for name, off, size in regions:
        region_end = off + size
        for magic in (BUNDLE_MAGIC, COMPRESSED_MAGIC):
            pos = data.find(magic, off, region_end)
            while pos >= 0:
                if pos not in seen:
                    label = (where + "/" if where else "") + (name or "offset 0x%x" % pos)
                    if magic == BUNDLE_MAGIC:
                        entries = _parse_bundle(data, pos)
                    else:
                        inner = _decompress_bundle(data, pos)
                        entries = _parse_bundle(inner, 0) if inner else None
                        label += " (compressed)"
                    if entries is not None:
                        seen.add(pos)
                        found.extend(_objects_in_bundle(entries, source, label, depth))
                pos = data.find(magic, pos + 1, region_end)
    return found


# ----------------------------------------------------------------------------------------------
# Disassembly

_SYMBOL_RE = re.compile(r"^([0-9a-fA-F]+) <(.+)>:\s*$")
# "\ts_cbranch_execz 29     // 000000001930: BF88001D <_Z4dotkPKjS0_Pii+0xa8>": mnemonic, operands,
# address, encoding words, and for branches an optional symbolic target.
_INSN_RE = re.compile(r"^\s+([a-z_][a-z0-9_.]*)\s*(.*?)\s*//\s*([0-9a-fA-F]+):\s*"
                      r"((?:[0-9a-fA-F]{8}\s*)+)(?:<[^>]*>\s*)?$")
_ENCODED_RE = re.compile(r"//\s*([0-9a-fA-F]{6,16}):\s*((?:[0-9a-fA-F]{8}\s*)+)")


def parse_disassembly(text):
    """Kernels (functions) of `llvm-objdump -d` output: each with its instructions in order."""
    kernels = []
    name, addr, insns = None, 0, []
    for line in text.splitlines():
        m = _SYMBOL_RE.match(line)
        if m:
            if name is not None:
                kernels.append(Kernel(name, addr, insns))
            name, addr, insns = m.group(2), int(m.group(1), 16), []
            continue
        m = _INSN_RE.match(line)
        if m and name is not None:
            words = tuple(int(w, 16) for w in m.group(4).split())
            insns.append(Instruction(int(m.group(3), 16), m.group(1), m.group(2).strip(), words))
        elif name is not None and line.strip().startswith("."):
            continue  # data between or after kernels (".long 0x00000000" padding, LLVM 15)
        elif name is not None:
            m2 = _ENCODED_RE.search(line)
            if m2 and "<unknown>" in line:
                words = tuple(int(w, 16) for w in m2.group(2).split())
                insns.append(Instruction(int(m2.group(1), 16), "<unknown>", "", words))
            elif m2:
                # An instruction line this parser does not understand: better an error than a
                # kernel audited with a hole in it.
                raise AuditError("cannot parse disassembly line: %r" % line)
    if name is not None:
        kernels.append(Kernel(name, addr, insns))
    return [k for k in kernels if k.instructions]


def find_objdump(explicit=None):
    """llvm-objdump: `explicit`, $LLVM_OBJDUMP, or the newest versioned or plain one on the PATH."""
    for cand in (explicit, os.environ.get("LLVM_OBJDUMP")):
        if cand:
            path = shutil.which(cand) or (cand if os.path.isfile(cand) else None)
            if not path:
                raise AuditError("llvm-objdump not found at %s" % cand)
            return path
    for ver in range(30, 13, -1):
        path = shutil.which("llvm-objdump-%d" % ver) or (
            "/usr/lib/llvm-%d/bin/llvm-objdump" % ver if os.path.isfile("/usr/lib/llvm-%d/bin/llvm-objdump" % ver)
            else None)
        if path:
            return path
    for path in (shutil.which("llvm-objdump"), "/opt/rocm/llvm/bin/llvm-objdump"):
        if path and os.path.isfile(path):
            return path
    return None


def disassemble(obj, objdump):
    with tempfile.NamedTemporaryFile(suffix=".co") as f:
        f.write(obj.data)
        f.flush()
        res = subprocess.run([objdump, "-d", "--mcpu=" + obj.arch, f.name], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=False)
    if res.returncode != 0:
        raise AuditError("%s failed on %s %s: %s" % (objdump, obj.source, obj.where,
                                                     res.stderr.decode("utf-8", "replace").strip()))
    return res.stdout.decode("utf-8", "replace")


# ----------------------------------------------------------------------------------------------
# Instruction classes

_VMEM_PREFIXES = ("buffer_", "tbuffer_", "image_", "global_", "scratch_")
_SGPR_RANGE_RE = re.compile(r"^(s|ttmp)\[(\d+):(\d+)\]$")
_SGPR_RE = re.compile(r"^(s|ttmp)(\d+)$")
_SPECIAL = {"vcc_lo": ("vcc_lo",), "vcc_hi": ("vcc_hi",), "vcc": ("vcc_lo", "vcc_hi"),
            "exec_lo": ("exec_lo",), "exec_hi": ("exec_hi",), "exec": ("exec_lo", "exec_hi"),
            "m0": ("m0",), "flat_scratch_lo": ("flat_scratch_lo",),
            "flat_scratch_hi": ("flat_scratch_hi",),
            "flat_scratch": ("flat_scratch_lo", "flat_scratch_hi")}
EXEC = frozenset(("exec_lo", "exec_hi"))


def is_valu(insn):
    return insn.mnemonic.startswith("v_")


def is_vmem(insn):
    """Vector memory other than LDS: buffer, image and the segment-specific flat forms."""
    return insn.mnemonic.startswith(_VMEM_PREFIXES)


def is_lds(insn):
    return insn.mnemonic.startswith("ds_")


def is_flat(insn):
    return insn.mnemonic.startswith("flat_")


def is_memory(insn):
    return is_vmem(insn) or is_lds(insn) or is_flat(insn)


def is_scalar(insn):
    return insn.mnemonic.startswith("s_")


def is_branch(insn):
    return insn.mnemonic == "s_branch" or insn.mnemonic.startswith("s_cbranch_")


def _ends_flow(insn):
    """No fall-through to the next instruction."""
    return insn.mnemonic in ("s_branch", "s_endpgm", "s_setpc_b64", "s_code_end", "s_endpgm_saved",
                             "s_trap", "s_rfe_b64")


def _simm16(insn):
    return insn.words[0] & 0xFFFF if insn.words else None


def branch_target(insn):
    """The address a branch jumps to (SOPP: pc + 4 + 4 * signed offset)."""
    off = _simm16(insn)
    if off is None:
        return None
    if off & 0x8000:
        off -= 0x10000
    return insn.addr + 4 + 4 * off


_OPERAND_RE = re.compile(r"(?:[^,(\[]|\([^)]*\)|\[[^\]]*\])+")


def split_operands(operands):
    """Top-level operands of an instruction's operand text, each its first token: modifiers such as
    offset:16 or glc are dropped; commas inside s[0:1] or hwreg(...) do not split."""
    parts = operands.split(",") if "(" not in operands and "[" not in operands else _OPERAND_RE.findall(operands)
    out = []
    for op in parts:
        tok = op.split(None, 1)
        out.append(tok[0] if tok else "")
    return out


def sgpr_units(operand):
    """The scalar registers (32-bit units) an operand names: s[4:7] -> s4..s7, exec -> lo and hi."""
    operand = operand.strip().lstrip("-!|").rstrip("|")
    m = _SGPR_RANGE_RE.match(operand)
    if m:
        return frozenset("%s%d" % (m.group(1), i) for i in range(int(m.group(2)), int(m.group(3)) + 1))
    m = _SGPR_RE.match(operand)
    if m:
        return frozenset((operand,))
    return frozenset(_SPECIAL.get(operand, ()))


def _is_compare(mnemonic):
    return mnemonic.startswith(("s_cmp", "s_bitcmp"))


def scalar_defs(insn):
    """Registers a scalar ALU or scalar memory instruction names as its destination (SCC aside).
    Only the explicit destination counts, as in LLVM's check: the EXEC that s_and_saveexec writes
    implicitly does not."""
    m = insn.mnemonic
    if not is_scalar(insn) or m.startswith(("s_waitcnt", "s_nop", "s_sleep", "s_barrier")):
        return frozenset()
    if is_branch(insn) or _is_compare(m) or m.startswith(("s_store", "s_buffer_store", "s_scratch_store",
                                                             "s_dcache", "s_icache", "s_sendmsg",
                                                             "s_setprio", "s_endpgm", "s_inst_prefetch",
                                                             "s_clause", "s_setreg", "s_set_gpr_idx_off",
                                                             "s_ttracedata", "s_denorm_mode",
                                                             "s_round_mode", "s_code_end", "s_trap",
                                                             "s_version", "s_wait", "s_icache_inv")):
        return frozenset()
    ops = split_operands(insn.operands)
    return sgpr_units(ops[0]) if ops else frozenset()


def scalar_reads_exec(insn):
    """Whether a non-VALU instruction reads EXEC (memory instructions read it implicitly)."""
    if is_memory(insn):
        return True
    m = insn.mnemonic
    if not is_scalar(insn):
        return False
    if m in ("s_cbranch_execz", "s_cbranch_execnz") or "saveexec" in m or "wrexec" in m:
        return True
    ops = split_operands(insn.operands)
    srcs = ops if (_is_compare(m) or m.startswith(("s_store", "s_buffer_store", "s_setreg"))) else ops[1:]
    return any(sgpr_units(o) & EXEC for o in srcs)


def is_cache_control(insn):
    """Cache invalidate/write-back instructions (buffer_gl0_inv, ...): no lanes, no registers."""
    return insn.mnemonic.startswith(("buffer_gl", "buffer_wb", "buffer_inv")) and not insn.operands


def memory_sgpr_reads(insn):
    """Scalar registers a vector memory, flat or LDS instruction reads, EXEC included (cache
    control instructions read none: LLVM pads no hazard after them, for gfx1010 either)."""
    if is_cache_control(insn):
        return frozenset()
    units = set(EXEC)
    for op in split_operands(insn.operands):
        units |= sgpr_units(op)
    if is_lds(insn) and insn.mnemonic.startswith(("ds_gws", "ds_append", "ds_consume", "ds_ordered")):
        units.add("m0")
    return frozenset(units)


_SDST_VALU_RE = re.compile(r"^v_(cmp_|cmp_class|readfirstlane|readlane|div_scale|mad_u64_u32|mad_i64_i32)"
                           r"|^v_(add|sub|subrev)_co_|^v_(add|sub|subrev)_co_ci_|^v_(addc|subb|subbrev)_")


def valu_writes_sgpr(insn):
    """Whether a VALU instruction has a scalar destination (a compare, a carry out, a lane read)."""
    return is_valu(insn) and not insn.mnemonic.startswith("v_cmpx") and bool(_SDST_VALU_RE.match(insn.mnemonic))


def is_vcmpx(insn):
    if not is_valu(insn):
        return False
    if insn.mnemonic.startswith("v_cmpx"):
        return True
    if not insn.operands.startswith("exec"):
        return False
    ops = split_operands(insn.operands)
    return bool(ops) and bool(sgpr_units(ops[0]) & EXEC)


def depctr_vm_vsrc_zero(insn):
    return insn.mnemonic == "s_waitcnt_depctr" and ((_simm16(insn) or 0) >> 2) & 0x7 == 0


def depctr_sa_sdst_zero(insn):
    return insn.mnemonic == "s_waitcnt_depctr" and (_simm16(insn) or 0) & 0x1 == 0


def vscnt_null_zero(insn):
    if insn.mnemonic != "s_waitcnt_vscnt":
        return False
    ops = split_operands(insn.operands)
    return bool(ops) and ops[0] == "null" and (_simm16(insn) == 0)


# ----------------------------------------------------------------------------------------------
# Rules

_GFX103_ONLY = [
    (re.compile(r"^v_dot\d"), "dot instruction"),
    (re.compile(r"^v_fmac?_legacy_f32"), "GFX10.3 legacy FMA (decodes as v_ma[dc]_legacy_f32 on gfx1010)"),
    (re.compile(r"csub"), "csub atomic"),
    (re.compile(r"^global_(load|store)_dword_addtid"), "global addtid"),
    (re.compile(r"^image_bvh"), "ray-tracing (bvh)"),
    (re.compile(r"^image_msaa_load"), "image_msaa_load"),
]


def _gfx103_only(insn):
    if insn.mnemonic == "<unknown>":
        return "an encoding llvm-objdump cannot decode for this arch"
    for rx, what in _GFX103_ONLY:
        if rx.search(insn.mnemonic):
            return what
    if "SHADER_CYCLES" in insn.operands.upper():
        return "reads the SHADER_CYCLES register"
    if insn.mnemonic.startswith("scratch_"):
        ops = split_operands(insn.operands)
        store = insn.mnemonic.startswith("scratch_store")
        vaddr = ops[0] if store else (ops[1] if len(ops) > 1 else "")
        saddr = ops[2] if len(ops) > 2 else ""
        if vaddr == "off" and saddr == "off":
            return "scratch ST mode (no address registers)"
    return None


class _Flow:
    """Backward control flow of one kernel: for each instruction, the ones that may run just before."""

    def __init__(self, kernel):
        self.insns = kernel.instructions
        index = {insn.addr: i for i, insn in enumerate(self.insns)}
        self.preds = [[] for _ in self.insns]
        for i, insn in enumerate(self.insns):
            if i + 1 < len(self.insns) and not _ends_flow(insn):
                self.preds[i + 1].append(i)
            if is_branch(insn):
                t = index.get(branch_target(insn))
                if t is not None:
                    self.preds[t].append(i)

    def search(self, start, is_hazard, is_expired):
        """Index of an instruction before `start` (on some backward path) for which is_hazard(i)
        holds before is_expired(i) does, else None. Hazard is tested first, as LLVM does."""
        preds = self.preds
        stack = list(preds[start])
        seen = set()
        steps = 0
        while stack and steps < SEARCH_LIMIT:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            steps += 1
            if is_hazard(i):
                return i
            if not is_expired(i):
                stack.extend(preds[i])
        return None


def _hazards(kernel):
    """(rule, instruction, detail) for every hazard site of the three gfx10.1 hazards."""
    insns = kernel.instructions
    flow = _Flow(kernel)
    n = len(insns)
    # Per-instruction classes, computed once.
    valu = [is_valu(x) for x in insns]
    kind = [1 if is_lds(x) else (2 if is_vmem(x) else 0) for x in insns]
    memory = [is_memory(x) for x in insns]
    mem_reads = [memory_sgpr_reads(x) if memory[i] else frozenset() for i, x in enumerate(insns)]
    branch = [is_branch(x) for x in insns]
    vscnt0 = [vscnt_null_zero(x) for x in insns]
    vm_vsrc_clear = [valu[i] or (x.mnemonic == "s_waitcnt" and _simm16(x) == 0) or depctr_vm_vsrc_zero(x)
                     for i, x in enumerate(insns)]
    sa_sdst_clear = [valu_writes_sgpr(x) or depctr_sa_sdst_zero(x) for x in insns]
    reads_exec = [not valu[i] and scalar_reads_exec(x) for i, x in enumerate(insns)]
    out = []
    branch_memo = {}

    def branch_hazard(j, k):
        """From branch j back: an instruction of the other kind before one of kind k or a vscnt wait."""
        key = (j, k)
        if key not in branch_memo:
            branch_memo[key] = flow.search(j, lambda y: kind[y] not in (0, k),
                                           lambda y: kind[y] == k or vscnt0[y]) is not None
        return branch_memo[key]

    for i in range(n):
        insn = insns[i]
        # vmem-to-scalar-write
        if insn.mnemonic.startswith("s_"):
            defs = scalar_defs(insn)
            if defs:
                hit = flow.search(i, lambda j: memory[j] and not mem_reads[j].isdisjoint(defs),
                                  vm_vsrc_clear.__getitem__)
                if hit is not None:
                    out.append(("vmem-to-scalar-write", insn, "writes %s read by %s at +0x%x" % (
                        ",".join(sorted(defs)), insns[hit].mnemonic, insns[hit].addr - kernel.addr)))
        # vcmpx-exec-war
        elif valu[i] and is_vcmpx(insn):
            hit = flow.search(i, reads_exec.__getitem__, sa_sdst_clear.__getitem__)
            if hit is not None:
                out.append(("vcmpx-exec-war", insn, "EXEC read by %s at +0x%x" % (
                    insns[hit].mnemonic, insns[hit].addr - kernel.addr)))
        # lds-branch-vmem-war
        k = kind[i]
        if k:
            hit = flow.search(i, lambda j, k=k: branch[j] and branch_hazard(j, k),
                              lambda j: kind[j] != 0 or vscnt0[j])
            if hit is not None:
                out.append(("lds-branch-vmem-war", insn, "after branch %s at +0x%x" % (
                    insns[hit].mnemonic, insns[hit].addr - kernel.addr)))
    return out


def audit_kernel(kernel):
    """(rule, instruction, detail) for everything unsafe on gfx1010 in one gfx1030 kernel."""
    out = []
    for insn in kernel.instructions:
        what = _gfx103_only(insn)
        if what:
            out.append(("gfx10_3-only", insn, what))
        if insn.mnemonic == "s_inst_prefetch":
            out.append(("inst-prefetch", insn, "hangs gfx10.1"))
        if is_branch(insn) and _simm16(insn) == 0x3F:
            out.append(("offset-3f", insn, "branch offset 0x3f"))
    out.extend(_hazards(kernel))
    out.sort(key=lambda f: (f[1].addr, f[0]))
    return out


def audit_disassembly(text, source="<text>", where="", arch=AUDITED_ARCH):
    """Findings in the llvm-objdump output of one code object."""
    findings = []
    for kernel in parse_disassembly(text):
        for rule, insn, detail in audit_kernel(kernel):
            findings.append(Finding(source, where, arch, kernel.name, insn.addr - kernel.addr, rule,
                                    (insn.mnemonic + " " + insn.operands).strip(), detail))
    return findings


STAT_CLASSES = (
    ("s_waitcnt_depctr", lambda m: m == "s_waitcnt_depctr"),
    ("s_waitcnt_vscnt", lambda m: m == "s_waitcnt_vscnt"),
    ("s_nop", lambda m: m == "s_nop"),
    ("s_inst_prefetch", lambda m: m == "s_inst_prefetch"),
    ("v_dot*", lambda m: m.startswith("v_dot")),
    ("v_cmpx*", lambda m: m.startswith("v_cmpx")),
    ("v_fma(c)_legacy_f32", lambda m: bool(re.match(r"v_fmac?_legacy_f32", m))),
    ("v_ma(c|d)_f32", lambda m: bool(re.match(r"v_ma[cd]_f32", m))),
)


def instruction_stats(text):
    """Counter of instructions in a disassembly: 'total' and the classes of STAT_CLASSES."""
    c = Counter()
    for k in parse_disassembly(text):
        for insn in k.instructions:
            c["total"] += 1
            for name, test in STAT_CLASSES:
                if test(insn.mnemonic):
                    c[name] += 1
    return c


def audit_files(paths, objdump=None, stats=None):
    """(objects, findings) for the given files; objects is a list of (source, where, arch, kernels).
    With a dict `stats`, also counts instructions per arch into stats[arch] (all archs disassembled)."""
    tool = find_objdump(objdump)
    objects, findings = [], []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise AuditError("cannot read %s: %s" % (path, e))
        for obj in find_code_objects(data, path):
            if obj.arch != AUDITED_ARCH and stats is None:
                objects.append((obj.source, obj.where, obj.arch, None))
                continue
            if tool is None:
                raise AuditError("llvm-objdump not found (install llvm, or pass --objdump)")
            text = disassemble(obj, tool)
            if stats is not None:
                stats.setdefault(obj.arch, Counter()).update(instruction_stats(text))
            if obj.arch != AUDITED_ARCH:
                objects.append((obj.source, obj.where, obj.arch, None))
                continue
            objects.append((obj.source, obj.where, obj.arch, len(parse_disassembly(text))))
            findings.extend(audit_disassembly(text, obj.source, obj.where, obj.arch))
    return objects, findings


def summarize(findings):
    return Counter(f.rule for f in findings)


def audit_summary(paths, objdump=None, max_findings=5):
    """A dict for reports (the doctor): whether the audit ran, why not, what it found.
    {"ran", "reason", "objdump", "gfx1030_objects", "other_objects", "counts", "findings"}."""
    out = {"ran": False, "reason": None, "objdump": None, "gfx1030_objects": 0, "other_objects": [],
           "counts": {}, "findings": []}
    try:
        tool = find_objdump(objdump)
    except AuditError as e:
        out["reason"] = str(e)
        return out
    if tool is None:
        out["reason"] = "llvm-objdump not found"
        return out
    out["objdump"] = tool
    try:
        objects, findings = audit_files(paths, tool)
    except AuditError as e:
        out["reason"] = str(e)
        return out
    out["ran"] = True
    out["gfx1030_objects"] = sum(1 for o in objects if o[3] is not None)
    out["other_objects"] = sorted({o[2] for o in objects if o[3] is None})
    counts = summarize(findings)
    out["counts"] = {r: counts.get(r, 0) for r in RULES}
    out["findings"] = ["{} +0x{:x}: {}: {}".format(f.kernel, f.offset, f.rule, f.text) for f in findings[:max_findings]]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m gemmconv.diagnosis.isa_audit",
                                 description="Check the gfx1030 code objects in built files for code unsafe on gfx1010.")
    ap.add_argument("files", nargs="+", metavar="FILE", help=".so, .o or code object files")
    ap.add_argument("--objdump", help="llvm-objdump to use (default: $LLVM_OBJDUMP, else the newest found)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every finding (default: up to 20)")
    ap.add_argument("--stats", action="store_true",
                    help="also count instructions per arch (waits, dot, legacy FMA) in every object")
    ap.add_argument("--allow-empty", action="store_true",
                    help="no error when the files hold no gfx1030 code object")
    args = ap.parse_args(argv)
    try:
        stats = {} if args.stats else None
        objects, findings = audit_files(args.files, args.objdump, stats)
    except AuditError as e:
        print("isa_audit: error: %s" % e, file=sys.stderr)
        return 2
    audited = [o for o in objects if o[3] is not None]
    counts = summarize(findings)
    if args.json:
        print(json.dumps({
            "objects": [{"file": s, "where": w, "arch": a, "audited": k is not None, "kernels": k}
                        for s, w, a, k in objects],
            "counts": {r: counts.get(r, 0) for r in RULES},
            "findings": [f._asdict() for f in findings],
            "stats": {a: dict(c) for a, c in (stats or {}).items()},
        }, indent=2))
    else:
        for s, w, a, k in objects:
            print("%s: %s %s: %s" % (s, w, a, "%d kernels audited" % k if k is not None else "not audited (native %s)" % a))
        shown = findings if args.verbose else findings[:20]
        for f in shown:
            print("%s: %s %s kernel %s +0x%x: %s: %s (%s)" % (f.source, f.where, f.arch, f.kernel, f.offset,
                                                           f.rule, f.text, f.detail))
        if len(shown) < len(findings):
            print("... %d more (--verbose prints all)" % (len(findings) - len(shown)))
        for arch in sorted(stats or {}):
            c = stats[arch]
            print("isa_audit: %s instructions: total %d; %s" % (
                arch, c["total"], ", ".join("%s %d" % (n, c[n]) for n, _ in STAT_CLASSES)))
        print("isa_audit: %d gfx1030 code object(s), %d finding(s): %s" % (
            len(audited), len(findings), ", ".join("%s %d" % (r, counts.get(r, 0)) for r in RULES)))
    if not audited and not args.allow_empty:
        print("isa_audit: error: no gfx1030 code object found in %s" % " ".join(args.files), file=sys.stderr)
        return 2
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
