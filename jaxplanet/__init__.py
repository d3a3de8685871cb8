"""jaxplanet: model-based RL (PlaNet, World Models, SOLAR) as pure JAX functions."""

__version__ = "0.1.0"
