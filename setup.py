"""Builds gemmconv._C, the engine plus its PyTorch binding, against the installed torch (CPU, CUDA or ROCm)."""

import glob
import os
import re
import shlex
import sys

from setuptools import setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError as exc:
    sys.exit("gemmconv: cannot build: torch is not importable by {} ({}). Install the torch you will run "
             "(CPU, CUDA or ROCm build) into this environment first, then build against it with "
             "`pip install wheel ninja && pip install --no-build-isolation .` (see docs/card-guide.md).".format(
                 sys.executable, exc))

ROOT = os.path.dirname(os.path.abspath(__file__))
ROCM_DEFAULT_ARCHS = "gfx1010;gfx1030"


def read_version():
    """The version, from python/gemmconv/_version.py (the one place it is written; CMake reads it too)."""
    with open(os.path.join(ROOT, "python", "gemmconv", "_version.py")) as f:
        m = re.search(r'^__version__ = "(\d+\.\d+\.\d+)"$', f.read(), re.M)
    if not m:
        raise SystemExit("gemmconv: python/gemmconv/_version.py has no line __version__ = \"X.Y.Z\"")
    return m.group(1)


VERSION = read_version()


def source_groups():
    """{group: [pattern]} from cmake/sources.txt, the source list CMakeLists.txt reads too."""
    groups = {}
    with open(os.path.join(ROOT, "cmake", "sources.txt")) as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if len(parts) == 2:
                groups.setdefault(parts[0], []).append(parts[1])
    return groups


def sources(*names):
    groups = source_groups()
    out = []
    for name in names:
        if name not in groups:
            raise SystemExit("gemmconv: cmake/sources.txt has no group %r" % name)
        for pattern in groups[name]:
            out += sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    return out


def cpu_sources():
    # The engine without a CPU BLAS (GEMMCONV_NO_OPENBLAS: host GEMMs go through ATen), plus the binding.
    return sources("engine", "torch")


def gpu_sources():
    # The engine's own GPU GEMM provider (group gpu_blas) is left out: in the binding every GEMM goes
    # through PyTorch.
    return sources("engine_gpu")


def headers():
    return sources("headers")


def torch_version():
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def gpu_kind():
    """'rocm', 'cuda' or None, from the torch build and the toolkits present."""
    if os.environ.get("GEMMCONV_NO_GPU", "") not in ("", "0"):
        return None
    hip = getattr(torch.version, "hip", None)
    if hip:
        # A ROCm torch without ROCm's compiler must not quietly give a CPU-only extension: on the
        # card that would send every convolution back to MIOpen.
        hipcc = hipcc_path()
        if not hipcc:
            raise SystemExit(
                "gemmconv: this torch (%s) is a ROCm build (HIP %s), but ROCm's HIP compiler was not "
                "found (ROCM_HOME=%s, no executable bin/hipcc there). Install ROCm's hipcc (the same "
                "major.minor as torch's HIP, ideally) and set ROCM_HOME if it is not in /opt/rocm, or "
                "set GEMMCONV_NO_GPU=1 to build the CPU-only extension on purpose."
                % (torch.__version__, hip, cpp_extension.ROCM_HOME))
        return "rocm"
    if torch.version.cuda and cpp_extension.CUDA_HOME:
        return "cuda"
    return None


def hipcc_path():
    """ROCm's hipcc, where torch's build would take it from (ROCM_HOME/bin/hipcc), or None."""
    home = cpp_extension.ROCM_HOME
    path = os.path.join(home, "bin", "hipcc") if home else None
    return path if path and os.access(path, os.X_OK) else None


def gfx1030_safe(archs):
    """Whether the gfx1030 objects get gfx1010's workarounds (GEMMCONV_GFX1030_SAFE, default on)."""
    return "gfx1030" in archs and os.environ.get("GEMMCONV_GFX1030_SAFE", "1") not in ("0", "", "off", "OFF")


def safe_hipcc_wrapper(build_temp):
    """A hipcc that gives the gfx1030 device compile the features of cmake/gfx1030_safe_features.txt
    (through cmake/hip_arch_features.py, as the CMake build does); everything else is unchanged."""
    os.makedirs(build_temp, exist_ok=True)
    path = os.path.join(build_temp, "hipcc-gfx1030-safe")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s %s --arch gfx1030 --features %s -- %s \"$@\"\n" % (
            shlex.quote(sys.executable), shlex.quote(os.path.join(ROOT, "cmake", "hip_arch_features.py")),
            shlex.quote(os.path.join(ROOT, "cmake", "gfx1030_safe_features.txt")), shlex.quote(hipcc_path())))
    os.chmod(path, 0o755)
    return path


def cuda_arch_flags():
    """The -gencode flags torch would pick (TORCH_CUDA_ARCH_LIST, else the visible GPUs)."""
    return cpp_extension._get_cuda_arch_flags()


def cuda_archs(flags):
    archs = []
    for f in flags:
        for code in re.findall(r",code=(\[[^\]]*\]|\w+)", f):
            for c in code.strip("[]").split(","):
                if c and c not in archs:
                    archs.append(c)
    return archs or ["cuda"]


def include_paths(device):
    try:
        return cpp_extension.include_paths(device_type=device)
    except TypeError:
        return cpp_extension.include_paths(cuda=(device != "cpu"))


def library_paths(device):
    try:
        return cpp_extension.library_paths(device_type=device)
    except TypeError:
        return cpp_extension.library_paths(cuda=(device != "cpu"))


def extension():
    major, minor = torch_version()
    kind = gpu_kind()
    sources = cpu_sources()
    cxx = ["-std=c++17", "-O3", "-g0", "-Wall", "-Wextra"]
    nvcc = ["-std=c++17", "-O3"]
    # Newer torch no longer passes its C++ ABI to extensions; a compiler whose default differs would
    # then pass std::string to libtorch in another layout, so it is stated explicitly.
    abi = getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None)
    if abi is not None:
        cxx.append("-D_GLIBCXX_USE_CXX11_ABI=%d" % int(abi))
        nvcc.append("-D_GLIBCXX_USE_CXX11_ABI=%d" % int(abi))
    macros = [
        ("GEMMCONV_NO_OPENBLAS", "1"),
        ("GEMMCONV_VERSION", '"%s"' % VERSION),
        ("GEMMCONV_TORCH_VERSION_MAJOR", str(major)),
        ("GEMMCONV_TORCH_VERSION_MINOR", str(minor)),
    ]
    include_dirs = [os.path.join(ROOT, "include"), os.path.join(ROOT, "src"), os.path.join(ROOT, "csrc", "torch")]
    # torch's headers are not warning-clean under -Wextra; as system headers they stay quiet.
    for d in include_paths("cuda" if kind else "cpu"):
        cxx += ["-isystem", d]

    if kind is None:
        archs = ["cpu"]
        ext_cls = cpp_extension.CppExtension
        kwargs = {}
    elif kind == "cuda":
        flags = cuda_arch_flags()
        archs = cuda_archs(flags)
        sources += gpu_sources()
        macros.append(("GEMMCONV_WITH_GPU", "1"))
        # torch adds the __CUDA_NO_HALF*__ macros to every nvcc call; the kernels use the
        # half operators, as in the CMake build.
        nvcc += flags + [
            "--expt-relaxed-constexpr",
            "-U__CUDA_NO_HALF_OPERATORS__",
            "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_HALF2_OPERATORS__",
        ]
        ext_cls = cpp_extension.CUDAExtension
        kwargs = {}
    else:
        # ROCm: the .cu files are single-source through src/gpu/compat.h, so they go to hipcc as
        # they are. CUDAExtension would hipify them into new files inside the tree; a plain
        # extension with the HIP libraries avoids that (BuildExtension still sends .cu to hipcc).
        os.environ.setdefault("PYTORCH_ROCM_ARCH", ROCM_DEFAULT_ARCHS)
        archs = [a for a in re.split(r"[;, ]+", os.environ["PYTORCH_ROCM_ARCH"]) if a]
        sources += gpu_sources()
        macros += [("GEMMCONV_WITH_GPU", "1"), ("GEMMCONV_HIP", "1")]
        nvcc += ["-U__HIP_NO_HALF_OPERATORS__", "-U__HIP_NO_HALF_CONVERSIONS__"]
        ext_cls = None
        kwargs = {
            "include_dirs": include_paths("cuda"),
            "library_dirs": library_paths("cuda"),
            "libraries": ["c10", "torch", "torch_cpu", "torch_python", "amdhip64", "c10_hip", "torch_hip"],
        }
    macros.append(("GEMMCONV_BUILT_ARCHS", '"%s"' % ";".join(archs)))
    macros.append(("GEMMCONV_GFX1030_SAFE", "1" if kind == "rocm" and gfx1030_safe(archs) else "0"))

    # Some toolchains (a g++ whose own library folder holds only libstdc++.a) would link parts of
    # libstdc++ statically; a private copy of its iostreams next to libtorch's shared one crashes
    # the first std::ostringstream. Naming the shared library keeps one copy in the process.
    link = ["-l:libstdc++.so.6"] if sys.platform.startswith("linux") else []

    args = dict(
        name="gemmconv._C",
        extra_link_args=link,
        sources=sources,
        include_dirs=include_dirs,
        define_macros=macros,
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        depends=headers(),
    )
    if ext_cls is not None:
        return ext_cls(**args)
    from setuptools import Extension

    args["include_dirs"] = include_dirs + kwargs["include_dirs"]
    args["library_dirs"] = kwargs["library_dirs"]
    args["libraries"] = kwargs["libraries"]
    args["language"] = "c++"
    return Extension(**args)


# ---------------------------------------------------------------------------------------------------------
# gemmconv-driver, shipped inside the package (gemmconv/bin/gemmconv-driver, run by the `gemmconv-driver`
# console script, gemmconv/_driver.py). It is the engine without PyTorch: built with the plain C++ compiler
# from the same sources (cmake/sources.txt: engine, plus tools/driver and tools/harness), for the CPU only.
# Its GEMM provider is a CBLAS (OpenBLAS, else the reference cblas) when cblas.h and the library link; without
# one it is built with GEMMCONV_NO_OPENBLAS and runs only the direct solvers, which its --version and --help
# say. A driver that cannot be built never fails the install: a warning says so and the console script
# explains how to get one. GEMMCONV_NO_DRIVER=1 skips it; GEMMCONV_DRIVER_NO_BLAS=1 builds it without a CBLAS
# on purpose. With ninja (a build requirement) the objects are
# kept under build_temp/driver and only what changed is recompiled.

DRIVER_SOURCES = ["tools/driver/main.cpp", "tools/driver/cli.cpp", "tools/driver/fuzz.cpp",
                  "tools/harness/tester.cpp"]


def _cxx():
    return shlex.split(os.environ.get("CXX", "c++"))


def find_cblas(work):
    """The libraries (["openblas"], ["cblas"] or ["blas"]) whose cblas_sgemm links with cblas.h, or None."""
    import subprocess

    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "cblas_check.cpp")
    with open(src, "w") as f:
        f.write("#include <cblas.h>\nint main() { float a = 0; cblas_sgemm(CblasRowMajor, CblasNoTrans, "
                "CblasNoTrans, 1, 1, 1, 1.f, &a, 1, &a, 1, 0.f, &a, 1); return 0; }\n")
    for libs in (["openblas"], ["cblas"], ["blas"]):
        cmd = _cxx() + [src, "-o", os.path.join(work, "cblas_check")] + ["-l" + l for l in libs]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return libs
    return None


def build_driver(dest_dir, work):
    """Builds dest_dir/gemmconv-driver; returns a one-line description of its GEMM provider. Raises on failure."""
    import shutil
    import subprocess

    blas = None if os.environ.get("GEMMCONV_DRIVER_NO_BLAS", "") not in ("", "0") else find_cblas(work)
    cflags = ["-std=c++17", "-O2", "-g0", "-pthread", "-DGEMMCONV_VERSION=\"%s\"" % VERSION]
    if blas is None:
        cflags.append("-DGEMMCONV_NO_OPENBLAS")
    cflags += ["-I" + os.path.join(ROOT, d) for d in ("include", "src", "tools/driver", "tools/harness")]
    ldflags = ["-pthread"] + ["-l" + l for l in (blas or [])]
    srcs = [os.path.join(ROOT, p) for p in sources("engine") + DRIVER_SOURCES]
    objdir = os.path.join(work, "obj")
    os.makedirs(objdir, exist_ok=True)
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.join(os.path.abspath(dest_dir), "gemmconv-driver")
    objs = [os.path.join(objdir, os.path.relpath(p, ROOT).replace(os.sep, "_") + ".o") for p in srcs]
    ninja = shutil.which("ninja")
    if ninja:
        q = lambda xs: " ".join(shlex.quote(x).replace("$", "$$") for x in xs)  # noqa: E731
        esc = lambda p: p.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")  # noqa: E731
        lines = ["rule cxx", "  command = %s -MMD -MF $out.d %s -c $in -o $out" % (q(_cxx()), q(cflags)),
                 "  depfile = $out.d", "  deps = gcc", "rule link", "  command = %s $in -o $out %s" % (
                     q(_cxx()), q(ldflags))]
        lines += ["build %s: cxx %s" % (esc(o), esc(s)) for o, s in zip(objs, srcs)]
        lines.append("build %s: link %s" % (esc(target), " ".join(esc(o) for o in objs)))
        with open(os.path.join(work, "build.ninja"), "w") as f:
            f.write("\n".join(lines) + "\n")
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        subprocess.run([ninja, "-C", work, "-j", jobs], check=True)
    else:
        for o, s in zip(objs, srcs):
            subprocess.run(_cxx() + cflags + ["-c", s, "-o", o], check=True)
        subprocess.run(_cxx() + objs + ["-o", target] + ldflags, check=True)
    if blas:
        return "CPU GEMMs through cblas (-l%s)" % " -l".join(blas)
    return "no CBLAS found (cblas.h and libopenblas): CPU only, direct solvers only"


class BuildExtension(cpp_extension.BuildExtension):
    """torch's builder (ninja, MAX_JOBS), reporting what it targets; on ROCm it sends the .cu files
    through the gfx1010-safe hipcc wrapper when the gfx1030 slot is built safe."""

    def run(self):
        super().run()
        if os.environ.get("GEMMCONV_NO_DRIVER", "") not in ("", "0"):
            print("gemmconv: GEMMCONV_NO_DRIVER is set: gemmconv-driver not built", file=sys.stderr)
            return
        dest = os.path.join(os.path.dirname(os.path.abspath(self.get_ext_fullpath("gemmconv._C"))), "bin")
        try:
            what = build_driver(dest, os.path.join(os.path.abspath(self.build_temp), "driver"))
            print("gemmconv: built gemmconv-driver (%s) into %s" % (what, dest), file=sys.stderr)
        except Exception as exc:  # the extension is what matters; the driver is a tool beside it
            print("gemmconv: WARNING: gemmconv-driver could not be built (%s); the extension is installed "
                  "without it and the `gemmconv-driver` command will say how to build one "
                  "(cmake -S . -B build && cmake --build build --target gemmconv-driver)" % exc, file=sys.stderr)

    def build_extensions(self):
        wrapper = None
        for ext in self.extensions:
            macros = dict(ext.define_macros)
            archs = macros.get("GEMMCONV_BUILT_ARCHS", '"?"').strip('"')
            safe = macros.get("GEMMCONV_GFX1030_SAFE") == "1"
            note = ""
            if "GEMMCONV_HIP" in macros and "gfx1030" in archs.split(";"):
                note = " (gfx1030 objects %s)" % ("gfx1010-safe" if safe else
                                                   "plain: not safe under HSA_OVERRIDE_GFX_VERSION=10.3.0 on RDNA1")
            print("gemmconv: building %s for %s%s with torch %s" % (ext.name, archs, note, torch.__version__),
                  file=sys.stderr)
            if safe:
                wrapper = safe_hipcc_wrapper(self.build_temp)
        if wrapper is None:
            return super().build_extensions()
        # torch's builder takes hipcc from ROCM_HOME/bin; for this build it takes the wrapper.
        original = getattr(cpp_extension, "_join_rocm_home", None)
        if original is None:
            raise SystemExit("gemmconv: this torch's cpp_extension has no _join_rocm_home, so the gfx1030 "
                             "objects cannot be built gfx1010-safe; set GEMMCONV_GFX1030_SAFE=0 to build "
                             "them plain (unsafe on RDNA1 under HSA_OVERRIDE_GFX_VERSION=10.3.0)")

        def join_rocm_home(*paths):
            return wrapper if paths == ("bin", "hipcc") else original(*paths)

        cpp_extension._join_rocm_home = join_rocm_home
        try:
            super().build_extensions()
        finally:
            cpp_extension._join_rocm_home = original


if __name__ == "__main__":  # also under pip: setuptools runs this file as __main__
    setup(
        ext_modules=[extension()],
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    )
