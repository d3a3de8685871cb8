"""The README's promises: its library example runs as printed, its test command is CI's."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_library_example_runs_as_printed():
    (example,) = [b for b in _python_blocks() if "cem.plan(env.transition" in b]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 — our own README
    assert namespace["actions"].shape == (12, 2)
    assert namespace["plans"].shape == (4, 12, 2)
    assert np.all(np.abs(np.asarray(namespace["plans"])) <= 1.0)
    returns = np.asarray(namespace["returns"])
    assert returns.shape == (4,) and np.all(np.isfinite(returns))
    assert namespace["buf"].capacity == 10_000


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pytest" in README.read_text()
    assert ci.rstrip().splitlines()[-1].strip() == "pytest"


def _planet_commands() -> list[list[str]]:
    """The README's `python -m experiments.planet` training commands, as argument lists."""
    import shlex

    out = []
    for line in README.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("python -m experiments.planet ") and "--mode=eval" not in line:
            argv = shlex.split(line)[3:]
            if not any(a in ("--help", "--list_envs") for a in argv):
                out.append(argv)
    return out


def test_readme_planet_commands_give_valid_configs():
    """Every PlaNet training command printed in the README parses and validates (no run)."""
    from jaxplanet import config as config_lib
    from jaxplanet.agents import planet_config
    from jaxplanet.cli import planet as planet_cli

    commands = _planet_commands()
    assert any("--num_seeds=3" in c for c in commands) and len(commands) >= 5
    for argv in commands:
        args, overrides = planet_cli.parse_args(argv)
        base = planet_config.preset(args.preset or "paper")
        cfg = config_lib.override(base, planet_config.prng_for_seeds(base, overrides))
        cfg.validate()
