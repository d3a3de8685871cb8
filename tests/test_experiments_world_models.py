"""The World Models command line: the tiny preset end to end, clear errors without tracebacks."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import world_models as cli

ROOT = Path(__file__).resolve().parents[1]

needs_evosax = pytest.mark.skipif(
    importlib.util.find_spec("evosax") is None,
    reason="CMA-ES comes from evosax (extra 'worldmodels')",
)


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
    entry point run as subprocesses elsewhere in this file)."""
    logdir = tmp_path / "run"
    assert (
        cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--stage=all"]) == 0
    )
    out = capsys.readouterr().out
    for stage in ("collect", "vae", "mdn", "calibrate", "controller"):
        assert f"{stage}:" in out
    assert "eval_return_mean=" in out
    saved = json.loads((logdir / "evaluate.json").read_text())
    assert Path(saved["video"]).exists()
    assert json.loads((logdir / "config.json").read_text())["env"] == "point_reach"
    # A second call resumes: every stage is skipped (no --preset: the saved config).
    assert cli.main([f"--logdir={logdir}", "--in_dream=auto"]) == 0
    assert capsys.readouterr().out.count("skipped") == 6
    # Another config in the same directory is refused, naming the field.
    assert (
        cli.main(["--env=point_reach", "--preset=tiny", f"--logdir={logdir}", "--in_dream=false"])
        == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and 'in_dream: "auto" -> "false"' in err


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
    assert "what to run (default: all)" in text and "random seed (default: 0)" in text
