"""Shared test settings: CPU only, deterministic, headless rendering, compiled programs freed;
the dm_control rendering fixture."""

import gc
import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop every compiled XLA program when a test module ends.

    Each XLA:CPU executable holds a few memory mappings of its own, and jitted functions keep
    their executables alive. One pytest process compiling the whole suite's programs exceeded
    the kernel's limit on mappings per process (``vm.max_map_count``, 65530 by default) and
    crashed inside XLA's compiler; freeing them per module keeps the count near its floor.
    """
    yield
    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="module")
def backend():
    """dm_control's headless GL backend; skips (with the reason) where it cannot render."""
    pytest.importorskip("dm_control", reason="dm_control not installed")
    from jaxplanet.envs import dmc

    try:
        return dmc.gl_backend()
    except RuntimeError as e:
        pytest.skip(f"no headless GL rendering: {e}")
