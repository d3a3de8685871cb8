"""Planners: generic over a transition `step` (they never import a model)."""

from jaxplanet.planners import cem, lqr

__all__ = ["cem", "lqr"]
