"""Optional dependencies: one place that imports them and says how to install them.

The `worldmodels` extra (``pip install 'jaxplanet[worldmodels]'``) ships the packages that the
core install leaves out:

* ``gymnasium``: worker-process environments (`jaxplanet.envs.vector.WorkerEnvs`), ``gym:<id>``
  environments and the pixel adapter of `jaxplanet.envs.gym`;
* ``Box2D`` (gymnasium[box2d]): CarRacing (`jaxplanet.envs.car_racing`);
* ``vizdoom``: VizDoom take_cover (`jaxplanet.envs.doom`);
* ``evosax``: CMA-ES for World Models' controller (`jaxplanet.worldmodels.controllers`).

dm_control and MuJoCo are core dependencies (rendering needs a GL library; see
`jaxplanet.envs.dmc.gl_backend`). The library imports an optional package only inside the
function that needs it, through `require`, so that a missing one fails there with the install
command instead of at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRA", "available", "require"]

#: The install command that brings every optional package.
EXTRA = "pip install 'jaxplanet[worldmodels]'"


def require(module: str, what: str) -> ModuleType:
    """Imports an optional package (or one of its modules) for `what`, or raises ImportError
    naming the package and the `worldmodels` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs the optional package {module!r}: {EXTRA}") from err


def available(*modules: str) -> bool:
    """True if the top-level package of every one of `modules` is installed (nothing is
    imported; a package blocked by ``sys.modules[name] = None`` counts as missing)."""
    return all(importlib.util.find_spec(m.split(".")[0]) is not None for m in modules)
