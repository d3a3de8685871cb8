"""Long learning tests of the PlaNet agent (``pytest -m slow``; 19.7 min on 2 idle cores).

The quick preset on point_reach must beat random from its second evaluation (episode 20) and
end, over its last two evaluations, at >= 0.6 x the oracle controller and clearly above standing
still; planning with the learned model must find action sequences that the same model predicts
to be far better than random ones.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import envs, planet
from jaxplanet.core import checkpoint, resume
from jaxplanet.core import logging as logging_lib
from jaxplanet.envs import point_reach
from jaxplanet.planet import agent, rssm
from jaxplanet.planet import config as planet_config
from jaxplanet.planners import cem

pytestmark = pytest.mark.slow


def policy_return(policy, episodes: int = 64) -> float:
    """Mean return on point_reach of ``policy(state) -> action [2]`` (true state)."""
    env = envs.make_jax("point_reach")
    steps = env.spec.agent_steps

    def episode(key):
        state, _ = env.reset(key)

        def body(state, _):
            return env.transition(state, policy(state))

        return jax.lax.scan(body, state, None, steps)[1].sum()

    keys = jax.random.split(jax.random.key(0), episodes)
    return float(jax.jit(jax.vmap(episode))(keys).mean())


def oracle_return(episodes: int = 64) -> float:
    """Mean return of the oracle controller on point_reach (true state, PD control)."""
    return policy_return(point_reach.oracle_action, episodes)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("quick")
    cfg = planet_config.quick()
    cfg = planet_config.config_lib.replace(cfg, env="point_reach", progress=False)
    summary = agent.train_and_evaluate(cfg, logdir)
    return cfg, logdir, summary


def test_quick_preset_solves_point_reach(quick_run):
    _, logdir, _ = quick_run
    rows = logging_lib.read_metrics(logdir)
    random_return = next(r["random_return"] for r in rows if "random_return" in r)
    length = envs.make_jax("point_reach").spec.episode_length  # env steps per episode
    evals = {r["step"] // length: r["eval_return"] for r in rows if "eval_return" in r}
    assert sorted(evals) == [10, 20, 30, 40], evals
    oracle = oracle_return()
    still = policy_return(lambda state: jnp.zeros(2))  # standing still: ~22 (random ~11)
    final = (evals[30] + evals[40]) / 2  # seed 0 measured: (34.6 + 90.0) / 2
    assert evals[20] > random_return, (evals, random_return)
    assert final >= 0.6 * oracle, (evals, oracle)
    assert final > 2.0 * still and final > 3.0 * random_return, (evals, still, random_return)


def test_planning_beats_random_actions_on_the_models_own_prediction(quick_run):
    cfg, logdir, _ = quick_run
    env = agent.make_env(cfg, seed=123)
    state0 = agent.init_train_state(cfg, agent.root_key(cfg), 2)
    template = {
        "train": state0,
        "key": agent.root_key(cfg),
        "progress": resume.Progress().as_dict(),
    }
    with checkpoint.Checkpointer(logdir / "checkpoints", create=False) as ckpt:
        params = ckpt.restore(template)[1]["train"].params
    mcfg, pcfg = cfg.model, cfg.planner
    obs, _ = env.reset(seed=5)
    belief = planet.posterior_step(
        params, mcfg, rssm.initial_state(mcfg), jnp.zeros(2), obs, jnp.asarray(True)
    )
    step = planet.latent_step(params, mcfg)
    key = jax.random.key(7)

    @jax.jit
    def compare(key):
        k_plan, k_rand, k_eval = jax.random.split(key, 3)
        plan = cem.plan_with(pcfg, step, belief, k_plan, 2)
        randoms = jax.random.uniform(k_rand, (256, pcfg.horizon, 2), minval=-1, maxval=1)
        planned = cem.evaluate(step, belief, jnp.broadcast_to(plan, (256, *plan.shape)), k_eval)
        return planned.mean(), cem.evaluate(step, belief, randoms, k_eval)

    planned, randoms = compare(key)
    # Mean predicted return of the plan vs random sequences, same model, same noise keys.
    assert float(planned) > float(randoms.mean()) + 3 * float(randoms.std()) / np.sqrt(256)
    assert float(planned) > float(np.percentile(np.asarray(randoms), 90))
