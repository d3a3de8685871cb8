"""Tests of `jaxplanet.worldmodels`, and what several of them share."""

import numpy as np


def hold_lengths(actions: np.ndarray) -> np.ndarray:
    """Lengths of the runs of equal actions [T, A] (continuous draws: a change is a new draw),
    the last (cut) run left out."""
    change = np.flatnonzero(np.any(np.diff(actions, axis=0) != 0, axis=-1))
    return np.diff(np.concatenate([[-1], change]))
