"""Activation: turning gemmconv on when a program imports torch, without a change to the program.

    policy     the policy (auto, always, never) from GEMMCONV_ACTIVATE or the config file
    activate   the one activation, reached from torch's backend autoload or from the import hook
    pth_hook   the import hook, copied into site-packages as _gemmconv_hook.py (standard library only)
    installer  `python -m gemmconv install`: writes the policy, the hook and environment overrides
"""
