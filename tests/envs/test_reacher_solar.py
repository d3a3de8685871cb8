"""Tests for jaxplanet/envs/reacher_solar.py: the SOLAR paper's reacher on dm_control."""

import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.core import episodes
from jaxplanet.envs import reacher_solar

pytestmark = pytest.mark.dmc


def _fingertip(qpos):
    # reacher.xml: arm 0.12 to the wrist, the finger 0.12 beyond it (forward kinematics)
    a, b = qpos
    return 0.12 * np.array([np.cos(a), np.sin(a)]) + 0.12 * np.array([np.cos(a + b), np.sin(a + b)])


def test_fixed_start_target_and_the_released_reward(backend):
    env = envs.make("reacher_solar", seed=3)
    assert env.spec == envs.EnvSpec("reacher_solar", (64, 64, 3), 2, 1, 50)
    assert "reacher_solar" in envs.names()
    obs, _ = env.reset()
    physics = env.physics
    np.testing.assert_allclose(physics.named.data.qpos[:], 0.0)
    np.testing.assert_allclose(physics.named.model.geom_pos["target", :2], reacher_solar.TARGET)
    rng = np.random.default_rng(0)
    policy = lambda obs, first: rng.uniform(-1, 1, 2)  # noqa: E731
    ep = episodes.run_episode(env, policy, seed=4)
    assert ep["length"] == 50
    d2 = (_fingertip(physics.named.data.qpos[:]) - np.array(reacher_solar.TARGET)) ** 2
    assert reacher_solar.squared_distances(ep)[-1] == pytest.approx(d2.sum(), abs=1e-6)
    a = ep["action"][-1]
    assert ep["reward"][-1] == pytest.approx(-d2.sum() - 0.05 * np.sum(a**2), abs=1e-6)
    # Every episode starts at the same frame (the start and the target do not move).
    first, _ = env.reset(seed=99)
    np.testing.assert_array_equal(first, obs)
    env.close()


def test_random_start_and_target_for_pretraining(backend):
    starts, targets = [], []
    for seed in range(3):
        task_env = reacher_solar.load(seed, random_start=True, random_target=True)
        task_env.reset()
        starts.append(np.array(task_env.physics.named.data.qpos[:]))
        targets.append(np.array(task_env.physics.named.model.geom_pos["target", :2]))
    assert np.ptp(np.array(starts), axis=0).min() > 0.1
    assert np.all(np.abs(np.array(targets)) <= 0.2) and np.ptp(np.array(targets), axis=0).min() > 0


def test_make_passes_the_start_and_target_options_and_refuses_them_elsewhere(backend):
    assert envs.options("reacher_solar")["random_target"] is False
    targets = []
    for seed in range(2):
        env = envs.make("reacher_solar", seed=seed, random_start=True, random_target=True)
        env.reset()
        targets.append(np.array(env.physics.named.model.geom_pos["target", :2]))
        assert np.abs(env.physics.named.data.qpos[:]).max() > 0.01
        env.close()
    assert not np.allclose(targets[0], reacher_solar.TARGET)
    assert not np.allclose(targets[0], targets[1])
    with pytest.raises(TypeError, match="random_target"):
        envs.make("reacher_easy", random_target=True)


def test_solar_success_is_the_final_distance_within_the_reach_radius():
    from jaxplanet.solar import eval as solar_eval

    def episode(final_d2: float) -> dict:
        a = np.zeros((3, 2), np.float32)
        a[-1] = 0.5  # the action cost is taken out of the reward before the distance is read
        r = np.array([0.0, -1.0, -final_d2 - 0.05 * 0.5], np.float32)
        return {"reward": r, "action": a}

    assert solar_eval.success("reacher_solar", episode(0.059**2), 1) == 1.0
    assert solar_eval.success("reacher_solar", episode(0.061**2), 1) == 0.0


def test_the_thicker_arm_is_drawn_only(backend):
    """Same actions, same joint angles with dm_control's untouched arm and the thicker one;
    the frames differ (more arm pixels)."""
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(40, 2))
    qpos, frames = [], []
    for scale in (1.0, reacher_solar.ARM_SCALE):
        task_env = reacher_solar.load(5, random_start=True, arm_scale=scale)
        task_env.reset()
        for a in actions:
            task_env.step(a)
        qpos.append(np.array(task_env.physics.named.data.qpos[:]))
        frames.append(task_env.physics.render(64, 64, camera_id=0))
    assert np.abs(qpos[0]).max() > 0.1  # the arm moved
    np.testing.assert_allclose(qpos[0], qpos[1], atol=1e-9)
    arena = frames[0][..., 2].astype(int) - frames[0][..., 0]  # blue floor: B >> R
    arm = lambda f: int(np.sum(f[..., 0].astype(int) - f[..., 2] > 60))  # noqa: E731 yellow
    assert arm(frames[1]) > 1.8 * arm(frames[0]) > 0, (arm(frames[0]), arm(frames[1]))
    assert arena.mean() > 0
