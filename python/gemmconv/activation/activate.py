"""Turns gemmconv on when a program imports torch, if the policy says so. Two ways in, one activation: torch's
backend autoload (`autoload`, torch >= 2.5) and the site-packages import hook (`pth_hook`, any torch version).

Nothing here imports torch, and nothing here may raise into the user's program.
"""

import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

from .policy import resolve_policy

DEVICES_VAR = "GEMMCONV_ACTIVATE_DEVICES"
EXTENSION = "gemmconv._C"


@dataclass
class Decision:
    policy: str
    source: str
    engage: bool
    reason: str
    error: Optional[str] = None


@dataclass
class _State:
    done: bool = False
    trigger: Optional[str] = None
    engaged: bool = False
    reason: str = "torch not imported yet"


_STATE = _State()  # one activation per process, whichever mechanism fires first
_WARNED = set()


def _warn_once(key: str, message: str) -> None:
    if key in _WARNED:
        return
    _WARNED.add(key)
    try:
        sys.stderr.write("gemmconv: {}\n".format(message))
    except Exception:
        pass


def extension_built() -> bool:
    try:
        return importlib.util.find_spec(EXTENSION) is not None
    except Exception:
        return False


def decide(env: Optional[Mapping[str, str]] = None, sysroot: Optional[str] = None) -> Decision:
    """What activation would do in a process with this environment; no side effects."""
    choice = resolve_policy(env)
    if choice.error:
        return Decision(choice.policy, choice.source, False, choice.error + "; activation off", choice.error)
    if choice.policy == "never":
        return Decision("never", choice.source, False, "policy is never")
    if choice.policy == "always":
        return Decision("always", choice.source, True, "policy is always")
    from ..diagnosis.detect import vendor_conv_broken
    env = os.environ if env is None else env
    if vendor_conv_broken(sysroot or env.get("GEMMCONV_SYSROOT")):
        return Decision("auto", choice.source, True, "a GPU whose vendor convolution library is broken is present")
    return Decision("auto", choice.source, False, "no GPU with a broken vendor convolution library")


def _enable_kwargs() -> Dict[str, Any]:
    devices = os.environ.get(DEVICES_VAR, "").strip()
    if not devices:
        return {}
    return {"device_types": tuple(d.strip() for d in devices.split(",") if d.strip())}


def on_torch_imported(trigger: str = "pth") -> bool:
    """Called once torch is imported (or, from autoload, while torch finishes importing). Returns whether gemmconv
    is now enabled by activation."""
    if _STATE.done:
        return _STATE.engaged
    _STATE.done, _STATE.trigger = True, trigger
    try:
        decision = decide()
        if decision.error:
            _warn_once("policy", decision.reason)
        if not decision.engage:
            _STATE.reason = decision.reason
            return False
        if not extension_built():
            _STATE.reason = "compiled extension missing"
            _warn_once("extension", "activation skipped: the compiled extension {} is not built "
                                    "(build it with: pip install --no-build-isolation .)".format(EXTENSION))
            return False
        import gemmconv
        gemmconv.enable(**_enable_kwargs())
        _STATE.engaged, _STATE.reason = True, decision.reason
    except Exception as exc:
        _STATE.reason = "failed: {}: {}".format(type(exc).__name__, exc)
        _warn_once("failure", "activation failed ({}: {}); continuing without gemmconv".format(
            type(exc).__name__, exc))
    return _STATE.engaged


def autoload() -> None:
    """Entry point for torch's `torch.backends` autoload group (torch >= 2.5 calls it while importing torch)."""
    try:
        on_torch_imported("autoload")
    except Exception:  # torch turns an exception here into a failed `import torch`
        pass


def activation_state() -> Dict[str, Any]:
    return asdict(_STATE)
