"""The PlaNet command line: clear errors, no tracebacks, nothing written on bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import planet as cli

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "experiments.planet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unknown_env_lists_valid_names_without_traceback(tmp_path):
    result = _run("--env=walker_wlak", "--preset=tiny", f"--logdir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown environment 'walker_wlak'" in result.stderr
    assert "walker_walk" in result.stderr and "point_reach" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--batch_size=abc", "--batch_size: expected an integer, got 'abc'"),
        ("--batch_size=0", "--batch_size: must be >= 1"),
        ("--model.variant=lstm", "--model.variant: expected one of rssm, ssm, rnn"),
        ("--planner.top_k=1000", "--planner.top_k"),
        ("--model.deterr=3", "Did you mean: --model.deter"),
    ],
)
def test_bad_flags_name_the_flag(capsys, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        code = cli.main(["--preset=tiny", flag])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_overrides_reach_the_config():
    args, overrides = cli.parse_args(["--env=point_reach", "--model.deter=12", "--seed=3"])
    assert overrides == {"model.deter": "12", "env": "point_reach", "seed": "3"}
    assert args.preset is None  # paper, unless --logdir holds a run (then its saved config)


def test_help_documents_every_field(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--batch_size", "--model.free_nats", "--planner.candidates", "--mode"):
        assert flag in text
    assert "(default: None)" not in text and "(default: 50) (default" not in text  # once each
    assert text.count("(default:") == text.count("default:")  # no second default anywhere
    assert "--model.variant {rssm,ssm,rnn}" in text and "--prng_impl {threefry2x32,rbg}" in text
    assert "--model.conv_impl {auto,xla,fast}" in text
    assert "--planner.horizon" in text and "planning horizon H" in text
    # Grouped by section, quick/tiny values beside the paper default, examples at the end.
    for title in ("collection and training:", "model (--model.*):", "planner (--planner.*):"):
        assert title in text
    assert "(default: 1000; quick 40, tiny 4)" in " ".join(text.split())
    assert "examples:" in text and "--preset=quick" in text


def test_every_flag_has_a_description():
    parser_actions = []
    import argparse

    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        parser_actions.extend(self._actions)
        return original(self, [])

    argparse.ArgumentParser.parse_args = capture
    try:
        cli.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = original
    flags = [a for a in parser_actions if a.option_strings]
    assert len(flags) > 40
    for action in flags:
        text = (action.help or "").split(" (default")[0].strip()
        assert len(text) > 8, f"{action.option_strings[0]} has no description"


def test_logdir_that_is_or_lies_under_a_file_is_refused(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("{}")
    assert cli.main(["--preset=tiny", f"--logdir={afile}"]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert cli.main(["--preset=tiny", f"--logdir={afile / 'sub' / 'run'}"]) == 2
    assert f"{afile} is a file, so" in capsys.readouterr().err
    assert afile.read_text() == "{}"


def test_tiny_run_end_to_end_then_eval(tmp_path):
    logdir = tmp_path / "run"
    result = _run("--env=point_reach", "--preset=tiny", f"--logdir={logdir}")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_return" in r for r in rows) and any("random_return" in r for r in rows)
    _assert_banner_and_summary_say_what_each_figure_is(result.stdout, logdir)
    refused = _run("--env=point_reach", "--preset=tiny", "--batch_size=5", f"--logdir={logdir}")
    assert refused.returncode == 2 and "batch_size: 4 -> 5" in refused.stderr
    # Extending the run needs no --preset: the saved config is the starting point.
    extended = _run(f"--logdir={logdir}", "--episodes=5")
    assert extended.returncode == 0, extended.stderr
    assert "the run directory's saved config" in extended.stdout
    assert "checkpoint 4 covers 4 episodes" in extended.stdout
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows if "train_return" in r] == [1, 2, 3, 4, 5]
    evaluated = _run("--mode=eval", f"--logdir={logdir}", "--eval_episodes=1")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "PlaNet evaluation finished" in evaluated.stdout and "eval return" in evaluated.stdout
    assert f"PlaNet evaluation of {logdir}" in evaluated.stdout
    assert "checkpoint  the newest: after episode 5" in evaluated.stdout


def test_logdir_holding_another_systems_run_is_refused(tmp_path):
    other = tmp_path / "solar_run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({f"field_{i}": i for i in range(20)}))
    result = _run("--env=point_reach", "--preset=tiny", f"--logdir={other}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds a run of another kind" in result.stderr
    assert len(result.stderr.splitlines()) <= 2


def test_glfw_without_display_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.planet",
            "--env=cartpole_swingup",
            "--preset=tiny",
            f"--logdir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "MUJOCO_GL": "glfw"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "MUJOCO_GL=glfw needs a display" in result.stderr and "MUJOCO_GL=egl" in result.stderr
    assert not (tmp_path / "run").exists()


def _rows(logdir):
    path = logdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_ctrl_c_during_training_exits_promptly_and_resumes(tmp_path):
    """SIGINT while the agent trains: exit 130 within 30 s, then the same --logdir resumes."""
    logdir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "experiments.planet",
        "--env=point_reach",
        "--preset=tiny",
        f"--logdir={logdir}",
        "--episodes=40",
        "--train_steps=30",
        "--eval_every=0",
        "--progress=true",
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r.get("grad_steps", 0) > 0 for r in _rows(logdir)):
            break  # the first trained episode is done: the loop is training or collecting
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 30
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resumes from its last checkpoint" in err
    done = max(r["episode"] for r in _rows(logdir) if "train_return" in r)
    # Resume to one more episode: episodes stay contiguous, nothing lost or doubled.
    resumed = _run(f"--logdir={logdir}", f"--episodes={done + 1}")
    assert resumed.returncode == 0, resumed.stderr
    episodes = [r["episode"] for r in _rows(logdir) if "train_return" in r]
    assert episodes == list(range(1, done + 2))


def _assert_banner_and_summary_say_what_each_figure_is(out, logdir):
    # Start banner: what runs where.
    for needle in ("PlaNet on point_reach", "preset    tiny", "devices   cpu", "replay", "output"):
        assert needle in out
    summary = out[out.index("PlaNet run finished") :]
    for needle in (
        "episodes           4 (160 env steps, 6 gradient updates)",
        "wall time",
        "noise-free episode(s) after episode 4",
        "random seed episodes",
        "one episode with exploration noise",
        "metrics.jsonl",
        f"tensorboard --logdir {logdir}",
        "videos",
        "--mode=eval",
    ):
        assert needle in summary, needle
    assert "episode=4" not in summary
