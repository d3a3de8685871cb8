"""Fixtures of the env tests."""

import pytest


@pytest.fixture(scope="module")
def backend():
    """dm_control's headless GL backend; skips (with the reason) where it cannot render."""
    pytest.importorskip("dm_control", reason="dm_control not installed")
    from jaxplanet.envs import dmc

    try:
        return dmc.gl_backend()
    except RuntimeError as e:
        pytest.skip(f"no headless GL rendering: {e}")
