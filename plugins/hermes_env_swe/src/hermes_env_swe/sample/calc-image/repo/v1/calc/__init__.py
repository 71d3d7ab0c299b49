"""calc: a tiny statistics helper (a test fixture of hermes-env-swe)."""

from .ops import add, clamp, mean, sub

__all__ = ["add", "clamp", "mean", "sub"]
