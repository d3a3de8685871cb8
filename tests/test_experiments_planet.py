"""The PlaNet command line: clear errors, no tracebacks, nothing written on bad input."""

import json
import subprocess
import sys
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
    assert "--model.variant {rssm,ssm,rnn}" in text and "--prng_impl {threefry2x32,rbg}" in text
    assert "--planner.horizon" in text and "planning horizon H" in text


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
    refused = _run("--env=point_reach", "--preset=tiny", "--batch_size=5", f"--logdir={logdir}")
    assert refused.returncode == 2 and "batch_size: 4 -> 5" in refused.stderr
    # Extending the run needs no --preset: the saved config is the starting point.
    extended = _run(f"--logdir={logdir}", "--episodes=5")
    assert extended.returncode == 0, extended.stderr
    assert (
        "PlaNet (saved:" in extended.stdout and "checkpoint 4 covers 4 episodes" in extended.stdout
    )
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows if "train_return" in r] == [1, 2, 3, 4, 5]
    evaluated = _run("--mode=eval", f"--logdir={logdir}", "--eval_episodes=1")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "eval_return_mean" in evaluated.stdout
