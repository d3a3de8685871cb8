"""Console scripts: the `jaxplanet` dispatcher, and the installed entry points of a plain wheel."""

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from jaxplanet import cli

ROOT = Path(__file__).resolve().parents[1]


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
        result = subprocess.run(
            [str(venv / "bin" / script), "--help"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (script, result.stderr[-2000:])
        assert usage in result.stdout


@pytest.mark.parametrize("system", ["planet", "solar", "world_models"])
def test_resume_without_preset_starts_from_the_saved_config(tmp_path, system):
    """Every command: --logdir holding a run and no --preset -> that run's config, not paper."""
    import importlib

    from jaxplanet import checkpoint, cli
    from jaxplanet import config as config_lib

    module = importlib.import_module(f"jaxplanet.agents.{system}_config")
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
    from jaxplanet import cli, console
    from jaxplanet import config as config_lib

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
