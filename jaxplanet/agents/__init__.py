"""Training loops (collect -> update -> evaluate), one module per system.

* `planet`, `planet_config`: PlaNet (`train`, `evaluate`, presets);
* `world_models`, `world_models_config`: World Models' stages (collect, V, M, C, evaluate);
* `solar`, `solar_config`: SOLAR (model fitting and LQR-FLM policy improvement);
* `episodes`: running a policy in a host environment (`run_episode`, `random_policy`).

Sub-modules are imported on first access (``jaxplanet.agents.planet``), so importing one
agent does not load the others.
"""

from __future__ import annotations

from jaxplanet import _lazy

__all__ = [
    "episodes",
    "planet",
    "planet_config",
    "solar",
    "solar_config",
    "world_models",
    "world_models_config",
]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)
