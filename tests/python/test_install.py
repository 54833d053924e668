"""`python -m gemmconv install` round trips in a temporary root, and activation proven in fresh interpreters."""

import hashlib
import os
import re
import site
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import sysfs_fixtures as fx


def user_site_rel():
    """The user site-packages directory of the interpreter that runs `install`, relative to the home."""
    return os.path.join(".local", "lib", "python{}.{}".format(*fx.child_info()["version"]), "site-packages")


def tree_hash(root):
    """Paths, kinds and contents of everything under root."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        h.update(("D " + rel + "\n").encode())
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            h.update(("F {} {:o}\n".format(os.path.join(rel, name), os.stat(path).st_mode)).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def install(args, home, **env):
    proc = subprocess.run([fx.CHILD_PYTHON, "-m", "gemmconv", "install"] + list(args), cwd=home,
                          env=fx.clean_env(home, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    return proc


@pytest.fixture
def machine(tmp_path):
    """A target root with a user who already has a ~/.profile (no trailing newline) and other files."""
    root = tmp_path / "root"
    (root / "home" / "u" / ".config" / "other").mkdir(parents=True)
    (root / "home" / "u" / ".profile").write_text("export PATH=$HOME/bin:$PATH")
    (root / "home" / "u" / ".config" / "other" / "x.conf").write_text("keep me\n")
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("box\n")
    return str(root)


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "cwd"
    d.mkdir()
    return str(d)


def _u(root, *parts):
    return os.path.join(root, "home", "u", *parts)


def test_user_round_trip(tmp_path, machine, home):
    sysroot = fx.make("rx5600xt", str(tmp_path / "sys"))
    base = ["--root", machine, "--home", "/home/u", "--sysroot", sysroot]
    before = tree_hash(machine)

    first = install(base, home)
    assert first.returncode == 0, first.stderr
    after_first = tree_hash(machine)
    assert after_first != before
    env_sh = open(_u(machine, ".config", "gemmconv", "env.sh")).read()
    assert "export HSA_OVERRIDE_GFX_VERSION=10.3.0\n" in env_sh
    conf = open(_u(machine, ".config", "environment.d", "gemmconv.conf")).read()
    assert "\nHSA_OVERRIDE_GFX_VERSION=10.3.0\n" in conf
    assert open(_u(machine, ".config", "gemmconv", "activate")).read().splitlines()[-1] == "auto"
    profile = open(_u(machine, ".profile")).read()
    assert profile.startswith("export PATH=$HOME/bin:$PATH\n# >>> gemmconv >>>")
    assert '. "/home/u/.config/gemmconv/env.sh"' in profile
    pth = _u(machine, user_site_rel(), "gemmconv-activate.pth")
    assert open(pth).read() == "import _gemmconv_hook; _gemmconv_hook.install()\n"
    assert os.path.isfile(_u(machine, user_site_rel(), "_gemmconv_hook.py"))
    assert fx.installed_hook_dir(machine, "/home/u/.config/gemmconv") == _u(machine, user_site_rel())

    second = install(base, home)
    assert second.returncode == 0 and "already installed: nothing to change" in second.stdout
    assert tree_hash(machine) == after_first

    gone = install(["--root", machine, "--home", "/home/u", "--uninstall"], home)
    assert gone.returncode == 0, gone.stderr
    assert tree_hash(machine) == before
    again = install(["--root", machine, "--home", "/home/u", "--uninstall"], home)
    assert again.returncode == 0 and "nothing to uninstall" in again.stdout


def test_dry_run_changes_nothing(tmp_path, machine, home):
    sysroot = fx.make("rdna1_rdna2", str(tmp_path / "sys"))
    before = tree_hash(machine)
    proc = install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot, "--dry-run"], home)
    assert proc.returncode == 0
    assert tree_hash(machine) == before
    assert "would create /home/u/.config/gemmconv/env.sh" in proc.stdout
    assert "| export HSA_OVERRIDE_GFX_VERSION_1=10.3.0" in proc.stdout
    assert "would append to /home/u/.profile" in proc.stdout
    # Dry-run of an uninstall, too.
    install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot], home)
    installed = tree_hash(machine)
    proc = install(["--root", machine, "--home", "/home/u", "--uninstall", "--dry-run"], home)
    assert "would remove /home/u/.config/gemmconv/activate" in proc.stdout and tree_hash(machine) == installed


def test_per_gpu_override_only_for_the_rdna1_card(tmp_path, machine, home):
    sysroot = fx.make("rdna1_rdna2", str(tmp_path / "sys"))
    assert install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot], home).returncode == 0
    env_sh = open(_u(machine, ".config", "gemmconv", "env.sh")).read()
    assert "export HSA_OVERRIDE_GFX_VERSION_1=10.3.0\n" in env_sh
    assert "HSA_OVERRIDE_GFX_VERSION=" not in env_sh


def test_no_override_no_environment_files(tmp_path, machine, home):
    sysroot = fx.make("rx6800", str(tmp_path / "sys"))
    before_profile = open(_u(machine, ".profile")).read()
    proc = install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot], home)
    assert proc.returncode == 0 and "no override needed" in proc.stdout and "leaves gemmconv off" in proc.stdout
    assert not os.path.exists(_u(machine, ".config", "gemmconv", "env.sh"))
    assert not os.path.exists(_u(machine, ".config", "environment.d"))
    assert open(_u(machine, ".profile")).read() == before_profile
    assert os.path.isfile(_u(machine, user_site_rel(), "gemmconv-activate.pth"))


def test_override_only_for_flagged_cards(tmp_path, machine, home):
    # gfx1031 needs 10.3.0 with stock wheels too, but its MIOpen works: the doctor advises, install writes nothing.
    sysroot = fx.make("rx6700xt", str(tmp_path / "sys"))
    proc = install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot], home)
    assert proc.returncode == 0 and "no override needed" in proc.stdout
    assert "also recommends HSA_OVERRIDE_GFX_VERSION=10.3.0" in proc.stdout
    assert not os.path.exists(_u(machine, ".config", "gemmconv", "env.sh"))


def test_system_round_trip_restores_a_replaced_file(tmp_path, machine, home):
    sysroot = fx.make("rx5500xt", str(tmp_path / "sys"))
    os.makedirs(os.path.join(machine, "etc", "profile.d"))
    theirs = os.path.join(machine, "etc", "profile.d", "gemmconv.sh")
    with open(theirs, "w") as f:
        f.write("# an older hand-written file\n")
    before = tree_hash(machine)
    base = ["--scope", "system", "--root", machine, "--sysroot", sysroot, "--policy", "always"]
    assert install(base, home).returncode == 0
    assert "export HSA_OVERRIDE_GFX_VERSION=10.3.0\n" in open(theirs).read()
    assert open(os.path.join(machine, "etc", "gemmconv", "activate")).read().splitlines()[-1] == "always"
    assert os.path.isfile(os.path.join(machine, "etc", "environment.d", "gemmconv.conf"))
    site_dir = os.path.join(machine, fx.child_info()["purelib"].lstrip("/"))
    assert fx.installed_hook_dir(machine, "/etc/gemmconv") == site_dir
    assert os.path.isfile(os.path.join(site_dir, "gemmconv-activate.pth"))
    assert open(_u(machine, ".profile")).read() == "export PATH=$HOME/bin:$PATH"  # system scope leaves homes alone
    assert "already installed" in install(base, home).stdout
    assert install(["--scope", "system", "--root", machine, "--uninstall"], home).returncode == 0
    assert tree_hash(machine) == before


def test_reinstall_with_another_policy_then_uninstall(tmp_path, machine, home):
    sysroot = fx.make("rx5600xt", str(tmp_path / "sys"))
    before = tree_hash(machine)
    base = ["--root", machine, "--home", "/home/u", "--sysroot", sysroot]
    install(base, home)
    proc = install(base + ["--policy", "never"], home)
    assert "replace /home/u/.config/gemmconv/activate" in proc.stdout
    assert open(_u(machine, ".config", "gemmconv", "activate")).read().splitlines()[-1] == "never"
    # The machine changes: the override is no longer needed, so its files go.
    other = fx.make("rx6800", str(tmp_path / "sys2"))
    proc = install(["--root", machine, "--home", "/home/u", "--sysroot", other], home)
    assert "remove /home/u/.config/gemmconv/env.sh" in proc.stdout and "remove block from" in proc.stdout
    assert open(_u(machine, ".profile")).read() == "export PATH=$HOME/bin:$PATH"
    install(["--root", machine, "--home", "/home/u", "--uninstall"], home)
    assert tree_hash(machine) == before


def test_uninstall_keeps_files_edited_since(tmp_path, machine, home):
    sysroot = fx.make("rx5600xt", str(tmp_path / "sys"))
    install(["--root", machine, "--home", "/home/u", "--sysroot", sysroot], home)
    act = _u(machine, ".config", "gemmconv", "activate")
    with open(act, "a") as f:
        f.write("# my note\n")
    proc = install(["--root", machine, "--home", "/home/u", "--uninstall"], home)
    assert proc.returncode == 0 and "changed since it was installed" in proc.stdout
    assert os.path.exists(act) and not os.path.exists(_u(machine, ".config", "gemmconv", "env.sh"))


@pytest.mark.parametrize("venv", [False, True])
def test_scopes_and_their_site_dirs(monkeypatch, venv):
    from gemmconv.activation import installer as inst
    monkeypatch.setattr(sys, "prefix", sys.base_prefix + ("-venv" if venv else ""))
    # user scope is the user's, wherever install runs: a venv's files are the venv scope's.
    assert inst.make_target("user").site_dir == site.getusersitepackages()
    assert inst.make_target("user", home=os.path.expanduser("~")).site_dir == site.getusersitepackages()
    other = inst.make_target("user", root="/srv/img", home="/home/u").site_dir
    assert other.startswith("/home/u/.local/lib/python") and other.endswith("site-packages")
    v = inst.make_target("venv", venv="/srv/envs/a")
    assert v.config_dir == "/srv/envs/a/etc/gemmconv" and v.site_dir.startswith("/srv/envs/a/lib/python")
    if venv:
        here = inst.make_target("venv")
        assert here.venv == sys.prefix and here.site_dir == sysconfig.get_paths()["purelib"]


# ---- activation in fresh interpreters ----

FAKE_GEMMCONV = textwrap.dedent("""
    import os
    def enable(*args, **kwargs):
        if os.environ.get("FAKE_ENABLE_RAISES"):
            raise RuntimeError("no GPU for you")
        with open(os.environ["ENABLE_RECORD"], "a") as f:
            f.write("enable {!r}\\n".format(kwargs))
""")

# Runs first in every activation program. HOOK_DIR is where the install put gemmconv-activate.pth. An interpreter
# that reads the user site at start-up (a system python) must already have processed it there, as it does for real
# users; one that does not (a virtual environment without system site packages, whose own site-packages the hook
# would go to) is given the directory the way start-up gives it the site-packages it does read: site.addsitedir.
PRELUDE = textwrap.dedent("""
    import site, sys
    HOOK_DIR = {hook_dir!r}
    if {at_start!r}:
        if site.ENABLE_USER_SITE and site.getusersitepackages() == HOOK_DIR:
            assert HOOK_DIR in sys.path, "start-up did not read the user site " + HOOK_DIR
        else:
            site.addsitedir(HOOK_DIR)
""")

PROGRAM = textwrap.dedent("""
    {prelude}
    early = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gemmconv"))
    {body}
    late = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gemmconv"))
    print("EARLY", early)
    print("LATE", late)
""")


@pytest.fixture
def act(tmp_path, home):
    """An installed user-scope hook plus a fake torch and a recording gemmconv stand-in; returns a runner."""
    root = str(tmp_path / "actroot")
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(
        "import importlib, os\nVALUE = 42\n"
        # What torch >= 2.5 does at the end of its import: call the torch.backends entry point ("module:function").
        "if os.environ.get('FAKE_TORCH_AUTOLOAD'):\n"
        "    module, func = os.environ['FAKE_TORCH_AUTOLOAD'].split(':')\n"
        "    getattr(importlib.import_module(module), func)()\n")
    fx.stub_package(str(fake), FAKE_GEMMCONV)  # with an empty _C.py: "the compiled extension is built"
    sysroot = fx.make("rx5600xt", str(tmp_path / "sys"))

    def setup(policy="auto"):
        proc = install(["--root", root, "--home", "/home/u", "--sysroot", sysroot, "--policy", policy], home)
        assert proc.returncode == 0, proc.stderr

    def run(body="import torch\nassert torch.VALUE == 42", policy="auto", sysroot_name="rx5600xt", no_ext=False,
            hook_at_start=True, **env):
        setup(policy)
        hook_dir = fx.installed_hook_dir(root, "/home/u/.config/gemmconv")
        assert os.path.isfile(os.path.join(hook_dir, "gemmconv-activate.pth"))
        prelude = PRELUDE.format(hook_dir=hook_dir, at_start=hook_at_start)
        record = tmp_path / "record.txt"
        if record.exists():
            record.unlink()
        c_ext = fake / "gemmconv" / "_C.py"
        if no_ext and c_ext.exists():
            c_ext.unlink()
        elif not no_ext:
            c_ext.write_text("")
        machine = fx.make(sysroot_name, str(tmp_path / ("m_" + sysroot_name)))
        full_env = fx.clean_env(os.path.join(root, "home", "u"), [str(fake)], ENABLE_RECORD=str(record),
                                GEMMCONV_SYSROOT=machine, **env)
        full_env["PYTHONPATH"] = str(fake)  # the stand-in gemmconv links to this tree's modules
        proc = subprocess.run([fx.CHILD_PYTHON, "-c", PROGRAM.format(prelude=prelude, body=body)], cwd=home,
                              env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        enabled = record.read_text().splitlines() if record.exists() else []
        return proc, enabled

    return run


def test_always_enables_on_import_torch(act):
    proc, enabled = act(policy="always", sysroot_name="rx6800")
    assert enabled == ["enable {}"]
    assert proc.stderr == ""


def test_never_does_not_enable(act):
    proc, enabled = act(policy="never")
    assert enabled == [] and proc.stderr == ""


def test_auto_follows_the_verdict(act):
    assert act(policy="auto", sysroot_name="rx5600xt")[1] == ["enable {}"]
    assert act(policy="auto", sysroot_name="rx6800")[1] == []
    assert act(policy="auto", sysroot_name="nogpu")[1] == []


def test_environment_variable_beats_the_config_file(act):
    assert act(policy="never", GEMMCONV_ACTIVATE="always")[1] == ["enable {}"]
    assert act(policy="always", GEMMCONV_ACTIVATE="never")[1] == []


def test_program_without_torch_imports_neither(act):
    proc, enabled = act(body="import json, email.message", policy="always")
    assert enabled == []
    assert "EARLY []" in proc.stdout and "LATE []" in proc.stdout


def test_hook_leaves_torch_as_it_was(act):
    body = ("import importlib.machinery, torch\n"
            "assert type(torch.__loader__) is importlib.machinery.SourceFileLoader, torch.__loader__\n"
            "assert torch.__spec__.loader is torch.__loader__\n"
            "assert not any('gemmconv' in type(f).__name__.lower() for f in sys.meta_path)")
    proc, enabled = act(body=body, policy="always")
    assert enabled == ["enable {}"]
    assert "'torch'" in proc.stdout.splitlines()[-1] and "EARLY []" in proc.stdout


def _autoload_entry_point():
    """The torch.backends entry point pyproject.toml declares."""
    text = open(os.path.join(fx.REPO, "pyproject.toml"), encoding="utf-8").read()
    m = re.search(r'\[project\.entry-points\."torch\.backends"\]\s*\ngemmconv = "([^"]+)"', text)
    assert m, "pyproject.toml declares no torch.backends entry point for gemmconv"
    return m.group(1)


def test_autoload_and_hook_activate_once(act):
    proc, enabled = act(policy="always", FAKE_TORCH_AUTOLOAD=_autoload_entry_point())
    assert enabled == ["enable {}"]


def test_autoload_alone_activates(act):
    # No import hook on the path: the entry point by itself turns gemmconv on.
    proc, enabled = act(policy="always", hook_at_start=False, PYTHONNOUSERSITE="1",
                        FAKE_TORCH_AUTOLOAD=_autoload_entry_point())
    assert enabled == ["enable {}"]


def test_names_of_earlier_installs_still_activate(act):
    # Hooks and entry points that earlier installs wrote name the module gemmconv._activate.
    legacy_hook = "import torch\nfrom gemmconv import _activate\n_activate.on_torch_imported('pth')"
    proc, enabled = act(body=legacy_hook, policy="always", hook_at_start=False, PYTHONNOUSERSITE="1")
    assert enabled == ["enable {}"]
    proc, enabled = act(policy="always", hook_at_start=False, PYTHONNOUSERSITE="1",
                        FAKE_TORCH_AUTOLOAD="gemmconv._activate:autoload")
    assert enabled == ["enable {}"]


def test_torch_imported_before_the_hook(act, tmp_path):
    # The site dir is added after torch is already imported (as a late site.addsitedir would).
    body = "import torch, site\nsite.addsitedir(HOOK_DIR)"
    proc, enabled = act(body=body, policy="always", hook_at_start=False, PYTHONNOUSERSITE="1")
    assert enabled == ["enable {}"]
    assert "EARLY []" in proc.stdout


def test_missing_extension_tells_once_and_does_nothing(act):
    body = "import torch\nimport gemmconv.activation.activate as a\na.on_torch_imported('again')"
    proc, enabled = act(body=body, policy="always", no_ext=True)
    assert enabled == []
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "compiled extension gemmconv._C is not built" in lines[0]


def test_failing_enable_is_one_warning_line(act):
    proc, enabled = act(policy="always", FAKE_ENABLE_RAISES="1")
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "activation failed" in lines[0] and "no GPU for you" in lines[0]
    assert "LATE" in proc.stdout  # the program went on


def test_invalid_policy_warns_and_stays_off(act):
    proc, enabled = act(policy="always", GEMMCONV_ACTIVATE="sometimes")
    assert enabled == []
    assert len(proc.stderr.splitlines()) == 1 and "not one of" in proc.stderr


def test_device_types_from_the_environment(act):
    assert act(policy="always", GEMMCONV_ACTIVATE_DEVICES="cuda,cpu")[1] == [
        "enable {'device_types': ('cuda', 'cpu')}"]
