"""CarRacing and VizDoom take_cover behind the `worldmodels` extra, at 64x64."""

import importlib.util
import sys

import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import car_racing, doom, gym
from jaxplanet.envs.vector import vector_episodes

HAS_BOX2D = all(importlib.util.find_spec(m) for m in ("gymnasium", "Box2D"))
HAS_DOOM = all(importlib.util.find_spec(m) for m in ("gymnasium", "vizdoom"))


def test_registered_names():
    assert "car_racing" in envs.names() and "doom_take_cover" in envs.names()


def test_car_racing_action_mapping_is_the_authors():
    np.testing.assert_allclose(car_racing.car_racing_action([-0.5, -1.0, -0.3]), [-0.5, 0, 0])
    np.testing.assert_allclose(car_racing.car_racing_action([0.2, 1.0, 0.7]), [0.2, 1.0, 0.7])
    np.testing.assert_allclose(car_racing.car_racing_action([0.0, 0.0, 0.0]), [0.0, 0.5, 0.0])


def test_take_cover_index_thresholds():
    got = [doom.take_cover_index(np.array([a])) for a in (-1.0, -0.34, 0.0, 0.33, 0.34, 1.0)]
    assert got == [2, 2, 0, 0, 1, 1]  # VizdoomTakeCover-v1: 0 nothing, 1 right, 2 left


@pytest.mark.parametrize("name", ["car_racing", "doom_take_cover"])
def test_missing_optional_package_names_the_extra(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'jaxplanet\[worldmodels\]'"):
        envs.make(name)


def _roll(env, steps):
    obs, _ = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    frames, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(
            np.random.default_rng(0).uniform(-1, 1, env.spec.action_dim)
        )
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
        assert isinstance(reward, float)
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    np.testing.assert_array_equal(env.render(), obs)
    env.close()
    return np.stack(frames), rewards, truncated


@pytest.mark.skipif(not HAS_BOX2D, reason="needs gymnasium[box2d] (extra 'worldmodels')")
def test_car_racing_steps_at_64x64():
    env = envs.make("car_racing", seed=0, episode_length=30)
    assert env.spec.action_dim == 3 and env.spec.agent_steps == 30
    frames, rewards, truncated = _roll(env, 40)
    assert len(rewards) == 30 and truncated
    assert frames.std() > 5  # a real picture, not a blank frame


@pytest.mark.skipif(not HAS_DOOM, reason="needs vizdoom (extra 'worldmodels')")
def test_take_cover_steps_at_64x64_and_pays_one_per_frame():
    env = envs.make("doom_take_cover", seed=0, episode_length=50)
    assert env.spec.action_dim == 1
    frames, rewards, truncated = _roll(env, 60)
    assert len(rewards) == 50 and truncated and set(rewards) == {1.0}
    assert frames.std() > 5


@pytest.mark.skipif(not HAS_DOOM, reason="needs vizdoom (extra 'worldmodels')")
def test_vector_episodes_run_in_worker_processes():
    class Policy:
        def start(self, ids):
            self.ids = ids

        def act(self, obs):
            assert obs.shape == (2, 64, 64, 3)
            return np.zeros((2, 1), np.float32)

    options = {"action_repeat": 2, "episode_length": 20}
    eps = vector_episodes(doom.make_gym, options, [1, 2, 3], Policy(), 2, True, False)
    assert len(eps) == 3
    for ep in eps:
        assert ep["length"] == 10 and not ep["terminated"]
        assert ep["return"] == 20.0  # +1 per frame alive, 2 frames per step
        assert ep["obs"].shape == (11, 64, 64, 3) and ep["action"].shape == (11, 1)
        assert ep["is_first"][0] and not ep["is_first"][1:].any()


@pytest.mark.parametrize("shape", [(240, 320, 3), (84, 96, 3), (64, 64, 3), (7, 5, 1)])
def test_resize_area_matches_a_box_filter_reference(shape):
    from jaxplanet.envs.gym import _area_weights, resize_area

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got = resize_area(image, 4 if shape[0] < 64 else 64)
    size = got.shape[0]

    def box(n_in):  # output cell i averages input span [i n_in / size, (i + 1) n_in / size)
        w = np.zeros((size, n_in))
        for i in range(size):
            lo, hi = i * n_in / size, (i + 1) * n_in / size
            for j in range(n_in):
                w[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
        return w / w.sum(axis=1, keepdims=True)

    want = np.einsum("ih,jw,hwc->ijc", box(shape[0]), box(shape[1]), image.astype(np.float64))
    assert got.shape == (size, size, shape[2]) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - np.rint(want)).max() <= 1  # float32 vs float64 rounding
    if shape[:2] != (size, size):
        assert _area_weights(shape[0], size) is _area_weights(shape[0], size)  # cached
        assert not _area_weights(shape[0], size).flags.writeable


def test_single_threaded_blas_restores_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    import os

    with gym.single_threaded_blas():
        assert os.environ["OMP_NUM_THREADS"] == "1" == os.environ["OPENBLAS_NUM_THREADS"]
    assert os.environ["OMP_NUM_THREADS"] == "4" and "OPENBLAS_NUM_THREADS" not in os.environ


@pytest.mark.slow  # benchmark smoke run: times VizDoom rollouts in 1 and 2 workers
@pytest.mark.skipif(not HAS_DOOM, reason="needs vizdoom (extra 'worldmodels')")
def test_rollout_benchmark_reports_each_worker_count(tmp_path):
    from benchmarks import wm_rollouts

    out = tmp_path / "r.json"
    record = wm_rollouts.main(
        ["--episodes=2", "--episode_length=10", "--workers", "1", "2", f"--json={out}"]
    )
    for w in (1, 2):
        assert record[f"w{w}_env_steps"] == 20  # same seeds, same work
        assert record[f"w{w}_env_steps_per_second"] > 0
    assert out.exists()
