"""`python -m gemmconv install`: write, or remove, the files that activate gemmconv for every program.

Files written (paths as the target machine sees them; with --root DIR each lies at DIR/<path>):
  system scope: /etc/gemmconv/activate, /etc/profile.d/gemmconv.sh and /etc/environment.d/gemmconv.conf (only
                when an override is needed), <interpreter purelib>/gemmconv-activate.pth + _gemmconv_hook.py,
                /etc/gemmconv/install-manifest.json
  user scope:   ~/.config/gemmconv/activate, ~/.config/gemmconv/env.sh, ~/.config/environment.d/gemmconv.conf and
                a marked block in ~/.profile that sources env.sh (the last three only when an override is needed),
                <user site-packages>/gemmconv-activate.pth + _gemmconv_hook.py, ~/.config/gemmconv/install-manifest.json
The manifest lists every file written (with the content it replaced, if any), every block appended and every
directory created, so that --uninstall removes exactly that. Kernel, driver, udev and services are never touched.
"""

import argparse
import hashlib
import json
import os
import site
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .policy import POLICIES, SYSTEM_CONFIG, user_config_dir
from ..diagnosis.sysfs import under

PTH_NAME = "gemmconv-activate.pth"
HOOK_NAME = "_gemmconv_hook.py"
MANIFEST_NAME = "install-manifest.json"
BLOCK_BEGIN = "# >>> gemmconv >>>"
BLOCK_END = "# <<< gemmconv <<<"
HEADER = "Written by `python -m gemmconv install`; `python -m gemmconv install --uninstall` removes it."


@dataclass
class Target:
    root: str
    scope: str
    home: str
    config_dir: str  # gemmconv's own config directory, as the target machine sees it
    site_dir: str

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
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="utf-8", newline="") as f:
            return f.read()
    except OSError:
        return None


def _user_site(home: str, home_given: bool, root: str) -> str:
    real_home = os.path.expanduser("~")
    user_site = site.getusersitepackages()
    own_home = not home_given or os.path.realpath(home) == os.path.realpath(real_home)
    if own_home and root == "/" and sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        # A venv does not read the user site; the venv belongs to the user, so the hook goes there. `--home ~` is
        # the same request as no --home.
        return sysconfig.get_paths()["purelib"]
    if not home_given:
        return user_site
    if user_site.startswith(real_home + os.sep):
        return home + user_site[len(real_home):]
    return os.path.join(home, ".local", "lib", "python{}.{}".format(*sys.version_info[:2]), "site-packages")


def make_target(scope: str, root: str = "/", home: Optional[str] = None) -> Target:
    root = os.path.abspath(root)
    if scope == "system":
        return Target(root, scope, "", os.path.dirname(SYSTEM_CONFIG), sysconfig.get_paths()["purelib"])
    home_given = home is not None
    home = os.path.abspath(home if home_given else os.path.expanduser("~"))
    if home_given:
        config_dir = os.path.join(home, ".config", "gemmconv")
    else:
        config_dir = user_config_dir()
    return Target(root, scope, home, config_dir, _user_site(home, home_given, root))


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
        else:
            env_sh = os.path.join(cfg, "env.sh")
            plan.files[env_sh] = sh
            plan.files[os.path.join(os.path.dirname(cfg), "environment.d", "gemmconv.conf")] = conf
            # environment.d reaches the systemd user manager and desktop sessions, not login shells on a tty or
            # over ssh: those read ~/.profile.
            plan.blocks[os.path.join(target.home, ".profile")] = (
                "{} (python -m gemmconv install; undo with --uninstall)\n"
                "[ -r \"{}\" ] && . \"{}\"\n{}\n".format(BLOCK_BEGIN, env_sh, env_sh, BLOCK_END))
            for other in (".bash_profile", ".bash_login"):
                if os.path.exists(target.host(os.path.join(target.home, other))):
                    plan.notes.append("~/{} exists, so bash login shells skip ~/.profile: add `. {}` to it "
                                      "yourself.".format(other, env_sh))
    return plan


def _manifest_path(target: Target) -> str:
    return os.path.join(target.config_dir, MANIFEST_NAME)


def load_manifest(target: Target) -> Optional[Dict[str, Any]]:
    text = _read(target.host(_manifest_path(target)))
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


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
        appended = ("\n" if text and not text.endswith("\n") else "") + block
        blocks[path] = {"block": block, "text": appended,
                        "created_file": prev["created_file"] if prev else current is None}
        changes.append(Change("append-block", path, appended))
    for path, prev in sorted(old_blocks.items()):
        if path not in plan.blocks:
            changes.append(Change("remove-block", path, prev["text"]))
    manifest = {"format": 1, "scope": target.scope, "policy": policy, "env": plan.env, "files": files,
                "blocks": blocks, "dirs": dirs}
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    current = _read(target.host(manifest_path))
    if current != text:
        changes.append(Change("create" if current is None else "replace", manifest_path, text))
    return changes, manifest


def plan_uninstall(target: Target, manifest: Dict[str, Any]) -> Tuple[List[Change], List[str]]:
    changes, warnings = [], []  # type: List[Change], List[str]
    for path, info in sorted(manifest.get("files", {}).items()):
        current = _read(target.host(path))
        if current is None:
            continue
        if _sha(current) != info.get("sha256"):
            warnings.append("{} changed since it was installed; left in place.".format(path))
            continue
        original = info.get("original")
        changes.append(Change("restore" if original is not None else "remove", path, original))
    for path, info in sorted(manifest.get("blocks", {}).items()):
        current = _read(target.host(path))
        if current is None or info["text"] not in current:
            if current is not None:
                warnings.append("the gemmconv block in {} was edited; remove it by hand.".format(path))
            continue
        changes.append(Change("remove-block", path, info["text"]))
    changes.append(Change("remove", _manifest_path(target)))
    return changes, warnings


def _write(path: str, content: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(content)


def apply(target: Target, changes: List[Change], manifest: Optional[Dict[str, Any]]) -> None:
    for ch in changes:
        host = target.host(ch.path)
        if ch.action in ("create", "replace", "restore"):
            _write(host, ch.content or "")
        elif ch.action == "remove":
            if os.path.lexists(host):
                os.remove(host)
        elif ch.action == "append-block":
            _write(host, (_read(host) or "") + (ch.content or ""))
        elif ch.action == "remove-block":
            text = _strip_block(_read(host) or "", ch.content or "")
            info = (manifest or {}).get("blocks", {}).get(ch.path, {})
            if text == "" and info.get("created_file"):
                os.remove(host)
            else:
                _write(host, text)


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
    from .._cli import HelpFormatter, add_version
    p = argparse.ArgumentParser(prog="gemmconv install", formatter_class=HelpFormatter,
                                description="Activate gemmconv for every program that imports torch.")
    add_version(p)
    p.add_argument("--scope", choices=("user", "system"), default="user",
                   help="user: your home and user site-packages; system (as root): /etc and the interpreter's")
    p.add_argument("--policy", choices=POLICIES, default="auto",
                   help="auto: only where the vendor convolution library is known broken")
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


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.scope == "system" and args.home:
        _parser().error("--home applies to --scope user only")
    target = make_target(args.scope, args.root, args.home)
    out = sys.stdout
    old = load_manifest(target)
    where = "" if target.root == "/" else ", into {}".format(target.root)
    if args.uninstall:
        if old is None:
            out.write("gemmconv: nothing to uninstall ({} scope{}: no manifest at {}).\n".format(
                args.scope, where, _manifest_path(target)))
            return 0
        changes, warnings = plan_uninstall(target, old)
        out.write("gemmconv uninstall ({} scope{}):\n".format(args.scope, where))
        _show(changes, args.dry_run, out)
        for w in warnings:
            out.write("  note: {}\n".format(w))
        if not args.dry_run:
            try:
                apply(target, changes, old)
                _remove_dirs(target, old.get("dirs", []))
            except OSError as exc:
                sys.stderr.write("gemmconv: uninstall failed: {}\n".format(exc))
                return 1
        return 0
    report = _detect(args)
    plan = build_plan(target, args.policy, report)
    changes, manifest = plan_changes(target, plan, args.policy, old)
    out.write("gemmconv install ({} scope, policy {}{}):\n".format(args.scope, args.policy, where))
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
    try:
        apply(target, changes, old)
    except OSError as exc:
        sys.stderr.write("gemmconv: install failed: {}{}\n".format(
            exc, " (system scope needs root)" if args.scope == "system" else ""))
        return 1
    out.write("  done: {} change(s).".format(len(changes)))
    if plan.env:
        out.write(" Log out and back in (or source the environment file) for the override to take effect.")
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
