"""SOLAR learns: on a tiny nav2d setting its noise-free policy beats random actions by a margin
(default suite); the quick preset reaches the goal region in at least half of its evaluation
episodes where random actions reach it in under a tenth (``pytest -m slow``)."""

import dataclasses

import numpy as np
import pytest

from jaxplanet.core import logging as logging_lib
from jaxplanet.solar import agent as solar
from jaxplanet.solar import config as solar_config


def _rows(logdir):
    return logging_lib.read_metrics(logdir / "metrics.jsonl")


def test_tiny_run_beats_random_actions(tmp_path):
    """Even a barely trained model learns from the refit cost which actions lower the cost: the
    LQR-FLM policy's evaluation return beats the random pretraining rollouts by 25 %."""
    cfg = dataclasses.replace(
        solar_config.tiny(), horizon=10, iterations=2, eval_episodes=4, video=False
    )
    solar.train_and_evaluate(cfg, tmp_path)
    rows = _rows(tmp_path)
    random_return = rows[0]["random_return"]
    assert rows[-1]["eval_return"] > random_return + 0.25 * abs(random_return)
    assert rows[-1]["train_return"] > random_return  # the (noisy) training rollouts too


@pytest.mark.slow
def test_quick_preset_reaches_the_goal(tmp_path):
    """``--env=nav2d --preset=quick``: both success figures in metrics.jsonl, the goal reached in
    >= half of the final evaluation episodes, random actions < 1/10, and the training cost of
    the policy's rollouts falls from iteration to iteration. Measured: ~4 min on 2 loaded cores,
    seed 0 ends 10/10 (6, 7, 1, 0, 0, 10 over the iterations; seeds 1-3 also end 10/10, see
    docs/solar.md)."""
    cfg = solar_config.quick()
    summary = solar.train_and_evaluate(cfg, tmp_path)
    rows = _rows(tmp_path)
    assert "random_success" in rows[0] and rows[0]["random_success"] < 0.1
    iters = [r for r in rows if "iteration" in r]
    assert len(iters) == cfg.iterations
    assert all("eval_success" in r for r in iters)
    assert iters[-1]["eval_success"] >= 0.5, [r["eval_success"] for r in iters]
    assert summary["eval_success"] == iters[-1]["eval_success"]
    # The training cost of the policy's rollouts falls from iteration to iteration (5 % + 0.5
    # slack for rollout noise once near the optimum) and ends below half that of random actions.
    # Iteration 1 collects with the initial policy (K = 0, k = 0, std 0.5: random actions on
    # other seeds), so it is compared with the random figure only through the final cost.
    costs = np.array([-r["train_return"] for r in iters])
    assert np.all(costs[1:] <= 1.05 * costs[:-1] + 0.5), costs
    assert costs[-1] < 0.5 * -rows[0]["random_return"], costs


@pytest.mark.slow
def test_quick_preset_learns_the_papers_reacher(tmp_path, backend):
    """``--env=reacher_solar --preset=quick``, seed 0 (~4.5 min on 2 cores): the mean of the
    last two evaluations is better than random actions by more than half their cost and better
    than standing still (a = 0: -6.03 at this action repeat) by more than 2. Measured: -3.17
    against random -6.91 (docs/solar.md)."""
    cfg = dataclasses.replace(solar_config.preset("quick", "reacher_solar"), video=False)
    solar.train_and_evaluate(cfg, tmp_path)
    rows = _rows(tmp_path)
    iters = [r for r in rows if "iteration" in r]
    assert len(iters) == cfg.iterations
    final = np.mean([r["eval_return"] for r in iters[-2:]])
    random_return = rows[0]["random_return"]
    assert final > 0.5 * random_return, (final, random_return)
    assert final > -6.03 + 2.0, final
