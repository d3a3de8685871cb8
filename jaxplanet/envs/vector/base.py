"""What every batched environment shares: the `BatchedEnv` protocol, the per-env episode
bookkeeping and the argument checks (`jaxplanet.envs.vector`'s implementations build on them).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from jaxplanet.envs.base import EnvSpec, HostEnv

__all__ = ["BatchedEnv", "StepResult"]

StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@runtime_checkable
class BatchedEnv(Protocol):
    """N environments of one task stepped in lock step.

    Attributes:
      spec: `EnvSpec` of the task (every env has this spec).
      num_envs: N.
    """

    spec: EnvSpec
    num_envs: int

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Starts one episode per env, env i from ``seeds[i]``: obs uint8 [N, 64, 64, 3]."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """actions f32 [N, A] in [-1, 1] -> (obs uint8 [N, 64, 64, 3], reward f32 [N],
        terminated bool [N], truncated bool [N]).

        Rewards are summed over the action repeat. After env i reports terminated or truncated,
        its later outputs are meaningless until the next `reset` (its action is ignored).
        """
        ...

    def close(self) -> None:
        """Releases the environments (and ends worker processes)."""
        ...


class _Episode:
    """A `HostEnv` and its running episode; steps after the episode's end change nothing.

    After the end, `step` returns the final frame, reward 0 and the final flags again (the
    "meaningless" outputs of `BatchedEnv`), so both implementations give identical arrays.
    """

    def __init__(self, env: HostEnv):
        self.env = env
        self.obs: np.ndarray | None = None
        self.done = True
        self.flags = (False, False)

    @property
    def started(self) -> bool:
        return self.obs is not None

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(seed))
        self.obs, self.done, self.flags = np.asarray(obs), False, (False, False)
        return self.obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        if self.obs is None:
            raise RuntimeError("call reset(seeds) before step(actions)")
        if self.done:
            return self.obs, 0.0, *self.flags
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.obs, self.flags = np.asarray(obs), (bool(terminated), bool(truncated))
        self.done = self.flags[0] or self.flags[1]
        return self.obs, float(reward), *self.flags


class _Batched:
    """Argument checks and the context-manager protocol shared by both implementations."""

    spec: EnvSpec
    num_envs: int

    def _seeds(self, seeds: Sequence[int]) -> list[int]:
        seeds = [operator.index(s) for s in seeds]
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds (one per env), got {len(seeds)}")
        return seeds

    def _actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float32)
        want = (self.num_envs, self.spec.action_dim)
        if a.shape != want:
            raise ValueError(f"actions must have shape [N, A] = {want}, got {a.shape}")
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(f"actions of envs {np.flatnonzero(bad).tolist()} contain NaN or inf")
        return a

    def _batch(self, outs: Sequence[tuple[np.ndarray, float, bool, bool]]) -> StepResult:
        obs, rewards, terms, truncs = zip(*outs, strict=True)
        return (
            np.stack(obs).astype(np.uint8, copy=False),
            np.asarray(rewards, np.float32),
            np.asarray(terms, np.bool_),
            np.asarray(truncs, np.bool_),
        )

    def close(self) -> None:  # overridden
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
