"""gemmconv's import hook. `python -m gemmconv install` copies this file into site-packages as _gemmconv_hook.py,
next to gemmconv-activate.pth, which runs install() at interpreter start. The hook waits for `import torch` to
finish, then hands over to gemmconv.activation.activate; until then it imports neither torch nor gemmconv.

Standard library only, and self-contained: it must work as a copy outside the package.
"""

import os
import sys

_MARK = "_gemmconv_torch_watcher"


def _handover() -> None:
    try:
        from gemmconv.activation import activate
    except ImportError:
        return  # gemmconv is not installed for this interpreter: nothing to do
    except Exception as exc:
        sys.stderr.write("gemmconv: activation hook failed ({}: {})\n".format(type(exc).__name__, exc))
        return
    activate.on_torch_imported("pth")


class _LoaderProxy(object):
    """Runs torch's own loader, puts it back in place, then hands over."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create else None

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self._loader
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = self._loader
        except Exception:
            pass
        try:
            _handover()
        except Exception:
            pass

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _TorchWatcher(object):
    """A meta path finder that only answers for `torch`, once, by wrapping the real finder's answer."""

    _gemmconv_torch_watcher = True

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        try:
            spec = None
            for finder in list(sys.meta_path):
                if getattr(finder, _MARK, False) or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            if spec is None or not hasattr(spec.loader, "exec_module"):
                return None
            uninstall()
            spec.loader = _LoaderProxy(spec.loader)
            return spec
        except Exception:
            uninstall()
            return None


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, _MARK, False)]


def install() -> None:
    """Watch for torch; if torch is already imported, hand over now."""
    try:
        if os.environ.get("GEMMCONV_ACTIVATE", "").strip().lower() == "never":
            return
        torch = sys.modules.get("torch")
        if torch is not None:
            if not getattr(getattr(torch, "__spec__", None), "_initializing", False):
                _handover()
            return
        if not any(getattr(f, _MARK, False) for f in sys.meta_path):
            sys.meta_path.insert(0, _TorchWatcher())
    except Exception as exc:
        sys.stderr.write("gemmconv: activation hook not installed ({}: {})\n".format(type(exc).__name__, exc))
