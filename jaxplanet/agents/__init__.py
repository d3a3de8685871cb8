"""Training loops (collect -> update -> evaluate), one module per system.

* `planet`, `planet_config`: PlaNet (`train`, `evaluate`, presets);
* `world_models`, `world_models_config`: World Models' stages (collect, V, M, C, evaluate);
* `solar`, `solar_config`: SOLAR (model fitting and LQR-FLM policy improvement);
* `episodes`: running a policy in a host environment (`run_episode`, `random_policy`).

Sub-modules are imported on first access (``jaxplanet.agents.planet``), so importing one
agent does not load the others.
"""

from __future__ import annotations

import importlib as _importlib
from types import ModuleType as _ModuleType

__all__ = [
    "episodes",
    "planet",
    "planet_config",
    "solar",
    "solar_config",
    "world_models",
    "world_models_config",
]


def __getattr__(name: str) -> _ModuleType:
    """Imports the sub-module ``jaxplanet.agents.<name>`` on first access."""
    if name in __all__:
        module = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
