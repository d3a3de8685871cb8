"""World Models' iterative training (paper Sec. 5) on point_reach: rounds, data, resume."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import agent as wm
from jaxplanet.worldmodels import config as wm_config
from jaxplanet.worldmodels import controllers
from jaxplanet.worldmodels import data as wm_data
from jaxplanet.worldmodels import evolve as wm_evolve
from jaxplanet.worldmodels import report as wm_report

pytest.importorskip("evosax", reason="CMA-ES comes from evosax (extra 'worldmodels')")

CFG = dataclasses.replace(
    wm_config.tiny(),
    iterations=2,
    iteration_rollouts=3,
    iteration_mdn_steps=2,
    iteration_noise=0.5,
    iteration_restart="last",
)


@pytest.fixture(scope="module")
def iterated_run(tmp_path_factory):
    """Round 0's stages; then round 1's C-rollouts collected, one lost and collected again, and
    C's first actions with and without noise; then the rest of the run."""
    logdir = tmp_path_factory.mktemp("wm_iter") / "run"
    for stage in ("collect", "vae", "mdn", "calibrate", "controller"):
        wm.train_and_evaluate(CFG, logdir, stage=stage)
    run = wm.Run(CFG, logdir)
    params = wm.world_model_params(run, "iterate", round=0)
    es = wm_evolve._evolution(run)
    flat = wm.controller_choice(run, "iterate", round=0).flat
    collected = wm_data.collect_with_controller(run, 1, params, flat, es.unflatten)
    lost = wm_data.rollout_path(logdir / "rollouts", CFG.rollouts + 1)
    with np.load(lost) as ep:
        first = {k: ep[k] for k in ep.files}
    lost.unlink()
    again = wm_data.collect_with_controller(run, 1, params, flat, es.unflatten)
    with np.load(lost) as ep:
        second = {k: ep[k] for k in ep.files}

    keys = jnp.stack([jax.random.key(i, impl="threefry2x32") for i in range(256)])

    def first_actions(noise):
        batch = wm_data._jax_controller_rollouts(
            run.jax_env, run.dcfg, es.unflatten, 4, params, flat, noise, keys
        )
        return np.asarray(batch["action"][:, 1])  # same frame and z sample: only noise differs

    noise = (first_actions(0.0), first_actions(0.5))
    # The same run with --iteration_restart=zero, from here (config.json says so).
    zero_dir = logdir.parent / "zero"
    shutil.copytree(logdir, zero_dir)
    saved = json.loads((zero_dir / "config.json").read_text())
    (zero_dir / "config.json").write_text(json.dumps({**saved, "iteration_restart": "zero"}))
    starts = []  # (round 1's fresh CMA-ES mean) per run, recorded at its init

    def init(self, key, mean=None):
        if mean is not None:
            starts.append(np.asarray(mean))
        return original(self, key, mean)

    original = controllers.Evolution.init
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(controllers.Evolution, "init", init)
        summary = wm.train_and_evaluate(CFG, logdir)
        zero_cfg = dataclasses.replace(CFG, iteration_restart="zero")
        wm.train_and_evaluate(zero_cfg, zero_dir, stage="iterate")
    restarts = (np.asarray(flat), es.mean0, starts)
    return logdir, summary, (collected, again, first, second), noise, restarts


def _actions(logdir, i):
    with np.load(wm_data.rollout_path(logdir / "rollouts", i)) as ep:
        return ep["action"]


def test_rounds_add_c_rollouts_and_train_m_and_c_on(iterated_run):
    logdir, summary, _, _, _ = iterated_run
    n = CFG.rollouts + CFG.iteration_rollouts
    assert len(list((logdir / "rollouts").glob("rollout_*.npz"))) == n
    # Random rollouts hold each action 5 steps (point_reach); C's noisy ones change every step.
    random_a = _actions(logdir, 0)[1:]
    assert np.any(np.all(np.diff(random_a, axis=0) == 0, axis=1))
    for i in range(CFG.rollouts, n):
        a = _actions(logdir, i)[1:]
        assert np.all(np.abs(a) <= 1) and np.all(np.any(np.diff(a, axis=0) != 0, axis=1))
    with np.load(logdir / "series.npz") as s0, np.load(logdir / "series_round1.npz") as s1:
        assert len(s0["length"]) == CFG.rollouts and len(s1["length"]) == n
    mdn_rows = logging_lib.read_metrics(logdir / "mdn")
    assert mdn_rows[-1]["step"] == CFG.mdn_steps + CFG.iteration_mdn_steps
    ctrl_rows = logging_lib.read_metrics(logdir / "controller")
    assert [r["step"] for r in ctrl_rows] == list(range(1, 2 * CFG.generations + 1))
    saved = json.loads((logdir / "evaluate.json").read_text())
    assert saved["rounds"] == 2 and summary["eval_return_mean"] == saved["eval_return_mean"]
    # The final C: the periodic real evaluation that scored best over both rounds (the first of
    # equal scores), acting on its own round's M, whose checkpoints are kept.
    evals = [(r["controller/real_return_of_mean"], r["step"]) for r in ctrl_rows
             if "controller/real_return_of_mean" in r]  # fmt: skip
    assert len(evals) >= 2 and any(g > CFG.generations for _, g in evals)
    best = max(score for score, _ in evals)
    generation = next(g for score, g in evals if score == best)
    assert saved["controller_generation"] == generation
    assert saved["controller_real_return"] == pytest.approx(best)
    assert saved["controller_round"] == int(generation > CFG.generations)
    (row,) = [text for name, text in wm_report._result_rows(saved) if name == "C (controller)"]
    assert f"generation {generation}, round {saved['controller_round']} of 2)" in row
    for stage, round_ends in (("mdn", (CFG.mdn_steps,)), ("controller", (CFG.generations,))):
        kept = {int(p.name) for p in (logdir / stage / "checkpoints").iterdir() if p.name.isdigit()}
        assert set(round_ends) <= kept, (stage, kept)
    # A finished run's iterate stage redoes nothing.
    summary = wm.train_and_evaluate(CFG, logdir, stage="iterate")
    assert not any(k.startswith(("iterate/", "mdn/", "controller/")) for k in summary), summary
    assert logging_lib.read_metrics(logdir / "mdn") == mdn_rows
    assert logging_lib.read_metrics(logdir / "controller") == ctrl_rows
    assert len(list((logdir / "rollouts").glob("rollout_*.npz"))) == n


def test_a_lost_c_rollout_is_collected_again_identically(iterated_run):
    _, _, (collected, again, first, second), _, _ = iterated_run
    assert (collected, again) == (CFG.iteration_rollouts, 1)
    assert first.keys() == second.keys()
    for k, v in first.items():
        np.testing.assert_array_equal(second[k], v, err_msg=k)


def test_exploration_noise_has_the_configured_std(iterated_run):
    clean, noisy = iterated_run[3]
    inside = np.all(np.abs(noisy) < 1, axis=1)  # clipping shrinks the rest
    assert inside.sum() > 100
    diff = (noisy - clean)[inside]
    assert abs(diff.mean()) < 0.1 and 0.4 < diff.std() < 0.55, (diff.mean(), diff.std())


def test_iterations_flags_are_checked():
    with pytest.raises(config_lib.ConfigError, match="--iterations"):
        dataclasses.replace(CFG, iterations=0).validate()
    with pytest.raises(config_lib.ConfigError, match="--iteration_noise"):
        dataclasses.replace(CFG, iteration_noise=-0.1).validate()


def test_each_round_restarts_cma_es_at_the_last_c_or_at_zero(iterated_run):
    last_c, mean0, starts = iterated_run[4]
    assert len(starts) == 2  # round 1 of each run; round 0 starts at mean0 without a `mean`
    np.testing.assert_array_equal(starts[0], last_c)  # --iteration_restart=last
    np.testing.assert_array_equal(starts[1], np.asarray(mean0))  # --iteration_restart=zero
    assert np.any(last_c != np.asarray(mean0))


def test_more_iterations_extend_a_finished_run_as_a_fresh_longer_run(iterated_run, tmp_path):
    # --iterations may grow on a finished run (a longer budget from a quick one): it adds the
    # rounds, keeps the old result aside and scores the final C again, as a fresh run would.
    logdir = tmp_path / "extended"
    shutil.copytree(iterated_run[0], logdir)
    old = json.loads((logdir / "evaluate.json").read_text())
    longer = dataclasses.replace(CFG, iterations=3)
    assert not wm_evolve.evaluated(wm.Run(longer, logdir))
    extended = wm.train_and_evaluate(longer, logdir)
    assert json.loads((logdir / "evaluate_2_rounds.json").read_text()) == old
    saved = json.loads((logdir / "evaluate.json").read_text())
    assert saved["rounds"] == 3 and extended["eval_return_mean"] == saved["eval_return_mean"]
    rows = logging_lib.read_metrics(logdir / "controller")
    assert [r["step"] for r in rows] == list(range(1, 3 * CFG.generations + 1))
    n = CFG.rollouts + 2 * CFG.iteration_rollouts
    assert len(list((logdir / "rollouts").glob("rollout_*.npz"))) == n
    fresh = wm.train_and_evaluate(longer, tmp_path / "fresh")
    for key in ("eval_return_mean", "controller_generation", "controller_round"):
        assert fresh[key] == extended[key], key
    assert (
        wm.train_and_evaluate(longer, logdir, stage="evaluate")["eval_return_mean"]
        == (saved["eval_return_mean"])
    )  # scored once: a rerun keeps it
