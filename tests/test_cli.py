"""Console scripts: the `jaxplanet` dispatcher, and the installed entry points of a plain wheel."""

import argparse
import importlib
import os
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from jaxplanet import cli

ROOT = Path(__file__).resolve().parents[1]
#: Each system's package under jaxplanet/.
PACKAGE = {"planet": "planet", "world_models": "worldmodels", "solar": "solar"}


def test_dispatcher_lists_commands_and_refuses_unknown(capsys):
    assert cli.main([]) == 2
    assert "planet,world-models,solar,plot" in capsys.readouterr().out
    assert cli.main(["plannet"]) == 2
    assert "unknown command 'plannet'; valid commands: planet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: jaxplanet plot" in text and "(default: None)" not in text


def _project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("system", ["planet", "world_models", "solar", "plot"])
def test_version_flag_prints_the_package_version(capsys, system):
    import jaxplanet

    assert jaxplanet.__version__ == _project_version()  # one version, wherever it is read
    module = importlib.import_module(f"jaxplanet.cli.{system}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"jaxplanet {_project_version()}\n"
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"jaxplanet {_project_version()}\n"


@pytest.mark.parametrize("system, least", [("world_models", 50), ("solar", 50)])
def test_every_flag_has_a_description(monkeypatch, system, least):
    """As for PlaNet (test_experiments_planet.py): every flag, config fields included, says what
    it does beyond its default."""
    actions: list[argparse.Action] = []
    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        actions.extend(a for a in self._actions if a.option_strings)
        return original(self, [])

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    importlib.import_module(f"jaxplanet.cli.{system}").parse_args([])
    assert len(actions) >= least
    missing = [
        a.option_strings[0]
        for a in actions
        if len((a.help or "").split(" (default")[0].strip()) <= 8
    ]
    assert missing == [], f"flags without a description: {missing}"


def test_console_scripts_run_from_a_non_editable_install(tmp_path):
    """Build a wheel, install it (no deps) into a fresh venv, run each script's --help elsewhere.

    The venv sees this environment's dependencies through a plain path entry (not a site dir,
    so the editable checkout's finder is not loaded): jaxplanet itself comes from the wheel.
    """
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("jaxplanet-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (Path(purelib) / "outer_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import jaxplanet; print(jaxplanet.__file__)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(purelib), where
    for module in ("experiments", "benchmarks"):  # checkout-only names are not installed
        found = subprocess.run(
            [str(python), "-c", f"import importlib.util as u; print(u.find_spec('{module}'))"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert found == "None", found
    for script, usage in [
        ("jaxplanet-planet", "usage: jaxplanet-planet"),
        ("jaxplanet-plot", "usage: jaxplanet-plot"),
        ("jaxplanet-solar", "usage: jaxplanet-solar"),
        ("jaxplanet-world-models", "usage: jaxplanet-world-models"),
    ]:
        help_, version = (
            subprocess.run(
                [str(venv / "bin" / script), flag],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            for flag in ("--help", "--version")
        )
        assert help_.returncode == 0, (script, help_.stderr[-2000:])
        assert usage in help_.stdout
        assert (version.returncode, version.stdout) == (0, f"jaxplanet {_project_version()}\n")


@pytest.mark.parametrize("system", ["planet", "solar", "world_models"])
def test_resume_without_preset_starts_from_the_saved_config(tmp_path, system):
    """Every command: --logdir holding a run and no --preset -> that run's config, not paper."""
    import importlib

    from jaxplanet import cli
    from jaxplanet.core import checkpoint
    from jaxplanet.core import config as config_lib

    module = importlib.import_module(f"jaxplanet.{PACKAGE[system]}.config")
    cls = next(
        v
        for k, v in vars(module).items()
        if k.endswith("Config")
        and k != "PlannerConfig"
        and isinstance(v, type)
        and hasattr(v, "validate")
    )
    tiny = module.preset("tiny")
    checkpoint.write_config(tmp_path, config_lib.to_dict(tiny))
    cfg, name = cli.base_config(cls, module.preset, str(tmp_path), None)
    assert name == "saved" and cfg == tiny
    cfg, name = cli.base_config(cls, module.preset, str(tmp_path), "quick")
    assert name == "quick" and cfg == module.preset("quick")
    cfg, name = cli.base_config(cls, module.preset, None, None)
    assert name == "paper" and cfg == module.preset("paper")


def test_run_command_maps_errors_to_exit_statuses(capsys):
    from jaxplanet import cli
    from jaxplanet.core import config as config_lib
    from jaxplanet.core import console

    def raising(err):
        def body():
            raise err

        return body

    assert cli.run_command(lambda: None) == 0
    assert cli.run_command(raising(config_lib.ConfigError("--x: bad"))) == 2
    assert "error: --x: bad" in capsys.readouterr().err
    assert cli.run_command(raising(ImportError("pip install 'jaxplanet[worldmodels]'"))) == 2
    assert cli.run_command(raising(FloatingPointError("loss at step 3"))) == 3
    assert cli.run_command(raising(console.StopRequested())) == console.INTERRUPT_EXIT
    assert "resumes from its last checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module, args, modes",
    [
        ("experiments.solar", ["--preset=tiny"], ("train", "eval")),
        ("experiments.world_models", ["--env=point_reach", "--preset=tiny"], (None, "eval")),
    ],
)
def test_logdir_that_is_or_lies_under_a_file_is_refused(tmp_path, capsys, module, args, modes):
    main = importlib.import_module(module).main
    afile = tmp_path / "afile"
    afile.write_text("{}")
    for mode in modes:
        mode_flag = [f"--mode={mode}"] if mode else []
        assert main([*args, *mode_flag, f"--logdir={afile}"]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --logdir: {afile} is a file, not a run directory\n"
    assert main([*args, f"--logdir={afile / 'sub' / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --logdir: {afile} is a file, so {afile / 'sub' / 'run'} cannot be made\n"
    assert afile.read_text() == "{}"


@pytest.mark.parametrize("system", ["planet", "solar", "world_models"])
def test_every_command_has_eval_mode(system):
    module = importlib.import_module(f"jaxplanet.cli.{system}")
    args, _ = module.parse_args(["--mode=eval", "--logdir=runs/x", "--eval_episodes=3"])
    assert (args.mode, args.logdir, args.list_envs) == ("eval", "runs/x", False)


@pytest.mark.parametrize(
    "system, warned",
    [
        ("world_models", "the collect stage alone plays 10,000 real doom_take_cover episodes"),
        ("solar", "4,000 model steps"),
    ],
)
def test_paper_banner_warns_on_a_cpu_as_planet_does(system, warned):
    """World Models and SOLAR build their banner from the config (nothing runs): the rows PlaNet's
    has, and its GPU-size warning for the paper preset on a CPU, naming what to run instead."""
    agent = importlib.import_module(f"jaxplanet.{PACKAGE[system]}.agent")
    presets = importlib.import_module(f"jaxplanet.{PACKAGE[system]}.config")
    text = agent.banner(presets.paper(), "runs/x", "paper", backend="cpu")
    names = [line.split()[0] for line in text.splitlines()[1:]]
    for row in ("preset", "env", "devices", "output", "warning:"):
        assert row in names, row
    (warning,) = [line for line in text.splitlines() if line.startswith("  warning: ")]
    assert warning.startswith("  warning: these are GPU/TPU-sized settings: ")
    assert warned in warning and warning.endswith("is sized for a CPU")
    assert "--preset=quick" in warning
    assert "warning" not in agent.banner(presets.paper(), "runs/x", "paper", backend="gpu")


def test_end_tables_share_planet_rows(tmp_path):
    """The rows every end table has, named and worded as PlaNet's: wall time, metrics,
    TensorBoard, videos, plot, evaluate."""
    from jaxplanet.planet import agent as planet
    from jaxplanet.solar import agent as solar
    from jaxplanet.worldmodels import agent as world_models

    (tmp_path / "videos").mkdir()
    (tmp_path / "learning_curves.png").write_bytes(b"")
    common = {"logdir": str(tmp_path), "wall_seconds": 65.0}
    tables = {
        "planet": planet.summary_rows(
            {**common, "episodes": 4, "env_steps": 160, "grad_steps": 6, "time_shares": {}}
        ),
        "solar": solar.summary_rows({**common, "cpu_seconds": 30.0}),
        "world_models": world_models.summary_rows(
            {**common, "directory": str(tmp_path), "cpu_seconds": 30.0, "stage_seconds": {}}
        ),
    }
    for system, rows in tables.items():
        table = dict(rows)
        assert table["wall time"] == "1 min 5 s (this session)", system
        assert table["TensorBoard"] == f"tensorboard --logdir {tmp_path}", system
        assert table["metrics"].startswith(str(tmp_path / "metrics.jsonl")), system
        assert table["videos"].startswith(f"{tmp_path / 'videos'}/"), system
        assert table["plot"] == str(tmp_path / "learning_curves.png"), system
        assert "--mode=eval" in table["evaluate"], system
    for system in ("solar", "world_models"):
        assert dict(tables[system])["CPU time"].startswith("30 s ("), system
