"""Shared test settings: CPU only, deterministic, headless rendering."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
