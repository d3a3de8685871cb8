"""Batched acting (jaxplanet.planet.acting) and collection of many episodes at once, on the
host and on the device (jaxplanet.planet.collect), checked against the agent's single-env loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.core import compile as compile_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import replay
from jaxplanet.envs import base, point_reach
from jaxplanet.planet import acting, agent, collect, rssm
from jaxplanet.planet import config as planet_config

A = 2
KEYS = ("obs", "action", "reward", "is_first")


@pytest.fixture(scope="module")
def setup():
    cfg = planet_config.tiny()
    params = agent.init_train_state(cfg, jax.random.key(0, impl="rbg"), A).params
    env = point_reach.make(episode_length=24)  # 12 agent steps
    act_fn = acting.make_act_batch(cfg.model, cfg.planner, A, compile_lib.compiler_options("act"))
    device = jax.jit(
        collect.device_episodes,
        static_argnames=("mcfg", "pcfg", "random_actions"),
        compiler_options=compile_lib.compiler_options("act") or None,
    )
    # Two episodes: reset seeds 3 and 4 (the host adapter's first episode of each), own keys.
    reset_keys = jnp.stack([base.JaxHostAdapter(env).episode_key(s, 0) for s in (3, 4)])
    policy_keys = jax.random.split(jax.random.key(7), 2)
    return {
        "cfg": cfg,
        "params": params,
        "env": env,
        "fns": agent.make_functions(cfg, A),
        "act": act_fn,
        "device": device,
        "reset_keys": reset_keys,
        "policy_keys": policy_keys,
    }


def _host_single(s, i: int, noise: float = 0.3) -> dict:
    """Episode i with the agent's own single-env policy and host loop."""
    policy = agent.planner_policy(s["fns"], s["params"], s["cfg"], A, s["policy_keys"][i], noise)
    return episodes_lib.run_episode(base.JaxHostAdapter(s["env"]), policy, seed=3 + i)


def test_act_batch_matches_the_agents_act(setup):
    s = setup
    cfg, params = s["cfg"], s["params"]
    obs = jax.random.randint(jax.random.key(1), (2, 64, 64, 3), 0, 256).astype(jnp.uint8)
    keys = jax.random.split(jax.random.key(5), 2)
    single = [
        s["fns"].act(
            params, rssm.initial_state(cfg.model), jnp.zeros(A), obs[i], True, keys[i], 0.3
        )
        for i in range(2)
    ]
    batched, belief = s["act"](
        params, rssm.initial_state(cfg.model, (2,)), jnp.zeros((2, A)), obs,
        jnp.ones(2, bool), keys, 0.3,
    )  # fmt: skip
    assert batched.shape == (2, A) and belief.deter.shape == (2, cfg.model.deter)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(single[i][0]))
        stoch = np.asarray(single[i][1].stoch)
        np.testing.assert_allclose(np.asarray(belief.stoch[i]), stoch, rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])  # own key and observation per env


def test_device_episodes_equal_the_host_loop(setup):
    s = setup
    out = s["device"](
        s["env"], s["params"], s["cfg"].model, s["cfg"].planner, s["reset_keys"],
        s["policy_keys"], 0.3,
    )  # fmt: skip
    n, t = 2, s["env"].spec.agent_steps + 1
    shapes = {"obs": (n, t, 64, 64, 3), "action": (n, t, A), "reward": (n, t), "is_first": (n, t)}
    dtypes = {"obs": np.uint8, "action": np.float32, "reward": np.float32, "is_first": np.bool_}
    for k in KEYS:
        assert out[k].shape == shapes[k] and out[k].dtype == dtypes[k], k
    again = s["device"](
        s["env"], s["params"], s["cfg"].model, s["cfg"].planner, s["reset_keys"],
        s["policy_keys"], 0.3,
    )  # fmt: skip
    episodes = collect.split_episodes(out)
    for i in range(n):
        host = _host_single(s, i)
        for k in KEYS:
            np.testing.assert_array_equal(episodes[i][k], host[k], err_msg=k)
            np.testing.assert_array_equal(np.asarray(again[k][i]), host[k])
        assert episodes[i]["return"] == pytest.approx(host["return"], rel=1e-6)
        assert episodes[i]["length"] == host["length"] == t - 1
    assert not np.array_equal(episodes[0]["action"], episodes[1]["action"])
    # The rewards are those of the true env re-simulated with the returned actions.
    state, _ = s["env"].reset(s["reset_keys"][1])
    for step in range(1, t):
        state, reward = s["env"].transition(state, out["action"][1, step])
        assert float(reward) == pytest.approx(float(out["reward"][1, step]), abs=1e-6)
    # Written into replay as one jitted program: the buffer holds both episodes in order.
    buffer = jax.jit(collect.add_episodes)(replay.init(64, (64, 64, 3), A), out)
    assert int(buffer.size) == 2 * t
    np.testing.assert_array_equal(np.asarray(buffer.obs[t : 2 * t]), episodes[1]["obs"])
    np.testing.assert_array_equal(
        np.asarray(buffer.is_first[: 2 * t]), np.tile(out["is_first"][0], 2)
    )


def test_host_episodes_batch_equal_the_single_env_loop(setup):
    s = setup
    policy = acting.batch_policy(s["act"], s["params"], s["cfg"].model, A, s["policy_keys"], 0.3)
    envs = [base.JaxHostAdapter(s["env"]) for _ in range(2)]
    episodes = collect.host_episodes(envs, policy, seeds=[3, 4])
    for i, episode in enumerate(episodes):
        host = _host_single(s, i)
        for k in KEYS:
            np.testing.assert_array_equal(episode[k], host[k], err_msg=k)
        assert episode["return"] == pytest.approx(host["return"])
    with pytest.raises(ValueError, match="one seed per env"):
        collect.host_episodes(envs, policy, seeds=[3])


def test_device_random_episodes(setup):
    s = setup
    out = s["device"](
        s["env"], None, s["cfg"].model, s["cfg"].planner, s["reset_keys"], s["policy_keys"],
        0.0, random_actions=True,
    )  # fmt: skip
    actions = np.asarray(out["action"][:, 1:])
    assert np.all(np.abs(actions) <= 1.0) and actions.std() > 0.3  # uniform in [-1, 1]
    np.testing.assert_array_equal(np.asarray(out["action"][:, 0]), 0.0)
    assert np.all(np.asarray(out["reward"][:, 1:]) > 0.0)  # point_reach rewards are positive
