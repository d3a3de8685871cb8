"""SOLAR's policy side (Zhang et al., ICML 2019, Sec. 5): acting on the filtered latent and one
LQR-FLM policy improvement.

* `make_functions`: the jitted act / train / improve / reconstruct functions of a config;
* `host_policy`: the time-varying linear-Gaussian policy (or the MPC baseline) acting on the
  Kalman-filter mean of the latent, u_t = K_t s_t + k_t + chol(S_t) eps, clipped to [-1, 1];
* `refit_cost`: the quadratic cost refit on inferred states (before LQR-FLM or MPC);
* `improve_policy`: one iteration's policy update -- EM fit of local dynamics with
  q(F, Sigma) as the prior, LQR-FLM under the KL bound ``kl_step * horizon * step_mult``,
  step_mult adapted from the model's predicted vs actual improvement (Levine & Abbeel 2014;
  released lqrflm.py), and every
  matrix checked before the new policy is used (`check_improvement`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.core import compile as compile_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.planners import cem, lqr
from jaxplanet.solar import fit as solar_fit
from jaxplanet.solar import lgssm
from jaxplanet.solar import model as solar
from jaxplanet.solar.config import RESUMABLE_FIELDS, SolarConfig
from jaxplanet.solar.state import RunState

__all__ = [
    "make_functions",
    "initial_policy",
    "host_policy",
    "random_policy",
    "check_improvement",
    "refit_cost",
    "improve_policy",
    "floor_covariance",
]


def make_functions(cfg: SolarConfig, action_dim: int) -> dict[str, Any]:
    """The jitted act / train / improve / reconstruct functions, shared by runs in a process
    whose configs differ only in reporting fields (``RESUMABLE_FIELDS``)."""
    base = SolarConfig()
    return _functions(
        dataclasses.replace(cfg, **{f: getattr(base, f) for f in RESUMABLE_FIELDS}), action_dim
    )


@functools.lru_cache(maxsize=4)
def _functions(cfg: SolarConfig, action_dim: int) -> dict[str, Any]:
    mcfg, T, n = cfg.model, cfg.horizon, cfg.model.latent
    # `core.compile`'s "solar" options: XLA's defaults (a deadlock seen with YNNPACK dots, and
    # its workaround, are described at `core.compile.CHOICE`).
    jit = functools.partial(jax.jit, compiler_options=compile_lib.compiler_options("solar") or None)

    def belief_step(params, belief, F, Q, prev_action, obs, t):
        pm, pv = solar.encode(params, mcfg, obs)
        i = jnp.maximum(t - 1, 0)
        return lgssm.filter_step(*belief, F[i], Q[i], prev_action, pm, jnp.diag(pv), t == 0)

    @jit
    def act(params, belief, F, Q, prev_action, obs, t, policy, noise, key):
        mean, cov = belief_step(params, belief, F, Q, prev_action, obs, t)
        j = jnp.minimum(t, T - 1)
        eps = jax.random.normal(key, (action_dim,))
        u = policy.K[j] @ mean + policy.k[j] + noise * jnp.linalg.cholesky(policy.cov[j]) @ eps
        return jnp.clip(u, -1.0, 1.0), (mean, cov)

    @jit
    def act_mpc(params, belief, F, Q, prev_action, obs, t, policy, noise, key):
        del policy
        mean, cov = belief_step(params, belief, F, Q, prev_action, obs, t)
        step = solar_fit.latent_step(params, mcfg, F, Q, cfg.action_cost)
        k_plan, k_noise = jax.random.split(key)
        plan = cem.plan_with(cfg.mpc, step, (mean, t), k_plan, action_dim)
        u = plan[0] + noise * 0.5 * jax.random.normal(k_noise, (action_dim,))
        return jnp.clip(u, -1.0, 1.0), (mean, cov)

    @jit
    def train(state, batch, key, num_sequences, kl_weight):
        return solar.train_step(state, batch, key, mcfg, num_sequences, kl_weight)

    @jit
    def refit_cost(params, q, batch):
        return solar_fit.fit_cost(params, mcfg, q, batch, cfg.cost_fit_steps, cfg.cost_fit_lr)

    def costs(params):
        C, c, _ = solar.cost_matrices(params)
        C = C.at[n:, n:].add(cfg.action_cost * jnp.eye(action_dim))
        return jnp.broadcast_to(C, (T, *C.shape)), jnp.broadcast_to(c, (T, *c.shape))

    @jit
    def fit(params, q, obs, actions, old):
        """Local dynamics of the new rollouts and the model's cost of the policy that ran them."""
        F, Q, mu0, sigma0 = solar_fit.fit_local_dynamics(
            params, mcfg, q, obs, actions, cfg.data_strength, cfg.em_iterations
        )
        means, covs = lqr.marginals(F, jnp.zeros((T, n)), Q, old, mu0, sigma0)
        return (F, Q, mu0, sigma0), lqr.expected_cost(*costs(params), means, covs)

    @jit
    def improve(params, local, old, step_mult):
        F, Q, mu0, sigma0 = local
        eps = cfg.kl_step * T * step_mult
        new, info = lqr.flm_update(F, jnp.zeros((T, n)), Q, *costs(params), old, mu0, sigma0, eps)
        return new, info, (F, Q), sigma0

    @jit
    def reconstruct(params, q, obs, actions):
        post, _, _ = solar.infer(params, mcfg, q, obs, actions)
        return jax.nn.sigmoid(solar.decode(params, mcfg, post.means))

    return {
        "act": act_mpc if cfg.policy == "mpc" else act,
        "train": train,
        "refit_cost": refit_cost,
        "fit": fit,
        "improve": improve,
        "reconstruct": reconstruct,
    }


def initial_policy(cfg: SolarConfig, action_dim: int) -> lqr.Policy:
    """K = 0 [T, m, n], k = 0 [T, m], S = init_policy_std^2 I [T, m, m]."""
    T, n = cfg.horizon, cfg.model.latent
    cov = cfg.init_policy_std**2 * jnp.eye(action_dim)
    return lqr.Policy(
        jnp.zeros((T, action_dim, n)),
        jnp.zeros((T, action_dim)),
        jnp.broadcast_to(cov, (T, action_dim, action_dim)),
    )


def host_policy(
    fns: dict[str, Any],
    run: RunState,
    action_dim: int,
    n: int,
    key: jax.Array,
    noise: float,
    frames: int = 1,
) -> episodes_lib.Policy:
    """The run's current policy (LQR-FLM or MPC) on the filtered latent, for one episode.

    Args:
      fns: `make_functions` output; run: the run state (``train``, ``dyn``, ``policy``).
      action_dim: m; n: latent size; key: the episode's key; noise: 1 = the policy's own
        exploration noise, 0 = its mean (evaluation); frames: the encoder's window
        (``ModelConfig.frames``).

    Returns:
      ``policy(obs uint8 [64, 64, 3], is_first) -> action f32 [m]`` for one episode (the
      encoder sees the last ``frames`` of them, `solar.windows`).
    """
    carry = {"belief": (jnp.zeros(n), jnp.eye(n)), "prev": jnp.zeros(action_dim), "t": 0}
    params, dyn, policy = run.train.params, run.dyn, run.policy
    past: list[np.ndarray] = []  # the episode's last `frames` observations, newest first

    def fn(obs: np.ndarray, is_first: bool) -> np.ndarray:
        t = carry["t"]
        past[:] = [obs] * frames if t == 0 else [obs, *past[:-1]]
        step_key = jax.random.fold_in(key, t)
        window = np.concatenate(past, axis=-1) if frames > 1 else obs
        u, carry["belief"] = fns["act"](
            params, carry["belief"], *dyn, carry["prev"], window, jnp.int32(t), policy, noise,
            step_key,
        )  # fmt: skip
        carry["prev"], carry["t"] = u, t + 1
        return np.asarray(u, np.float32)

    return fn


def random_policy(action_dim: int, std: float, seed: int, hold: int = 1) -> episodes_lib.Policy:
    """Gaussian random actions (std ``std``) clipped to [-1, 1], each held ``hold`` agent steps
    (from an episode's first step): the pretraining policy."""
    rng = np.random.default_rng(seed)
    state = {"t": 0, "action": np.zeros(action_dim, np.float32)}

    def policy(obs: np.ndarray, first: bool) -> np.ndarray:
        del obs
        if first:
            state["t"] = 0
        if state["t"] % hold == 0:
            state["action"] = np.clip(std * rng.normal(size=action_dim), -1, 1).astype(np.float32)
        state["t"] += 1
        return state["action"]

    return policy


def check_improvement(
    Sigma: Any, sigma0: Any, policy: lqr.Policy, phase: int | None = None
) -> str | None:
    """None when the local dynamics and the new policy are usable, else why not.

    Checks (host side, `lgssm.check_psd`) that the local dynamics noise Sigma_t [T, n, n], the
    initial state covariance sigma0 [n, n] and the policy covariances S_t [T, m, m] are finite,
    symmetric, positive definite and not ill-conditioned, and that K, k are finite; the message
    names the matrix and the time step (and the iteration ``phase`` when given).
    """
    where = "" if phase is None else f"LQR-FLM iteration {phase}: "
    checks = (
        ("local dynamics Sigma_t", Sigma, 1e10),
        ("initial state covariance", sigma0, 1e10),
        ("policy covariance S_t", policy.cov, 1e10),
    )
    try:
        for name, matrices, max_cond in checks:
            lgssm.check_psd(name, np.asarray(matrices), max_cond=max_cond)
    except ValueError as err:
        return f"{where}{err}"
    for name, x in (("policy gain K_t", policy.K), ("policy offset k_t", policy.k)):
        bad = np.argwhere(~np.isfinite(np.asarray(x)))
        if bad.size:
            return f"{where}{name}[{bad[0][0]}] has non-finite entries"
    return None


def refit_cost(
    fns: dict[str, Any], run: RunState, batch: dict[str, Any] | None
) -> tuple[RunState, dict[str, float]]:
    """Refit the model's quadratic cost on the inferred states of ``batch`` (a SOLAR batch,
    obs uint8 [N, T+1, 64, 64, 3], action [N, T, m], cost [N, T]; None = no refit); returns
    (the run with the new cost in ``train``, ``{"cost_rmse": ...}`` or {})."""
    if batch is None:
        return run, {}
    state = run.train
    cost_params, rmse = fns["refit_cost"](state.params, state.q, batch)
    state = state.replace(params={**state.params, "cost": cost_params})
    return run.replace(train=state), {"cost_rmse": float(rmse)}


def floor_covariance(cov: jax.Array, min_var: float) -> jax.Array:
    """Covariances [..., m, m] with every eigenvalue raised to at least ``min_var`` (the
    eigenvectors kept)."""
    w, v = jnp.linalg.eigh(cov)
    return jnp.einsum("...ij,...j,...kj->...ik", v, jnp.maximum(w, min_var), v)


def improve_policy(
    cfg: SolarConfig,
    fns: dict[str, Any],
    run: RunState,
    new: dict[str, Any],
    phase: int,
) -> tuple[RunState, dict[str, Any]]:
    """One SOLAR policy improvement; returns (the run with the new policy, dynamics, step_mult
    and estimates, the log row).

    Fits local dynamics on the rollouts ``new``, adapts step_mult from the previous predicted
    improvement and the actual one, and runs LQR-FLM with the model's cost (refit first by
    `refit_cost`) under the KL bound ``kl_step * horizon * step_mult``. As in the released
    lqrflm.py (and GPS), both improvements are the model's estimates: actual = the previous
    estimate of the old policy's cost minus the estimate, on the new fit, of the policy that ran
    ``new`` -- the true costs are on another scale than a cost model that is still being
    learned, and mixing the two drives step_mult to its bounds. A bound that cannot be met is
    reported as a warning; a non-PSD / non-finite matrix keeps the previous policy (with a
    warning naming the matrix and the step).

    Args:
      new: SOLAR batch (`solar.episode_batch`) of this iteration's rollouts, obs uint8
        [N, T+1, 64, 64, 3], action [N, T, m].
      phase: iteration number (1-based).
    """
    T = cfg.horizon
    state = run.train
    local, estimate = fns["fit"](state.params, state.q, new["obs"], new["action"], run.policy)
    estimate = float(estimate)
    step_mult = float(run.step_mult)
    if phase > 1:  # step_mult from the previous prediction (released lqrflm.step_adjust)
        predicted, actual = float(run.predicted), float(run.prev_cost) - estimate
        mult = predicted / (2.0 * max(1e-4, predicted - actual))
        mult = min(max(mult, 0.1), 5.0)
        step_mult = float(np.clip(step_mult * mult, cfg.min_step_mult, cfg.max_step_mult))
    policy, info, dyn, sigma0 = fns["improve"](state.params, local, run.policy, step_mult)
    eps = cfg.kl_step * T * step_mult
    message = lqr.check_flm(info, eps)
    if message:
        warnings.warn(f"iteration {phase}: {message}", stacklevel=2)
    info = jax.device_get(info)
    problem = check_improvement(dyn[1], sigma0, policy, phase)
    if problem is not None or not bool(info.pd):  # act with the previous policy, not with NaNs
        warnings.warn(
            f"{problem or f'LQR-FLM iteration {phase}: Q_uu not positive definite'}; "
            "keeping the previous policy",
            stacklevel=2,
        )
        policy, dyn = run.policy, run.dyn
        info = info._replace(cost_new=info.cost_old)
    elif cfg.policy_min_std > 0:
        policy = policy._replace(cov=floor_covariance(policy.cov, cfg.policy_min_std**2))
    predicted = float(info.cost_old - info.cost_new)
    run = run.replace(
        policy=policy, dyn=dyn, step_mult=step_mult, prev_cost=estimate, predicted=predicted
    )
    return run, {
        "eta": float(info.eta),
        "kl": float(info.kl),
        "kl_bound": eps,
        "kl_met": bool(info.met),
        "step_mult": step_mult,
        "predicted_improvement": predicted,
        "model_cost": estimate,
    }
