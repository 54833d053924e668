"""`python -m gemmconv install`: write, or remove, the files that activate gemmconv for the programs of one scope.

Files written (paths as the target machine sees them; with --root DIR each lies at DIR/<path>):
  system scope: /etc/gemmconv/activate, /etc/profile.d/gemmconv.sh and /etc/environment.d/gemmconv.conf (only
                when an override is needed), <interpreter purelib>/gemmconv-activate.pth + _gemmconv_hook.py,
                /etc/gemmconv/install-manifest.json
  user scope:   ~/.config/gemmconv/activate, ~/.config/gemmconv/env.sh, ~/.config/environment.d/gemmconv.conf and
                a marked block in ~/.profile that sources env.sh (the last three only when an override is needed),
                <user site-packages>/gemmconv-activate.pth + _gemmconv_hook.py, ~/.config/gemmconv/install-manifest.json
  venv scope:   <venv>/etc/gemmconv/activate, <venv>/etc/gemmconv/env.sh and a marked block in <venv>/bin/activate
                that sources it (only when an override is needed), <venv's site-packages>/gemmconv-activate.pth +
                _gemmconv_hook.py, <venv>/etc/gemmconv/install-manifest.json
The manifest lists every file written (with the content it replaced, if any), every block appended and every
directory created, so that --uninstall removes exactly that. Each scope (and each venv) has its own manifest, so
installing one never touches another. Kernel, driver, udev and services are never touched.

Transactions: install (and uninstall) first checks that every path it will write is writable, then writes the
manifest of the planned state (marked incomplete), then applies the changes one by one; if one fails, everything
already written is put back as it was, and the command exits 1 naming the path and the permission it lacked.
Files are read and written as bytes (undecodable bytes survive unchanged), so a ~/.profile in latin-1 is safe.
"""

import argparse
import hashlib
import json
import os
import site
import sys
import sysconfig
import errno
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .policy import POLICIES, SYSTEM_CONFIG, user_config_dir
from ..diagnosis.sysfs import under

PTH_NAME = "gemmconv-activate.pth"
HOOK_NAME = "_gemmconv_hook.py"
MANIFEST_NAME = "install-manifest.json"
BLOCK_BEGIN = "# >>> gemmconv >>>"
BLOCK_END = "# <<< gemmconv <<<"
SCOPES = ("user", "system", "venv")
MANIFEST_FORMAT = 2
HEADER = "Written by `python -m gemmconv install`; `python -m gemmconv install --uninstall` removes it."


@dataclass
class Target:
    root: str
    scope: str
    home: str
    config_dir: str  # gemmconv's own config directory, as the target machine sees it
    site_dir: str
    venv: str = ""  # venv scope: the environment's prefix

    def host(self, path: str) -> str:
        return under(self.root, path)


@dataclass
class Plan:
    files: Dict[str, str] = field(default_factory=dict)
    blocks: Dict[str, str] = field(default_factory=dict)
    env: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


@dataclass
class Change:
    action: str
    path: str
    content: Optional[str] = None


def _sha(text: str) -> str:
    """Of the bytes as they are on disk, undecodable ones included."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _read(path: str) -> Optional[str]:
    """The file's text, with bytes that are not UTF-8 kept as surrogate escapes (written back unchanged)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def _user_site(home: str, home_given: bool) -> str:
    """The user site-packages a system interpreter of this Python version reads for the user with this home."""
    real_home = os.path.expanduser("~")
    user_site = site.getusersitepackages()
    if not home_given or os.path.realpath(home) == os.path.realpath(real_home):
        return user_site
    if user_site.startswith(real_home + os.sep):
        return home + user_site[len(real_home):]
    return os.path.join(home, ".local", "lib", "python{}.{}".format(*sys.version_info[:2]), "site-packages")


def in_venv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def venv_site_dir(prefix: str) -> str:
    if os.path.realpath(prefix) == os.path.realpath(sys.prefix) and in_venv():
        return sysconfig.get_paths()["purelib"]
    return os.path.join(prefix, "lib", "python{}.{}".format(*sys.version_info[:2]), "site-packages")


def make_target(scope: str, root: str = "/", home: Optional[str] = None, venv: Optional[str] = None) -> Target:
    root = os.path.abspath(root)
    if scope == "system":
        return Target(root, scope, "", os.path.dirname(SYSTEM_CONFIG), sysconfig.get_paths()["purelib"])
    if scope == "venv":
        prefix = os.path.abspath(venv or sys.prefix)
        return Target(root, scope, "", os.path.join(prefix, "etc", "gemmconv"), venv_site_dir(prefix), prefix)
    home_given = home is not None
    home = os.path.abspath(home if home_given else os.path.expanduser("~"))
    if home_given:
        config_dir = os.path.join(home, ".config", "gemmconv")
    else:
        config_dir = user_config_dir()
    return Target(root, scope, home, config_dir, _user_site(home, home_given))


def _hook_source() -> str:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pth_hook.py"), encoding="utf-8") as f:
        return f.read()


def _env_comment(report: Any) -> List[str]:
    from ..diagnosis.families import arch_from_override
    lines = []
    for gpu in report.amd_gpus:
        if gpu.flagged and gpu.override_needed and gpu.recommended_override:
            whose = "the installed PyTorch has" if gpu.torch_has_arch is False else "stock PyTorch ROCm wheels have"
            lines.append("{} at {} (KFD node {}) runs {} code: {} no {} code.".format(
                gpu.physical_arch, gpu.pci_address or "?", gpu.kfd_node,
                arch_from_override(gpu.recommended_override), whose, gpu.physical_arch))
    return lines


def _block(env_sh: str) -> str:
    return ("{} (python -m gemmconv install; undo with --uninstall)\n"
            "[ -r \"{}\" ] && . \"{}\"\n{}\n".format(BLOCK_BEGIN, env_sh, env_sh, BLOCK_END))


def build_plan(target: Target, policy: str, report: Any) -> Plan:
    from ..diagnosis.detect import plan_overrides
    # Only GPUs whose vendor library is broken get an override from us; the doctor advises on the others.
    plan = Plan(env=plan_overrides(report, flagged_only=True)[0])
    cfg = target.config_dir
    plan.files[os.path.join(cfg, "activate")] = (
        "# gemmconv activation policy: auto, always or never. GEMMCONV_ACTIVATE overrides it.\n"
        "# {}\n{}\n".format(HEADER, policy))
    plan.files[os.path.join(target.site_dir, HOOK_NAME)] = _hook_source()
    plan.files[os.path.join(target.site_dir, PTH_NAME)] = "import _gemmconv_hook; _gemmconv_hook.install()\n"
    if plan.env:
        why = "".join("# {}\n".format(line) for line in _env_comment(report))
        sh = "# {}\n{}".format(HEADER, why) + "".join(
            "export {}={}\n".format(k, v) for k, v in sorted(plan.env.items()))
        conf = "# {}\n{}".format(HEADER, why) + "".join("{}={}\n".format(k, v) for k, v in sorted(plan.env.items()))
        if target.scope == "system":
            plan.files["/etc/profile.d/gemmconv.sh"] = sh
            plan.files["/etc/environment.d/gemmconv.conf"] = conf
        elif target.scope == "venv":
            # The environment's own activate script sources it: the override reaches shells that activate it.
            env_sh = os.path.join(cfg, "env.sh")
            plan.files[env_sh] = sh
            plan.blocks[os.path.join(target.venv, "bin", "activate")] = _block(env_sh)
        else:
            env_sh = os.path.join(cfg, "env.sh")
            plan.files[env_sh] = sh
            plan.files[os.path.join(os.path.dirname(cfg), "environment.d", "gemmconv.conf")] = conf
            # environment.d reaches the systemd user manager and desktop sessions, not login shells on a tty or
            # over ssh: those read ~/.profile.
            plan.blocks[os.path.join(target.home, ".profile")] = _block(env_sh)
            for other in (".bash_profile", ".bash_login"):
                if os.path.exists(target.host(os.path.join(target.home, other))):
                    plan.notes.append("~/{} exists, so bash login shells skip ~/.profile: add `. {}` to it "
                                      "yourself.".format(other, env_sh))
    return plan


def _manifest_path(target: Target) -> str:
    return os.path.join(target.config_dir, MANIFEST_NAME)


class InstallError(Exception):
    """A failure install or uninstall explains in one message; the tree is as it was before the command."""


def check_manifest(data: Any) -> Optional[str]:
    """What is wrong with a parsed manifest, or None when install and uninstall can trust it."""
    if not isinstance(data, dict):
        return "the top level is {}, not an object".format(type(data).__name__)

    def paths_of(key: str, kind: type) -> Optional[str]:
        value = data.get(key, kind())
        if not isinstance(value, kind):
            return "{!r} is {}, not {}".format(key, type(value).__name__, "an object" if kind is dict else "a list")
        for item in (value if kind is list else value.keys()):
            if not isinstance(item, str) or not item.startswith("/") or "\0" in item:
                return "{!r} holds {!r}, not an absolute path".format(key, item)
        return None

    for key, kind in (("files", dict), ("blocks", dict), ("dirs", list)):
        problem = paths_of(key, kind)
        if problem:
            return problem
    for path, info in data.get("files", {}).items():
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            return "files[{!r}] is {!r}, not an object with a sha256 string".format(path, info)
        if info.get("original") is not None and not isinstance(info["original"], str):
            return "files[{!r}].original is {}, not text".format(path, type(info["original"]).__name__)
    for path, info in data.get("blocks", {}).items():
        if not isinstance(info, dict):
            return "blocks[{!r}] is {!r}, not an object".format(path, info)
        for key in ("block", "text"):
            if not isinstance(info.get(key), str) or not info.get(key):
                return "blocks[{!r}] has no {!r} text".format(path, key)
        if not isinstance(info.get("created_file", False), bool):
            return "blocks[{!r}].created_file is not true or false".format(path)
    for key in ("scope", "policy"):
        if key in data and not isinstance(data[key], str):
            return "{!r} is {}, not text".format(key, type(data[key]).__name__)
    return None


def load_manifest(target: Target) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(manifest, None); (None, None) when there is none; (None, what is wrong) when it cannot be trusted."""
    host = target.host(_manifest_path(target))
    if not os.path.lexists(host):
        return None, None
    try:
        st = os.stat(host)
        if not stat.S_ISREG(st.st_mode):
            return None, "it is not a regular file"
        if st.st_size > (64 << 20):
            return None, "it is {} bytes long".format(st.st_size)
        with open(host, "rb") as f:
            raw = f.read()
    except OSError as exc:
        return None, "it cannot be read ({})".format(exc.strerror or exc)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, "it is not JSON ({})".format(str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
    problem = check_manifest(data)
    return (None, problem) if problem else (data, None)


def _marked_block(text: str) -> Optional[str]:
    """The last block between gemmconv's markers in `text` (markers and final newline included), if any."""
    end = text.rfind(BLOCK_END)
    if end < 0:
        return None
    begin = text.rfind(BLOCK_BEGIN, 0, end)
    if begin < 0 or (begin > 0 and text[begin - 1] != "\n"):
        return None
    stop = end + len(BLOCK_END)
    if text[stop:stop + 1] == "\n":
        stop += 1
    return text[begin:stop]


def _missing_dirs(target: Target, path: str) -> List[str]:
    """The directories above `path` that do not exist yet, outermost first."""
    out = []
    d = os.path.dirname(path)
    while d not in ("/", "") and not os.path.isdir(target.host(d)):
        out.append(d)
        d = os.path.dirname(d)
    return list(reversed(out))


def _strip_block(text: str, block: str) -> str:
    i = text.rfind(block)
    return text if i < 0 else text[:i] + text[i + len(block):]


def plan_changes(target: Target, plan: Plan, policy: str,
                 old: Optional[Dict[str, Any]]) -> Tuple[List[Change], Dict[str, Any]]:
    """The changes that turn the tree into the planned state, and the manifest that describes that state."""
    old = old or {}
    old_files = old.get("files", {})  # type: Dict[str, Any]
    old_blocks = old.get("blocks", {})  # type: Dict[str, Any]
    changes = []  # type: List[Change]
    files = {}  # type: Dict[str, Any]
    blocks = {}  # type: Dict[str, Any]
    dirs = [d for d in old.get("dirs", []) if os.path.isdir(target.host(d))]
    manifest_path = _manifest_path(target)
    for path, content in sorted(plan.files.items()) + [(manifest_path, None)]:
        for d in _missing_dirs(target, path):
            if d not in dirs:
                dirs.append(d)
        if content is None:
            continue
        current = _read(target.host(path))
        entry = {"sha256": _sha(content)}
        if path in old_files:
            original = old_files[path].get("original")
        else:
            original = current if current != content else None  # not ours: put it back on uninstall
        if original is not None:
            entry["original"] = original
        files[path] = entry
        if current != content:
            changes.append(Change("create" if current is None else "replace", path, content))
    for path, info in sorted(old_files.items()):
        if path not in files and path != manifest_path:
            changes.append(Change("restore" if info.get("original") is not None else "remove", path,
                                  info.get("original")))
    for path, block in sorted(plan.blocks.items()):
        current = _read(target.host(path))
        prev = old_blocks.get(path)
        text = current or ""
        if prev and prev["text"] in text:
            if prev["block"] == block:
                blocks[path] = prev
                continue
            changes.append(Change("remove-block", path, prev["text"]))
            text = _strip_block(text, prev["text"])
        else:
            found = _marked_block(text)  # a block whose manifest entry is lost (or was edited): ours, by its marks
            if found is not None and found == block:
                blocks[path] = {"block": block, "text": found, "created_file": False}
                continue
            if found is not None:
                changes.append(Change("remove-block", path, found))
                text = _strip_block(text, found)
        appended = ("\n" if text and not text.endswith("\n") else "") + block
        blocks[path] = {"block": block, "text": appended,
                        "created_file": prev["created_file"] if prev else current is None}
        changes.append(Change("append-block", path, appended))
    for path, prev in sorted(old_blocks.items()):
        if path not in plan.blocks:
            changes.append(Change("remove-block", path, prev["text"]))
    manifest = {"format": 1, "complete": True, "scope": target.scope, "policy": policy, "env": plan.env, "files": files,
                "blocks": blocks, "dirs": dirs}
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    current = _read(target.host(manifest_path))
    if current != text:
        changes.append(Change("create" if current is None else "replace", manifest_path, text))
    return changes, manifest


def plan_uninstall(target: Target, manifest: Dict[str, Any]) -> Tuple[List[Change], List[str]]:
    changes, warnings = [], []  # type: List[Change], List[str]
    interrupted = manifest.get("complete") is False  # an install that stopped part way: some files never came
    for path, info in sorted(manifest.get("files", {}).items()):
        current = _read(target.host(path))
        if current is None:
            continue
        if _sha(current) != info.get("sha256"):
            if interrupted:
                continue
            warnings.append("{} changed since it was installed; left in place.".format(path))
            continue
        original = info.get("original")
        changes.append(Change("restore" if original is not None else "remove", path, original))
    for path, info in sorted(manifest.get("blocks", {}).items()):
        current = _read(target.host(path))
        if current is None or info["text"] not in current:
            if current is not None and not interrupted:
                warnings.append("the gemmconv block in {} was edited; remove it by hand.".format(path))
            continue
        changes.append(Change("remove-block", path, info["text"]))
    changes.append(Change("remove", _manifest_path(target)))
    return changes, warnings


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _permission_problem(host: str, removing: bool = False) -> Optional[str]:
    """Why this process could not create, replace or remove `host`; None when it can."""
    if os.path.lexists(host) and not removing:
        if os.path.isdir(host) and not os.path.islink(host):
            return "{} is a directory".format(host)
        if not os.access(host, os.W_OK):
            return "{}: no write permission on the file".format(host)
        return None
    d = os.path.dirname(host)
    while not os.path.isdir(d):
        if os.path.lexists(d):
            return "{}: {} is not a directory".format(host, d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    if not os.access(d, os.W_OK | os.X_OK):
        return "{}: no write permission on the directory {}".format(host, d)
    return None


def preflight(target: Target, changes: List[Change]) -> List[str]:
    """Every path among `changes` that this process cannot write, with the permission it lacks."""
    problems = []
    for ch in changes:
        problem = _permission_problem(target.host(ch.path), removing=ch.action == "remove")
        if problem and problem not in problems:
            problems.append(problem)
    return problems


def _describe(exc: OSError) -> str:
    path = exc.filename or "?"
    if exc.errno in (errno.EACCES, errno.EPERM):
        what = "the file" if os.path.lexists(path) else "the directory " + os.path.dirname(path)
        return "{}: permission denied (no write permission on {})".format(path, what)
    if exc.errno == errno.EROFS:
        return "{}: read-only file system".format(path)
    return "{}: {}".format(path, exc.strerror or exc)


class _Transaction:
    """Writes that can be undone: the first time a path is touched, its bytes (or absence) are kept."""

    def __init__(self) -> None:
        self.saved = []  # type: List[Tuple[str, Optional[bytes]]]
        self.seen = set()  # type: set
        self.made_dirs = []  # type: List[str]

    def _keep(self, host: str) -> None:
        if host in self.seen:
            return
        self.seen.add(host)
        if os.path.lexists(host):
            with open(host, "rb") as f:
                self.saved.append((host, f.read()))
        else:
            self.saved.append((host, None))

    def _makedirs(self, d: str) -> None:
        missing = []
        while not os.path.isdir(d):
            missing.append(d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        for m in reversed(missing):
            os.mkdir(m)
            self.made_dirs.append(m)

    def write(self, host: str, text: str) -> None:
        self._keep(host)
        self._makedirs(os.path.dirname(host))
        with open(host, "wb") as f:
            f.write(_encode(text))

    def remove(self, host: str) -> None:
        if os.path.lexists(host):
            self._keep(host)
            os.remove(host)

    def rollback(self) -> List[str]:
        """Puts every touched path back; returns what could not be put back."""
        failed = []
        for host, data in reversed(self.saved):
            try:
                if data is None:
                    if os.path.lexists(host):
                        os.remove(host)
                else:
                    with open(host, "wb") as f:
                        f.write(data)
            except OSError as exc:
                failed.append(_describe(exc))
        for d in reversed(self.made_dirs):
            try:
                os.rmdir(d)
            except OSError:
                failed.append("{}: directory not removed".format(d))
        return failed


def _apply_one(tx: _Transaction, target: Target, ch: Change, manifest: Optional[Dict[str, Any]]) -> None:
    host = target.host(ch.path)
    if ch.action in ("create", "replace", "restore"):
        tx.write(host, ch.content or "")
    elif ch.action == "remove":
        tx.remove(host)
    elif ch.action == "append-block":
        tx.write(host, (_read(host) or "") + (ch.content or ""))
    elif ch.action == "remove-block":
        text = _strip_block(_read(host) or "", ch.content or "")
        info = (manifest or {}).get("blocks", {}).get(ch.path, {})
        if text == "" and info.get("created_file"):
            tx.remove(host)
        else:
            tx.write(host, text)


def apply(target: Target, changes: List[Change], manifest: Optional[Dict[str, Any]],
          pending: Optional[str] = None, final: Optional[str] = None) -> None:
    """Applies `changes` all or nothing. `pending` (install): the manifest text written before anything else, so
    that an interrupted install leaves a record of every path it meant to write. Raises InstallError, after
    putting everything back, when a change fails."""
    tx = _Transaction()
    done = 0
    try:
        if pending is not None:
            tx.write(target.host(_manifest_path(target)), pending)
        for ch in changes:
            _apply_one(tx, target, ch, manifest)
            done += 1
        if final is not None:
            tx.write(target.host(_manifest_path(target)), final)
    except OSError as exc:
        left = tx.rollback()
        raise InstallError("{}; {}".format(
            _describe(exc), "rolled back: nothing was changed" if not left else
            "could not put back: " + "; ".join(left))) from None


def _remove_dirs(target: Target, dirs: List[str]) -> None:
    for d in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(target.host(d))
        except OSError:
            pass  # not empty: something else lives there now


_VERBS = {"create": "create", "replace": "replace", "remove": "remove", "restore": "restore",
          "append-block": "append to", "remove-block": "remove block from"}


def _show(changes: List[Change], dry_run: bool, out: Any) -> None:
    for ch in changes:
        verb = _VERBS[ch.action]
        out.write("  {}{} {}\n".format("would " if dry_run else "", verb, ch.path))
        if not dry_run or ch.content is None or ch.action == "remove-block":
            continue
        if ch.path.endswith(".py"):
            out.write("      | (gemmconv's import hook, {} lines)\n".format(len(ch.content.splitlines())))
            continue
        for line in ch.content.splitlines():
            out.write("      | {}\n".format(line))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gemmconv install",
                                description="Activate gemmconv for the programs of one scope that import torch.")
    p.add_argument("--scope", choices=SCOPES, default=None,
                   help="user: your programs run by the system Python (and venvs that read the user site); "
                        "venv: the programs of one virtual environment; system: every user's programs run by this "
                        "Python. Default: venv inside a virtual environment, else user")
    p.add_argument("--venv", default=None, help="venv scope: the environment's directory (default: the active one)")
    p.add_argument("--policy", choices=POLICIES, default="auto",
                   help="auto: only where the vendor convolution library is known broken (default)")
    p.add_argument("--dry-run", action="store_true", help="show every change, touch nothing")
    p.add_argument("--uninstall", action="store_true", help="remove exactly what install wrote")
    p.add_argument("--root", default="/", help="install into this tree (for packaging and tests)")
    p.add_argument("--home", default=None,
                   help="user scope: the home directory as the target sees it (default: $HOME)")
    p.add_argument("--sysroot", default=None, help="detect GPUs in this captured tree instead of the machine")
    p.add_argument("--no-runtime", action="store_true", help="do not ask torch which archs it carries")
    return p


def _detect(args: argparse.Namespace) -> Any:
    from ..diagnosis.detect import detect, probe_runtime_isolated
    sysroot = args.sysroot or os.environ.get("GEMMCONV_SYSROOT") or "/"
    runtime = None
    if os.path.abspath(sysroot) == "/" and not args.no_runtime:
        runtime = probe_runtime_isolated(timeout=60.0)
        if runtime.torch_version is None or runtime.error:
            runtime = None  # decide from the family table alone
    return detect(sysroot, runtime=runtime)


def _traces(target: Target) -> List[str]:
    """gemmconv's files and marked blocks present in this scope although no manifest records them."""
    found = [p for p in (os.path.join(target.site_dir, PTH_NAME), os.path.join(target.site_dir, HOOK_NAME),
                         os.path.join(target.config_dir, "activate"), os.path.join(target.config_dir, "env.sh"))
             if os.path.lexists(target.host(p))]
    for rc in ([os.path.join(target.home, ".profile")] if target.scope == "user" else
               [os.path.join(target.venv, "bin", "activate")] if target.scope == "venv" else []):
        if _marked_block(_read(target.host(rc)) or "") is not None:
            found.append(rc + " (marked block)")
    return found


def _scope_of(args: argparse.Namespace) -> str:
    if args.scope:
        return args.scope
    return "venv" if (args.venv or (in_venv() and os.path.abspath(args.root) == "/")) else "user"


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    args.scope = _scope_of(args)
    if args.scope != "user" and args.home:
        _parser().error("--home applies to --scope user only")
    if args.venv and args.scope != "venv":
        _parser().error("--venv applies to --scope venv only")
    if args.scope == "venv":
        prefix = os.path.abspath(args.venv or sys.prefix)
        if not args.venv and not in_venv():
            _parser().error("--scope venv: no virtual environment is active (activate one, or give --venv DIR)")
        if not os.path.isfile(under(os.path.abspath(args.root), os.path.join(prefix, "pyvenv.cfg"))):
            _parser().error("--venv {}: not a virtual environment (no pyvenv.cfg)".format(prefix))
    target = make_target(args.scope, args.root, args.home, args.venv)
    out = sys.stdout
    old, damaged = load_manifest(target)
    where = "" if target.root == "/" else ", into {}".format(target.root)
    label = args.scope + " scope" + (" " + target.venv if target.venv else "")
    if damaged:
        host = target.host(_manifest_path(target))
        sys.stderr.write(
            "gemmconv: the install manifest {} cannot be trusted: {}. Nothing was changed. What an earlier install "
            "wrote is unknown, so neither install nor --uninstall acts on it. Move it aside (mv {} {}.bad) and run "
            "install again: it recognises its own files and marked blocks; --uninstall then removes them.\n".format(
                host, damaged, host, host))
        return 1
    if args.uninstall:
        if old is None:
            out.write("gemmconv: nothing to uninstall ({}{}: no manifest at {}).\n".format(
                label, where, _manifest_path(target)))
            traces = _traces(target)
            if traces:
                out.write("  note: gemmconv files that no manifest records: {}. Run install, then --uninstall, to "
                          "remove them.\n".format(", ".join(traces)))
            return 0
        changes, warnings = plan_uninstall(target, old)
        out.write("gemmconv uninstall ({}{}):\n".format(label, where))
        _show(changes, args.dry_run, out)
        for w in warnings:
            out.write("  note: {}\n".format(w))
        if not args.dry_run:
            problems = preflight(target, changes)
            if problems:
                sys.stderr.write("gemmconv: uninstall failed, nothing was changed:\n" + "".join(
                    "  {}\n".format(p) for p in problems))
                return 1
            try:
                apply(target, changes, old)
                _remove_dirs(target, old.get("dirs", []))
            except InstallError as exc:
                sys.stderr.write("gemmconv: uninstall failed: {}\n".format(exc))
                return 1
        return 0
    report = _detect(args)
    plan = build_plan(target, args.policy, report)
    changes, manifest = plan_changes(target, plan, args.policy, old)
    out.write("gemmconv install ({}, policy {}{}):\n".format(label, args.policy, where))
    if args.scope == "user" and target.root == "/" and not args.home and in_venv() and not site.ENABLE_USER_SITE:
        out.write("  note: this virtual environment does not read the user site-packages, so user scope does not "
                  "reach it; run install with --scope venv from it.\n")
    if plan.env:
        out.write("  environment: {}\n".format(" ".join("{}={}".format(k, v) for k, v in sorted(plan.env.items()))))
    else:
        out.write("  environment: no override needed\n")
    if report.recommended_env and report.recommended_env != plan.env:
        out.write("  note: the doctor also recommends {} for GPUs gemmconv does not cover; set it yourself if you "
                  "need it.\n".format(" ".join("{}={}".format(k, v) for k, v in sorted(report.recommended_env.items()))))
    if args.policy == "auto" and not report.vendor_conv_broken:
        out.write("  note: no GPU here has a broken vendor convolution library, so `auto` leaves gemmconv off.\n")
    for problem in report.problems():
        out.write("  problem found: {}\n".format(problem))
    if not changes:
        out.write("  already installed: nothing to change.\n")
        return 0
    _show(changes, args.dry_run, out)
    for n in plan.notes:
        out.write("  note: {}\n".format(n))
    if args.dry_run:
        out.write("  dry run: nothing was changed.\n")
        return 0
    hint = " (system scope needs root)" if args.scope == "system" else ""
    problems = preflight(target, changes)
    if problems:
        sys.stderr.write("gemmconv: install failed, nothing was changed{}:\n".format(hint) + "".join(
            "  {}\n".format(p) for p in problems))
        return 1
    final = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    pending = json.dumps(dict(manifest, complete=False), indent=2, sort_keys=True) + "\n"
    try:
        apply(target, changes, old, pending=pending, final=final)
    except InstallError as exc:
        sys.stderr.write("gemmconv: install failed: {}{}\n".format(exc, hint))
        return 1
    out.write("  done: {} change(s).".format(len(changes)))
    if plan.env:
        out.write(" Log out and back in (or source the environment file) for the override to take effect.")
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
