"""Public API: every jaxplanet module names its public pieces in `__all__`, each documented.

The modules are found by walking the package directories (not hard-coded), so a new module is
checked as soon as it exists. Modules whose optional dependencies are missing are skipped
with the reason; the library's own wrappers of optional packages import without them.
"""

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import jaxplanet

PACKAGE_DIR = Path(jaxplanet.__file__).parent

#: Third-party packages of optional extras: a module that needs one is skipped when absent.
OPTIONAL = {"gymnasium", "vizdoom", "Box2D", "evosax", "moviepy", "cv2"}


def _module_names(path: Path, prefix: str) -> list[str]:
    """Dotted names of every public module and package under `path`, without importing them
    (private helpers such as ``jaxplanet._lazy`` are not part of the API)."""
    names = []
    for info in pkgutil.iter_modules([str(path)]):
        if info.name.startswith("_"):
            continue
        name = f"{prefix}.{info.name}"
        names.append(name)
        if info.ispkg:
            names.extend(_module_names(path / info.name, name))
    return names


MODULES = ["jaxplanet", *_module_names(PACKAGE_DIR, "jaxplanet")]


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:  # only an optional extra may be missing
        if e.name and e.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs the optional package {e.name!r}")
        raise


def _is_documentable(obj) -> bool:
    return inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj)


def test_modules_found():
    for expected in (
        "jaxplanet.planet.rssm",
        "jaxplanet.planners.cem",
        "jaxplanet.envs.point_reach",
    ):
        assert expected in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_all_names_import_and_are_documented(name):
    module = _import(name)
    assert inspect.getdoc(module), f"{name} has no module docstring"
    public = getattr(module, "__all__", None)
    assert public is not None, f"{name} has no __all__"
    assert len(set(public)) == len(public), f"{name}.__all__ has duplicates"
    undocumented = []
    for attr in public:
        assert isinstance(attr, str), f"{name}.__all__ holds {attr!r}, not a name"
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not exist"
        obj = getattr(module, attr)
        if _is_documentable(obj) and not inspect.getdoc(obj):
            undocumented.append(attr)
    assert not undocumented, f"{name}: no docstring on {undocumented}"


@pytest.mark.parametrize("name", MODULES)
def test_public_definitions_are_documented(name):
    """Functions and classes defined in the module without a leading underscore, listed in
    `__all__` or not, have docstrings."""
    module = _import(name)
    undocumented = sorted(
        attr
        for attr, obj in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == name
        and not inspect.getdoc(obj)
    )
    assert not undocumented, f"{name}: no docstring on {undocumented}"


def test_star_import_gives_all():
    namespace: dict = {}
    exec("from jaxplanet.planners.cem import *", namespace)
    assert {"plan", "random_shooting", "evaluate"} <= set(namespace)
    assert "_returns_time_major" not in namespace


def test_top_level_exposes_systems_and_pieces():
    for name in (
        "planet.rssm",
        "planet",
        "worldmodels.vae",
        "worldmodels.mdn_rnn",
        "solar.lgssm",
        "solar.mniw",
        "solar",
        "planners",
    ):
        package, _, module = name.partition(".")
        assert package in jaxplanet.__all__
        assert not module or module in dir(getattr(jaxplanet, package))
    for name in ("core.replay", "envs", "core.checkpoint", "core.config", "core.plot"):
        package, _, module = name.partition(".")
        assert package in jaxplanet.__all__
        assert not module or module in getattr(jaxplanet, package).__all__
    assert {"cem", "lqr", "random_shooting"} <= set(jaxplanet.planners.__all__)
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        jaxplanet.not_a_module  # noqa: B018


def test_import_is_lazy():
    """`import jaxplanet` loads no public sub-module and not JAX (fast; sub-modules on access;
    only the stdlib-only lazy loader ``jaxplanet._lazy``)."""
    code = (
        "import sys, jaxplanet\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('jax.', 'jaxplanet.'))\n"
        "                and m != 'jaxplanet._lazy')\n"
        "assert 'jax' not in sys.modules and not loaded, loaded\n"
        "jaxplanet.planet.rssm\n"
        "assert 'jaxplanet.planet.rssm' in sys.modules\n"
        "assert 'jaxplanet.worldmodels.vae' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
