"""Shared flag parsing; moved to `jaxplanet.cli` (kept for existing imports)."""

from jaxplanet.cli import Parser, field_flags

__all__ = ["Parser", "field_flags"]
