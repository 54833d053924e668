"""The doctor's Software section (collect_env's facts and more), the selftest announcement, no engage/healthy
verdict without the compiled extension, and timeout advice that fits a machine without a GPU."""

import json
import os
import subprocess
import sys

import pytest

import sysfs_fixtures as fx

sys.path.insert(0, fx.PYTHON_DIR)
from gemmconv import __version__  # noqa: E402
from gemmconv.diagnosis import envinfo  # noqa: E402


def run(args, home, pythonpath=(), **env):
    return subprocess.run([sys.executable, "-m", "gemmconv"] + list(args), cwd=home, timeout=120,
                          env=fx.clean_env(home, pythonpath, **env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    return str(d)


@pytest.fixture
def no_extension(tmp_path):
    """A gemmconv package made of this tree's modules but without the compiled extension."""
    with open(os.path.join(fx.PYTHON_DIR, "gemmconv", "__init__.py")) as f:
        init = f.read()
    return fx.stub_package(str(tmp_path / "noext"), init, with_extension=False)


def test_collect_on_this_machine():
    info = envinfo.collect("/")
    assert info["gemmconv"]["version"] == __version__
    assert info["gemmconv"]["location"] == os.path.join(fx.PYTHON_DIR, "gemmconv")
    assert info["python"]["executable"] == sys.executable
    assert info["python"]["version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert info["os"]["kernel"] == os.uname().release
    assert set(info["compilers"]) == {"g++", "hipcc", "nvcc"}
    for name, c in info["compilers"].items():
        if c["path"]:
            assert os.access(c["path"], os.X_OK) and c["version"], (name, c)
    import torch
    assert info["torch"]["torch_location"] == os.path.dirname(torch.__file__)
    assert info["local"] == []


def test_versions_from_rocm_headers(tmp_path):
    root = fx.make("rx5600xt", str(tmp_path / "t"))  # ROCm 6.2.4 under /opt/rocm
    inc = os.path.join(root, "opt", "rocm", "include")
    os.makedirs(os.path.join(inc, "miopen"))
    os.makedirs(os.path.join(inc, "rocblas", "internal"))
    with open(os.path.join(inc, "miopen", "version.h"), "w") as f:
        f.write("#define MIOPEN_VERSION_MAJOR 3\n#define MIOPEN_VERSION_MINOR 2\n#define MIOPEN_VERSION_PATCH 0\n")
    with open(os.path.join(inc, "rocblas", "internal", "rocblas-version.h"), "w") as f:
        f.write("#define ROCBLAS_VERSION_MAJOR 4\n#define ROCBLAS_VERSION_MINOR 2\n#define ROCBLAS_VERSION_PATCH 4\n")
    info = envinfo.collect(root)
    assert info["rocm"]["version"] == "6.2.4-120"
    assert info["rocm"]["MIOpen"] == "3.2.0 (/opt/rocm)" and info["rocm"]["rocBLAS"] == "4.2.4 (/opt/rocm)"
    # A captured tree: what can only come from the machine running the doctor is named as such.
    assert "python" in info["local"] and "compilers" in info["local"]


def test_text_and_json_report_software(tmp_path, home):
    root = fx.make("nogpu", str(tmp_path / "t"))
    text = run(["doctor", "--sysroot", root], home).stdout
    assert "\nSoftware\n" in text and "gemmconv:           {} at".format(__version__) in text
    assert "(this machine, not the captured tree)" in text  # captured tree: local facts are labelled
    for label in ("Python:", "OS:", "g++:", "hipcc:", "nvcc:", "MIOpen:", "rocBLAS:", "torch package:",
                  "torchvision:"):
        assert "  " + label in text, label
    data = json.loads(run(["doctor", "--sysroot", root, "--json"], home).stdout)
    assert data["software"]["gemmconv"]["version"] == __version__
    assert data["software"]["python"]["executable"] == sys.executable


def test_selftest_is_announced(tmp_path, home):
    root = fx.make("nogpu", str(tmp_path / "t"))
    child = [sys.executable, "-c", "print('{\"ok\": true, \"results\": []}')"]
    proc = run(["doctor", "--sysroot", root, "--selftest", "--timeout", "7"], home,
               GEMMCONV_DOCTOR_SELFTEST_CMD=json.dumps(child))
    assert "running selftest (up to 7 s)..." in proc.stderr
    proc = run(["doctor", "--sysroot", root, "--json", "--selftest", "--timeout", "7"], home,
               GEMMCONV_DOCTOR_SELFTEST_CMD=json.dumps(child))
    assert "running selftest" in proc.stderr and json.loads(proc.stdout)["selftest"]["ok"]  # stdout stays JSON


def test_timeout_advice_without_a_gpu(tmp_path, home):
    root = fx.make("nogpu", str(tmp_path / "t"))
    proc = run(["doctor", "--sysroot", root, "--json", "--selftest", "--timeout", "1"], home,
               GEMMCONV_DOCTOR_SELFTEST_CMD="{} -c 'import time; time.sleep(30)'".format(sys.executable))
    data = json.loads(proc.stdout)
    finding = [f for f in data["findings"] if f["where"] == "selftest"][0]
    assert "GPU job" not in finding["advice"] and "dmesg" not in finding["advice"]
    assert "No GPU is present" in finding["advice"] and "--timeout" in finding["advice"]


def test_no_extension_means_no_engage_and_not_healthy(tmp_path, home, no_extension):
    root = fx.make("nogpu", str(tmp_path / "t"))
    proc = run(["doctor", "--sysroot", root], home, [no_extension], GEMMCONV_ACTIVATE="always")
    assert proc.returncode == 1
    assert "Would engage:       no (the policy says always" in proc.stdout, proc.stdout
    assert "compiled extension is not built" in proc.stdout and "Verdict: healthy" not in proc.stdout
    data = json.loads(run(["doctor", "--sysroot", root, "--json"], home, [no_extension],
                          GEMMCONV_ACTIVATE="always").stdout)
    assert not data["healthy"] and data["activation"]["would_engage"] is False
    # With a flagged card, the finding names the card (and the activation advice still concerns the policy).
    root = fx.make("rx5600xt", str(tmp_path / "c"))
    data = json.loads(run(["doctor", "--sysroot", root, "--json"], home, [no_extension],
                          GEMMCONV_ACTIVATE="always", HSA_OVERRIDE_GFX_VERSION="10.3.0").stdout)
    assert data["activation"]["would_engage"] is False
    assert any("extension is not built, so convolutions go to MIOpen" in f["message"] for f in data["findings"])


@pytest.mark.parametrize("name", ["nogpu", "rx6800", "nvidia"])
def test_with_the_extension_unflagged_machines_are_healthy(tmp_path, home, name):
    built = {"extension": {"built": True, "archs": ["gfx1010", "gfx1030"], "error": None}}
    root = fx.make(name, str(tmp_path / "t"), capture=built)
    proc = run(["doctor", "--sysroot", root, "--json"], home, GEMMCONV_ACTIVATE="always")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["healthy"], data["findings"]
    assert data["extension"]["built"] and data["activation"]["would_engage"]
