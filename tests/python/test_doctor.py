"""`python -m gemmconv doctor` as a user runs it: on captured trees, in JSON and text, exit codes, the selftest."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import sysfs_fixtures as fx

if fx.CHILD_PYTHON == sys.executable:
    HAVE_TORCH = importlib.util.find_spec("torch") is not None
else:
    HAVE_TORCH = fx.child_info()["has_torch"]

# `python -m gemmconv ARGS` in an interpreter that first processes SITE_DIR the way start-up processes its own
# site-packages (.pth files included).
WITH_SITE_DIR = ("import runpy, site, sys; site.addsitedir(sys.argv.pop(1)); "
                 "runpy.run_module('gemmconv', run_name='__main__', alter_sys=True)")


def run(args, home, extra_path=(), timeout=60, site_dir=None, **env):
    launch = ["-m", "gemmconv"] if site_dir is None else ["-c", WITH_SITE_DIR, site_dir]
    proc = subprocess.run([fx.CHILD_PYTHON] + launch + list(args), cwd=home, timeout=timeout,
                          env=fx.clean_env(home, extra_path, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    return proc


def doctor_json(root, home, *extra, site_dir=None, **env):
    proc = run(["doctor", "--sysroot", root, "--json"] + list(extra), home, site_dir=site_dir, **env)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    return str(d)


# fixture -> (exit code, [(physical_arch, pci_device_id, flagged)]) with no activation configured. The captured
# machines have no compiled extension, and without it no machine is healthy for gemmconv: exit 1 everywhere
# (test_doctor_software.py checks the same machines with an extension).
EXPECTED = {
    "rx5600xt": (1, [("gfx1010", "0x731f", True)]),
    "rx5500xt": (1, [("gfx1012", "0x7340", True)]),
    "rx6800": (1, [("gfx1030", "0x73bf", False)]),
    "rdna1_rdna2": (1, [("gfx1010", "0x731f", True), ("gfx1030", "0x73bf", False)]),
    "nvidia": (1, [("unknown", "0x2684", False)]),
    "nogpu": (1, []),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_json_on_each_fixture(tmp_path, home, name):
    root = fx.make(name, str(tmp_path / name))
    code, data = doctor_json(root, home)
    want_code, want_gpus = EXPECTED[name]
    assert code == want_code and data["exit_code"] == want_code and data["healthy"] == (want_code == 0)
    assert [(g["physical_arch"], g["pci_device_id"], g["flagged"]) for g in data["gpus"]] == want_gpus
    for g in data["gpus"]:
        assert g["reason"]
    if any(f for _, _, f in want_gpus):
        problems = [f["message"] for f in data["findings"] if f["severity"] == "problem"]
        assert any("activation is off" in p for p in problems)
        assert any("extension is not built" in p for p in problems)


def test_json_per_gpu_override_advice(tmp_path, home):
    root = fx.make("rdna1_rdna2", str(tmp_path / "t"))
    _, data = doctor_json(root, home)
    assert data["machine"]["recommended_env"] == {"HSA_OVERRIDE_GFX_VERSION_1": "10.3.0"}
    assert any("HSA_OVERRIDE_GFX_VERSION_1=10.3.0" in f["advice"] for f in data["findings"])


def test_json_override_in_force(tmp_path, home):
    root = fx.make("rx5600xt", str(tmp_path / "t"))
    _, without = doctor_json(root, home)
    _, with_it = doctor_json(root, home, HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert without["gpus"][0]["override"] is None and without["gpus"][0]["reported_arch"] == "gfx1010"
    assert with_it["gpus"][0]["override"] == "10.3.0" and with_it["gpus"][0]["reported_arch"] == "gfx1030"
    assert with_it["machine"]["env"] == {"HSA_OVERRIDE_GFX_VERSION": "10.3.0"}
    assert any("no override is in force" in f["message"] for f in without["findings"])
    assert not any("no override is in force" in f["message"] for f in with_it["findings"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_text_on_each_fixture(tmp_path, home, name):
    root = fx.make(name, str(tmp_path / name))
    proc = run(["doctor", "--sysroot", root], home)
    want_code, want_gpus = EXPECTED[name]
    out = proc.stdout
    assert proc.returncode == want_code, out + proc.stderr
    assert "captured tree" in out and "extension not built" in out
    for arch, dev, flagged in want_gpus:
        assert dev in out and (arch in out or arch == "unknown")
    assert ("KNOWN BROKEN" in out) == any(f for _, _, f in want_gpus)
    assert ("Verdict: healthy" in out) == (want_code == 0)
    if want_code:
        assert "fix: " in out


def test_text_kfd_access(tmp_path, home):
    root = fx.make("rx6800", str(tmp_path / "t"), capture={"kfd_access": False, "groups": ["u"]})
    proc = run(["doctor", "--sysroot", root], home)
    assert proc.returncode == 1
    assert "NO ACCESS" in proc.stdout and "usermod -aG render,video" in proc.stdout


def test_healthy_rdna1_after_install(tmp_path, home):
    """Extension built for both archs, override set, activation installed with policy auto: healthy."""
    root = fx.make("rx5600xt", str(tmp_path / "t"),
                   capture={"extension": {"built": True, "archs": ["gfx1010", "gfx1030"], "error": None}})
    inst = tmp_path / "inst"
    assert run(["install", "--root", str(inst), "--home", "/home/u", "--sysroot", root], home).returncode == 0
    user_home = str(inst / "home" / "u")
    hook_dir = fx.installed_hook_dir(str(inst), "/home/u/.config/gemmconv")
    pth = os.path.join(hook_dir, "gemmconv-activate.pth")
    if fx.child_info()["enable_user_site"]:
        # The hook went to that home's user site, which this interpreter reads at start-up: found as it is.
        site_dir = None
    else:
        # This interpreter never reads a user site (a virtual environment without system site packages), so a hook
        # there runs nothing, and the doctor must say so ...
        code, data = doctor_json(root, user_home, HSA_OVERRIDE_GFX_VERSION="10.3.0")
        assert code == 1 and not data["activation"]["hooked"] and pth not in data["activation"]["pth_files"]
        assert any("no hook runs it" in f["message"] for f in data["findings"] if f["severity"] == "problem")
        # ... and once the directory is one it processes (as its own site-packages is), the doctor finds it.
        site_dir = hook_dir
    code, data = doctor_json(root, user_home, site_dir=site_dir, HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert code == 0, [f for f in data["findings"] if f["severity"] == "problem"]
    act = data["activation"]
    assert act["policy"] == "auto" and act["would_engage"] and act["hooked"]
    assert pth in act["pth_files"]
    assert act["source"].endswith("/home/u/.config/gemmconv/activate")
    # The same machine with an extension built for gfx1010 only cannot serve the gfx1030 code the override asks for.
    root2 = fx.make("rx5600xt", str(tmp_path / "t2"),
                    capture={"extension": {"built": True, "archs": ["gfx1010"], "error": None}})
    code, data = doctor_json(root2, user_home, site_dir=site_dir, HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert code == 1 and any("runs gfx1030 code" in f["message"] for f in data["findings"])


def test_activation_off_by_policy_is_reported(tmp_path, home):
    root = fx.make("rx5600xt", str(tmp_path / "t"),
                   capture={"extension": {"built": True, "archs": ["gfx1010", "gfx1030"], "error": None}})
    code, data = doctor_json(root, home, GEMMCONV_ACTIVATE="never", HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert code == 1 and data["activation"]["source"] == "GEMMCONV_ACTIVATE"
    code, data = doctor_json(root, home, GEMMCONV_ACTIVATE="always", HSA_OVERRIDE_GFX_VERSION="10.3.0")
    assert data["activation"]["would_engage"] and not data["activation"]["hooked"]
    assert code == 1 and any("no hook runs it" in f["message"] for f in data["findings"])


@pytest.mark.parametrize("args", [["doctor", "--bogus"], ["doctor", "--timeout", "0"], ["nosuchcommand"], [],
                                  ["doctor", "--sysroot", "/no/such/dir"], ["install", "--scope", "galaxy"]])
def test_usage_errors_exit_2(home, args):
    assert run(args, home).returncode == 2


def test_help_exits_0(home):
    proc = run(["--help"], home)
    assert proc.returncode == 0 and "doctor" in proc.stdout and "install" in proc.stdout


def test_bench_is_registered_when_present(tmp_path, home):
    fake = tmp_path / "fake" / "gemmconv"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__path__.append({!r})\n".format(os.path.join(fx.PYTHON_DIR, "gemmconv")))
    (fake / "bench.py").write_text("def main(argv):\n    print('bench ran', argv)\n    return 3\n")
    proc = run(["bench", "--quick"], home, extra_path=[str(tmp_path / "fake")])
    assert proc.returncode == 3 and "bench ran ['--quick']" in proc.stdout
    assert run(["--help"], home, extra_path=[str(tmp_path / "fake")]).stdout.count("bench") == 1


def test_bench_is_left_out_when_absent(monkeypatch, capsys):
    import gemmconv.__main__ as entry
    monkeypatch.setattr(entry.importlib.util, "find_spec", lambda name: None)
    assert entry.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "doctor" in out and "bench" not in out
    assert entry.main(["bench"]) == 2


# ---- the selftest child ----

def test_selftest_timeout_kills_the_child_tree(tmp_path, home):
    # The child starts a grandchild that holds the output pipes: only killing the whole group returns in time.
    child = [sys.executable, "-c", "import subprocess, sys, time; "
             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"]
    root = fx.make("rx5600xt", str(tmp_path / "t"))  # a GPU machine: the advice is about a hung GPU job
    start = time.monotonic()
    code, data = doctor_json(root, home, "--selftest", "--timeout", "2",
                             GEMMCONV_DOCTOR_SELFTEST_CMD=json.dumps(child))
    elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed
    assert code == 1 and data["selftest"]["timed_out"] and not data["selftest"]["ok"]
    msg = [f for f in data["findings"] if f["where"] == "selftest"][0]
    assert "did not finish within 2 s" in msg["message"] and "dmesg" in msg["advice"]


def test_selftest_timeout_text(tmp_path, home):
    root = fx.make("nogpu", str(tmp_path / "t"))
    proc = run(["doctor", "--sysroot", root, "--selftest", "--timeout", "1"], home,
               GEMMCONV_DOCTOR_SELFTEST_CMD="{} -c 'import time; time.sleep(30)'".format(sys.executable))
    assert proc.returncode == 1 and "FAILED: the selftest did not finish within 1 s" in proc.stdout


def test_selftest_crash_is_a_failure(tmp_path, home):
    child = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    root = fx.make("nogpu", str(tmp_path / "t"))
    code, data = doctor_json(root, home, "--selftest", GEMMCONV_DOCTOR_SELFTEST_CMD=json.dumps(child))
    assert code == 1 and "crashed (signal 11)" in data["selftest"]["error"]


FAKE_GEMMCONV = textwrap.dedent("""
    __path__.append({real!r})
    _n = [0]
    _enabled = []
    def enable(device_types=("cuda",)):
        _enabled.append(tuple(device_types))
    def disable(device_types=None):
        pass
    def reset_stats():
        pass
    def stats():
        # Counting each stats() call stands in for counting convolutions ({counting}).
        _n[0] += {step}
        return {{d: {{"im2col_gemm": _n[0], "total": _n[0]}}
                for d in ("forward", "backward_data", "backward_weight", "backward_bias")}}
""")


def _fake_gemmconv(tmp_path, counting):
    pkg = tmp_path / "fakegc" / "gemmconv"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_GEMMCONV.format(
        real=os.path.join(fx.PYTHON_DIR, "gemmconv"), counting="on" if counting else "off",
        step=1 if counting else 0))
    return str(tmp_path / "fakegc")


@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")
def test_selftest_runs_every_case_on_cpu(tmp_path, home):
    # A captured machine whose extension is built: otherwise the doctor is right to say "not healthy".
    root = fx.make("nogpu", str(tmp_path / "t"), capture={"extension": {"built": True, "archs": ["cpu"],
                                                                         "error": None}})
    code, data = doctor_json(root, home, "--selftest", extra_path=[_fake_gemmconv(tmp_path, True)])
    st = data["selftest"]
    assert st["ok"] and code == 0, st
    # Every case on the CPU in float32; where torch sees GPUs, the same cases on each of them too.
    cpu = [r for r in st["results"] if r["device"] == "cpu"]
    cases = [r["case"] for r in cpu]
    assert {"conv1d", "conv2d", "conv3d", "conv_transpose2d", "grouped_conv2d"} <= set(cases)
    assert len(cases) == len(set(cases)) and all(r["dtype"] == "float32" for r in cpu)
    for r in st["results"]:
        assert r["device"] == "cpu" or r["device"].startswith("cuda:"), r
        assert set(r["errors"]) == {"output", "grad_input", "grad_weight", "grad_bias"}
        assert r["ok"] and r["through_gemmconv"] and max(r["errors"].values()) <= r["tolerance"], r
    for device in {r["device"] for r in st["results"]} - {"cpu"}:
        for dtype in {r["dtype"] for r in st["results"] if r["device"] == device}:
            assert sorted(r["case"] for r in st["results"] if (r["device"], r["dtype"]) == (device, dtype)) \
                == sorted(cases), (device, dtype)


@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")
def test_selftest_notices_calls_that_skip_gemmconv(tmp_path, home):
    root = fx.make("nogpu", str(tmp_path / "t"))
    code, data = doctor_json(root, home, "--selftest", extra_path=[_fake_gemmconv(tmp_path, False)])
    assert code == 1 and not data["selftest"]["ok"]
    assert "did not go through gemmconv" in data["selftest"]["error"]
