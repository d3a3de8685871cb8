"""The SOLAR command line: tiny nav2d run end to end, clear errors on bad flags."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v2 as imageio
import pytest

from experiments import solar as cli
from jaxplanet.core import video
from jaxplanet.solar import agent as solar
from jaxplanet.solar import config as solar_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--batch_size=0", "--batch_size: must be >= 1"),
        ("--model.dynamics=linear", "--model.dynamics: expected one of global, time_varying"),
        ("--policy=ppo", "--policy: expected one of lqr_flm, mpc"),
        ("--model.latnet=3", "Did you mean: --model.latent"),
    ],
)
def test_bad_flags_name_the_flag(capsys, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(cli.main(["--preset=tiny", flag]))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _frames(path):
    """The frames of a video file (imageio runs ffmpeg in a subprocess: fork warning muted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        return imageio.mimread(path)


def _rows(text: str, title: str) -> dict[str, str]:
    """The ``name  value`` rows of the banner or table under ``title`` in ``text``."""
    rows = {}
    for line in text.split(title + "\n", 1)[1].splitlines():
        if not line.startswith("  "):
            break
        name, value = (re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2]
        rows[name] = value
    return rows


def test_tiny_nav2d_train_then_eval_mode(tmp_path, capsys):
    """The entry point in-process (same compiled functions as the agent tests): a tiny run with
    its start banner and end table, then --mode=eval on its newest checkpoint writes
    eval/metrics.jsonl and captioned videos, and ends with a table too."""
    logdir = tmp_path / "run"
    args = ["--env=nav2d", "--preset=tiny", "--horizon=5", "--iterations=1", f"--logdir={logdir}"]
    assert cli.main(args) == 0
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_return" in r for r in rows) and any("random_return" in r for r in rows)
    assert "eval_success" in rows[-1] and "random_success" in rows[0]
    assert rows[-1]["eval_episodes"] == 1
    assert list((logdir / "videos").iterdir())
    out = capsys.readouterr().out
    banner = _rows(out, "SOLAR on nav2d")
    assert banner["preset"] == "tiny, changed: horizon=5, iterations=1"
    assert banner["env"] == "nav2d: action_dim 2, action repeat 1, 5 agent steps per rollout"
    assert "cpu" in banner["devices"] and banner["output"].startswith(f"{logdir}/")
    assert banner["policy"].startswith("LQR-FLM") and banner["model"].startswith("SOLAR: latent 3")
    assert banner["budget"].startswith("7 rollouts (35 agent steps), 5 model steps")
    assert not any(k.startswith("warning") for k in banner)
    table = _rows(out, f"SOLAR run finished: {logdir}")
    assert table["wall time"].endswith("(this session)") and "CPU time" in table
    assert table["rollouts"].startswith("7 (")
    assert table["eval return"].endswith("mean of 1 noise-free episode(s) after iteration 1")
    assert re.fullmatch(r"\d/1 episodes end in the goal region \(\d+%\)", table["eval success"])
    assert f"{rows[0]['random_return']:.2f}" in table["random return"]
    assert "random by" in table["eval vs random"]
    assert table["metrics"] == str(logdir / "metrics.jsonl")
    assert table["plot"] == str(logdir / "learning_curves.png")
    assert table["evaluate"].endswith(f"--logdir={logdir} --mode=eval --eval_episodes=N")
    assert cli.main([f"--logdir={logdir}", "--mode=eval", "--eval_episodes=2"]) == 0
    out = capsys.readouterr().out
    started = _rows(out, f"SOLAR evaluation of {logdir}")
    assert started["policy"].endswith("the policy after iteration 1")
    assert started["output"].startswith(f"{logdir / 'eval'}/")
    table = _rows(out, f"SOLAR evaluation finished: {logdir / 'eval'}")
    assert "wall time" in table and "over 2 noise-free episode(s)" in table["eval return"]
    assert re.fullmatch(r"\d/2 episodes end in the goal region \(\d+%\)", table["eval success"])
    assert table["metrics"] == str(logdir / "eval" / "metrics.jsonl")
    evals = (logdir / "eval" / "metrics.jsonl").read_text().splitlines()
    assert len(evals) == 2
    videos = sorted((logdir / "eval" / "videos").iterdir())
    assert len(videos) == 2
    frames = _frames(videos[0])  # captioned halves: "real t=.. R=..", "recon t=.."
    assert frames[0].shape == (video.CAPTION_HEIGHT + 128, 256, 3)
    assert frames[0][: video.CAPTION_HEIGHT].max() > 128
    assert json.loads(evals[0])["eval_return"] == pytest.approx(rows[-1]["eval_return"], rel=1e-5)
    assert cli.main(["--mode=eval"]) == 2
    assert "--mode=eval needs the run directory" in capsys.readouterr().err


def test_paper_banner_warns_that_it_is_gpu_sized_on_a_cpu():
    """Built from the config alone: nothing runs."""
    text = solar.banner(solar_config.paper(), "runs/x", "paper", backend="cpu")
    (warning,) = [line for line in text.splitlines() if "warning:" in line]
    assert "GPU/TPU-sized" in warning and "4,000 model steps" in warning
    assert "--preset=quick" in warning
    assert "500 rollouts (25,000 agent steps)" in text
    assert "warning" not in solar.banner(solar_config.paper(), "x", "paper", backend="gpu")
    assert "warning" not in solar.banner(solar_config.quick(), "x", "quick", backend="cpu")


def test_ctrl_c_stops_between_episodes(tmp_path, capsys, monkeypatch):
    """A Ctrl-C while the random pretraining rollouts run stops before the next one: exit
    status 130 and PlaNet's messages (the run resumes from its last checkpoint)."""
    from jaxplanet.core import console, episodes

    stops, calls = [], []
    enter = console.StopOnInterrupt.__enter__

    def record(self):
        stops.append(self)
        return enter(self)

    run_episode = episodes.run_episode

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            assert stops[-1].requested.wait(10)
        return run_episode(*args, **kwargs)

    monkeypatch.setattr(console.StopOnInterrupt, "__enter__", record)
    monkeypatch.setattr(episodes, "run_episode", interrupted)
    code = cli.main(["--preset=tiny", "--horizon=5", f"--logdir={tmp_path / 'run'}"])
    assert code == console.INTERRUPT_EXIT
    err = capsys.readouterr().err
    assert "Ctrl-C: stopping at the next safe point" in err
    assert "interrupted: the run resumes from its last checkpoint" in err
    assert "stopped at once" not in err and len(calls) == 2


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "experiments.solar", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "--mode" in result.stdout
    text = " ".join(result.stdout.split())
    assert "(default: None)" not in text and text.count("(default:") == text.count("default:")


def test_quick_takes_the_tasks_own_settings_and_the_banner_shows_only_the_flags():
    nav = solar_config.preset("quick")
    reacher = solar_config.preset("quick", "reacher_solar")
    assert (nav.env, nav.horizon, nav.model.latent) == ("nav2d", 30, 4)
    # nav2d pretrains from anywhere in the arena; a task without random starts keeps its own.
    assert nav.pretrain_random_start
    assert not solar_config.preset("quick", "point_reach").pretrain_random_start
    nav_banner = solar.banner(nav, "runs/x", "quick", backend="cpu")
    assert "model steps, from random starts\n" in nav_banner
    assert "x step_mult (0.1-1) per iteration" in nav_banner
    assert (reacher.env, reacher.horizon, reacher.action_repeat, reacher.kl_step) == (
        "reacher_solar",
        12,
        4,
        4.0,
    )
    assert (reacher.model.latent, reacher.model.velocity, reacher.policy_min_std) == (8, True, 0.2)
    assert reacher.pretrain_random_start and not reacher.pretrain_random_target
    assert reacher.model.encoder == nav.model.encoder  # the rest is quick's
    assert solar_config.preset("paper", "reacher_solar").horizon == solar_config.paper().horizon
    args, overrides = cli.parse_args(["--env=reacher_easy", "--preset=quick", "--seed=1"])
    cfg = solar_config.preset(args.preset, overrides["env"])
    assert cfg.horizon == 12 and not cfg.pretrain_random_start
    banner = solar.banner(dataclasses.replace(cfg, iterations=3), "runs/x", "quick", None, "cpu")
    assert re.search(r"preset\s+quick, changed: iterations=3\n", banner), banner
