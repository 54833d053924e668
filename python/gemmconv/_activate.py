"""The former home of gemmconv.activation.activate. Import hooks that an earlier `python -m gemmconv install` copied
into site-packages (_gemmconv_hook.py) and torch.backends entry points of earlier installs import this name, so
it stays; new code imports gemmconv.activation.activate."""

from .activation.activate import activation_state, autoload, decide, on_torch_imported

__all__ = ["activation_state", "autoload", "decide", "on_torch_imported"]
