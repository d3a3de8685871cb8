"""Env reset seeds, one scheme for the three systems.

A run's episodes never share an env seed with another run's or with its own evaluations:

* `episode_seed(seed, index, offset)`: episode ``index`` of the run with ``seed`` (``offset``
  keeps a stream of episodes apart from the run's main one, e.g. SOLAR's random baseline);
* `eval_seed(phase, index)`: evaluation episode ``index`` after training phase ``phase``
  (the same checkpoint gives the same returns, whatever the run's seed);
* `EVAL_ENV_OFFSET`: a run with ``seed`` builds its evaluation env with ``seed + EVAL_ENV_OFFSET``
  (PlaNet and SOLAR, in training and in ``--mode=eval``).
"""

from __future__ import annotations

__all__ = ["EPISODE_SEED", "EVAL_ENV_OFFSET", "EVAL_SEED", "episode_seed", "eval_seed"]

EPISODE_SEED = 1_000_003  # a prime: runs with seeds s and s + 1 have disjoint episode seeds
EVAL_SEED = 10_000_019  # a prime above any run's episode count times EPISODE_SEED's reach
EVAL_ENV_OFFSET = 10_000  # the evaluation env's seed is the run's seed plus this


def episode_seed(seed: int, index: int, offset: int = 0) -> int:
    """The env reset seed of episode ``index`` of the run with ``seed``: an int >= 0."""
    return seed * EPISODE_SEED + offset + index


def eval_seed(phase: int, index: int) -> int:
    """The env reset seed of evaluation episode ``index`` after phase ``phase`` (>= 1)."""
    return EVAL_SEED * phase + index
