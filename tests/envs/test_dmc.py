"""Tests for jaxplanet/envs/dmc.py on real dm_control tasks (few, short: ~30 frames/s on CPU).

Skipped with a reason when dm_control is missing or no headless GL backend can render.
"""

import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import dmc

pytestmark = pytest.mark.dmc


def test_gl_backend_reported(backend):
    assert backend in ("egl", "osmesa", "glfw")
    assert dmc.gl_backend() == backend  # selected once


@pytest.mark.parametrize(
    "name, action_dim, repeat", [("walker_walk", 6, 2), ("cartpole_swingup", 1, 8)]
)
def test_shapes_dtypes_and_action_bounds(backend, name, action_dim, repeat):
    env = envs.make(name, seed=0, episode_length=3 * repeat)
    assert env.spec == envs.EnvSpec(name, (64, 64, 3), action_dim, repeat, 3 * repeat)
    assert isinstance(env, envs.HostEnv)
    obs, info = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 1.0
    assert info["seed"] == 0
    # Out-of-range actions are clipped: ctrl equals the action_spec bound.
    action = np.linspace(-3.0, 3.0, action_dim).astype(np.float32)
    obs, reward, terminated, truncated, info = env.step(action)
    spec = env._env.action_spec()
    want = dmc.rescale_action(np.clip(action, -1, 1), spec.minimum, spec.maximum)
    np.testing.assert_allclose(env.physics.data.ctrl, want)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert isinstance(reward, float) and 0.0 <= reward <= repeat  # suite rewards in [0, 1]
    assert terminated is False and truncated is False
    assert info["env_steps"] == repeat
    np.testing.assert_array_equal(env.render(), obs)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(action_dim, np.nan))
    # Truncation after episode_length // action_repeat = 3 agent steps.
    assert env.step(np.zeros(action_dim))[3] is False
    *_, truncated, info = env.step(np.zeros(action_dim))
    assert truncated and info["env_steps"] == 3 * repeat
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(action_dim))
    env.close()


def test_reproducible_frames_and_rewards(backend):
    def run(seed):
        env = envs.make("cartpole_swingup", seed=seed, action_repeat=2, episode_length=100)
        frames, rewards = [env.reset()[0]], []
        for a in (1.0, -1.0, 0.5):
            obs, r, *_ = env.step(np.array([a]))
            frames.append(obs)
            rewards.append(r)
        second = env.reset()[0]  # continues the RNG stream: a new initial state
        again = env.reset(seed=seed)[0]  # re-created RNG: the first initial state
        env.close()
        return np.stack(frames), np.array(rewards), second, again

    f1, r1, s1, a1 = run(5)
    f2, r2, s2, _ = run(5)
    f3, *_ = run(6)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(a1, f1[0])
    assert not np.array_equal(s1, f1[0])
    assert not np.array_equal(f3[0], f1[0])
