"""The documented install in fresh virtual environments, and the README's and card guide's commands as written.

There is no package index here, so the environments get torch the only honest way available: from the Debian
system. What each environment proves:

- "system": `python3 -m venv --system-site-packages`, the documented `pip install --no-build-isolation .` run
  from a copy of the checkout. wheel comes from Debian's python3-wheel, ninja from /usr/bin.
- "isolated": `python3 -m venv` without system site packages, at the same path. Its site-packages has no
  Debian packages at all; one file (_debian_torch_only.pth) lets exactly torch, the two modules torch imports
  (numpy, typing_extensions) and wheel (the build prerequisite pip would fetch from an index) be imported from
  /usr/lib/python3/dist-packages, nothing else. setuptools, pip and gemmconv itself come from the venv, and the
  build prerequisite wheel is pip-installed into it from a .whl made of Debian's python3-wheel files. This is
  the card guide's environment minus `pip install torch`, which needs the network.

In both, the build runs for real (setup.py, torch's ninja build, the link, the wheel, the install). The second
build finds the first one's objects up to date: the compile commands are identical (same source copy, same
venv path, same torch headers), so only the link repeats. That keeps the CPU extension's compilation (about
1.5 min of CPU time) to once per run.

Then, from each environment: `gemmconv --version`, `gemmconv doctor --json`, a CPU convolution routed through
the installed gemmconv (checked against PyTorch's own result and counted by gemmconv.stats()), and the driver
that pip built into the package: `gemmconv-driver --version`, one `--verify` run, and `gemmconv replay` of an
error message (its driver objects, under the same build folder, are reused by the second build too).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest

from conftest import REPO_ROOT

from gemmconv import __version__

DEBIAN_SITE = "/usr/lib/python3/dist-packages"
SYSTEM_PYTHON = "/usr/bin/python3"
BUILD_TIMEOUT = 1800  # a full extension build on 2 busy cores

_TORCH_ONLY = textwrap.dedent('''\
    """Test environments only: lets a venv without system site packages import exactly these top-level
    modules from Debian's site-packages, after its own site-packages had its chance."""
    import importlib.machinery
    import sys

    DIR = {dir!r}
    ALLOW = {allow!r}


    class DebianTorchOnly:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if path is None and name in ALLOW:
                return importlib.machinery.PathFinder.find_spec(name, [DIR])
            return None


    sys.meta_path.append(DebianTorchOnly)
    ''')
ALLOWED_FROM_DEBIAN = ("torch", "numpy", "typing_extensions")


def debian_wheel_as_wheel(dest):
    """Debian's python3-wheel files as a .whl, so that `pip install` can put the prerequisite `wheel` into a venv
    without an index (its bdist_wheel command is found through its installed metadata, so importing it from
    Debian's directory would not do)."""
    import hashlib
    import base64
    import zipfile

    import wheel

    version = wheel.__version__
    site = os.path.dirname(os.path.dirname(os.path.abspath(wheel.__file__)))
    info = "wheel-{}.dist-info/".format(version)
    path = os.path.join(dest, "wheel-{}-py3-none-any.whl".format(version))
    files = {}
    for root, dirs, names in os.walk(os.path.dirname(os.path.abspath(wheel.__file__))):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                files[os.path.relpath(os.path.join(root, name), site)] = f.read()
    egg_info = os.path.join(site, "wheel-{}.egg-info".format(version), "entry_points.txt")
    with open(egg_info, "rb") if os.path.isfile(egg_info) else open(os.devnull, "rb") as f:
        files[info + "entry_points.txt"] = f.read()
    files[info + "METADATA"] = "Metadata-Version: 2.1\nName: wheel\nVersion: {}\n".format(version).encode()
    files[info + "WHEEL"] = b"Wheel-Version: 1.0\nGenerator: gemmconv-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("{},sha256={},{}".format(name, digest, len(data)))
    record.append(info + "RECORD,,")
    files[info + "RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path

ROUTED_CONV = textwrap.dedent('''\
    import json, os, sys
    import torch
    import torch.nn.functional as F
    import gemmconv
    x, w, b = torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3), torch.randn(4)
    expected = F.conv2d(x, w, b, padding=1)
    gemmconv.enable("cpu")
    got = F.conv2d(x, w, b, padding=1)
    print(json.dumps({"gemmconv": gemmconv.__file__, "torch": torch.__file__,
                      "forward": gemmconv.stats()["forward"]["total"],
                      "max_err": float((got - expected).abs().max()),
                      "sys_path": sys.path}))
    ''')

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEBIAN_SITE, "torch", "__init__.py")) or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs Debian's python3-torch under {} (the only torch without a package index)".format(DEBIAN_SITE))


def sh(command, cwd, env, timeout=600, stdin=""):
    """One command line as a user types it, in bash."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)


def activated(venv, home):
    """The environment of a shell in which `. VENV/bin/activate` ran, with HOME=home and nothing of ours set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GEMMCONV_", "PYTHON", "VIRTUAL_ENV", "HSA_OVERRIDE", "XDG_", "PIP_"))}
    env.update(HOME=home, VIRTUAL_ENV=venv, PATH=os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"],
               PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    return env


def copy_checkout(dest):
    """The checkout's files as a clean clone has them (tracked, plus new files git does not ignore)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, check=True, timeout=60).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        pytest.skip("needs a git checkout to know which files a clone has")
    for rel in files:
        src = os.path.join(REPO_ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    return dest


def make_venv(path, system_site, wheel_file):
    if os.path.exists(path):
        shutil.rmtree(path)
    args = [SYSTEM_PYTHON, "-m", "venv"] + (["--system-site-packages"] if system_site else []) + [path]
    subprocess.run(args, check=True, timeout=300)
    if not system_site:
        purelib = subprocess.run([os.path.join(path, "bin", "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
        with open(os.path.join(purelib, "_debian_torch_only.py"), "w") as f:
            f.write(_TORCH_ONLY.format(dir=DEBIAN_SITE, allow=ALLOWED_FROM_DEBIAN))
        with open(os.path.join(purelib, "_debian_torch_only.pth"), "w") as f:
            f.write("import _debian_torch_only\n")
        # The documented prerequisite (`pip install wheel`), from a file since there is no index.
        subprocess.run([os.path.join(path, "bin", "pip"), "install", "-q", "--no-index", wheel_file], check=True,
                       timeout=300)


# One small problem, every pass, checked against float64 (direct solvers suffice when the driver has no CBLAS).
DRIVER_VERIFY = ("--device cpu -n 2 -c 4 -k 6 --input 7x6 --filter 3x3 --pad 1 --stride 2x1 -g 2 "
                 "--direction all --verify")


def exercise(venv, home):
    """What a user runs first after installing: the results, for the tests to judge."""
    env = activated(venv, home)
    out = {"version": sh("gemmconv --version", home, env, timeout=120),
           "doctor": sh("gemmconv doctor --json 2>/dev/null", home, env, timeout=300)}
    conv = subprocess.run([os.path.join(venv, "bin", "python"), "-c", ROUTED_CONV], cwd=home, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    out["conv"] = conv
    out["which"] = sh("command -v gemmconv", home, env).stdout.strip()
    # The driver pip built into the package, through its console script, and `gemmconv replay` running it.
    out["driver_which"] = sh("command -v gemmconv-driver", home, env).stdout.strip()
    out["driver_version"] = sh("gemmconv-driver --version", home, env, timeout=120)
    out["driver_verify"] = sh("gemmconv-driver " + DRIVER_VERIFY, home, env, timeout=300)
    out["replay"] = sh("gemmconv replay 'RuntimeError: gemmconv: ... (replay: gemmconv-driver {})'".format(
        DRIVER_VERIFY.replace(" --verify", "")), home, env, timeout=300)
    return out


@pytest.fixture(scope="module")
def envs(tmp_path_factory):
    base = tmp_path_factory.mktemp("packaging")
    src = copy_checkout(str(base / "gemmconv-src"))
    venv = str(base / "venv")
    home = str(base / "home")
    os.makedirs(home)
    results = {}
    wheel_file = debian_wheel_as_wheel(str(base))
    for name, system_site in (("system", True), ("isolated", False)):
        make_venv(venv, system_site, wheel_file)
        build = sh("pip install -v --no-build-isolation .", src, activated(venv, home), timeout=BUILD_TIMEOUT)
        results[name] = {"build": build}
        if build.returncode == 0:
            results[name].update(exercise(venv, home))
    # The isolated venv stays, with gemmconv installed, for the docs' commands.
    return {"results": results, "venv": venv, "src": src, "home": home, "base": str(base)}


def check_environment(res, venv, system_site):
    build = res["build"]
    assert build.returncode == 0, build.stdout[-6000:]
    assert re.search(r'gemmconv: building gemmconv\._C for "?cpu', build.stdout), build.stdout[-3000:]
    assert res["which"] == os.path.join(venv, "bin", "gemmconv")  # the console script pip installed
    assert res["version"].returncode == 0 and res["version"].stdout.strip() == "gemmconv " + __version__

    doctor = res["doctor"]
    assert doctor.returncode in (0, 1), doctor.stdout[-3000:]
    data = json.loads(doctor.stdout)
    assert data["exit_code"] == doctor.returncode
    sw = data["software"]
    assert sw["gemmconv"]["location"].startswith(venv) and sw["gemmconv"]["extension"].startswith(venv)
    assert sw["gemmconv"]["installed_as"] == __version__
    assert sw["python"]["venv"] == venv
    assert sw["torch"]["torch_location"] == os.path.join(DEBIAN_SITE, "torch")
    assert data["extension"]["built"] is True and data["extension"].get("error") is None
    assert data["activation"]["autoload_registered"] is True  # the torch.backends entry point, pip-installed

    assert "gemmconv: built gemmconv-driver" in build.stdout, build.stdout[-3000:]
    assert res["driver_which"] == os.path.join(venv, "bin", "gemmconv-driver")
    version = res["driver_version"]
    assert version.returncode == 0, version.stdout[-3000:]
    assert version.stdout.splitlines()[0] == "gemmconv-driver " + __version__, version.stdout
    assert "CPU GEMM provider:" in version.stdout, version.stdout
    for name in ("driver_verify", "replay"):
        run = res[name]
        assert run.returncode == 0, (name, run.stdout[-3000:])
        passes = re.findall(r"^  verify: .* (PASS|FAIL)", run.stdout, re.M)
        assert passes == ["PASS"] * 4, (name, run.stdout[-3000:])  # forward, backward data/weight/bias

    conv = res["conv"]
    assert conv.returncode == 0, conv.stderr[-3000:]
    got = json.loads(conv.stdout.strip().splitlines()[-1])
    assert got["gemmconv"].startswith(venv), got  # the installed package, not the checkout
    assert got["forward"] == 1 and got["max_err"] < 1e-4, got
    debian_on_path = DEBIAN_SITE in got["sys_path"]
    assert debian_on_path == system_site, got["sys_path"]


def test_system_site_packages_venv(envs):
    check_environment(envs["results"]["system"], envs["venv"], system_site=True)


def test_isolated_venv(envs):
    check_environment(envs["results"]["isolated"], envs["venv"], system_site=False)


def test_build_without_torch_says_so(envs, tmp_path):
    venv = str(tmp_path / "notorch")
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", venv], check=True, timeout=300)
    proc = sh("pip install --no-build-isolation .", envs["src"], activated(venv, envs["home"]), timeout=600)
    assert proc.returncode != 0
    assert "gemmconv: cannot build: torch is not importable" in proc.stdout, proc.stdout[-3000:]


# ---- the README's and the card guide's shell commands, exactly as written ----

DOCS = ["README.md", "docs/card-guide.md"]

# Every command line of the docs' ```sh blocks, with why it is not run here; a line not listed at all fails the
# test (classify it), a listed line gone from the docs fails it too (keep this list true).
NOT_RUN = {
    "scripts/demo.sh   # installs what is missing (Debian/Ubuntu packages), builds, trains a CNN through gemmconv":
        "installs Debian packages with apt-get and trains for minutes; tests/python/test_demo.py runs the demo",
    "scripts/test.sh   # installs what is missing, builds, runs every test (the command CI runs)":
        "it is the command that runs this test",
    "make build                            # or: cmake -S . -B build && cmake --build build -j":
        "the CMake build is scripts/test.sh's build stage",
    "build/gemmconv-driver -n 32 -c 64 -k 64 --input 56x56 --filter 3x3 --pad 1 "
    "     --device gpu --direction all --verify --time":
        "needs a GPU (--device gpu)",
    "lspci -nn | grep -Ei 'vga|display'      # look for [1002:xxxx] at the end of the line, e.g. [1002:731f]":
        "needs a card: without a display-class device grep finds nothing and exits 1",
    "ls -l /dev/kfd                          # crw-rw---- 1 root render ...":
        "needs a card (/dev/kfd exists only with amdgpu's compute interface)",
    'sudo usermod -aG render,video "$USER"   # then log out and back in':
        "changes the machine's user groups",
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/rocm6.2":
        "needs the network and a ROCm wheel index; the test venv gets Debian's torch instead",
    'python -c "import torch; print(torch.cuda.is_available(), torch.cuda.get_device_properties(0).gcnArchName)"':
        "needs a card (device 0)",
    "pip install wheel ninja":
        "needs a package index; the test venv gets wheel from Debian's python3-wheel and ninja from /usr/bin",
    "pip install --no-build-isolation .":
        "run above by the envs fixture, in this same venv, exactly as written",
}


def doc_commands():
    """(doc, command) for each line of each ```sh block, backslash continuations joined."""
    found = []
    for doc in DOCS:
        with open(os.path.join(REPO_ROOT, doc)) as f:
            text = f.read()
        for m in re.finditer(r"^```(sh|bash)\n(.*?)^```", text, re.S | re.M):
            for line in m.group(2).replace("\\\n", " ").splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    found.append((doc, line))
    return found


def expect(command, proc):
    """What a command that runs without a card must show."""
    out = proc.stdout
    if command.startswith("python -m gemmconv doctor") or command.startswith("gemmconv doctor"):
        assert proc.returncode in (0, 1) and "Verdict:" in out, out[-3000:]  # 1: problems found, said why
        assert "Software" in out and "gemmconv:" in out, out[-3000:]
        if "--selftest" in command:
            assert re.search(r"^Selftest\n  passed: \d+ cases", out, re.M), out[-3000:]
    else:
        assert proc.returncode == 0, out[-3000:]


def test_every_doc_command_is_classified():
    commands = {c for _, c in doc_commands()}
    assert commands, "no ```sh blocks found in {}".format(DOCS)
    stale = sorted(set(NOT_RUN) - commands)
    assert not stale, "listed as not run but no longer in the docs: {}".format(stale)


def test_doc_commands_as_written(envs):
    if envs["results"]["isolated"]["build"].returncode != 0:
        pytest.fail("the isolated venv did not build (see test_isolated_venv)")
    env = activated(envs["venv"], envs["home"])
    ran = []
    for doc, command in doc_commands():
        if command in NOT_RUN:
            continue
        # From the home directory, as a user would; the one command that needs the checkout (`pip install .`)
        # ran there in the fixture.
        cwd = REPO_ROOT if command.startswith("build/") else envs["home"]
        if command.startswith("build/") and not os.path.exists(os.path.join(REPO_ROOT, command.split()[0])):
            # Not hardware: the CMake build (scripts/test.sh's build stage, which CI runs first) is missing.
            warnings.warn("not run, {} is not built: {}".format(command.split()[0], command))
            continue
        proc = sh(command, cwd, env, timeout=900, stdin="y\n")  # `pip uninstall` asks before it removes
        expect(command, proc)
        ran.append(command)
    # The commands that change state did what the guide says.
    assert "python -m gemmconv install" in ran and "pip uninstall gemmconv" in ran, ran
    assert os.path.isfile(os.path.join(envs["home"], "gemmconv-capture.tgz"))  # the capture recipe ran
    assert not os.path.exists(os.path.join(envs["home"], ".config", "gemmconv", "install-manifest.json"))
    assert not os.path.exists(os.path.join(envs["venv"], "bin", "gemmconv"))  # pip uninstall removed it
    assert os.path.isfile(os.path.join(envs["home"], "venvs", "torch", "bin", "activate"))
