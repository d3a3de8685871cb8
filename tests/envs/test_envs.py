"""Tests for jaxplanet/envs/__init__.py, base.py and gym.py: registry, errors, shared helpers,
the GL backend fallback logic and the gymnasium adapter (with a fake env, no gymnasium needed)."""

import subprocess
import sys

import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import base, dmc
from jaxplanet.envs.gym import GymnasiumEnv, resize_area


def test_names_registry():
    names = envs.names()
    assert names[:2] == ["point_reach", "point_reach_uniform"]
    planet_tasks = ["walker_walk", "cartpole_swingup", "cartpole_balance", "reacher_easy"]
    more = ["cheetah_run", "finger_spin", "ball_in_cup_catch", "humanoid_CMU_run"]
    assert set(planet_tasks + more) <= set(names)
    assert len(names) == len(set(names))
    assert len(envs.DMC_TASKS) == 51 and set(envs.DMC_TASKS) <= set(names)
    assert dmc.split_name("ball_in_cup_catch") == ("ball_in_cup", "catch")
    assert dmc.split_name("point_mass_easy") == ("point_mass", "easy")
    assert dmc.split_name("cartpole_balance_sparse") == ("cartpole", "balance_sparse")


def test_static_task_list_matches_dm_control():
    pytest.importorskip("dm_control", reason="dm_control not installed")
    from dm_control import suite

    assert dmc._ALL_TASKS == tuple(suite.ALL_TASKS)
    assert dmc.TASKS == {f"{d}_{t}": (d, t) for d, t in suite.ALL_TASKS}


def test_planet_defaults():
    repeats = {
        "cartpole_swingup": 8,
        "reacher_easy": 4,
        "cheetah_run": 4,
        "finger_spin": 2,
        "ball_in_cup_catch": 4,
        "walker_walk": 2,
        "hopper_hop": 2,
    }
    for name, repeat in repeats.items():
        opts = dmc.default_options(name)
        assert opts["action_repeat"] == repeat and opts["episode_length"] == 1000
    assert dmc.default_options("quadruped_run")["camera_id"] == 2
    assert dmc.default_options("walker_walk")["camera_id"] == 0


def test_unknown_name_lists_names_and_suggests():
    with pytest.raises(envs.UnknownEnvError) as err:
        envs.make("walker_wlak")
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "Did you mean 'walker_walk'" in msg
    assert all(name in msg for name in envs.names())
    with pytest.raises(envs.UnknownEnvError, match="point_reach"):
        envs.make_jax("walker_walk")  # not a pure-JAX task


def test_unknown_option_is_named_before_loading_anything():
    with pytest.raises(TypeError, match="colour"):
        envs.make("walker_walk", colour="red")
    with pytest.raises(TypeError, match="colour"):
        envs.make("point_reach", colour="red")


def test_gym_prefix_without_gymnasium_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import fails, installed or not
    with pytest.raises(ImportError, match=r"pip install 'jaxplanet\[worldmodels\]'"):
        envs.make("gym:Pendulum-v1")


def test_gym_prefix_with_gymnasium():
    pytest.importorskip("gymnasium", reason="gymnasium not installed (extra 'worldmodels')")
    pytest.importorskip("pygame", reason="Pendulum rendering needs pygame")
    env = envs.make("gym:Pendulum-v1", seed=0, action_repeat=2)
    obs, _ = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5], np.float32))
    assert obs.shape == (64, 64, 3) and np.isfinite(reward)
    env.close()


def test_clip_action():
    np.testing.assert_array_equal(base.clip_action([2.0, -0.5, -7.0], 3), [1.0, -0.5, -1.0])
    assert base.clip_action([0.1], 1).dtype == np.float32
    np.testing.assert_array_equal(base.clip_action(0.3, 1), np.float32([0.3]))
    with pytest.raises(ValueError, match="NaN or inf"):
        base.clip_action([0.0, np.nan], 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        base.clip_action([-np.inf, 0.0], 2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        base.clip_action([[0.0, 0.0]], 2)


def test_rescale_action():
    low, high = np.array([0.0, -2.0, 10.0]), np.array([1.0, 2.0, 20.0])
    np.testing.assert_allclose(base.rescale_action([-1, -1, -1], low, high), low)
    np.testing.assert_allclose(base.rescale_action([1, 1, 1], low, high), high)
    np.testing.assert_allclose(base.rescale_action([0, 0.5, -0.5], low, high), [0.5, 1.0, 12.5])


def test_choose_backend_falls_back_to_osmesa():
    tried = []

    def probe(backend):
        tried.append(backend)
        if backend == "egl":
            raise OSError("eglGetDisplay failed")

    assert dmc.choose_backend("egl", probe) == "osmesa"
    assert tried == ["egl", "osmesa"]
    assert dmc.choose_backend("egl", lambda b: None) == "egl"


def test_choose_backend_error_names_the_fix():
    def probe(backend):
        raise RuntimeError(f"{backend} broken")

    with pytest.raises(RuntimeError) as err:
        dmc.choose_backend("egl", probe)
    msg = str(err.value)
    for needle in ("egl broken", "osmesa broken", "libegl1", "libosmesa6", "MUJOCO_GL"):
        assert needle in msg
    # When dm_control is already imported the backend cannot change: only one attempt.
    tried = []
    with pytest.raises(RuntimeError):
        dmc.choose_backend("egl", lambda b: tried.append(b) or probe(b), can_switch=False)
    assert tried == ["egl"]


def test_resize_area_known_answers():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    # 2x2 block means of [[0,1,4,5], [2,3,6,7], ...] (rounded half to even).
    np.testing.assert_array_equal(resize_area(img, 2)[..., 0], [[2, 4], [10, 12]])
    frame = np.full((96, 96, 3), 77, np.uint8)
    out = resize_area(frame, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and np.all(out == 77)
    # 3 -> 2: the middle input cell is shared half/half.
    row = np.array([[0, 90, 180]], np.uint8)[..., None].repeat(3, 0)
    np.testing.assert_array_equal(resize_area(row, 2)[0, :, 0], [30, 150])


class _Box:
    def __init__(self, low, high):
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        self.shape = self.low.shape


class _FakeEnv:
    """Minimal gymnasium-API env: reward 1 per step, terminates after `horizon` steps."""

    render_mode = "rgb_array"
    spec = None

    def __init__(self, horizon=100, low=(0.0, -2.0), high=(1.0, 2.0)):
        self.action_space = _Box(low, high)
        self.horizon = horizon
        self.actions, self.seeds, self.t, self.closed = [], [], 0, False

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        self.t = 0
        return None, {"reset": True}

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        return None, 1.0, self.t >= self.horizon, False, {"t": self.t}

    def render(self):
        return np.full((96, 96, 3), self.t % 256, np.uint8)

    def close(self):
        self.closed = True


def test_gymnasium_adapter_rescales_repeats_and_resizes():
    fake = _FakeEnv()
    env = GymnasiumEnv(fake, action_repeat=3, seed=11, episode_length=12)
    assert isinstance(env, envs.HostEnv)
    assert env.spec == envs.EnvSpec("_FakeEnv", (64, 64, 3), 2, 3, 12)
    obs, info = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and info == {"reset": True}
    obs, reward, terminated, truncated, info = env.step(np.array([-1.0, 1.0]))
    assert reward == 3.0 and not terminated and not truncated and info == {"t": 3}
    np.testing.assert_array_equal(fake.actions[-1], [0.0, 2.0])
    assert len(fake.actions) == 3 and np.all(obs == 3)
    np.testing.assert_array_equal(env.render(), obs)
    env.step(np.array([0.0, 5.0]))  # clipped to [0, 1] -> [0.5, 2.0]
    np.testing.assert_allclose(fake.actions[-1], [0.5, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0]))
    env.step(np.zeros(2))
    *_, truncated, _ = env.step(np.zeros(2))  # 4 agent steps = 12 env steps
    assert truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset()
    env.reset(seed=5)
    assert fake.seeds == [11, None, 5]
    env.close()
    assert fake.closed


def test_gymnasium_adapter_termination_inside_repeat():
    fake = _FakeEnv(horizon=4)
    env = GymnasiumEnv(fake, action_repeat=3)
    env.reset()
    assert env.step(np.zeros(2))[1:4] == (3.0, False, False)
    _, reward, terminated, truncated, _ = env.step(np.zeros(2))
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert len(fake.actions) == 4


def test_gymnasium_adapter_rejects_unsupported_envs():
    fake = _FakeEnv()
    fake.render_mode = None
    with pytest.raises(ValueError, match="rgb_array"):
        GymnasiumEnv(fake)
    discrete = _FakeEnv()
    discrete.action_space = type("Discrete", (), {"n": 3})()
    with pytest.raises(TypeError, match="Box"):
        GymnasiumEnv(discrete)


def test_pure_jax_tasks_do_not_import_dm_control():
    code = (
        "import sys, jaxplanet.envs as e; e.make('point_reach').reset(); "
        "assert 'dm_control' not in sys.modules and 'mujoco' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
