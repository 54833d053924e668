"""Builds gemmconv._C, the engine plus its PyTorch binding, against the installed torch (CPU, CUDA or ROCm)."""

import glob
import os
import re
import sys

from setuptools import setup

import torch
from torch.utils import cpp_extension

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
    if getattr(torch.version, "hip", None):
        return "rocm" if cpp_extension.ROCM_HOME else None
    if torch.version.cuda and cpp_extension.CUDA_HOME:
        return "cuda"
    return None


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


class BuildExtension(cpp_extension.BuildExtension):
    """torch's builder (ninja, MAX_JOBS), reporting what it targets."""

    def build_extensions(self):
        for ext in self.extensions:
            archs = [v for k, v in ext.define_macros if k == "GEMMCONV_BUILT_ARCHS"]
            print("gemmconv: building %s for %s with torch %s" % (ext.name, archs[0] if archs else "?", torch.__version__),
                  file=sys.stderr)
        super().build_extensions()


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
