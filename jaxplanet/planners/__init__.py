"""Planners: generic over a transition `step` (they never import a model).

* `cem`: the cross-entropy method (`cem.plan`, `cem.plan_with`, `cem.evaluate`) and random
  shooting (`cem.random_shooting`, also exported here), over
  ``step(state, action [A], key) -> (next_state, reward [])``;
* `lqr`: LQR and LQR-FLM over a linear-quadratic model (``F, f, C, c``).
"""

from jaxplanet.planners import cem, lqr
from jaxplanet.planners.cem import Step, random_shooting

__all__ = ["Step", "cem", "lqr", "random_shooting"]
