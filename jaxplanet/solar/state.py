"""SOLAR's run state: what the training loop carries from phase to phase and each checkpoint
stores (`RunState`, a pytree; `agent.initial_run` builds a fresh run's)."""

from __future__ import annotations

from typing import Any

import flax.struct

__all__ = ["RunState"]


@flax.struct.dataclass
class RunState:
    """One SOLAR run between two phases (a checkpoint's tree). The fields are the keys of the
    dict the loop carried before this type, in the same (sorted) order, so the leaves and their
    checksums line up and a run directory written then still resumes.

    Attributes:
      dyn: the dynamics the policy acts on (`solar.plugin` of q, or the local fit).
      phase: phases done (1 after pretraining, i + 1 after iteration i).
      policy: the time-varying linear-Gaussian policy `lqr.Policy` (K [T, m, n], k [T, m],
        cov [T, m, m]) acting on the filtered latent.
      predicted: the model's predicted cost improvement of the last policy update; prev_cost:
        its estimate of the last policy's cost (scalars).
      progress: `resume.Progress.as_dict()` at the last checkpoint.
      step_mult: multiplier of the KL bound ``kl_step * horizon * step_mult`` (released
        ``lqrflm.step_adjust``).
      train: the model's `solar.TrainState` (parameters, q(F, Sigma), optimizer, step).
    """

    dyn: Any = None
    phase: Any = 0
    policy: Any = None
    predicted: Any = 0.0
    prev_cost: Any = 0.0
    progress: Any = None
    step_mult: Any = 1.0
    train: Any = None
