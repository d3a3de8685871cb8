"""Env reset seeds: the values every system's stored runs were collected with."""

from jaxplanet.core import seeding


def test_episode_seeds_are_the_stored_runs_values():
    # Written out, not recomputed: a change here would change every run's episodes.
    assert seeding.episode_seed(0, 7) == 7
    assert seeding.episode_seed(3, 7) == 3_000_016
    assert seeding.episode_seed(2, 4, offset=500_000) == 2_500_010


def test_eval_seeds_are_the_stored_runs_values():
    assert seeding.eval_seed(1, 0) == 10_000_019
    assert seeding.eval_seed(3, 4) == 30_000_061


def test_runs_with_neighbouring_seeds_share_no_episode_seed():
    a = {seeding.episode_seed(0, i) for i in range(10_000)}
    b = {seeding.episode_seed(1, i) for i in range(10_000)}
    evals = {seeding.eval_seed(p, i) for p in range(1, 100) for i in range(100)}
    assert not a & b and not (a | b) & evals
