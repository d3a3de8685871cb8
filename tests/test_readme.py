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
