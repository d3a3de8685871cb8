"""World Models' host policies: random data as released (held uniform actions for Doom, the
randomly weighted C for CarRacing), each a function of its episode's seed."""

import dataclasses
import importlib.util
import types

import numpy as np
import pytest

from jaxplanet.worldmodels import agent as wm
from jaxplanet.worldmodels import config as wm_config
from jaxplanet.worldmodels import policies as wm_policies
from jaxplanet.worldmodels import run as wm_run
from jaxplanet.worldmodels import vae
from tests.worldmodels import hold_lengths


def _policy_run(hold: int, hold_max: int, m_action: str = "raw"):
    ns = types.SimpleNamespace
    return ns(
        spec=ns(action_dim=2),
        r=ns(random_hold=hold, random_hold_max=hold_max, action_map="continuous"),
        cfg=ns(m_action=m_action),
    )


def _policy_actions(run, seeds: list[int], steps: int) -> np.ndarray:
    policy = wm_policies.RandomPolicy(run, seeds)
    policy.start(list(range(len(seeds))))
    return np.stack([policy.act(np.zeros((len(seeds), 64, 64, 3), np.uint8)) for _ in range(steps)])


def test_random_policy_holds_each_action_for_a_uniform_number_of_steps():
    run = _policy_run(hold=1, hold_max=10)
    acts = _policy_actions(run, list(range(100, 120)), 2000)  # [T, 20, 2]
    holds = np.concatenate([hold_lengths(acts[:, j]) for j in range(20)])
    assert holds.min() == 1 and holds.max() == 10
    freq = np.bincount(holds, minlength=11)[1:] / len(holds)  # ~7,000 holds
    np.testing.assert_allclose(freq, 0.1, atol=0.02)  # k ~ U{1..10}
    assert abs(holds.mean() - 5.5) < 0.2
    # Episode i draws from seeds[i] only: the same actions whichever call and slot run it.
    again = _policy_actions(run, [7, 115], 300)
    np.testing.assert_array_equal(again[:, 1], acts[:300, 15])


def test_random_policy_fixed_hold_is_unchanged():
    # The old behaviour: every `hold` steps one draw per episode from default_rng(seed + 7).
    acts = _policy_actions(_policy_run(hold=3, hold_max=0), [11, 12], 9)
    for j, seed in enumerate([11, 12]):
        g = np.random.default_rng(seed + 7)
        want = np.repeat(np.stack([g.uniform(-1.0, 1.0, 2) for _ in range(3)]), 3, axis=0)
        np.testing.assert_array_equal(acts[:, j], want.astype(np.float32))


HAS_BOX2D = all(importlib.util.find_spec(m) for m in ("gymnasium", "Box2D"))


@pytest.mark.skipif(not HAS_BOX2D, reason="needs gymnasium[box2d] (extra 'worldmodels')")
def test_car_racing_rollouts_come_from_a_randomly_weighted_c(tmp_path):
    # ~20 s: carracing/extract.py's data policy, a C with Cauchy(0, s) weights, s ~ U(0, 0.01),
    # on an untrained V (z ~ N(0, 1) whatever the frame) and M.
    cfg = dataclasses.replace(
        wm_config.preset("quick", "car_racing"), rollouts=2, episode_length=60, workers=2,
        progress=False,
    )  # fmt: skip
    run = wm.Run(cfg, tmp_path / "run")
    assert run.r.random_policy == "weights"
    wm.collect(run)
    eps = [ep for _, ep in wm.load_rollouts(run.logdir / "rollouts")]
    assert [len(ep["action"]) for ep in eps] == [61, 61]
    seeds = [run.seed(wm_run.COLLECT, i) for i in range(3)]
    policy = wm_policies.RandomWeightsPolicy(run, seeds)
    mean, std = vae.encode(policy.params["vae"], run.r.vae, eps[0]["obs"][:5])
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(std, 1.0)
    # The stored actions are C's: replaying episode 0's frames gives them again.
    policy.start([0])
    replay = np.concatenate([policy.act(o[None]) for o in eps[0]["obs"][:-1]])
    np.testing.assert_allclose(replay, eps[0]["action"][1:], atol=1e-4)  # batch 1 vs 2
    assert np.abs(replay).max() <= 1.0 and np.std(replay[:, 1]) > 0  # tanh, not constant

    # A rollout is a function of its seed: the same weights and actions in another slot.
    obs = np.random.default_rng(1).integers(0, 255, (8, 3, 64, 64, 3), dtype=np.uint8)
    first = policy
    second = wm_policies.RandomWeightsPolicy(run, [seeds[2], seeds[0]])
    first.start([0, 1, 2])
    second.start([0, 1])
    for t in range(8):
        a, b = first.act(obs[t]), second.act(obs[t, [2, 0]])
        np.testing.assert_allclose(b, a[[2, 0]], rtol=1e-5, atol=1e-6)
    # Episode i's weights: Cauchy draws of default_rng(seed + 7) times s ~ U(0, 0.01).
    g = np.random.default_rng(seeds[1] + 7)
    scale = g.uniform(0.0, 0.01)
    np.testing.assert_allclose(
        first.flats[1], g.standard_cauchy(first.flats.shape[1]) * scale, rtol=1e-6
    )
    assert first.flats.shape[1] == 32 * 3 + 3  # quick's C on z alone, with a bias
