"""Lazy sub-module loading for packages (PEP 562), shared by `jaxplanet` and its sub-packages."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType


def submodules(
    package: str, names: Sequence[str]
) -> tuple[Callable[[str], ModuleType], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``package.<name>`` on first access
    for each of ``names`` (and cache it in the package's namespace)."""
    known = frozenset(names)

    def __getattr__(name: str) -> ModuleType:
        if name in known:
            module = importlib.import_module(f"{package}.{name}")
            setattr(sys.modules[package], name, module)
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *known})

    return __getattr__, __dir__
