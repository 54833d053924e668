"""The command line as conventions have it: `gemmconv --version` everywhere, help that describes each command and
shows each flag's default, unknown names rejected with exit 2, and the console script declared for pip."""

import argparse
import os
import re
import subprocess
import sys

import pytest

import sysfs_fixtures as fx

sys.path.insert(0, fx.PYTHON_DIR)
from gemmconv import __version__  # noqa: E402
from gemmconv import __main__ as entry  # noqa: E402
from gemmconv.activation import installer  # noqa: E402
from gemmconv.diagnosis import capture, doctor  # noqa: E402

COMMANDS = ["doctor", "install", "bench", "capture", "replay"]


def run(args, home, timeout=60):
    return subprocess.run([sys.executable, "-m", "gemmconv"] + list(args), cwd=home, timeout=timeout,
                          env=fx.clean_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    return str(d)


def test_version_file_is_the_one_version():
    with open(os.path.join(fx.REPO, "python", "gemmconv", "_version.py")) as f:
        assert '__version__ = "{}"'.format(__version__) in f.read()
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


@pytest.mark.parametrize("args", [["--version"]] + [[c, "--version"] for c in COMMANDS])
def test_version_everywhere(home, args):
    proc = run(args, home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "gemmconv {}".format(__version__)


def test_top_level_help_describes_each_command(home):
    proc = run(["--help"], home)
    assert proc.returncode == 0
    for name in COMMANDS:
        line = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith(name + " ")]
        assert line, (name, proc.stdout)
        assert len(line[0].split(None, 1)[1]) > 20, line  # a description, not just the name
    assert "--version" in proc.stdout


def test_no_command_is_a_usage_error(home):
    proc = run([], home)
    assert proc.returncode == 2 and "commands:" in proc.stderr


def _parsers():
    return {"doctor": doctor._parser(), "install": installer._parser(), "capture": capture._parser()}


@pytest.mark.parametrize("name", ["doctor", "install", "capture"])
def test_every_flag_has_help_and_shows_its_default(name):
    parser = _parsers()[name]
    text = parser.format_help()
    text = text.split("\noptions:\n", 1)[-1].split("\noptional arguments:\n", 1)[-1]  # past the usage line
    for action in parser._actions:
        if not action.option_strings:
            continue
        assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings)
        if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action, argparse._HelpAction):
            # the formatted help names the default next to the flag
            block = text.split("  " + action.option_strings[-1], 1)[1].split("\n  -", 1)[0]
            assert "default" in block and str(action.default) in " ".join(block.split()), (name, action, block)


def test_bench_help_shows_defaults_and_names(home):
    proc = run(["bench", "--help"], home)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "(default: auto)" in text and "--version" in text
    assert "resnet50" in text and "bf16" in text  # the accepted names are listed


@pytest.mark.parametrize("args,bad", [
    (["bench", "--layers", "nope"], "nope"),
    (["bench", "--sets", "resnet50,nope2"], "nope2"),
    (["bench", "--models", "alexnet"], "alexnet"),
    (["bench", "--what", "everything"], "everything"),
    (["install", "--policy", "sometimes"], "sometimes"),
    (["doctor", "--timeout", "-1"], "--timeout"),
    (["frobnicate"], "frobnicate"),
])
def test_unknown_names_exit_2(home, args, bad):
    proc = run(args, home)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert bad in proc.stderr, proc.stderr


def test_console_script_is_declared():
    try:
        import tomllib
    except ImportError:
        pytest.skip("tomllib needs Python 3.11 (this is {}.{})".format(*sys.version_info[:2]))
    with open(os.path.join(fx.REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["gemmconv"] == "gemmconv.__main__:main"
    module, func = project["scripts"]["gemmconv"].split(":")
    assert getattr(entry, func) is entry.main and module == entry.__name__
    # gemmconv-driver: the shim that runs the driver setup.py builds into the package
    from gemmconv import _driver
    assert project["scripts"]["gemmconv-driver"] == "gemmconv._driver:main" and callable(_driver.main)
    # complete metadata: license file, README as long description, classifiers
    assert project["license"] == {"file": "LICENSE"} and os.path.isfile(os.path.join(fx.REPO, "LICENSE"))
    assert "MIT License" in open(os.path.join(fx.REPO, "LICENSE")).read()
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]
    assert project["readme"]["file"] == "README.md"


def test_routes_capture_when_present(tmp_path, home):
    # `capture` comes from its own module; the dispatcher lists and runs whatever COMMANDS names.
    fake = tmp_path / "fake" / "gemmconv"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__path__.append({!r})\n".format(os.path.join(fx.PYTHON_DIR, "gemmconv")))
    (fake / "capcmd.py").write_text("def main(argv):\n    print('capture ran', argv)\n    return 0\n")
    code = ("import sys; sys.path.insert(0, {!r}); import gemmconv.__main__ as m; "
            "m.COMMANDS['capture'] = 'gemmconv.capcmd:main'; sys.exit(m.main(sys.argv[1:]))").format(
                str(tmp_path / "fake"))
    proc = subprocess.run([sys.executable, "-c", code, "capture", "DIR"], cwd=home, env=fx.clean_env(home),
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 0 and "capture ran ['DIR']" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code, "--help"], cwd=home, env=fx.clean_env(home),
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert re.search(r"^\s+capture\s+copy this machine's facts", proc.stdout, re.M), proc.stdout


def test_build_ext_uses_the_active_venv(tmp_path):
    """scripts/build_ext.sh builds for $VIRTUAL_ENV/bin/python when a virtual environment is active (PYTHON unset)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "called"
    fake = venv / "bin" / "python"
    fake.write_text("#!/bin/sh\necho \"$0 $*\" > {}\n".format(log))
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    env["VIRTUAL_ENV"] = str(venv)
    proc = subprocess.run(["bash", os.path.join(fx.REPO, "scripts", "build_ext.sh")], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert log.exists(), proc.stderr
    assert log.read_text().strip() == "{} setup.py build_ext --inplace".format(fake)
    assert "building for the active virtual environment" in proc.stderr
    # PYTHON still wins over the venv.
    other = tmp_path / "other-python"
    other.write_text("#!/bin/sh\necho \"other $*\" > {}\n".format(log))
    other.chmod(0o755)
    env["PYTHON"] = str(other)
    subprocess.run(["bash", os.path.join(fx.REPO, "scripts", "build_ext.sh")], cwd=str(tmp_path), env=env,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert log.read_text().startswith("other setup.py")
