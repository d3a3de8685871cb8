"""What a PlaNet run checkpoints, and how it reads back.

The training loop keeps a seed axis [K, ...] on the train state and the root keys (K = 1 for a
single run). A checkpoint holds ``{"train": TrainState, "key": root keys, "progress": dict}``,
plus ``"lane_env_steps"`` [K] for K > 1. For K = 1 the train state and key are saved without
the seed axis: the layout single runs have always had, so their run directories resume.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxplanet.core import resume
from jaxplanet.planet import seeds
from jaxplanet.planet.config import PlanetConfig
from jaxplanet.planet.functions import init_train_states

__all__ = ["fresh", "restored", "root_keys", "saved"]


def root_keys(cfg: PlanetConfig) -> jax.Array:
    """The K seeds' root keys [K]; key k is the root key of a single run with ``seed + k``."""
    return seeds.root_keys(cfg.seed, cfg.num_seeds, cfg.prng_impl)


def fresh(cfg: PlanetConfig, roots: jax.Array, action_dim: int) -> Any:
    """New train states [K, ...] (each seed's from its ``INIT`` stream)."""
    return init_train_states(cfg, seeds.fold(roots, seeds.INIT), action_dim)


def saved(
    train_state: Any,
    roots: jax.Array,
    progress: resume.Progress,
    lane_env_steps: list[int] | None = None,
) -> dict[str, Any]:
    """The checkpoint of a run: ``train_state`` and ``roots`` [K, ...], each seed's env steps."""
    if roots.shape[0] == 1:  # a single run: no seed axis on disk
        return {
            "train": seeds.index(train_state, 0),
            "key": roots[0],
            "progress": progress.as_dict(),
        }
    return {
        "train": train_state,
        "key": roots,
        "progress": progress.as_dict(),
        "lane_env_steps": np.asarray(lane_env_steps, np.int64),
    }


def template(train_state: Any, roots: jax.Array) -> dict[str, Any]:
    """The structure a checkpoint of a run with this (e.g. `fresh`) train state restores into."""
    return saved(train_state, roots, resume.Progress(), [0] * roots.shape[0])


def restored(state: dict[str, Any]) -> tuple[Any, resume.Progress, list[int] | None]:
    """``(train_state [K, ...], progress, each seed's env steps or None for one seed)`` of a
    restored checkpoint."""
    progress = resume.Progress.from_dict(state["progress"])
    if "lane_env_steps" not in state:  # a single run
        return seeds.stack([state["train"]]), progress, None
    return state["train"], progress, [int(s) for s in state["lane_env_steps"]]
