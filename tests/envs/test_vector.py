"""Batched environments (`jaxplanet.envs.vector`): in-process and worker processes.

Worker tests spawn processes (each imports JAX: seconds), so there are only a few, with N = 2.
"""

import importlib.util
import multiprocessing
import os
import sys

import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import vector
from jaxplanet.envs.vector import workers as vector_workers

HAS_GYM = importlib.util.find_spec("gymnasium") is not None
HAS_DMC = importlib.util.find_spec("dm_control") is not None
needs_gym = pytest.mark.skipif(not HAS_GYM, reason="worker processes need gymnasium")

POINT = {"episode_length": 12}  # point_reach: action repeat 2 -> 6 agent steps


def _actions(spec, n, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (steps, n, spec.action_dim)).astype(np.float32)


def _single_episodes(name, build_seeds, reset_seeds, actions, **options):
    """Per env i: `envs.make(name, seed=build_seeds[i])` reset with reset_seeds[i], stepped with
    actions[:, i] until its episode ends -> (obs [T + 1], reward [T], terminated [T],
    truncated [T])."""
    out = []
    for i, (b, r) in enumerate(zip(build_seeds, reset_seeds, strict=True)):
        env = envs.make(name, seed=b, **options)
        obs, _ = env.reset(seed=r)
        frames, rewards, terms, truncs = [obs], [], [], []
        for a in actions[:, i]:
            obs, reward, term, trunc, _ = env.step(a)
            frames.append(obs)
            rewards.append(reward)
            terms.append(term)
            truncs.append(trunc)
            if term or trunc:
                break
        env.close()
        out.append((np.stack(frames), np.float32(rewards), np.array(terms), np.array(truncs)))
    return out


def _batched_episodes(batch, reset_seeds, actions, extra=2):
    """The same from a `BatchedEnv`, cut per env at its episode's end (`extra` steps beyond)."""
    n = batch.num_envs
    obs = batch.reset(reset_seeds)
    assert obs.shape == (n, *batch.spec.obs_shape) and obs.dtype == np.uint8
    steps = [batch.step(a) for a in actions]
    for o, r, te, tr in steps:
        assert o.shape == (n, 64, 64, 3) and o.dtype == np.uint8
        assert r.shape == te.shape == tr.shape == (n,)
        assert r.dtype == np.float32 and te.dtype == tr.dtype == np.bool_
    out = []
    for i in range(n):
        done = [bool(te[i] or tr[i]) for _, _, te, tr in steps]
        t = done.index(True) + 1 if True in done else len(steps)
        assert t + extra <= len(steps), "episode must end `extra` steps before the actions do"
        for o, r, _, _ in steps[t:]:  # after the end: the env is not stepped (not a contract)
            np.testing.assert_array_equal(o[i], steps[t - 1][0][i])
            assert r[i] == 0.0
        out.append(
            (
                np.stack([obs[i]] + [s[0][i] for s in steps[:t]]),
                np.stack([s[1][i] for s in steps[:t]]),
                np.stack([s[2][i] for s in steps[:t]]),
                np.stack([s[3][i] for s in steps[:t]]),
            )
        )
    return out


def _assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_array_equal(a, b)


RESET_SEEDS = ([100, 101], [7, 7])  # the second: one seed for both envs


def _check_two_episodes(batch, name, seed, want=None, **options):
    """Two episodes in a row (the second reset after the first episode ended and idled) equal
    those of single envs built with seed + i (`want`, else computed here)."""
    n, spec = batch.num_envs, batch.spec
    actions = _actions(spec, n, spec.agent_steps + 2)
    if want is None:
        want = _reference(name, seed, n, spec, **options)
    for reset_seeds, expected in zip(RESET_SEEDS, want, strict=True):
        got = _batched_episodes(batch, reset_seeds, actions)
        _assert_same(got, expected)
        assert all(len(g[1]) == spec.agent_steps and g[3][-1] for g in got)
    assert not np.array_equal(got[0][0], got[1][0])  # same reset seed, other actions


def _reference(name, seed, n, spec, **options):
    actions = _actions(spec, n, spec.agent_steps + 2)
    build = [seed + i for i in range(n)]
    return [_single_episodes(name, build, r, actions, **options) for r in RESET_SEEDS]


@pytest.fixture(scope="module")
def point_reference():
    """Single-env point_reach episodes of build seeds 5, 6 (each env compiles: ~1 s each)."""
    return _reference("point_reach", 5, 2, envs.make("point_reach", **POINT).spec, **POINT)


@pytest.mark.parametrize("kind", ["in_process", "jax"])
def test_in_process_envs_match_single_envs(point_reference, kind):
    """InProcessEnvs (N HostEnvs) and JaxEnvs (one vmapped call per step, what make_batched
    gives for a pure-JAX task) both equal N single envs."""
    if kind == "jax":
        batch = vector.make_batched("point_reach", 2, seed=5, **POINT)
        assert isinstance(batch, vector.JaxEnvs)
    else:
        batch = vector.InProcessEnvs(
            [envs.make("point_reach", seed=5 + i, **POINT) for i in (0, 1)]
        )
    assert isinstance(batch, vector.BatchedEnv)
    assert batch.num_envs == 2 and batch.spec == envs.make("point_reach", **POINT).spec
    with batch:
        _check_two_episodes(batch, "point_reach", 5, point_reference, **POINT)
    with pytest.raises(RuntimeError, match="closed"):
        batch.reset([0, 1])


def test_argument_checks_and_unknown_names():
    with vector.make_batched("point_reach", 2, seed=0, workers=False, **POINT) as batch:
        with pytest.raises(ValueError, match="2 seeds"):
            batch.reset([1])
        batch.reset([1, 2])
        with pytest.raises(ValueError, match=r"shape \[N, A\]"):
            batch.step(np.zeros((2, 3), np.float32))
        with pytest.raises(ValueError, match=r"envs \[1\]"):
            batch.step(np.array([[0.0, 0.0], [np.nan, 0.0]], np.float32))
    for workers in (False, True, None):  # raised here, before any process starts
        with pytest.raises(envs.UnknownEnvError, match="point_rech"):
            vector.make_batched("point_rech", 2, workers=workers)
    with pytest.raises(TypeError, match="unknown option"):
        vector.make_batched("point_reach", 2, workers=True, colour="red")
    with pytest.raises(ValueError, match="num_envs"):
        vector.make_batched("point_reach", 0)


def test_worker_envs_without_gymnasium_name_the_extra(monkeypatch):
    """Without gymnasium a bad name is still named first; a good one asks for the extra."""
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # makes `import gymnasium` fail
    with pytest.raises(envs.UnknownEnvError, match="point_rech"):
        vector.make_batched("point_rech", 2, workers=True)
    with pytest.raises(ImportError, match=r"jaxplanet\[worldmodels\]"):
        vector.make_batched("point_reach", 2, workers=True, **POINT)


class _Broken:
    """A HostEnv whose `step` raises (for the worker-side wrapper)."""

    def __init__(self, inner):
        self.inner, self.spec = inner, inner.spec

    def reset(self, seed=None):
        return self.inner.reset(seed)

    def step(self, action):
        raise FloatingPointError("simulator blew up")

    def close(self):
        self.inner.close()


def _broken_make(name, seed=0, **options):
    return _Broken(envs.make(name, seed=seed, **options))


def _unknown_option_make(name, seed=0, **options):
    return envs.make(name, seed=seed, colour="red", **options)


@needs_gym
def test_worker_gym_env_reports_errors_and_ignores_autoreset():
    """The gymnasium.Env run inside each worker, exercised in this process."""
    spec = envs.make("point_reach", **POINT).spec
    cls = vector.host_gym_env_class()

    def factory(make_fn):
        return vector_workers._WorkerFactory("point_reach", 9, 1, dict(POINT), make_fn, spec)

    env = cls(factory(_unknown_option_make))
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.shape == (2,)
    error = env.build()
    assert "'point_reach' (env 1, seed 9)" in error and "unknown option" in error
    with pytest.raises(vector.WorkerEnvError, match="during build"):
        env.reset(seed=0)

    env = cls(factory(_broken_make))
    assert env.build() is None
    first, _ = env.reset(seed=3)
    with pytest.raises(vector.WorkerEnvError, match=r"env 1, seed 9.*FloatingPointError"):
        env.step(np.zeros(2, np.float32))
    env.close()

    env = cls(factory(envs.make))
    first, _ = env.reset(seed=3)
    for _ in range(spec.agent_steps):
        obs, _, _, truncated, _ = env.step(np.ones(2, np.float32))
    assert truncated
    again, _ = env.reset()  # gymnasium's autoreset (no seed): the finished episode stays
    np.testing.assert_array_equal(again, obs)
    np.testing.assert_array_equal(env.reset(seed=3)[0], first)
    env.close()


@needs_gym
def test_worker_envs_match_single_envs_and_close_ends_workers(point_reference):
    with vector.make_batched("point_reach", 2, seed=5, workers=True, **POINT) as batch:
        assert isinstance(batch, vector.WorkerEnvs) and batch.num_envs == 2
        procs = batch.processes
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
        assert {p.pid for p in procs}.isdisjoint({os.getpid()})
        _check_two_episodes(batch, "point_reach", 5, point_reference, **POINT)
    assert all(not p.is_alive() and p.exitcode == 0 for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        batch.step(np.zeros((2, 2), np.float32))
    batch.close()  # idempotent


def _dies_in_worker_make(name, seed=0, **options):
    """Builds normally in the parent; the worker of seed 1 dies as a GL crash would."""
    if multiprocessing.parent_process() is not None and seed == 1:
        os._exit(3)
    return envs.make(name, seed=seed, **options)


@needs_gym
def test_worker_that_dies_raises_naming_the_env_and_ends_the_others():
    with pytest.raises(vector.WorkerEnvError) as err:
        vector.WorkerEnvs("point_reach", 2, seed=0, make_fn=_dies_in_worker_make, **POINT)
    message = str(err.value)
    assert "'point_reach'" in message and "env 1 (seed 1): exit code 3" in message
    procs = multiprocessing.active_children()
    assert not [p for p in procs if p.name.startswith("Worker<AsyncVectorEnv>")]


@needs_gym
@pytest.mark.skipif(not HAS_DMC, reason="needs dm_control")
def test_dm_control_workers_match_single_envs():
    options = {"episode_length": 32}  # cartpole: action repeat 8 -> 4 agent steps
    try:
        envs.make("cartpole_swingup", **options).close()
    except Exception as e:  # no GL here
        pytest.skip(f"dm_control cannot render here: {e}")
    with vector.make_batched("cartpole_swingup", 2, seed=3, **options) as batch:
        assert isinstance(batch, vector.WorkerEnvs)  # host simulator, N > 1: workers
        _check_two_episodes(batch, "cartpole_swingup", 3, **options)
    assert all(not p.is_alive() for p in batch.processes)
    single = vector.make_batched("cartpole_swingup", 1, seed=3, **options)
    assert isinstance(single, vector.InProcessEnvs)  # N = 1: no process to wait for
    single.close()
