"""The World Models command line: the tiny preset end to end, clear errors without tracebacks."""

import dataclasses
import importlib.util
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

from experiments import world_models as cli
from jaxplanet.core import video
from jaxplanet.worldmodels import agent as world_models
from jaxplanet.worldmodels import config as world_models_config

ROOT = Path(__file__).resolve().parents[1]

needs_evosax = pytest.mark.skipif(
    importlib.util.find_spec("evosax") is None,
    reason="CMA-ES comes from evosax (extra 'worldmodels')",
)


def _frames(path):
    """The frames of a video file (imageio runs ffmpeg in a subprocess: fork warning muted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        return imageio.mimread(path)


def _rows(text: str, title: str) -> dict[str, str]:
    """The ``name  value`` rows of the banner or table under ``title`` in ``text``."""
    lines = text.split(title + "\n", 1)[1].splitlines()
    rows = {}
    for line in lines:
        if not line.startswith("  "):
            break
        name, value = (re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2]
        rows[name] = value
    return rows


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.world_models", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@needs_evosax
def test_tiny_preset_runs_every_stage_through_the_cli(tmp_path, capsys):
    """In-process (it shares compiled functions with the agent tests; `--help` and the module
    entry point run as subprocesses elsewhere in this file): the start banner, every stage, the
    end table; a finished run given --eval_episodes says its stored result is for another count;
    --mode=eval scores C again under eval/ and leaves evaluate.json as it was."""
    logdir = tmp_path / "run"
    assert (
        cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--stage=all"]) == 0
    )
    out = capsys.readouterr().out
    banner, rest = out.split("\ncollect:", 1)
    lines = banner.splitlines()
    assert lines[0] == "World Models on point_reach"
    rows = _rows(banner, "World Models on point_reach")
    assert rows["preset"] == "tiny"
    assert "point_reach: action_dim 2, action repeat 2, 20 env steps per episode" in rows["env"]
    assert "cpu" in rows["devices"] and f"{logdir}/" in rows["output"]
    assert "6 random" in rows["rollouts"] and "4 updates of 8 frames" in rows["V"]
    assert "2 generations x 4 candidates x 2 rollouts = 16 episodes" in rows["C"]
    assert "C on 2 real episodes beside 4 of i.i.d. random actions" in rows["evaluate"]
    assert "warning" not in banner  # tiny settings: no GPU-size warning
    for stage in ("vae", "mdn", "calibrate", "controller", "evaluate"):
        assert f"{stage}:" in rest
    table = _rows(rest, f"World Models run finished: {logdir}")
    assert table["wall time"].endswith("(this session)") and "CPU time" in table
    assert table["stages run"].startswith("collect ")
    assert "over 2 real episodes" in table["C (controller)"]
    assert "over 4 real episodes of i.i.d. uniform actions" in table["random policy"]
    assert "x;" in table["C vs random"] and "std errors" in table["C vs random"]
    assert table["result"] == str(logdir / "evaluate.json")
    assert table["videos"].startswith(f"{logdir / 'videos'}/")
    assert table["evaluate"].endswith(f"--logdir={logdir} --mode=eval --eval_episodes=N")
    saved = json.loads((logdir / "evaluate.json").read_text())
    assert Path(saved["video"]).exists()
    frames = _frames(saved["video"])  # captioned halves: "real t=..", "dream t=.."
    assert frames[0].shape == (video.CAPTION_HEIGHT + 128, 256, 3)
    assert frames[0][: video.CAPTION_HEIGHT].max() > 128
    assert json.loads((logdir / "config.json").read_text())["env"] == "point_reach"
    # A second call resumes: every stage is skipped (no --preset: the saved config).
    assert cli.main([f"--logdir={logdir}", "--in_dream=auto"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 6
    assert "the run directory's saved config" in out and "done already: collect" in out
    assert "none: every stage's result was there already" in out
    # --eval_episodes on a finished run: the stored result is for 2 episodes; --mode=eval.
    stored = (logdir / "evaluate.json").read_bytes()
    assert cli.main([f"--logdir={logdir}", "--stage=evaluate", "--eval_episodes=3"]) == 0
    out = capsys.readouterr().out
    assert "its result is for 2 real episodes of C" in out and "--mode=eval" in out
    assert "the stored result is for 2 episodes of C" in out
    assert cli.main([f"--logdir={logdir}", "--mode=eval", "--eval_episodes=3"]) == 0
    out = capsys.readouterr().out
    assert "World Models evaluation of" in out and "C on 3 real episodes" in out
    assert f"World Models evaluation finished: {logdir / 'eval'}" in out
    assert "wall time" in out and "over 3 real episodes" in out
    again = json.loads((logdir / "eval" / "evaluate.json").read_text())
    assert again["eval_episodes"] == 3 and again["random_episodes"] == 4
    assert again["random_return_mean"] == saved["random_return_mean"]  # the same random seeds
    assert Path(again["video"]).parent == logdir / "eval" / "videos"
    assert (logdir / "evaluate.json").read_bytes() == stored  # the run's result stays
    # Another config in the same directory is refused, naming the field.
    assert (
        cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--in_dream=false"])
        == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and 'in_dream: "auto" -> "false"' in err
    # --mode=eval refuses what would change the run, and a directory without a trained C.
    assert cli.main([f"--logdir={logdir}", "--mode=eval", "--generations=5"]) == 2
    assert "cannot change a trained run's config in eval mode" in capsys.readouterr().err
    assert cli.main(["--mode=eval"]) == 2
    assert "--mode=eval needs the run directory" in capsys.readouterr().err


def test_paper_banner_warns_that_it_is_gpu_sized_on_a_cpu():
    """Built from the config alone: nothing runs. No flags means the paper preset on Doom."""
    text = world_models.banner(world_models_config.paper(), "runs/x", "paper", backend="cpu")
    (warning,) = [line for line in text.splitlines() if "warning:" in line]
    assert "GPU/TPU-sized" in warning
    assert "10,000 real doom_take_cover episodes" in warning and "--preset=quick" in warning
    assert "10,000 random" in text and "300 generations x 64 candidates x 16 rollouts" in text
    assert "warning" not in world_models.banner(world_models_config.paper(), "x", backend="gpu")
    quick = world_models_config.quick()
    assert "warning" not in world_models.banner(quick, "x", "quick", backend="cpu")
    changed = dataclasses.replace(quick, rollouts=50, env="car_racing")
    assert "quick, changed: rollouts=50" in world_models.banner(changed, "x", "quick")


@needs_evosax
def test_ctrl_c_stops_between_updates_and_the_stage_resumes(tmp_path, capsys, monkeypatch):
    """A Ctrl-C during V's updates stops at the next update (exit status 130, PlaNet's
    messages); the stage then resumes from its checkpoint."""
    from jaxplanet.core import console
    from jaxplanet.worldmodels import vae

    stops, calls = [], []
    enter = console.StopOnInterrupt.__enter__

    def record(self):
        stops.append(self)
        return enter(self)

    train_step = vae.train_step

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during update 3 (checkpoints every 2)
            os.kill(os.getpid(), signal.SIGINT)
            assert stops[-1].requested.wait(10)
        return train_step(*args, **kwargs)

    monkeypatch.setattr(console.StopOnInterrupt, "__enter__", record)
    monkeypatch.setattr(vae, "train_step", interrupted)
    logdir = tmp_path / "run"
    args = ["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--stage=vae"]
    assert (
        cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--stage=collect"])
        == 0
    )
    assert cli.main(args) == console.INTERRUPT_EXIT
    captured = capsys.readouterr()
    assert "Ctrl-C: stopping at the next safe point" in captured.err
    assert "interrupted: the run resumes from its last checkpoint" in captured.err
    assert "stopped at once" not in captured.err and "Traceback" not in captured.err
    assert len(calls) == 3 and (logdir / "vae" / "checkpoints" / "2").is_dir()
    assert cli.main(args) == 0
    assert len(calls) == 3 + 2  # updates 3 and 4 again, from checkpoint 2
    assert "vae: 66 frames, updates 2 -> 4" in capsys.readouterr().out


def test_stage_before_inputs_names_the_stage_to_run_first(tmp_path, capsys):
    code = cli.main(["--preset=tiny", f"--logdir={tmp_path / 'run'}", "--stage=mdn"])
    assert code == 2
    assert "run --stage=vae first" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--vae_steps=abc", "--vae_steps: expected an integer, got 'abc'"),
        ("--population=1", "--population: CMA-ES needs at least 2 candidates"),
        ("--in_dream=maybe", "--in_dream: expected one of auto, true, false"),
        ("--env=walker_walk", "--env: World Models runs on"),
        ("--vae.kl_tolerence=1", "Did you mean: --vae.kl_tolerance"),
    ],
)
def test_bad_flags_name_the_flag(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(cli.main(["--preset=tiny", f"--logdir={tmp_path / 'run'}", flag]))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_missing_evosax_is_refused_before_any_stage_runs(tmp_path, capsys, monkeypatch):
    """Without evosax (simulated: its import fails) a run that reaches the controller stage is
    refused at the start, in one line naming the extra; stages that do not need it still run."""
    monkeypatch.setitem(sys.modules, "evosax", None)
    monkeypatch.setitem(sys.modules, "evosax.algorithms", None)
    logdir = tmp_path / "run"
    assert cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert "pip install 'jaxplanet[worldmodels]'" in captured.err
    assert "collect:" not in captured.out and not (logdir / "rollouts").exists()
    # A stage that needs no CMA-ES is not refused for it (here: the missing-input error).
    code = cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--stage=vae"])
    assert code == 2 and "run --stage=collect first" in capsys.readouterr().err


def test_bad_stage_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--stage=train"])
    assert exit_info.value.code == 2
    assert "--stage" in capsys.readouterr().err


def test_module_entry_point_help():
    result = _run("--help")
    assert result.returncode == 0 and "--stage" in result.stdout and "--preset" in result.stdout
    text = " ".join(result.stdout.split())
    assert "(default: None)" not in text and text.count("(default:") == text.count("default:")
    assert "which stages to run with --mode=train (default: all)" in text
    assert "what to run (default: train)" in text and "random seed (default: 0)" in text
    assert "--list_envs" in text
