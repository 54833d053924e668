"""setup.py's ROCm decisions, with torch.version.hip faked (no ROCm torch can be installed here)."""

import importlib.util
import os
import stat

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def setup_mod(monkeypatch):
    spec = importlib.util.spec_from_file_location("gemmconv_setup_under_test", os.path.join(ROOT, "setup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # not __main__: setup() does not run
    monkeypatch.delenv("GEMMCONV_NO_GPU", raising=False)
    monkeypatch.delenv("GEMMCONV_GFX1030_SAFE", raising=False)
    monkeypatch.setattr(mod.torch.version, "hip", "6.4.43484", raising=False)
    return mod


def fake_rocm(tmp_path):
    hipcc = tmp_path / "bin" / "hipcc"
    hipcc.parent.mkdir(parents=True)
    hipcc.write_text("#!/bin/sh\nexit 0\n")
    hipcc.chmod(hipcc.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path)


def test_rocm_torch_without_hipcc_fails_loudly(setup_mod, monkeypatch, tmp_path):
    monkeypatch.setattr(setup_mod.cpp_extension, "ROCM_HOME", None)
    with pytest.raises(SystemExit) as e:
        setup_mod.gpu_kind()
    assert "ROCm build (HIP 6.4.43484)" in str(e.value) and "GEMMCONV_NO_GPU=1" in str(e.value)
    # a ROCM_HOME without an executable hipcc is no better
    monkeypatch.setattr(setup_mod.cpp_extension, "ROCM_HOME", str(tmp_path))
    with pytest.raises(SystemExit):
        setup_mod.gpu_kind()
    # asked for on purpose, the CPU-only build is allowed
    monkeypatch.setenv("GEMMCONV_NO_GPU", "1")
    assert setup_mod.gpu_kind() is None


def test_rocm_build_defines_archs_hip_and_the_safe_gfx1030_slot(setup_mod, monkeypatch, tmp_path):
    monkeypatch.setattr(setup_mod.cpp_extension, "ROCM_HOME", fake_rocm(tmp_path))
    monkeypatch.setenv("PYTORCH_ROCM_ARCH", "gfx1010;gfx1030")
    assert setup_mod.gpu_kind() == "rocm"
    ext = setup_mod.extension()
    macros = dict(ext.define_macros)
    assert macros["GEMMCONV_HIP"] == "1" and macros["GEMMCONV_WITH_GPU"] == "1"
    assert macros["GEMMCONV_BUILT_ARCHS"] == '"gfx1010;gfx1030"'
    assert macros["GEMMCONV_GFX1030_SAFE"] == "1"
    assert "GEMMCONV_ROCM" not in macros
    assert sorted(s for s in ext.sources if s.endswith(".cu")) == sorted(setup_mod.sources("engine_gpu"))
    monkeypatch.setenv("GEMMCONV_GFX1030_SAFE", "0")
    assert dict(setup_mod.extension().define_macros)["GEMMCONV_GFX1030_SAFE"] == "0"
    monkeypatch.setenv("PYTORCH_ROCM_ARCH", "gfx1010")
    monkeypatch.delenv("GEMMCONV_GFX1030_SAFE")
    assert dict(setup_mod.extension().define_macros)["GEMMCONV_GFX1030_SAFE"] == "0"


def test_safe_wrapper_runs_the_launcher_in_front_of_hipcc(setup_mod, monkeypatch, tmp_path):
    monkeypatch.setattr(setup_mod.cpp_extension, "ROCM_HOME", fake_rocm(tmp_path / "rocm"))
    path = setup_mod.safe_hipcc_wrapper(str(tmp_path / "build"))
    text = open(path).read()
    assert os.access(path, os.X_OK)
    assert "hip_arch_features.py --arch gfx1030 --features" in text and text.rstrip().endswith('"$@"')
    assert os.path.join("rocm", "bin", "hipcc") in text


def test_version_and_sources_come_from_the_shared_files(setup_mod):
    import re

    version = re.search(r'__version__ = "(.*)"', open(os.path.join(ROOT, "python", "gemmconv", "_version.py")).read())
    assert setup_mod.VERSION == version.group(1)
    cmake = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    assert "python/gemmconv/_version.py" in cmake and "gemmconv_sources(" in cmake
    assert set(setup_mod.sources("engine")) <= set(setup_mod.cpu_sources())
    with pytest.raises(SystemExit):
        setup_mod.sources("no_such_group")
