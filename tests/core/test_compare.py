"""Runs of different configs side by side (jaxplanet.core.compare, jaxplanet-plot --compare)."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxplanet.cli import plot as plot_cli
from jaxplanet.core import compare, plot
from jaxplanet.core.logging import Logger


def _run(logdir: Path, seed: int, variant: str, evals: list[float], random: float = -10.0):
    """A SOLAR-like run: eval_return every 100 env steps, a random_return at step 0."""
    with Logger(logdir, use_tensorboard=False) as log:
        log.scalars(0, {"random_return": random})
        for i, value in enumerate(evals, 1):
            log.scalars(100 * i, {"iteration": i, "eval_return": value})
    config = {"env": "nav2d", "seed": seed, "iterations": len(evals), "model": {"variant": variant}}
    (logdir / "config.json").write_text(json.dumps(config))
    return logdir


@pytest.fixture
def runs(tmp_path):
    return [
        _run(tmp_path / "solar_s0", 0, "solar", [-9.0, -7.0, -6.0]),
        _run(tmp_path / "solar_s1", 1, "solar", [-9.0, -8.0, -8.0, -4.0]),  # more iterations
        _run(tmp_path / "vae_s0", 0, "vae", [-8.0, -6.5, -6.5]),
    ]


def test_runs_group_by_config_and_are_labelled_by_what_differs(runs):
    groups = compare.group_runs([plot.load_run(p) for p in runs])
    assert list(groups) == ["model.variant=solar", "model.variant=vae"]
    assert [r.name for r in groups["model.variant=solar"]] == ["solar_s0", "solar_s1"]
    one = compare.group_runs([plot.load_run(runs[0])])
    assert list(one) == ["nav2d"]


def test_summary_rows_are_the_runs_last_evaluations(runs):
    rows = compare.summary_rows(compare.group_runs([plot.load_run(p) for p in runs]))
    solar, vae = rows
    # seeds' last evaluations -6 and -4; means of the last two -6.5 and -6
    assert solar["runs"] == 2 and solar["env_steps"] == 400
    assert solar["final_mean"] == pytest.approx(-5.0) and solar["final_std"] == pytest.approx(1.0)
    assert solar["last_two_mean"] == pytest.approx(-6.25)
    assert solar["last_two_std"] == pytest.approx(0.25)
    assert vae["runs"] == 1 and vae["final_mean"] == -6.5 and vae["final_std"] == 0.0


def test_figure_draws_a_mean_per_group_and_the_random_line(runs):
    groups = compare.group_runs([plot.load_run(p) for p in runs])
    fig = compare.comparison_figure(groups)
    (ax,) = fig.axes
    labels = ax.get_legend_handles_labels()[1]
    assert "model.variant=solar (mean ± std)" in labels and "model.variant=vae" in labels
    assert "random" in labels
    (mean,) = [line for line in ax.get_lines() if line.get_gid() == "mean:eval_return"]
    x, y = mean.get_data()
    # steps 100..300 averaged over both seeds; step 400 has seed 1 only
    np.testing.assert_allclose(x, [100, 200, 300, 400])
    np.testing.assert_allclose(y, [-9.0, -7.5, -7.0, -4.0])


def test_far_random_line_is_named_off_scale_and_success_gets_its_panel(tmp_path):
    runs = []
    for seed, variant in ((0, "solar"), (0, "vae")):
        d = _run(tmp_path / f"{variant}", seed, variant, [-9.0, -6.0], random=-63.0)
        with Logger(d, use_tensorboard=False) as log:
            log.scalars(200, {"eval_success": 1.0})
        runs.append(d)
    out, _ = compare.write_comparison(runs, tmp_path / "cmp.png")
    groups = compare.group_runs([plot.load_run(p) for p in runs])
    fig = compare.comparison_figure(groups, ["eval_return", "eval_success"])
    ret, success = fig.axes
    assert [
        g for g in (line.get_gid() or "" for line in ret.get_lines()) if g.startswith("off")
    ] == ["offscale:random"]
    assert ret.get_ylim()[0] > -20  # the curves' scale, not squashed by the random line
    assert success.get_title() == "eval_success" and out.stat().st_size > 0


def test_run_without_config_and_missing_key_are_clear_errors(runs, tmp_path):
    (runs[2] / "config.json").unlink()
    with pytest.raises(ValueError, match="without config.json cannot be grouped: vae_s0"):
        compare.group_runs([plot.load_run(p) for p in runs])
    groups = compare.group_runs([plot.load_run(p) for p in runs[:2]])
    with pytest.raises(ValueError, match="no run logged 'train_return'"):
        compare.comparison_figure(groups, ["train_return"])
    with pytest.raises(ValueError, match="did you mean eval_return"):
        compare.comparison_figure(groups, ["eval_retrun"])


def test_runs_of_different_tasks_are_refused_and_long_labels_cut(tmp_path):
    a = _run(tmp_path / "a", 0, "solar", [-9.0])
    b = _run(tmp_path / "b", 0, "solar", [-9.0])
    config = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**config, "env": "reacher_solar"}))
    with pytest.raises(ValueError, match=r"different tasks .*a \(nav2d\), b \(reacher_solar\)"):
        compare.group_runs([plot.load_run(a), plot.load_run(b)])
    extra = {"env": "nav2d", "horizon": 50, "rollouts": 20, "kl_step": 1.0, "latent": 6}
    (b / "config.json").write_text(json.dumps({**config, **extra}))
    labels = list(compare.group_runs([plot.load_run(a), plot.load_run(b)]))
    assert labels[1] == "horizon=50, kl_step=1.0, latent=6 (+1 more)"
    # Groups alike in the first three fields keep every field in their labels, not merge.
    c = _run(tmp_path / "c", 0, "solar", [-9.0])
    (c / "config.json").write_text(json.dumps({**config, **extra, "rollouts": 40}))
    groups = compare.group_runs([plot.load_run(d) for d in (a, b, c)])
    assert len(groups) == 3
    assert list(groups)[2] == "horizon=50, kl_step=1.0, latent=6, rollouts=40"


def test_cli_prints_the_table_and_writes_the_png(runs, tmp_path, capsys):
    out = tmp_path / "cmp.png"
    argv = ["--compare", "--logdir", *map(str, runs), "--out", str(out)]
    assert plot_cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "| model.variant=solar | 2 | 400 | -5.00 ± 1.00 | -6.25 ± 0.25 |" in text
    assert out.stat().st_size > 0 and text.strip().endswith(str(out))
    with pytest.raises(SystemExit) as e:
        plot_cli.main(["--compare", "--logdir", str(runs[0])])
    assert e.value.code == 2
    assert "--compare: give --out" in capsys.readouterr().err
