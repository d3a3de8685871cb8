"""Learning-curve plots (jaxplanet.core.plot, python -m experiments.plot) on hand-written
logdirs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxplanet.core import plot
from jaxplanet.core.logging import Logger

ROOT = Path(__file__).resolve().parents[2]


def _write_run(logdir: Path, seed: int, episodes: int = 6, env: str = "point_reach") -> Path:
    """A PlaNet-like run: train rows with loss terms, eval rows, a random_return."""
    rng = np.random.default_rng(seed)
    with Logger(logdir, use_tensorboard=False) as log:
        for ep in range(1, episodes + 1):
            row = {"episode": ep, "train_return": float(ep + rng.normal())}
            if ep == 2:
                row["random_return"] = 7.0 + seed
            if ep > 2:
                row.update({"train/loss": 100.0 / ep + seed, "train/kl": 3.0})
            log.scalars(40 * ep, row)
            if ep % 2 == 0:
                log.scalars(40 * ep, {"eval_return": float(2 * ep + seed)})
    (logdir / "config.json").write_text(json.dumps({"env": env, "seed": seed}))
    return logdir


def _lines(fig, prefix: str) -> list:
    return [line for ax in fig.axes for line in ax.get_lines() if (line.get_gid() or "") == prefix]


def _panel_lines(ax, gid: str) -> list:
    """The lines of one panel with that gid (a key may have its own panel too)."""
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def _gids(fig) -> set:
    return {line.get_gid() for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_write_png_single_run(tmp_path):
    run = _write_run(tmp_path / "run", seed=0)
    out = plot.write_learning_curves(run)
    assert out == run / "learning_curves.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(data) < 2_000_000
    fig = plot.learning_curves_figure([plot.load_run(run)])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["return", "train/loss", "train/kl"]
    # train and eval returns, each one curve; the eval curve has the logged values.
    (eval_line,) = _lines(fig, "run:run:eval_return")
    np.testing.assert_allclose(eval_line.get_ydata(), [4.0, 8.0, 12.0])
    np.testing.assert_allclose(eval_line.get_xdata(), [80, 160, 240])
    assert len(_lines(fig, "run:run:train_return")) == 1
    ref = [line for line in fig.axes[0].get_lines() if line.get_label() == "random"]
    assert len(ref) == 1 and ref[0].get_ydata()[0] == 7.0


def test_one_curve_per_run_and_mean_std(tmp_path):
    runs = [_write_run(tmp_path / f"s{i}", seed=i) for i in range(3)]
    fig = plot.learning_curves_figure([plot.load_run(r) for r in runs])
    for key in ("train_return", "eval_return", "train/loss"):
        for i in range(3):
            assert len(_lines(fig, f"run:s{i}:{key}")) == 1, key
        (mean,) = _lines(fig, f"mean:{key}")
    (mean,) = _lines(fig, "mean:eval_return")
    np.testing.assert_allclose(mean.get_ydata(), [5.0, 9.0, 13.0])  # seeds add 0, 1, 2
    ref = [line for line in fig.axes[0].get_lines() if line.get_label() == "random"]
    assert ref[0].get_ydata()[0] == pytest.approx(8.0)  # mean of 7, 8, 9
    # a folder of seeds is the same as the seeds listed; the PNG goes to the folder
    out = plot.write_learning_curves(tmp_path)
    assert out == tmp_path / "learning_curves.png" and out.stat().st_size > 10_000


def test_missing_keys_single_row_and_nan(tmp_path):
    single = tmp_path / "single"
    with Logger(single, use_tensorboard=False) as log:
        log.scalars(10, {"train_return": 1.0})
    nan_run = tmp_path / "nan"
    with Logger(nan_run, use_tensorboard=False) as log:
        log.scalars(10, {"train_return": float("nan"), "train/loss": 1.0})
        log.scalars(20, {"train_return": 2.0, "train/loss": float("inf")})
        log.scalars(30, {"train_return": 3.0, "train/loss": 0.5, "note": "text"})
    assert "nan" in (nan_run / "metrics.jsonl").read_text()  # written as a string
    fig = plot.learning_curves_figure([plot.load_run(single), plot.load_run(nan_run)])
    (line,) = _lines(fig, "run:nan:train_return")
    np.testing.assert_allclose(line.get_xdata(), [20, 30])
    (line,) = _lines(fig, "run:nan:train/loss")
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.5])
    (line,) = _lines(fig, "run:single:train_return")
    assert line.get_marker() == "o" and list(line.get_ydata()) == [1.0]
    assert not _lines(fig, "run:single:train/loss")  # key missing in that run
    assert all(math.isfinite(y) for ax in fig.axes for ln in ax.get_lines() for y in ln.get_ydata())
    out = plot.write_learning_curves([single, nan_run], tmp_path / "sub" / "x.png")
    assert out.is_file()


def test_world_models_stages_and_paper_reference(tmp_path):
    run = tmp_path / "wm"
    with Logger(run, use_tensorboard=False) as log:
        log.scalars(0, {"eval_return_mean": 5.0, "eval_return_std": 1.0, "random_return_mean": 2.0})
    for stage in ("vae", "mdn"):
        with Logger(run / stage, use_tensorboard=False) as log:
            for i in range(1, 4):
                log.scalars(i, {f"{stage}/loss": 1.0 / i, "env_steps": 100})
    (run / "config.json").write_text(json.dumps({"env": "car_racing"}))
    fig = plot.learning_curves_figure([plot.load_run(run)])
    assert {"run:wm:eval_return_mean", "run:wm:vae/loss", "run:wm:mdn/loss"} <= _gids(fig)
    assert not any("env_steps" in g or "std" in g for g in _gids(fig))
    labels = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].get_lines()}
    assert labels["random"][0] == 2.0
    # 906 is far above the run's returns (5, random 2): named, not drawn, and the axis keeps
    # the run's scale
    assert labels["World Models (paper): 906 (off scale)"] == []
    low, high = fig.axes[0].get_ylim()
    assert 1.0 < low < 2.0 and 5.0 < high < 6.0


def _write_world_models_run(logdir: Path, seed: int = 0) -> Path:
    """A World-Models-like run: every top-level row at step 0 (a timing, the final evaluation
    beside the random policy), the controller's rows per CMA-ES generation."""
    with Logger(logdir, use_tensorboard=False) as log:
        log.scalars(0, {"time/controller_wall_s": 3.0})
        final = {"eval_return_mean": 300.0 + seed, "eval_return_std": 9.0, "eval_episodes": 100}
        final.update({"random_return_mean": 200.0, "controller_generation": 3})
        log.scalars(0, {**final, "controller_real_return": 410.0 + seed})
    with Logger(logdir / "controller", use_tensorboard=False) as log:
        for gen in range(1, 7):
            row = {"controller/fitness_mean": 100.0 * gen + seed, "env_steps": 0}
            row["controller/fitness_max"] = 150.0 * gen
            if gen % 3 == 0:
                row["controller/real_return_of_mean"] = {3: 410.0, 6: 380.0}[gen] + seed
                row["controller/chosen_generation"] = 3
            log.scalars(gen, row)
    (logdir / "config.json").write_text(json.dumps({"env": "doom_take_cover", "seed": seed}))
    return logdir


def test_world_models_return_panel_over_generations(tmp_path):
    run = _write_world_models_run(tmp_path / "wm")
    fig = plot.learning_curves_figure([plot.load_run(run)])
    ax = fig.axes[0]
    assert ax.get_title() == "return" and ax.get_xlabel() == "generation"
    (real,) = _panel_lines(ax, "run:wm:controller/real_return_of_mean")
    assert real.get_label() == "real return of the CMA-ES mean"
    np.testing.assert_allclose(real.get_xdata(), [3, 6])
    np.testing.assert_allclose(real.get_ydata(), [410.0, 380.0])
    (fitness,) = _panel_lines(ax, "run:wm:controller/fitness_mean")
    assert fitness.get_label() == "population mean fitness (dream)"
    np.testing.assert_allclose(fitness.get_xdata(), [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(fitness.get_ydata(), [100, 200, 300, 400, 500, 600])
    # the final C: a star at its generation and a horizontal line; the random line
    (star,) = _panel_lines(ax, "run:wm:eval_return_mean")
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [300.0]
    labels = {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()}
    assert labels["final C (gen 3), 100 real episodes: 300"][0] == 300.0
    assert labels["random"][0] == 200.0
    # no step-0 dots (controller_real_return, ...): generation curves and reference lines only
    gids = {ln.get_gid() for ln in ax.get_lines() if ln.get_gid()}
    assert gids == {
        "run:wm:controller/real_return_of_mean",
        "run:wm:controller/fitness_mean",
        "run:wm:eval_return_mean",
        "final:eval_return_mean",
    }
    low, high = ax.get_ylim()
    assert low < 200.0 and 600.0 < high < 700.0
    # the controller's own panels stay, over the controller's steps
    assert "controller/fitness_max" in [a.get_title() for a in fig.axes if a.get_visible()]


def test_world_models_generations_mean_std_and_env_steps_otherwise(tmp_path):
    runs = [_write_world_models_run(tmp_path / f"s{i}", seed=i) for i in range(2)]
    fig = plot.learning_curves_figure([plot.load_run(r) for r in runs])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "generation"
    for i in range(2):
        assert len(_panel_lines(ax, f"run:s{i}:controller/real_return_of_mean")) == 1
        assert len(_panel_lines(ax, f"run:s{i}:controller/fitness_mean")) == 1
    (mean,) = _panel_lines(ax, "mean:controller/real_return_of_mean")
    np.testing.assert_allclose(mean.get_xdata(), [3, 6])
    np.testing.assert_allclose(mean.get_ydata(), [410.5, 380.5])
    assert mean.get_label() == "real return of the CMA-ES mean (mean ± std)"
    (final,) = _lines(fig, "final:eval_return_mean")
    assert final.get_ydata()[0] == pytest.approx(300.5)
    assert "(mean of 2 runs)" in final.get_label()
    # a PlaNet run is still drawn over env steps
    planet = _write_run(tmp_path / "planet", seed=0)
    fig = plot.learning_curves_figure([plot.load_run(planet)])
    assert fig.axes[0].get_xlabel() == "env steps"
    (eval_line,) = _lines(fig, "run:planet:eval_return")
    np.testing.assert_allclose(eval_line.get_xdata(), [80, 160, 240])
    # returns spread over steps keep the env-step panel even with a controller stage
    with Logger(runs[0], use_tensorboard=False) as log:
        log.scalars(500, {"eval_return_mean": 320.0})
    fig = plot.learning_curves_figure([plot.load_run(runs[0])])
    assert fig.axes[0].get_xlabel() == "env steps"
    (line,) = _lines(fig, "run:s0:eval_return_mean")
    np.testing.assert_allclose(line.get_xdata(), [0, 500])


def test_return_axis_keeps_a_near_reference_line(tmp_path):
    run = tmp_path / "cp"
    with Logger(run, use_tensorboard=False) as log:
        log.scalars(0, {"random_return": 150.0})
        log.scalars(1000, {"eval_return": 500.0})
    (run / "config.json").write_text(json.dumps({"env": "cartpole_swingup"}))
    fig = plot.learning_curves_figure([plot.load_run(run)])
    labels = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].get_lines()}
    # 821 and 850 lie within one span (150 .. 500) above the runs: drawn, and in range
    assert labels["PlaNet (paper)"][0] == 821.0 and labels["CEM + true simulator (paper)"]
    low, high = fig.axes[0].get_ylim()
    assert low < 150.0 and 850.0 < high < 900.0


def test_runs_of_different_configs_are_not_averaged(tmp_path):
    runs = [_write_run(tmp_path / f"s{i}", seed=i) for i in range(2)]
    other = _write_run(tmp_path / "quick", seed=2)
    (other / "config.json").write_text(
        json.dumps({"env": "point_reach", "seed": 2, "model": {"deter": 64}, "episodes": 9})
    )
    for r in runs:  # seeds and run length may differ; a model field may not
        cfg = {"env": "point_reach", "seed": int(r.name[1]), "model": {"deter": 200}}
        (r / "config.json").write_text(json.dumps({**cfg, "episodes": 5 + int(r.name[1])}))
    fig = plot.learning_curves_figure([plot.load_run(r) for r in runs])
    (mean,) = _lines(fig, "mean:eval_return")  # averaged: evals 2 ep + seed, seeds 0 and 1
    np.testing.assert_allclose(mean.get_ydata(), [4.5, 8.5, 12.5])
    with pytest.raises(ValueError, match=r"different configs \(model.deter: 200 vs 64\)"):
        plot.write_learning_curves([*runs, other])
    assert not list(tmp_path.rglob("*.png"))


def test_errors_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        plot.write_learning_curves(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no metrics.jsonl"):
        plot.write_learning_curves(tmp_path / "empty")
    (tmp_path / "norows").mkdir()
    (tmp_path / "norows" / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metric rows"):
        plot.write_learning_curves(tmp_path / "norows")
    assert not list(tmp_path.rglob("*.png"))


def test_cli(tmp_path):
    runs = [_write_run(tmp_path / f"s{i}", seed=i) for i in range(2)]
    out = tmp_path / "curves.png"
    cmd = [sys.executable, "-m", "experiments.plot", "--logdir", *map(str, runs), "--out", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and out.stat().st_size > 10_000
    bad = [sys.executable, "-m", "experiments.plot", "--logdir", str(tmp_path / "nope")]
    result = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "error: --logdir" in result.stderr and "Traceback" not in result.stderr


def test_seed_directories_of_a_num_seeds_run_take_the_programs_config(tmp_path):
    """``--num_seeds`` writes one config.json for the program and seed_<k>/metrics.jsonl: the
    plot knows the task (its title, the paper's reference line) from the parent's config."""
    program = tmp_path / "cp"
    for k in range(2):
        _write_run(program / f"seed_{k}", seed=k, env="cartpole_swingup")
        (program / f"seed_{k}" / "config.json").rename(program / "config.json")
    runs = [plot.load_run(program / f"seed_{k}") for k in range(2)]
    assert [r.env for r in runs] == ["cartpole_swingup"] * 2
    assert plot.reference_returns(runs)["PlaNet (paper)"] == 821.0
    assert plot.load_run(tmp_path / "cp" / "seed_0").config["env"] == "cartpole_swingup"
