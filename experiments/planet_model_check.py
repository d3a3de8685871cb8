"""Checks a PlaNet point_reach run's model against the true simulator (the measurement behind the
quick preset's settings; see docs/planet.md).

    python -m experiments.planet_model_check --logdir runs/quick [--plan_on=means]

From 64 states reached by 10 held-random steps (the belief filtered on the real frames), 200
candidate action sequences N(0, I) clipped to [-1, 1] (CEM's first iteration) are scored twice:
by the model, as the planner scores them (discounted reward-head sums, from a belief sample
and prior samples, or from means with ``--plan_on=means``), and by point_reach's true
transition from the true state. Prints, as one JSON line:

* ``rank_corr``: mean Spearman correlation of predicted vs true returns per state (1 = the
  model ranks sequences as the task does, 0 = no better than chance);
* ``true_of_model_best`` vs ``true_mean`` and ``true_best``: the true return of the sequence
  the model likes best, of an average sequence and of the truly best one;
* ``reward_r2``: R^2 of the reward head on the filtered beliefs (one-step reward).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr

from jaxplanet.core import checkpoint, resume
from jaxplanet.core import config as config_lib
from jaxplanet.envs import point_reach
from jaxplanet.planet import agent, rssm
from jaxplanet.planet.config import PlanetConfig
from jaxplanet.planet.model import posterior_step, reward
from jaxplanet.planet.planning import latent_step, plan_start

STATES, WARMUP, HOLD, CANDIDATES = 64, 10, 5, 200


def load(logdir: Path) -> tuple[PlanetConfig, dict, int]:
    """(config, world-model params, episodes done) of a one-seed run's newest checkpoint."""
    saved = checkpoint.read_config(logdir)
    if saved is None:
        raise SystemExit(f"error: --logdir: no PlaNet run (config.json) in {logdir}")
    cfg = config_lib.from_dict(PlanetConfig, saved)
    if cfg.env != "point_reach" or cfg.num_seeds != 1:
        raise SystemExit("error: --logdir: needs a one-seed point_reach run")
    root = agent.root_key(cfg)
    template = {
        "train": agent.init_train_state(cfg, root, 2),
        "key": root,
        "progress": resume.Progress().as_dict(),
    }
    with checkpoint.Checkpointer(logdir / "checkpoints", create=False) as ckpt:
        restored = ckpt.restore(template)
    if restored is None:
        raise SystemExit(f"error: --logdir: no checkpoint in {logdir / 'checkpoints'}")
    return cfg, restored[1]["train"].params, int(restored[0])


def check(cfg: PlanetConfig, params: dict, sample: bool, seed: int = 123) -> dict[str, float]:
    """The figures of the module docstring for ``params``."""
    env, mc, horizon = point_reach.make(), cfg.model, cfg.planner.horizon
    discount = cfg.planner.discount ** jnp.arange(horizon)
    step = latent_step(params, mc, sample)

    def one(key):
        k_reset, k_act, k_cand, k_start, k_plan = jax.random.split(key, 5)
        state, obs = env.reset(k_reset)
        held = jax.random.uniform(k_act, (WARMUP // HOLD + 1, 2), minval=-1.0, maxval=1.0)
        actions = jnp.repeat(held, HOLD, axis=0)[:WARMUP]

        def observe(carry, action):
            state, obs, belief, prev, first = carry
            belief = posterior_step(params, mc, belief, prev, obs, first)
            state, r = env.transition(state, action)
            return (state, env.render(state), belief, action, jnp.array(False)), (r, belief)

        carry = (state, obs, rssm.initial_state(mc, ()), jnp.zeros(2), jnp.array(True))
        (state, obs, belief, prev, _), (rewards, beliefs) = jax.lax.scan(observe, carry, actions)
        belief = posterior_step(params, mc, belief, prev, obs, jnp.array(False))
        # beliefs[t] saw frame t; reward t - 1 led to frame t
        predicted_r = reward(params, mc, rssm.features(beliefs))[1:]
        seqs = jnp.clip(jax.random.normal(k_cand, (CANDIDATES, horizon, 2)), -1.0, 1.0)
        start = plan_start(belief, k_start, sample)

        def model_return(seq, k):
            xs = (seq, jax.random.split(k, horizon))
            _, r = jax.lax.scan(lambda s, x: step(s, *x), start, xs)
            return jnp.sum(r * discount)

        def true_return(seq):
            _, r = jax.lax.scan(env.transition, state, seq)
            return jnp.sum(r * discount)

        keys = jax.random.split(k_plan, CANDIDATES)
        return (
            predicted_r,
            rewards[:-1],
            jax.vmap(model_return)(seqs, keys),
            jax.vmap(true_return)(seqs),
        )

    keys = jax.random.split(jax.random.key(seed), STATES)
    pr, rt, p, t = map(np.asarray, jax.jit(jax.vmap(one))(keys))
    pick = t[np.arange(STATES), p.argmax(1)]
    return {
        "rank_corr": float(np.mean([spearmanr(p[i], t[i])[0] for i in range(STATES)])),
        "true_of_model_best": float(pick.mean()),
        "true_mean": float(t.mean()),
        "true_best": float(t.max(1).mean()),
        "reward_r2": float(1.0 - np.mean((pr - rt) ** 2) / np.var(rt)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.planet_model_check")
    parser.add_argument("--logdir", required=True, help="a one-seed point_reach PlaNet run")
    parser.add_argument(
        "--plan_on",
        choices=("samples", "means"),
        default=None,
        help="score from samples or means (default: the run's --planner.sample)",
    )
    args = parser.parse_args(argv)
    cfg, params, episodes = load(Path(args.logdir))
    sample = cfg.planner.sample if args.plan_on is None else args.plan_on == "samples"
    figures = {k: round(v, 3) for k, v in check(cfg, params, sample).items()}
    print(
        json.dumps({"episodes": episodes, "plan_on": "samples" if sample else "means", **figures})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
