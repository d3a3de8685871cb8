"""The SOLAR command line: tiny nav2d run end to end, clear errors on bad flags."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import solar as cli

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


def test_tiny_nav2d_train_then_eval_mode(tmp_path, capsys):
    """The entry point in-process (same compiled functions as the agent tests): a tiny run,
    then --mode=eval on its newest checkpoint writes eval/metrics.jsonl and videos."""
    logdir = tmp_path / "run"
    args = ["--env=nav2d", "--preset=tiny", "--horizon=5", "--iterations=1", f"--logdir={logdir}"]
    assert cli.main(args) == 0
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_return" in r for r in rows) and any("random_return" in r for r in rows)
    assert "eval_success" in rows[-1] and "random_success" in rows[0]
    assert list((logdir / "videos").iterdir())
    assert "eval_return=" in capsys.readouterr().out
    assert cli.main([f"--logdir={logdir}", "--mode=eval", "--eval_episodes=2"]) == 0
    out = capsys.readouterr().out
    assert "eval_return_mean=" in out and "eval_success_rate=" in out
    evals = (logdir / "eval" / "metrics.jsonl").read_text().splitlines()
    assert len(evals) == 2 and len(list((logdir / "eval" / "videos").iterdir())) == 2
    assert json.loads(evals[0])["eval_return"] == pytest.approx(rows[-1]["eval_return"], rel=1e-5)
    assert cli.main(["--mode=eval"]) == 2
    assert "--mode=eval needs the run directory" in capsys.readouterr().err


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
