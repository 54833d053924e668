#!/usr/bin/env python3
"""Compiler launcher: runs a clang/hipcc HIP compile with extra target features for one device arch.

    hip_arch_features.py [--arch gfx1030] [--features FILE] -- COMPILER ARGS...

clang offers no driver flag that passes target features to one offload arch only (-Xarch_gfx1030
cannot forward -Xclang), and -Xclang alone would reach the host and every arch. So the launcher
asks the driver for its plan (`COMPILER ARGS... -###`), adds `-target-feature F` for each feature
of FILE to the device compile (`clang -cc1 -triple amdgcn-amd-amdhsa -target-cpu ARCH`) of that
arch only, and runs the planned commands in order. Host compile, other archs, device link and
bundling run exactly as planned. A command line that is not a HIP compile for ARCH (a link, a
CUDA or C++ compile) runs unchanged.

It fails loudly when the compiler does not know a feature (other than those marked if-known in
FILE), so a list that does not fit a toolchain cannot pass silently. Standard library only.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FEATURES = os.path.join(HERE, "gfx1030_safe_features.txt")
UNKNOWN = "is not a recognized feature for this target"


def read_features(path):
    """[(feature, required)] from a features file: `+name` or `-name`, optionally `if-known`."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            feat = line[0]
            if feat[0] not in "+-" or len(line) > 2 or (len(line) == 2 and line[1] != "if-known"):
                raise SystemExit("hip_arch_features: bad line in %s: %s" % (path, " ".join(line)))
            out.append((feat, len(line) == 1))
    return out


def plan(cmd, tmpdir):
    """The commands the driver would run for `cmd`, as argument lists."""
    env = dict(os.environ, TMPDIR=tmpdir, TMP=tmpdir, TEMP=tmpdir)
    res = subprocess.run(cmd + ["-###"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         universal_newlines=True, check=False)
    if res.returncode != 0:
        # Let the real compile report the error in its own words.
        return None
    cmds = []
    for line in (res.stderr + res.stdout).splitlines():
        if line.startswith(' "'):
            cmds.append(shlex.split(line))
    return cmds


def device_compile_for(args, arch):
    if "-cc1" not in args or "-fcuda-is-device" not in args:
        return False
    try:
        triple = args[args.index("-triple") + 1]
        cpu = args[args.index("-target-cpu") + 1]
    except (ValueError, IndexError):
        return False
    return triple.startswith("amdgcn") and cpu.split(":")[0] == arch


def main(argv):
    arch, features_file = "gfx1030", DEFAULT_FEATURES
    if "--" not in argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, cmd = argv[:split], argv[split + 1:]
    i = 0
    while i < len(opts):
        if opts[i] == "--arch" and i + 1 < len(opts):
            arch = opts[i + 1]
            i += 2
        elif opts[i] == "--features" and i + 1 < len(opts):
            features_file = opts[i + 1]
            i += 2
        else:
            print("hip_arch_features: unknown option %s" % opts[i], file=sys.stderr)
            return 2
    if not cmd:
        print("hip_arch_features: no compiler command after --", file=sys.stderr)
        return 2
    features = read_features(features_file)
    targets_arch = any(arch in a for a in cmd if a.startswith(("--offload-arch", "--amdgpu-target",
                                                                 "--cuda-gpu-arch")))
    if not targets_arch or "-c" not in cmd or "-###" in cmd or "-E" in cmd:
        os.execvp(cmd[0], cmd)
    tmpdir = tempfile.mkdtemp(prefix="gemmconv-hipcc-")
    try:
        cmds = plan(cmd, tmpdir)
        if cmds is None:
            return subprocess.call(cmd)
        patched = 0
        for c in cmds:
            if device_compile_for(c, arch):
                extra = []
                for feat, _ in features:
                    extra += ["-target-feature", feat]
                at = c.index("-target-cpu") + 2
                c[at:at] = extra
                patched += 1
        if patched == 0:
            print("hip_arch_features: the driver planned no %s device compile for: %s"
                  % (arch, " ".join(shlex.quote(a) for a in cmd)), file=sys.stderr)
            return 1
        optional = {f for f, required in features if not required}
        for c in cmds:
            res = subprocess.run(c, stderr=subprocess.PIPE, universal_newlines=True, check=False)
            unknown = []
            for line in res.stderr.splitlines(True):
                if UNKNOWN in line:
                    feat = line.split("'")[1] if line.count("'") >= 2 else line.strip()
                    if feat not in optional:
                        unknown.append(feat)
                    continue
                sys.stderr.write(line)
            if res.returncode != 0:
                return res.returncode
            if unknown:
                print("hip_arch_features: %s does not know the target feature(s) %s listed in %s"
                      % (c[0], ", ".join(sorted(set(unknown))), features_file), file=sys.stderr)
                return 1
        return 0
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
