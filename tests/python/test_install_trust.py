"""The installer under failure (issue 9, defects 2-4): unprivileged runs against read-only targets, damaged
manifests, a marked block with no manifest, a ~/.profile that is not UTF-8, and one venv next to another."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

import sysfs_fixtures as fx
from test_install import tree_hash

NOBODY = 65534


def _can_drop_privileges():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    return subprocess.run(["setpriv", "--reuid={}".format(NOBODY), "--regid={}".format(NOBODY), "--clear-groups",
                           "true"]).returncode == 0


def install(args, home, as_nobody=False, **env):
    cmd = [fx.CHILD_PYTHON, "-m", "gemmconv", "install"] + list(args)
    if as_nobody:
        cmd = ["setpriv", "--reuid={}".format(NOBODY), "--regid={}".format(NOBODY), "--clear-groups"] + cmd
    return subprocess.run(cmd, cwd="/", env=fx.clean_env(home, **env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


@pytest.fixture
def world(tmp_path):
    """A target root any user can enter (pytest's own temporary directory is private to root), a home with a
    ~/.profile, and a captured RDNA1 machine, so that install has an override and a .profile block to write."""
    root = tempfile.mkdtemp(prefix="gemmconv-root-")
    os.chmod(root, 0o755)
    home = os.path.join(root, "home", "u")
    os.makedirs(os.path.join(home, ".config"))
    with open(os.path.join(home, ".profile"), "w") as f:
        f.write("export PATH=$HOME/bin:$PATH\n")
    sysroot = fx.make("rx5600xt", os.path.join(root, "..", os.path.basename(root) + "-sys"))
    yield root, home, os.path.abspath(sysroot)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(os.path.abspath(sysroot), ignore_errors=True)


def _base(world):
    root, home, sysroot = world
    return ["--scope", "user", "--root", root, "--home", "/home/u", "--sysroot", sysroot]


def _chown_tree(path, uid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)


def _user_site(home):
    return os.path.join(home, ".local", "lib", "python{}.{}".format(*fx.child_info()["version"]), "site-packages")


needs_setpriv = pytest.mark.skipif(not _can_drop_privileges(),
                                   reason="cannot drop privileges here (not root, or no setpriv)")


@needs_setpriv
def test_unprivileged_install_into_read_only_site_packages_changes_nothing(world):
    root, home, _ = world
    _chown_tree(home, NOBODY)
    site_dir = _user_site(home)
    os.makedirs(site_dir)
    os.chmod(site_dir, 0o555)  # owned by nobody, but read-only
    before = tree_hash(root)
    proc = install(_base(world), home, as_nobody=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "{}: no write permission on the directory {}".format(
        os.path.join(site_dir, "_gemmconv_hook.py"), site_dir) in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert tree_hash(root) == before
    # And uninstall has nothing to find, because nothing was written.
    gone = install(["--root", root, "--home", "/home/u", "--uninstall"], home, as_nobody=True)
    assert gone.returncode == 0 and "nothing to uninstall" in gone.stdout and "no manifest records" not in gone.stdout


@needs_setpriv
def test_unprivileged_install_with_a_profile_owned_by_root(world):
    root, home, _ = world
    _chown_tree(home, NOBODY)
    os.chown(os.path.join(home, ".profile"), 0, 0)
    os.chmod(os.path.join(home, ".profile"), 0o644)
    before = tree_hash(root)
    proc = install(_base(world), home, as_nobody=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "{}: no write permission on the file".format(os.path.join(home, ".profile")) in proc.stderr
    assert tree_hash(root) == before


@needs_setpriv
def test_unprivileged_system_install_names_the_directory(world):
    root, home, sysroot = world
    os.makedirs(os.path.join(root, "etc"))  # root-owned, 0755: nobody cannot create /etc/gemmconv in it
    before = tree_hash(root)
    proc = install(["--scope", "system", "--root", root, "--sysroot", sysroot], home, as_nobody=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no write permission on the directory {}".format(os.path.join(root, "etc")) in proc.stderr
    assert "system scope needs root" in proc.stderr
    assert tree_hash(root) == before


def test_a_write_that_fails_half_way_is_rolled_back(world, monkeypatch, capsys):
    """Past the permission check (a disk that fills, a file made read-only meanwhile): everything written so far,
    the manifest included, is put back."""
    from gemmconv.activation import installer as inst
    root, home, sysroot = world
    before = tree_hash(root)
    real_write = inst._Transaction.write
    calls = []

    def failing_write(self, host, text):
        calls.append(host)
        if host.endswith(".profile"):
            raise PermissionError(13, "Permission denied", host)
        real_write(self, host, text)

    monkeypatch.setattr(inst._Transaction, "write", failing_write)
    monkeypatch.setenv("HOME", home)
    assert inst.main(_base(world)) == 1
    err = capsys.readouterr().err
    assert "{}: permission denied".format(os.path.join(home, ".profile")) in err and "rolled back" in err
    assert len(calls) > 3  # the manifest and several files were written before the failure
    assert tree_hash(root) == before


BAD_MANIFESTS = {
    "files-is-a-list": b'{"files": []}',
    "string-entry": b'{"files": {"/home/u/x": "abc"}}',
    "block-without-text": b'{"blocks": {"/home/u/.profile": {"block": "x"}}}',
    "relative-path": b'{"dirs": ["etc"]}',
    "binary-junk": bytes(range(256)) * 4,
    "top-level-list": b"[1, 2]",
    "deep": b"[" * 100000 + b"]" * 100000,
}


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
def test_damaged_manifest_is_explained_never_a_traceback(world, name):
    root, home, _ = world
    assert install(_base(world), home).returncode == 0
    manifest = os.path.join(home, ".config", "gemmconv", "install-manifest.json")
    with open(manifest, "wb") as f:
        f.write(BAD_MANIFESTS[name])
    before = tree_hash(root)
    for args in (_base(world), ["--root", root, "--home", "/home/u", "--uninstall"]):
        proc = install(args, home)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr
        assert "{} cannot be trusted".format(manifest) in proc.stderr and "Nothing was changed" in proc.stderr
        assert tree_hash(root) == before


def test_lost_manifest_block_is_recognised_not_duplicated(world):
    root, home, _ = world
    original = open(os.path.join(home, ".profile"), "rb").read()
    assert install(_base(world), home).returncode == 0
    os.remove(os.path.join(home, ".config", "gemmconv", "install-manifest.json"))
    gone = install(["--root", root, "--home", "/home/u", "--uninstall"], home)
    assert "nothing to uninstall" in gone.stdout and "/home/u/.profile (marked block)" in gone.stdout
    again = install(_base(world), home)
    assert again.returncode == 0, again.stderr
    profile = open(os.path.join(home, ".profile")).read()
    assert profile.count("# >>> gemmconv >>>") == 1 and profile.count("# <<< gemmconv <<<") == 1
    assert install(["--root", root, "--home", "/home/u", "--uninstall"], home).returncode == 0
    assert open(os.path.join(home, ".profile"), "rb").read() == original


def test_profile_in_latin1_survives_install_and_uninstall(world):
    root, home, _ = world
    original = b"# Jos\xe9's settings\nexport NAME=Jos\xe9\n"
    with open(os.path.join(home, ".profile"), "wb") as f:
        f.write(original)
    proc = install(_base(world), home)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    after = open(os.path.join(home, ".profile"), "rb").read()
    assert after.startswith(original) and b"# >>> gemmconv >>>" in after
    assert "already installed" in install(_base(world), home).stdout
    assert install(["--root", root, "--home", "/home/u", "--uninstall"], home).returncode == 0
    assert open(os.path.join(home, ".profile"), "rb").read() == original


def _make_venv(root, name):
    prefix = os.path.join(root, "envs", name)
    os.makedirs(os.path.join(prefix, "bin"))
    with open(os.path.join(prefix, "pyvenv.cfg"), "w") as f:
        f.write("home = /usr/bin\ninclude-system-site-packages = false\n")
    with open(os.path.join(prefix, "bin", "activate"), "w") as f:
        f.write("# This file must be used with \"source bin/activate\"\nVIRTUAL_ENV=/envs/{}\n".format(name))
    return prefix


def test_each_venv_has_its_own_hook_manifest_and_policy(world):
    root, home, sysroot = world
    a, b = _make_venv(root, "a"), _make_venv(root, "b")
    before = tree_hash(root)

    def venv(name, *extra):
        return install(["--scope", "venv", "--venv", "/envs/" + name, "--root", root, "--sysroot", sysroot]
                       + list(extra), home)

    assert venv("a", "--policy", "always").returncode == 0
    after_a = {p: open(p, "rb").read() for p in _files(a)}
    assert os.path.join(a, "etc", "gemmconv", "activate") in after_a
    assert os.path.join(a, "etc", "gemmconv", "install-manifest.json") in after_a
    assert any(p.endswith("gemmconv-activate.pth") for p in after_a)
    assert b"# >>> gemmconv >>>" in after_a[os.path.join(a, "bin", "activate")]
    proc = venv("b", "--policy", "never")
    assert proc.returncode == 0, proc.stderr
    assert {p: open(p, "rb").read() for p in _files(a)} == after_a  # b's install left a alone
    assert open(os.path.join(b, "etc", "gemmconv", "activate")).read().splitlines()[-1] == "never"
    assert not os.path.exists(os.path.join(home, ".config", "gemmconv"))  # nor the user scope
    assert venv("b", "--uninstall").returncode == 0
    assert {p: open(p, "rb").read() for p in _files(a)} == after_a
    assert venv("a", "--uninstall").returncode == 0
    assert tree_hash(root) == before


def test_venv_scope_needs_a_venv(world):
    root, home, sysroot = world
    proc = install(["--scope", "venv", "--venv", "/nowhere", "--root", root, "--sysroot", sysroot], home)
    assert proc.returncode == 2 and "not a virtual environment" in proc.stderr


def _files(top):
    return sorted(os.path.join(d, n) for d, _, names in os.walk(top) for n in names)


def test_an_install_killed_half_way_is_undone_by_uninstall(world, monkeypatch, capsys):
    """The manifest of the plan is written first, so an install that dies part way (killed, power cut) leaves a
    record of every path it meant to write: uninstall removes what came, and keeps what it had not replaced yet."""
    from gemmconv.activation import installer as inst
    root, home, sysroot = world
    before = tree_hash(root)
    real_write = inst._Transaction.write

    def dying_write(self, host, text):
        if host.endswith(".profile"):
            raise KeyboardInterrupt  # not an OSError: no rollback, as when the process is killed
        real_write(self, host, text)

    monkeypatch.setattr(inst._Transaction, "write", dying_write)
    monkeypatch.setenv("HOME", home)
    with pytest.raises(KeyboardInterrupt):
        inst.main(_base(world))
    manifest = json.load(open(os.path.join(home, ".config", "gemmconv", "install-manifest.json")))
    assert manifest["complete"] is False and "/home/u/.profile" in manifest["blocks"]
    monkeypatch.setattr(inst._Transaction, "write", real_write)
    assert inst.main(["--root", root, "--home", "/home/u", "--uninstall"]) == 0
    assert "changed since" not in capsys.readouterr().out
    assert tree_hash(root) == before
