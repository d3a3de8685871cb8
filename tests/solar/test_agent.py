"""SOLAR agent loop: LQR-FLM and MPC variants run, log, resume exactly after a kill at any
point, and ``--mode=eval`` replays the in-training evaluation."""

import dataclasses
import types

import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.core import checkpoint, replay
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.planners import lqr
from jaxplanet.solar import agent as solar
from jaxplanet.solar import config as solar_config
from jaxplanet.solar import eval as solar_eval
from jaxplanet.solar import policy as solar_policy
from jaxplanet.solar.state import RunState
from tests.killed import Killed

WALL_CLOCK = ("seconds",)  # and every time/<phase>_{wall,cpu}_s field


def _cfg(**changes):
    cfg = solar_config.tiny()
    return dataclasses.replace(cfg, horizon=5, video=False, **changes)


def _rows(logdir):
    return logging_lib.read_metrics(logdir / "metrics.jsonl")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 2-iteration tiny run (shared by several tests)."""
    logdir = tmp_path_factory.mktemp("full")
    summary = solar.train_and_evaluate(_cfg(iterations=2), logdir)
    return logdir, summary


def _wall_clock(key):
    return key in WALL_CLOCK or key.startswith("time/")


def assert_same_rows(resumed, straight):
    """Identical keys, counters and flags; losses and returns equal (CPU); wall clock ignored."""
    a = [{k: v for k, v in r.items() if not _wall_clock(k)} for r in resumed]
    b = [{k: v for k, v in r.items() if not _wall_clock(k)} for r in straight]
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k, v in rb.items():
            if isinstance(v, float):
                assert ra[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
            else:
                assert ra[k] == v, k


def test_lqr_flm_run_logs_success_and_refuses_changed_config(full_run):
    logdir, summary = full_run
    cfg = _cfg(iterations=2)
    assert summary["episodes"] == cfg.pretrain_rollouts + 2 * cfg.rollouts
    assert summary["env_steps"] == summary["episodes"] * cfg.horizon
    rows = _rows(logdir)
    assert [r.get("iteration") for r in rows] == [None, 1, 2]
    assert "random_return" in rows[0] and rows[0]["random_success"] == 0.0
    # The costs the refit sees (all stored episodes; record 0 of each is a dummy): the refit
    # must explain them better than predicting no cost at all (RMS ~1.95, fit ~0.3-0.5).
    costs = np.concatenate(
        [-np.load(path)["reward"][1:] for path in (logdir / "episodes").glob("*.npz")]
    )
    no_fit = float(np.sqrt(np.mean(costs**2)))
    for r in rows[1:]:
        assert r["kl"] <= 1.1 * r["kl_bound"] and r["kl_met"]
        assert 0.0 <= r["eval_success"] <= 1.0 and "train_success" in r
        assert 0.0 < r["cost_rmse"] < 0.5 * no_fit, (r["cost_rmse"], no_fit)
    assert checkpoint.Checkpointer(logdir / "checkpoints", create=False).steps()[-1] == 3
    with pytest.raises(checkpoint.ConfigMismatchError, match="batch_size"):
        solar.train_and_evaluate(_cfg(iterations=2, batch_size=3), logdir)


def test_run_logs_where_its_time_went(full_run):
    logdir, summary = full_run
    rows = _rows(logdir)
    for phase in ("env", "act", "replay", "update"):  # pretraining has these
        assert rows[0][f"time/{phase}_wall_s"] > 0 and f"time/{phase}_cpu_s" in rows[0], phase
    assert "time/policy_wall_s" not in rows[0]  # no policy update before iteration 1
    for phase in ("policy", "eval", "video", "checkpoint"):  # the iterations' own phases
        assert rows[-1][f"time/{phase}_wall_s"] > 0, phase
    updates = [r["time/update_wall_s"] for r in rows]  # cumulative over the session
    assert updates == sorted(updates) and updates[-1] > updates[0]
    shares = summary["time_shares"]
    assert sum(s[1] for s in shares) == pytest.approx(summary["wall_seconds"], rel=1e-6)
    assert sum(s[3] for s in shares) == pytest.approx(1.0)
    table = dict(solar.summary_rows(summary))
    assert table["time went to"].startswith(shares[0][0])


def test_more_iterations_continue_exactly(full_run, tmp_path):
    logdir, _ = full_run
    solar.train_and_evaluate(_cfg(iterations=1), tmp_path)
    summary = solar.train_and_evaluate(_cfg(iterations=2), tmp_path)  # iterations may grow
    assert summary["episodes"] == full_run[1]["episodes"]
    assert_same_rows(_rows(tmp_path), _rows(logdir))


def _kill_after_episode_file(monkeypatch):
    real = solar.replay.save_episode

    def save(directory, episode, index, **kw):
        path = real(directory, episode, index, **kw)
        if index == 5:  # the second rollout of iteration 1 is on disk
            raise Killed
        return path

    monkeypatch.setattr(solar.replay, "save_episode", save)


def _kill_during_evaluation(monkeypatch):
    real, calls = solar_eval.evaluate_episodes, [0]

    def evaluate(*args, **kw):
        calls[0] += 1
        out = real(*args, **kw)
        if calls[0] == 2:  # iteration 2 updated its model and policy, then the process died
            raise Killed
        return out

    monkeypatch.setattr(solar_eval, "evaluate_episodes", evaluate)


KILLS = {
    "after_episode_file": (_kill_after_episode_file, "checkpoint 1 covers 4 episodes"),
    "during_evaluation": (_kill_during_evaluation, "checkpoint 2 covers 7 episodes"),
}


@pytest.mark.parametrize("point", sorted(KILLS))
def test_kill_mid_iteration_resumes_as_uninterrupted(
    full_run, tmp_path, monkeypatch, capsys, point
):
    logdir, straight = full_run
    kill, covers = KILLS[point]
    with monkeypatch.context() as m:
        kill(m)
        with pytest.raises(Killed):
            solar.train_and_evaluate(_cfg(iterations=2), tmp_path)
    capsys.readouterr()
    summary = solar.train_and_evaluate(_cfg(iterations=2), tmp_path)
    out = capsys.readouterr().out
    assert "Resuming" in out and covers in out and "set aside" in out
    for key in ("episodes", "env_steps", "grad_steps"):
        assert summary[key] == straight[key], key
    assert_same_rows(_rows(tmp_path), _rows(logdir))
    assert len(list((tmp_path / "episodes").glob("*.npz"))) == straight["episodes"]
    assert list((tmp_path / "set_aside").rglob("*.npz"))  # moved, never deleted


def test_in_training_evaluation_equals_eval_mode(full_run):
    """One evaluation function: --mode=eval on the final checkpoint reproduces the logged row."""
    logdir, _ = full_run
    logged = _rows(logdir)[-1]
    summary = solar.evaluate_run(logdir)
    assert summary["iteration"] == logged["iteration"] == 2
    assert summary["eval_return_mean"] == pytest.approx(logged["eval_return"], rel=1e-5)
    assert summary["eval_success_rate"] == logged["eval_success"]
    more = solar.evaluate_run(logdir, {"eval_episodes": "2", "video": "true"})
    rows = logging_lib.read_metrics(logdir / "eval" / "metrics.jsonl")[-2:]
    assert [r["eval_episode"] for r in rows] == [0, 1]
    assert rows[0]["eval_return"] == pytest.approx(logged["eval_return"], rel=1e-5)
    assert more["eval_return_mean"] == pytest.approx(
        (rows[0]["eval_return"] + rows[1]["eval_return"]) / 2
    )
    assert len(list((logdir / "eval" / "videos").glob("*"))) == 2
    with pytest.raises(config_lib.ConfigError, match="--batch_size: cannot change"):
        solar.evaluate_run(logdir, {"batch_size": "3"})


def test_mpc_baseline_and_vae_ablation_run(tmp_path):
    cfg = _cfg(iterations=1, policy="mpc")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, variant="vae"))
    summary = solar.train_and_evaluate(cfg, tmp_path)
    assert summary["episodes"] == cfg.pretrain_rollouts + cfg.rollouts
    assert "eval_return" in summary and "kl" not in summary


def test_pretrain_random_start_needs_a_task_that_has_it():
    cfg = dataclasses.replace(_cfg(), env="point_reach", pretrain_random_start=True)
    with pytest.raises(config_lib.ConfigError, match="--pretrain_random_start"):
        solar.make_env(cfg, 0, random_start=True)
    env = solar.make_env(dataclasses.replace(cfg, env="nav2d"), 0, random_start=True)
    assert env.spec.agent_steps == cfg.horizon
    env.close()


@pytest.mark.parametrize(
    "model, match",
    [
        ({"encoder": "resnet"}, "--model.encoder"),
        ({"channels": (4, 4)}, "--model.channels"),
        ({"velocity": True, "latent": 3}, "--model.velocity: needs an even --model.latent"),
        ({"velocity": True, "latent": 4, "variant": "vae"}, "--model.velocity: .*variant=solar"),
    ],
)
def test_model_encoder_and_channels_are_validated(model, match):
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model))
    with pytest.raises(config_lib.ConfigError, match=match):
        cfg.validate()
    assert solar_config.quick().model.encoder == "spatial_softmax"  # the quick preset's encoder
    assert solar_config.paper().model.encoder == "conv"  # the released one


def test_step_mult_follows_the_models_own_improvement_estimates():
    """released lqrflm.step_adjust: actual = previous estimate of the old policy's cost minus the
    new fit's estimate of the policy that ran; the change per iteration is clipped to [0.1, 5]."""
    cfg, T, n, m = _cfg(), 5, 3, 2
    policy = lqr.Policy(jnp.zeros((T, m, n)), jnp.zeros((T, m)), jnp.tile(jnp.eye(m), (T, 1, 1)))
    local = (jnp.zeros((T, n, n + m)), jnp.tile(jnp.eye(n), (T, 1, 1)), jnp.zeros(n), jnp.eye(n))
    estimates, mults = iter([10.0, 8.0, 7.9]), []

    def improve(params, local_, old, step_mult):
        mults.append(step_mult)
        one = jnp.asarray(1.0)
        info = lqr.FLMInfo(one, one, jnp.asarray(True), jnp.asarray(True), one, one * 10, one * 6)
        return policy, info, local_[:2], local_[3]

    fns = {"fit": lambda *a: (local, next(estimates)), "improve": improve}
    run = RunState(train=types.SimpleNamespace(params=None, q=None), policy=policy, dyn=local[:2])
    new = {"obs": None, "action": None}
    for phase in (1, 2, 3):
        run, row = solar_policy.improve_policy(cfg, fns, run, new, phase)
        assert row["model_cost"] == run.prev_cost
    # Iteration 2: predicted 4, actual 10 - 8 = 2 -> x 4 / (2 * 2) = 1. Iteration 3: actual 0.1
    # -> x 4 / 7.8 = 0.513. The true rollout costs play no part.
    np.testing.assert_allclose(mults, [1.0, 1.0, 4.0 / 7.8], rtol=1e-6)
    run = run.replace(step_mult=1.0, prev_cost=100.0)  # actual 92 >> predicted 4: x 5 at most
    estimates = iter([8.0])
    fns["fit"] = lambda *a: (local, next(estimates))
    solar_policy.improve_policy(cfg, fns, run, new, 4)
    assert mults[-1] == 5.0


@pytest.mark.parametrize("min_std, want", [(0.0, 1e-4), (0.2, 0.04)])
def test_policy_min_std_floors_the_new_policys_covariance(min_std, want):
    cfg, T, n, m = dataclasses.replace(_cfg(), policy_min_std=min_std), 5, 3, 2
    tight = lqr.Policy(
        jnp.ones((T, m, n)), jnp.ones((T, m)), jnp.tile(1e-4 * jnp.eye(m), (T, 1, 1))
    )
    local = (jnp.zeros((T, n, n + m)), jnp.tile(jnp.eye(n), (T, 1, 1)), jnp.zeros(n), jnp.eye(n))
    one = jnp.asarray(1.0)
    info = lqr.FLMInfo(one, one, jnp.asarray(True), jnp.asarray(True), one, one * 10, one * 6)
    fns = {
        "fit": lambda *a: (local, 10.0),
        "improve": lambda *a: (tight, info, local[:2], local[3]),
    }
    run = RunState(train=types.SimpleNamespace(params=None, q=None), policy=tight, dyn=local[:2])
    run, _ = solar_policy.improve_policy(cfg, fns, run, {"obs": None, "action": None}, 1)
    np.testing.assert_allclose(run.policy.cov, np.tile(want * np.eye(m), (T, 1, 1)), rtol=1e-5)
    np.testing.assert_array_equal(run.policy.K, tight.K)  # the gains are the new policy's


def test_canvas_starts_at_the_mean_pretraining_frame(tmp_path):
    """``--model.canvas``: after the pretraining rollouts, before any model step, the decoder's
    per-pixel output bias holds the logits of their mean frame."""
    cfg = _cfg(iterations=1, pretrain_steps=0, model_steps=1, eval_episodes=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, canvas=True))
    solar.train_and_evaluate(cfg, tmp_path)
    template = solar.initial_run(cfg, 2)
    run = checkpoint.Checkpointer(tmp_path / "checkpoints", create=False).restore_step(1, template)
    frames = np.concatenate(
        [ep["obs"] for ep in replay.iter_episodes(tmp_path / "episodes", cfg.pretrain_rollouts)]
    )
    mean = np.clip(frames.astype(np.float32).mean(0) / 255, 1e-3, 1 - 1e-3)
    canvas = np.asarray(run.train.params["dec"]["canvas"])
    np.testing.assert_allclose(1 / (1 + np.exp(-canvas)), mean, atol=1e-5)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"max_step_mult": 0.01}, r"--max_step_mult: must be >= --min_step_mult \(0.1\), got 0.01"),
        ({"min_step_mult": 0.0}, r"--min_step_mult: must be > 0, got 0.0"),
    ],
)
def test_step_mult_bounds_name_the_flag_given(fields, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        dataclasses.replace(_cfg(), **fields).validate()
    dataclasses.replace(_cfg(), min_step_mult=0.5, max_step_mult=0.5).validate()  # equal: fine
