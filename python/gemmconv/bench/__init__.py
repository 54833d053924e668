"""`python -m gemmconv bench`: gemmconv against cuDNN/MIOpen and PyTorch's native fallback (see benchmark.py)."""

from .benchmark import classify_profile, main

__all__ = ["classify_profile", "main"]
